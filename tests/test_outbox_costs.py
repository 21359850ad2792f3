"""What one enqueue costs must not grow with what the outbox keeps (real SQLite files)."""

from __future__ import annotations

import os

import pytest

from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.storage.store import Store

QUOTA_QUERY = "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox WHERE envelope IS NOT NULL"


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
    assert "idx_outbox_stored_size" in plan, plan


def test_quota_sum_counts_stored_envelopes_only(tmp_path, sealer):
    """The index holds exactly the rows whose envelope is still stored."""
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
