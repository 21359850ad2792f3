"""Reference central's own state: its SQLite file and its keys.

The SQLite file (WAL, 0600) holds each submission once, with the signed ack and the
notifications to send, so that a duplicate gets the very same answers and
several responder instances may share it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import sqlite3
import threading

from fpagent.central import audit_heads, fleet, followups
from fpagent.central.registry import DeviceRegistry
from fpagent.sealing import keys as keys_mod

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    submission_id TEXT PRIMARY KEY,
    ori TEXT NOT NULL, device TEXT NOT NULL, tcn TEXT, received_at REAL NOT NULL,
    result TEXT NOT NULL, central_tcn TEXT, ack_id TEXT NOT NULL, ack_fields TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY, submission_id TEXT NOT NULL, ori TEXT NOT NULL, device TEXT NOT NULL,
    kind TEXT NOT NULL, fields TEXT NOT NULL, due_at REAL NOT NULL,
    claimed_until REAL, sent_at REAL
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (sent_at, due_at);
CREATE TABLE IF NOT EXISTS reprints (
    submission_id TEXT PRIMARY KEY, ori TEXT NOT NULL, tcr TEXT NOT NULL,
    original_submission_id TEXT
);
"""


def link_reprint(db, submission_id: str, ori: str, tcr: str) -> str | None:
    """Record that `submission_id` reprints the agency's booking whose TCN is `tcr`; returns
    the original submission's id (None when central never saw that TCN from this agency)."""
    row = db.execute("SELECT submission_id FROM submissions WHERE ori = ? AND tcn = ? "
                     "AND submission_id != ? ORDER BY received_at LIMIT 1",
                     (ori, tcr, submission_id)).fetchone()
    original = row[0] if row else None
    db.execute("INSERT OR IGNORE INTO reprints (submission_id, ori, tcr, original_submission_id) "
               "VALUES (?, ?, ?, ?)", (submission_id, ori, tcr, original))
    return original


def _make_private(path: pathlib.Path) -> None:
    """Names and criminal-history text live here: the file (and SQLite's -wal/-shm, which
    take the main file's mode) is readable by its owner only, an existing one included."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for side in ("-wal", "-shm"):
        extra = path.with_name(path.name + side)
        if extra.exists():
            os.chmod(extra, 0o600)


class CentralStore:
    """Central's own SQLite file (WAL; several instances may share it)."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _make_private(self.path)
        self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(_SCHEMA)
        self.conn.executescript(audit_heads.SCHEMA)
        self.conn.executescript(fleet.SCHEMA)
        self.conn.executescript(followups.SCHEMA)
        self.lock = threading.RLock()

    @contextlib.contextmanager
    def transaction(self):
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def submission(self, sid: str) -> dict | None:
        with self.lock:
            row = self.conn.execute(
                "SELECT submission_id, ori, device, tcn, result, central_tcn, ack_id, ack_fields, "
                "deliveries FROM submissions WHERE submission_id = ?", (sid,)).fetchone()
        if not row:
            return None
        keys = ("submission_id", "ori", "device", "tcn", "result", "central_tcn", "ack_id",
                "ack_fields", "deliveries")
        out = dict(zip(keys, row))
        out["ack_fields"] = json.loads(out["ack_fields"])
        return out

    def counts(self) -> dict:
        with self.lock:
            subs = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(deliveries), 0) "
                                     "FROM submissions").fetchone()
            notes = self.conn.execute("SELECT COUNT(*), COUNT(sent_at) FROM notifications").fetchone()
        return {"submissions": subs[0], "deliveries": subs[1], "notifications": notes[0],
                "notifications_sent": notes[1]}

    def reprint_of(self, submission_id: str) -> dict | None:
        """{"tcr", "original_submission_id"} when this submission reprints an earlier booking."""
        with self.lock:
            row = self.conn.execute("SELECT tcr, original_submission_id FROM reprints "
                                    "WHERE submission_id = ?", (submission_id,)).fetchone()
        return {"tcr": row[0], "original_submission_id": row[1]} if row else None

    def report_rows(self, since: float = 0.0) -> list:
        """Submissions received since `since` with every answer stored for them, the booking
        each reprints and the release notices received for them
        (fpagent.booking.figures.Submission; answered_at = when the broker took it)."""
        from fpagent.booking.figures import Submission
        with self.lock:
            subs = {sid: Submission(sid, at, result) for sid, at, result in self.conn.execute(
                "SELECT submission_id, received_at, result FROM submissions WHERE received_at >= ?",
                (since,))}
            for sid, fields, sent_at in self.conn.execute(
                    "SELECT n.submission_id, n.fields, n.sent_at FROM notifications n "
                    "JOIN submissions s ON s.submission_id = n.submission_id "
                    "WHERE s.received_at >= ?", (since,)):
                subs[sid].answers.append((sent_at, json.loads(fields)))
            for sid, tcr in self.conn.execute("SELECT submission_id, tcr FROM reprints"):
                if sid in subs:
                    subs[sid].reprint_of = tcr
            for release in followups.releases(self.conn):
                if release["submission_id"] in subs:
                    subs[release["submission_id"]].releases[release["release_id"]] = \
                        release["received_at"]
        return list(subs.values())

    def releases(self, submission_id: str | None = None) -> list[dict]:
        """The jails' release notices central has (fpagent.central.followups)."""
        with self.lock:
            return followups.releases(self.conn, submission_id)

    def audit_heads(self) -> list[dict]:
        """Every appliance's newest audit head and its tamper alarms (fpagent.central.audit_heads)."""
        with self.lock:
            return audit_heads.summary(self.conn)

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------- keys


@dataclasses.dataclass
class CentralKeys:
    """What central decrypts, signs and verifies with."""

    hpke: object  # keys.HpkePrivateKeySet
    signing: object  # Ed25519PrivateKey
    devices: DeviceRegistry  # (ORI, device id) -> its verify keys

    @classmethod
    def load(cls, keys_dir, devices_dir) -> "CentralKeys":
        """Central keys from keys_dir; device public keys `<ORI>/<device id>.pub` (and
        previous keys still in their overlap) from devices_dir (fpagent.central.registry)."""
        keys_dir = pathlib.Path(keys_dir)
        hk = keys_mod.load_hpke_private(keys_dir / keys_mod.CENTRAL_HPKE_PRIVATE)
        sk = keys_mod.load_signing_key(keys_dir / keys_mod.CENTRAL_SIGNING_KEY, "central signing key")
        return cls(hk, sk, DeviceRegistry.load(devices_dir))


def make_central_keys(directory) -> pathlib.Path:
    """Create the central HPKE + signing keys in `directory` unless they exist (development)."""
    directory = pathlib.Path(directory)
    if not (directory / keys_mod.CENTRAL_SIGNING_KEY).exists():
        keys_mod.create_central_keys(directory)
    return directory
