"""Audit log: the chain verifies, and every kind of tampering with the file shows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from fpagent.storage import audit as audit_mod
from fpagent.storage.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "agent.sqlite3")
    for i in range(6):
        s.audit.append("officer-7", "booking.enqueued", {"submission_id": f"s{i}", "n": i})
    yield s
    s.close()


def _tamper(path, sql, params=()):
    """What an attacker with the file could do: drop the guard triggers, then edit."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_chain_verifies_and_links(store):
    ok, bad, msg = store.audit.verify()
    assert ok and bad is None and "6 entries" in msg
    entries = list(reversed(store.audit.list()))
    assert entries[0].prev_hash == audit_mod.GENESIS
    for prev, cur in zip(entries, entries[1:]):
        assert cur.prev_hash == prev.hash
        assert cur.hash == audit_mod.entry_hash(prev.hash, cur.seq, cur.ts, cur.actor,
                                                cur.action, cur.detail)
    assert store.audit.head() == (6, entries[-1].hash)


def test_sqlite_refuses_update_and_delete(store):
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("DELETE FROM audit WHERE seq = 6")


@pytest.mark.parametrize("sql,params,first_bad,words", [
    ("UPDATE audit SET detail = ? WHERE seq = 3", ('{"n":99,"submission_id":"s2"}',), 3, "altered"),
    ("UPDATE audit SET actor = 'someone-else' WHERE seq = 1", (), 1, "altered"),
    ("UPDATE audit SET ts = '2020-01-01T00:00:00.000000Z' WHERE seq = 5", (), 5, "altered"),
    ("DELETE FROM audit WHERE seq = 4", (), 4, "missing"),
    ("DELETE FROM audit WHERE seq = 6", (), 5, "cut off"),
    ("UPDATE audit SET prev_hash = ? WHERE seq = 2", ("0" * 64,), 2, "does not link"),
    ("UPDATE audit SET detail = 'not json' WHERE seq = 2", (), 2, "not JSON"),
])
def test_tampering_shows(store, sql, params, first_bad, words):
    _tamper(store.path, sql, params)
    ok, bad, msg = store.audit.verify()
    assert not ok
    assert bad == first_bad
    assert words in msg


def test_recomputed_hash_of_edited_entry_still_breaks_next_link(store):
    """Editing an entry and fixing its own hash leaves the next entry pointing at the old one."""
    e = [x for x in store.audit.list() if x.seq == 3][0]
    detail = {**e.detail, "n": 42}
    new_hash = audit_mod.entry_hash(e.prev_hash, e.seq, e.ts, e.actor, e.action, detail)
    _tamper(store.path, "UPDATE audit SET detail = ?, hash = ? WHERE seq = 3",
            (json.dumps(detail, sort_keys=True, separators=(",", ":")), new_hash))
    ok, bad, msg = store.audit.verify()
    assert (ok, bad) == (False, 4) and "does not link" in msg


def test_no_biometric_or_bulky_detail(store):
    for detail in ({"template": "abc"}, {"Image": 1}, {"x": {"minutiae": []}},
                   {"blob": b"\x00\x01"}, {"text": "A" * 5000}, {"list": [b"x"]}):
        with pytest.raises(ValueError):
            store.audit.append("officer", "booking.enqueued", detail)
    assert store.audit.head()[0] == 6
    with pytest.raises(ValueError):
        store.audit.append("", "x", {})


def test_audit_cli(tmp_path, store):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path}"\n')
    store.close()
    run = [sys.executable, "-m", "fpagent", "--config", str(cfg)]
    out = subprocess.run(run + ["audit", "verify"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "audit chain intact: 6 entries" in out.stdout
    out = subprocess.run(run + ["audit", "list", "--limit", "2"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.count("booking.enqueued") == 2
    _tamper(tmp_path / "agent.sqlite3", "UPDATE audit SET actor = 'x' WHERE seq = 2")
    out = subprocess.run(run + ["audit", "verify"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "audit entry 2" in out.stdout and "first bad entry: 2" in out.stdout
