"""What one enqueue costs must not grow with what the outbox keeps (real SQLite files)."""

from __future__ import annotations

import os

import pytest

from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.storage import store as store_mod
from fpagent.storage.store import Store

QUOTA_QUERY = "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox WHERE state != 'purged'"


@pytest.fixture(scope="module")
def sealer():
    central = keys.generate_central_hpke_keys(suites=("x25519",)).public()
    dev = keys.generate_signing_key()

    def make(size, seq):
        return envelope.seal(os.urandom(size), device_id="booking-01", ori="XX0000000",
                             sequence=seq, central_public_key=central, device_signing_key=dev)
    return make


def test_quota_sum_reads_the_index_not_the_envelopes(tmp_path):
    """The quota check runs in every enqueue: it must not walk the stored envelopes."""
    with Store(tmp_path / "agent.sqlite3") as s:
        plan = " ".join(r[3] for r in s.conn.execute("EXPLAIN QUERY PLAN " + QUOTA_QUERY))
    assert "COVERING INDEX idx_outbox_state_size" in plan, plan


def test_quota_sum_counts_stored_envelopes_only(tmp_path, sealer):
    """The quota counts exactly the envelopes still stored."""
    with Store(tmp_path / "agent.sqlite3") as s:
        sids = []
        for seq in range(1, 5):
            env = sealer(3000, seq)
            sid = envelope.inspect(env).submission_id
            assert s.outbox.enqueue(sid, "TCN", env, {})
            sids.append((sid, len(env)))
        s.outbox.mark_acknowledged(sids[0][0], {"result": "accepted"})
        s.outbox.purge(sids[0][0], reason="test")
        kept = sum(n for _, n in sids[1:])
        assert s.conn.execute(QUOTA_QUERY).fetchone() == (kept, 3)
        assert s.outbox.queued_bytes() == kept
        stored = s.conn.execute("SELECT COALESCE(SUM(length(envelope)), 0), COUNT(*) "
                                "FROM outbox_envelope").fetchone()
        assert stored == (kept, 3)
        assert s.outbox.get(sids[0][0], with_envelope=True).envelope is None
        assert len(s.outbox.get(sids[1][0], with_envelope=True).envelope) == sids[1][1]
        assert s.check_consistency() == []


def test_bookkeeping_commit_leaves_the_store_durable(tmp_path, sealer):
    """A commit that does not wait for the disk is still atomic, and every later commit is
    synchronous again (FULL), after an error too."""
    with Store(tmp_path / "agent.sqlite3") as s:
        env = sealer(3000, 1)
        sid = envelope.inspect(env).submission_id
        assert s.outbox.enqueue(sid, "TCN", env, {})
        full = s.conn.execute("PRAGMA synchronous").fetchone()[0]
        assert full == 2
        with s.transaction(durable=False):
            assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
            assert s.outbox.mark_sent(sid, retry_after=30.0)
        assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == full
        with pytest.raises(RuntimeError):
            with s.transaction(durable=False):
                s.outbox.mark_sent(sid, retry_after=30.0)
                raise RuntimeError("fails half way")
        assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == full
        item = s.outbox.get(sid)
        assert (item.state, item.attempts) == ("sent", 1)  # the failed one rolled back whole


def _written_bytes() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_marking_sent_and_acknowledged_does_not_rewrite_the_envelope(tmp_path, sealer):
    """A state change writes a small row, not the envelope again (it used to write
    about 120 KiB per change of a 32 KiB envelope)."""
    with Store(tmp_path / "agent.sqlite3") as s:
        items = []
        for seq in range(1, 21):
            env = sealer(32 * 1024, seq)
            sid = envelope.inspect(env).submission_id
            assert s.outbox.enqueue(sid, "TCN", env, {})
            items.append(sid)
        s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = _written_bytes()
        for sid in items:
            s.outbox.mark_sent(sid, retry_after=30.0)
            s.outbox.mark_acknowledged(sid, {"result": "accepted", "central_tcn": "C-1"})
        s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        per_booking = (_written_bytes() - before) / len(items)
    assert per_booking < 48 * 1024, per_booking


def test_envelopes_of_an_older_version_move_to_their_table(tmp_path, sealer, monkeypatch):
    """A queue written by the previous release (envelopes in the outbox rows) is migrated:
    every booking still there, with its bytes, and still published."""
    path = tmp_path / "agent.sqlite3"
    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:2])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 2)
    envs = [sealer(5000, seq) for seq in (1, 2, 3)]
    with Store(path) as old:  # a version-2 database, as the previous release wrote it
        with old.transaction():
            for n, env in enumerate(envs):
                sid = envelope.inspect(env).submission_id
                old.conn.execute(
                    "INSERT INTO outbox (submission_id, tcn, created, state, attempts, "
                    "next_attempt, envelope, size, meta) VALUES (?, 'TCN', ?, 'pending', 0, ?, ?, "
                    "?, '{}')", (sid, 1000.0 + n, 1000.0 + n, env, len(env)))
                old.audit.append("agent", "booking.enqueued", {"submission_id": sid})
    monkeypatch.undo()
    with Store(path) as s:
        assert s.schema_version() == store_mod.SCHEMA_VERSION >= 3
        assert [r.envelope for r in s.outbox.due(now=2000.0)] == envs
        assert s.conn.execute("SELECT COUNT(*) FROM outbox WHERE envelope IS NOT NULL"
                              ).fetchone()[0] == 0
        assert s.outbox.queued_bytes() == sum(len(e) for e in envs)
        assert s.check_consistency() == []
