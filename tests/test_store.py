"""The SQLite store on real files: states, backoff, dedup, quotas, migrations, corruption."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading

import pytest

from fpagent import config as config_mod
from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.errors import StorageFull
from fpagent.storage.outbox import backoff_s
from fpagent.storage.store import SCHEMA_VERSION, Store, StoreError


@pytest.fixture(scope="module")
def sealer():
    central = keys.generate_central_hpke_keys(suites=("x25519",)).public()
    dev = keys.generate_signing_key()

    def make(size=2000, seq=1, submission_id=None):
        return envelope.seal(os.urandom(size), device_id="booking-01", ori="XX0000000",
                             sequence=seq, central_public_key=central, device_signing_key=dev,
                             submission_id=submission_id)
    return make


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "agent.sqlite3")
    yield s
    s.close()


def _enq(store, env, tcn="TCN", **meta):
    sid = envelope.inspect(env).submission_id
    assert store.outbox.enqueue(sid, tcn, env, {"booking_number": "B-1", **meta})
    return sid


def test_fresh_store_settings(store):
    conn = store.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.schema_version() == SCHEMA_VERSION
    store.inbox.add("m", "notification", {})  # makes the WAL and SHM exist
    for p in store.file_paths():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p  # personal data: owner only
    assert {p.name[-4:] for p in store.file_paths()} >= {"-wal", "-shm"}


def test_life_of_a_submission(store, sealer):
    env = sealer()
    sid = _enq(store, env)
    assert store.outbox.counts()["pending"] == 1
    assert [i.submission_id for i in store.outbox.due(limit=5)] == [sid]
    assert store.outbox.due()[0].envelope == env
    assert store.outbox.oldest_pending_age() is not None

    assert store.outbox.mark_sent(sid, now=1000.0)
    item = store.outbox.get(sid)
    assert (item.state, item.attempts, item.next_attempt) == ("sent", 1, 1000.0 + backoff_s(1))
    assert item.envelope is None  # not asked for
    assert store.outbox.due(now=1000.0 + backoff_s(1) - 0.1) == []
    assert len(store.outbox.due(now=1000.0 + backoff_s(1))) == 1  # re-published after backoff
    assert [i.submission_id for i in store.outbox.pending()] == [sid]  # sent is still unacknowledged

    assert store.outbox.mark_acknowledged(sid, {"central_tcn": "C-77", "status": "accepted"})
    assert not store.outbox.mark_acknowledged(sid, {"central_tcn": "C-77"})  # duplicate ack
    assert not store.outbox.mark_sent(sid)
    item = store.outbox.get(sid)
    assert (item.state, item.central_tcn) == ("acknowledged", "C-77")
    assert store.outbox.pending() == [] and store.outbox.oldest_pending_age() is None

    # retention: not yet, then purged; the row stays, the bytes go
    assert store.outbox.purge_expired(now=item.acknowledged_at + 86400) == 0
    assert store.outbox.purge_expired(now=item.acknowledged_at + 31 * 86400) == 1
    item = store.outbox.get(sid, with_envelope=True)
    assert item.state == "purged" and item.envelope is None and item.size == len(env)
    assert store.outbox.counts() == {"pending": 0, "sent": 0, "acknowledged": 0, "rejected": 0,
                                     "purged": 1, "total": 1}
    actions = [e.action for e in reversed(store.audit.list())]
    assert actions == ["booking.enqueued", "outbox.acknowledged", "outbox.purged"]
    assert store.check_consistency() == []


def test_backoff_grows_and_caps():
    assert [backoff_s(n) for n in (1, 2, 3)] == [10, 20, 40]
    assert backoff_s(50) == 300


def test_enqueue_is_idempotent_and_refuses_a_different_envelope(store, sealer):
    env = sealer()
    sid = _enq(store, env)
    assert store.outbox.enqueue(sid, "TCN", env) is False
    other = sealer(submission_id=sid)  # same id, sealed again: other bytes
    with pytest.raises(ValueError, match="different envelope"):
        store.outbox.enqueue(sid, "TCN", other)
    assert store.outbox.get(sid, with_envelope=True).envelope == env


def test_enqueue_checks_the_envelope(store, sealer):
    env = sealer()
    with pytest.raises(ValueError, match="belongs to submission"):
        store.outbox.enqueue(envelope.make_submission_id(), "T", env)
    with pytest.raises(ValueError, match="needs a sealed envelope"):
        store.outbox.enqueue(envelope.make_submission_id(), "T", b"raw transaction bytes")
    assert store.outbox.counts()["total"] == 0
    sid = _enq(store, env)
    detail = store.audit.list(action="booking.enqueued")[0].detail
    assert detail["submission_id"] == sid and detail["suite"] == "x25519"
    assert detail["device_key_id"] == envelope.inspect(env).device_key_id  # key use recorded


def test_rejected_is_not_retried(store, sealer):
    sid = _enq(store, sealer())
    assert store.outbox.mark_rejected(sid, "TCN-DUPLICATE")
    assert store.outbox.due() == [] and store.outbox.pending() == []
    assert store.outbox.get(sid).reason == "TCN-DUPLICATE"
    assert store.outbox.counts()["rejected"] == 1


def test_unacknowledged_are_never_purged(store, sealer):
    sid = _enq(store, sealer())
    assert store.outbox.purge_expired(now=10 ** 12) == 0
    from fpagent.errors import UserError
    with pytest.raises(UserError, match="not acknowledged"):
        store.outbox.purge(sid, reason="operator")


def test_retry_all_now_after_reconnect(store, sealer):
    a, b = _enq(store, sealer()), _enq(store, sealer())
    store.outbox.mark_sent(a, now=100.0)
    store.outbox.mark_sent(b, now=100.0)
    assert store.outbox.due(now=101.0) == []
    assert store.outbox.retry_all_now(now=101.0) == 2
    assert len(store.outbox.due(now=101.0)) == 2


def test_no_biometric_meta(store, sealer):
    env = sealer()
    with pytest.raises(ValueError, match="biometric"):
        store.outbox.enqueue(envelope.inspect(env).submission_id, "T", env,
                             {"template": "abc"})
    with pytest.raises(ValueError, match="no bytes"):
        store.outbox.enqueue(envelope.inspect(env).submission_id, "T", env, {"x": b"raw"})
    assert store.outbox.counts()["total"] == 0


def test_quota_refuses_new_keeps_old(tmp_path, sealer):
    cfg = config_mod.from_dict({"store": {"max_queue_mb": 0.02, "min_free_mb": 0}})
    s = Store(tmp_path / "q.sqlite3", cfg)
    kept = [_enq(s, sealer(size=6000)) for _ in range(3)]
    env = sealer(size=6000)
    with pytest.raises(StorageFull, match="max_queue_mb") as info:
        s.outbox.enqueue(envelope.inspect(env).submission_id, "T", env)
    assert "NOT queued" in str(info.value) and "nothing queued was dropped" in str(info.value)
    assert sorted(i.submission_id for i in s.outbox.pending()) == sorted(kept)
    assert s.check_consistency() == []


def test_quota_full_of_acknowledged_says_purge_frees_it(tmp_path, sealer):
    cfg = config_mod.from_dict({"store": {"max_queue_mb": 0.02, "min_free_mb": 0}})
    s = Store(tmp_path / "q.sqlite3", cfg)
    acked = [_enq(s, sealer(size=6000)) for _ in range(3)]
    for sid in acked:
        s.outbox.mark_acknowledged(sid, {"central_tcn": "C"})
    env = sealer(size=6000)
    sid = envelope.inspect(env).submission_id
    with pytest.raises(StorageFull, match="fpagent queue purge --acknowledged"):
        s.outbox.enqueue(sid, "T", env)
    assert s.outbox.purge_acknowledged() == 3
    assert s.outbox.enqueue(sid, "T", env)
    assert s.check_consistency() == []


def test_min_free_space_refuses(tmp_path, sealer):
    cfg = config_mod.from_dict({"store": {"min_free_mb": 10 ** 9}})  # a petabyte: never free
    s = Store(tmp_path / "q.sqlite3", cfg)
    env = sealer()
    with pytest.raises(StorageFull, match="min_free_mb"):
        s.outbox.enqueue(envelope.inspect(env).submission_id, "T", env)


def test_inbox_dedup_and_acknowledge(store):
    assert store.inbox.add("m-1", "notification", {"hit": True, "level": 1})
    assert not store.inbox.add("m-1", "notification", {"hit": True, "level": 1})
    assert store.inbox.count(unacknowledged=True) == 1
    assert store.inbox.get("m-1")["body"] == {"hit": True, "level": 1}
    assert [m["message_id"] for m in store.inbox.list(unacknowledged=True)] == ["m-1"]
    assert store.inbox.acknowledge("m-1", "officer-7")
    assert not store.inbox.acknowledge("m-1", "officer-7")
    assert store.inbox.get("m-1")["acknowledged_by"] == "officer-7"
    assert store.inbox.list(unacknowledged=True) == []
    assert store.inbox.get("nope") is None


def test_inbox_retention(store):
    store.inbox.add("old", "notification", {}, now=1000.0)
    store.inbox.add("unread", "notification", {}, now=1000.0)
    store.inbox.acknowledge("old", "officer-1", now=1000.0)
    assert store.inbox.purge_expired(now=1000.0 + 29 * 86400) == 0
    assert store.inbox.purge_expired(now=1000.0 + 31 * 86400) == 1
    assert store.inbox.get("old") is None and store.inbox.get("unread") is not None
    assert store.audit.list(action="inbox.purged")[0].detail == {"count": 1}


def test_seen_ids_expire(store):
    assert store.seen.add("ack", "x", ttl_s=10, now=100.0)
    assert not store.seen.add("ack", "x", ttl_s=10, now=105.0)
    assert store.seen.add("notification", "x", ttl_s=10, now=105.0)  # scopes are separate
    assert store.seen.contains("ack", "x", now=109.0)
    assert store.seen.expire(now=111.0) == 1
    assert store.seen.add("ack", "x", ttl_s=10, now=112.0)


def test_counters_and_sequence_survive_reopen(tmp_path):
    s = Store(tmp_path / "c.sqlite3")
    assert [s.next_sequence() for _ in range(3)] == [1, 2, 3]
    s.counters.incr("link.rejected.bad_signature", 2)
    s.close()
    s = Store(tmp_path / "c.sqlite3")
    assert s.next_sequence() == 4
    assert s.counters.all()["link.rejected.bad_signature"] == 2


def test_nested_transaction_rolls_back_as_one(store, sealer):
    env = sealer()
    with pytest.raises(RuntimeError):
        with store.transaction():
            _enq(store, env)
            store.audit.append("officer", "booking.completed", {"x": 1})
            raise RuntimeError("power cut simulated in code")
    assert store.outbox.counts()["total"] == 0
    assert store.audit.head()[0] == 0
    assert store.check_consistency() == []


def test_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "new.sqlite3"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer than this agent knows"):
        Store(path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_migration_from_version_zero_file(tmp_path):
    """A database created before any schema (user_version 0, empty) is migrated, not reset."""
    path = tmp_path / "old.sqlite3"
    sqlite3.connect(path).close()
    s = Store(path)
    assert s.schema_version() == SCHEMA_VERSION
    assert s.audit.verify()[0]


def test_corrupt_file_is_moved_aside_not_deleted(tmp_path, sealer, caplog):
    path = tmp_path / "agent.sqlite3"
    s = Store(path)
    for _ in range(20):
        _enq(s, sealer(size=3000))
    s.close()
    data = bytearray(path.read_bytes()) if path.stat().st_size > 8192 else None
    # checkpointed? make sure the main file holds the pages, then smash a b-tree page
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for off in range(page * 2, min(len(data), page * 6)):
        data[off] = 0xA5
    path.write_bytes(bytes(data))
    original = bytes(data)
    with caplog.at_level("ERROR"):
        s = Store(path, check="full")
    assert s.recovered_from is not None
    assert s.recovered_from.read_bytes() == original  # kept, byte for byte
    assert "CORRUPT" in caplog.text and str(s.recovered_from) in caplog.text
    assert s.outbox.counts()["total"] == 0
    entries = s.audit.list()
    assert entries[-1].action == "store.corrupt_moved_aside"
    assert s.audit.verify()[0]


def test_cli_mode_refuses_corrupt_file_without_moving_it(tmp_path):
    path = tmp_path / "agent.sqlite3"
    path.write_bytes(b"not sqlite" * 500)
    with pytest.raises(StoreError, match="corrupt.*Restart the agent service"):
        Store(path, on_corrupt="raise")
    assert path.read_bytes() == b"not sqlite" * 500
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_not_a_database_is_moved_aside(tmp_path):
    path = tmp_path / "agent.sqlite3"
    junk = b"this is not sqlite at all" * 100
    path.write_bytes(junk)
    s = Store(path)
    assert s.recovered_from is not None and s.recovered_from.read_bytes() == junk
    assert s.outbox.counts()["total"] == 0
    assert Store(path).recovered_from is None  # the fresh file is sound on the next start


def test_two_processes_share_the_file(tmp_path, sealer):
    """The CLI (another process) reads while the daemon writes: WAL + busy timeout."""
    path = tmp_path / "agent.sqlite3"
    s = Store(path)
    _enq(s, sealer())
    out = subprocess.run([sys.executable, "-c", (
        "import sys; from fpagent.storage.store import Store; s = Store(sys.argv[1]);"
        "print(s.outbox.counts()['pending']); s.inbox.add('m', 'notification', {})")
        , str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert s.inbox.get("m") is not None


def test_threads_share_one_store(store, sealer):
    """The daemon's booking thread and the MQTT link's thread use one Store object."""
    import threading

    envs = [sealer(size=500, seq=i) for i in range(60)]
    errors = []

    def booker():
        try:
            for env in envs:
                store.outbox.enqueue(envelope.inspect(env).submission_id, "T", env)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def link():
        try:
            done = 0
            while done < len(envs):
                for item in store.outbox.due(now=10 ** 12, limit=8):
                    store.outbox.mark_sent(item.submission_id)
                    if store.outbox.mark_acknowledged(item.submission_id, {"central_tcn": "C"}):
                        done += 1
                store.inbox.add(f"m{done}", "notification", {"n": done})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=booker), threading.Thread(target=link)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert store.outbox.counts()["acknowledged"] == len(envs)
    assert store.check_consistency() == []


def test_migration_runner_applies_and_rolls_back(tmp_path, monkeypatch, sealer):
    """A later schema version: applied once in its own transaction; a failing one leaves
    the file at the old version with its data (never half-migrated, never reset)."""
    import fpagent.storage.store as store_mod

    path = tmp_path / "m.sqlite3"
    s = Store(path)
    sid = _enq(s, sealer())
    s.close()

    def broken(db, store):
        db["outbox"].add_column("priority", int)
        raise RuntimeError("migration bug")

    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS + [broken])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", len(store_mod.MIGRATIONS))
    with pytest.raises(RuntimeError, match="migration bug"):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store_mod.SCHEMA_VERSION - 1
    assert "priority" not in [r[1] for r in conn.execute("PRAGMA table_info(outbox)")]
    conn.close()

    def good(db, store):
        db["outbox"].add_column("priority", int)

    released = store_mod.MIGRATIONS[:-1]
    monkeypatch.setattr(store_mod, "MIGRATIONS", released + [good])
    s = Store(path)
    assert s.schema_version() == len(released) + 1
    assert s.outbox.get(sid).state == "pending"  # data kept across the migration
    assert s.check_consistency() == []
    s.close()
    assert Store(path).schema_version() == len(released) + 1  # not applied twice


_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # keeps the write lock until the connection ends
conn.execute("INSERT INTO counters (name, value) VALUES ('held', 1)")
print("held", flush=True)
sys.stdin.readline()
"""


def _lock_holder(path):
    """Another process holding the database's write lock until told to let go."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_start_waits_out_a_lock_longer_than_sqlites_busy_timeout(tmp_path):
    path = tmp_path / "agent.sqlite3"
    Store(path).close()
    holder = _lock_holder(path)
    release = threading.Timer(1.5, lambda: (holder.stdin.write("\n"), holder.stdin.flush()))
    try:
        release.start()
        s = Store(path, busy_timeout_s=0.1, open_timeout_s=30)  # SQLite alone gives up after 0.1 s
        assert holder.wait(timeout=10) == 0
        assert s.counters.all()["held"] == 1  # it opened the file the holder wrote, not a new one
        s.close()
    finally:
        release.cancel()
        holder.kill()


def test_a_lock_that_stays_is_an_error_that_says_what_to_do(tmp_path):
    path = tmp_path / "agent.sqlite3"
    Store(path).close()
    holder = _lock_holder(path)
    try:
        with pytest.raises(StoreError, match=r"stayed locked for 0\.5 s.*only one agent runs"):
            Store(path, busy_timeout_s=0.1, open_timeout_s=0.5)
    finally:
        holder.kill()
    assert not list(tmp_path.glob("*.corrupt-*"))  # a locked file is never taken for a corrupt one
