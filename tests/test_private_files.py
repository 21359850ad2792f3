"""Private files: central's database 0600, the inbox's criminal-history text sealed at rest.

(The sensor capture PNG's mode is checked in test_sensor_cli.)
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from fpagent.central.store import CentralStore
from fpagent.sealing import at_rest
from fpagent.storage import store as store_mod
from fpagent.storage.store import Store

HISTORY = "1998 ARMED ROBBERY, COUNTY OF EXAMPLE; NAME ZEBULON QUIXOTE"


def _files_contain(folder, needle: bytes) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _notification(n: int) -> dict:
    return {"kind": "notification", "check": "criminal-history", "result": "hit",
            "record": {"history": HISTORY, "n": n}, "instructions": "see record"}


def test_central_database_is_private(tmp_path):
    path = tmp_path / "central.sqlite3"
    s = CentralStore(path)
    with s.transaction() as db:
        db.execute("INSERT INTO submissions (submission_id, ori, device, received_at, result, "
                   "ack_id, ack_fields) VALUES ('s', 'XX0000000', 'booking-01', 0, 'accepted', "
                   "'a', '{}')")
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        assert f.stat().st_mode & 0o777 == 0o600, f.name
    s.close()
    older = tmp_path / "older.sqlite3"  # made by an older version, 0644
    sqlite3.connect(older).close()
    older.chmod(0o644)
    CentralStore(older).close()
    assert older.stat().st_mode & 0o777 == 0o600


def test_inbox_text_is_sealed_at_rest(tmp_path):
    path = tmp_path / "agent.sqlite3"
    with Store(path) as s:
        assert s.inbox.add("m1", "notification", _notification(1))
        assert s.inbox.get("m1")["body"]["record"]["history"] == HISTORY
        raw = s.conn.execute("SELECT body FROM inbox").fetchone()[0]
        assert at_rest.is_sealed(raw)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "local-data.key").stat().st_mode & 0o777 == 0o600
    assert _files_contain(tmp_path, HISTORY.encode()) == []
    assert _files_contain(tmp_path, b"ZEBULON") == []
    with Store(path) as s:  # and it reads back after a restart
        assert s.inbox.list()[0]["body"] == _notification(1)


def test_plaintext_inbox_of_an_older_version_is_migrated_not_reset(tmp_path, monkeypatch):
    path = tmp_path / "agent.sqlite3"
    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:1])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 1)
    with Store(path) as old:  # a version-1 database, as the previous release wrote it
        with old.transaction():
            for n in range(3):
                old.conn.execute("INSERT INTO inbox (message_id, kind, received, body) "
                                 "VALUES (?, 'notification', ?, ?)",
                                 (f"m{n}", 1000.0 + n, json.dumps(_notification(n), sort_keys=True)))
    assert _files_contain(tmp_path, b"ZEBULON")  # the old state: in clear
    monkeypatch.undo()
    with Store(path) as s:
        assert s.schema_version() == store_mod.SCHEMA_VERSION >= 2
        assert [m["body"] for m in s.inbox.list()] == [_notification(n) for n in (2, 1, 0)]
    assert _files_contain(tmp_path, b"ZEBULON") == []


def test_an_altered_inbox_row_is_refused_not_misread(tmp_path):
    path = tmp_path / "agent.sqlite3"
    with Store(path) as s:
        s.inbox.add("m1", "notification", _notification(1))
        s.inbox.add("m2", "notification", _notification(2))
        with s.transaction():  # swap two sealed bodies: each is bound to its message id
            b1, b2 = (s.conn.execute("SELECT body FROM inbox WHERE message_id = ?", (m,)).fetchone()[0]
                      for m in ("m1", "m2"))
            s.conn.execute("UPDATE inbox SET body = ? WHERE message_id = 'm1'", (b2,))
        with pytest.raises(at_rest.SealedBlobError):
            s.inbox.get("m1")
