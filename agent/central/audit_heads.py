"""The audit heads central has seen, per appliance: tamper evidence kept off the box.

Each appliance's signed, retained status carries the head of its hash-chained
audit log (entry count `seq` and newest `hash`). Central keeps every head it
sees per (ORI, device). A later head with a lower seq means entries were
removed (the chain went backwards); the same seq with another hash means the
log was rewritten (the chain forked). Either is a tamper alarm: logged,
counted and stored, and listed by `fpagent central audit-heads`.

A head with a higher seq cannot be checked against the earlier one without
the entries between them, so only the two faults above are detected here; an
appliance reset on purpose (a new, empty log) shows as "backwards" too.
"""

from __future__ import annotations

import re
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_heads (
    ori TEXT NOT NULL, device TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (ori, device, seq, hash)
);
CREATE TABLE IF NOT EXISTS audit_alarms (
    ori TEXT NOT NULL, device TEXT NOT NULL, fault TEXT NOT NULL,
    seq INTEGER NOT NULL, hash TEXT NOT NULL, known_seq INTEGER NOT NULL, known_hash TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (ori, device, fault, seq, hash)
);
"""

BACKWARDS = "backwards"
FORK = "fork"
_HASH = re.compile(r"^[0-9a-f]{64}$")


def parse_head(audit) -> tuple[int, str] | None:
    """(seq, hash) of a status body's `audit` field, or None when absent or malformed."""
    if not isinstance(audit, dict):
        return None
    seq, head_hash = audit.get("seq"), audit.get("hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return None
    if not isinstance(head_hash, str) or not _HASH.match(head_hash):
        return None
    return seq, head_hash


def judge(known: dict[int, str], seq: int, head_hash: str) -> tuple[str, int, str] | None:
    """The fault a new head shows against the heads already seen ({seq: hash}), or None.

    Returns (fault, known seq, known hash): the head it contradicts."""
    if seq in known and known[seq] != head_hash:
        return FORK, seq, known[seq]
    if known:
        newest = max(known)
        if seq < newest:
            return BACKWARDS, newest, known[newest]
    return None


def record(db, ori: str, device: str, seq: int, head_hash: str,
           now: float | None = None) -> tuple[str, int, str] | None:
    """Judge and store one head seen from (ori, device), inside the caller's transaction.

    Returns the fault (as `judge`) when the head contradicts what was seen; the
    alarm is stored once however often the same head comes again."""
    now = time.time() if now is None else now
    known = dict(db.execute("SELECT seq, hash FROM audit_heads WHERE ori = ? AND device = ?",
                            (ori, device)).fetchall())
    fault = judge(known, seq, head_hash)
    db.execute("INSERT INTO audit_heads (ori, device, seq, hash, first_seen, last_seen) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ori, device, seq, hash) "
               "DO UPDATE SET last_seen = excluded.last_seen",
               (ori, device, seq, head_hash, now, now))
    if fault is not None:
        db.execute("INSERT OR IGNORE INTO audit_alarms (ori, device, fault, seq, hash, known_seq, "
                   "known_hash, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (ori, device, fault[0], seq, head_hash, fault[1], fault[2], now))
    return fault


def summary(conn) -> list[dict]:
    """One row per appliance: its newest head, when last seen, and its alarms (oldest first)."""
    rows = conn.execute(
        "SELECT ori, device, MAX(seq), MAX(last_seen) FROM audit_heads GROUP BY ori, device "
        "ORDER BY ori, device").fetchall()
    out = []
    for ori, device, seq, last_seen in rows:
        head_hash = conn.execute("SELECT hash FROM audit_heads WHERE ori = ? AND device = ? AND "
                                 "seq = ? ORDER BY last_seen DESC LIMIT 1",
                                 (ori, device, seq)).fetchone()[0]
        alarms = [{"fault": f, "seq": s, "hash": h, "known_seq": ks, "known_hash": kh,
                   "seen_at": at}
                  for f, s, h, ks, kh, at in conn.execute(
                      "SELECT fault, seq, hash, known_seq, known_hash, seen_at FROM audit_alarms "
                      "WHERE ori = ? AND device = ? ORDER BY seen_at", (ori, device))]
        out.append({"ori": ori, "device": device, "seq": seq, "hash": head_hash,
                    "last_seen": last_seen, "alarms": alarms,
                    "state": "ALARM" if alarms else "ok"})
    return out
