"""Append-only, hash-chained audit log: who did what, when, so tampering shows.

The log lives in the store's SQLite file (table `audit`), so an audit entry
and the change it describes commit in ONE transaction: after a crash both
are there or neither is. Each entry's hash is SHA-256 over the previous
entry's hash and the canonical JSON of the entry (seq, ts, actor, action,
detail); SQLite triggers refuse UPDATE and DELETE on the table, and the
newest hash is also kept in `meta` (key `audit_head`) so a cut-off tail
shows. Someone who can rewrite the whole file can rewrite the chain too:
the head hash is worth publishing off the box (the link's status message).

Details are small JSON objects of ids, counts and reasons. Never biometric
data, images, templates, envelopes or keys: `append` refuses bytes,
long strings and keys named like biometric payloads.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time

GENESIS = "0" * 64
MAX_DETAIL_BYTES = 4096
MAX_STRING = 512
_FORBIDDEN_KEYS = {"image", "images", "pixels", "template", "templates", "minutiae", "wsq",
                   "png", "payload", "plaintext", "envelope", "private_key", "secret", "fingerprint"}


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _rfc3339(ts: float) -> str:
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}Z"


def entry_hash(prev_hash: str, seq: int, ts: str, actor: str, action: str, detail: dict) -> str:
    """The chain hash of one entry (documented so others can check a log)."""
    body = canonical({"seq": seq, "ts": ts, "actor": actor, "action": action, "detail": detail})
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + body).hexdigest()


def check_detail(detail, _path: str = "detail") -> None:
    """Refuse anything that could smuggle biometric data or secrets into the log."""
    if detail is None or isinstance(detail, (bool, int, float)):
        return
    if isinstance(detail, str):
        if len(detail) > MAX_STRING:
            raise ValueError(f"audit {_path} is a string of {len(detail)} characters; "
                             f"audit details hold ids and reasons only (max {MAX_STRING})")
        return
    if isinstance(detail, (list, tuple)):
        for i, v in enumerate(detail):
            check_detail(v, f"{_path}[{i}]")
        return
    if isinstance(detail, dict):
        for k, v in detail.items():
            if not isinstance(k, str):
                raise ValueError(f"audit {_path} keys must be strings")
            if k.lower() in _FORBIDDEN_KEYS:
                raise ValueError(f"audit {_path}.{k}: biometric data, envelopes and secrets "
                                 f"never go into the audit log")
            check_detail(v, f"{_path}.{k}")
        return
    raise ValueError(f"audit {_path} holds a {type(detail).__name__}; only JSON values "
                     f"(no bytes) are allowed")


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    actor: str
    action: str
    detail: dict
    prev_hash: str
    hash: str


class AuditLog:
    """The audit table of a Store. Use `store.audit`; do not build one by hand."""

    def __init__(self, store):
        self._store = store

    def append(self, actor: str, action: str, detail: dict | None = None,
               *, now: float | None = None) -> AuditEntry:
        """Add one entry (inside the caller's transaction if one is open)."""
        detail = dict(detail or {})
        check_detail(detail)
        if len(canonical(detail)) > MAX_DETAIL_BYTES:
            raise ValueError(f"audit detail larger than {MAX_DETAIL_BYTES} bytes; "
                             f"record ids and counts, not contents")
        if not actor or not action:
            raise ValueError("audit entries need an actor and an action")
        st = self._store
        with st.transaction():
            row = st.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            prev_seq, prev_hash = (row[0], row[1]) if row else (0, GENESIS)
            seq = prev_seq + 1
            ts = _rfc3339(time.time() if now is None else now)
            h = entry_hash(prev_hash, seq, ts, actor, action, detail)
            st.conn.execute(
                "INSERT INTO audit (seq, ts, actor, action, detail, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, ts, actor, action, canonical(detail).decode("utf-8"), prev_hash, h))
            st.conn.execute("INSERT INTO meta (key, value) VALUES ('audit_head', ?) "
                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                            (f"{seq}:{h}",))
        return AuditEntry(seq, ts, actor, action, detail, prev_hash, h)

    def head(self) -> tuple[int, str]:
        """(number of entries, newest hash): publish it off the box to anchor the chain."""
        with self._store._lock:
            row = self._store.conn.execute(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def list(self, *, limit: int = 50, action: str | None = None,
             since_seq: int = 0) -> list[AuditEntry]:
        """Entries newest first (limit), optionally only one action."""
        sql = "SELECT seq, ts, actor, action, detail, prev_hash, hash FROM audit WHERE seq > ?"
        params: list = [since_seq]
        if action:
            sql += " AND action = ?"
            params.append(action)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(int(limit))
        with self._store._lock:
            rows = self._store.conn.execute(sql, params).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    def verify(self) -> tuple[bool, int | None, str]:
        """Walk the whole chain: (ok, first bad seq or None, a message a person can read)."""
        with self._store._lock:
            cur = self._store.conn.execute(
                "SELECT seq, ts, actor, action, detail, prev_hash, hash FROM audit ORDER BY seq")
            prev_hash, expect_seq, n = GENESIS, 1, 0
            for seq, ts, actor, action, detail, stored_prev, stored_hash in cur:
                if seq != expect_seq:
                    return (False, expect_seq, f"audit entry {expect_seq} is missing "
                            f"(next present is {seq}): entries were removed")
                if stored_prev != prev_hash:
                    return (False, seq, f"audit entry {seq} does not link to entry {seq - 1}: "
                            f"the chain was altered")
                try:
                    d = json.loads(detail)
                except ValueError:
                    return (False, seq, f"audit entry {seq} detail is not JSON: altered")
                h = entry_hash(prev_hash, seq, ts, actor, action, d)
                if h != stored_hash:
                    return (False, seq, f"audit entry {seq} ({action}) does not match its "
                            f"hash: its content was altered")
                prev_hash, expect_seq, n = h, seq + 1, n + 1
            head = self._store.conn.execute(
                "SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
        if n and (head is None or head[0] != f"{n}:{prev_hash}"):
            return (False, n, f"audit head record ({head[0] if head else 'none'}) does not "
                    f"match the last entry {n}: entries were cut off the end or altered")
        if not n and head is not None:
            return (False, 1, "audit log is empty but its head record says otherwise: "
                    "entries were removed")
        return (True, None, f"audit chain intact: {n} entries")
