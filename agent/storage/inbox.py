"""What central sends, once verified: the inbox of messages, and the ids already seen.

`Inbox` keeps notifications and commands durably until an officer
acknowledges them (then for retention_days); `SeenIds` remembers processed
message ids per scope until they expire, so a replayed message is refused.
Both live in the store's one SQLite file: fpagent.storage.store.Store makes
them, hands itself in, and they use its connection, lock and transaction.
"""

from __future__ import annotations

import json
import time


class Inbox:
    """Verified messages from central (notifications, commands). Use `store.inbox`."""

    def __init__(self, store):
        self._s = store

    def add(self, message_id: str, kind: str, body: dict, *, now: float | None = None) -> bool:
        """Store a verified message durably; False if this id is already stored (dedup)."""
        now = time.time() if now is None else now
        with self._s.transaction():
            cur = self._s.conn.execute(
                "INSERT OR IGNORE INTO inbox (message_id, kind, received, body) VALUES (?, ?, ?, ?)",
                (message_id, kind, now, json.dumps(body, sort_keys=True)))
            return cur.rowcount == 1

    def _row(self, r) -> dict:
        return {"message_id": r[0], "kind": r[1], "received": r[2], "body": json.loads(r[3]),
                "acknowledged_at": r[4], "acknowledged_by": r[5]}

    def get(self, message_id: str) -> dict | None:
        with self._s._lock:
            r = self._s.conn.execute(
                "SELECT message_id, kind, received, body, acknowledged_at, acknowledged_by "
                "FROM inbox WHERE message_id = ?", (message_id,)).fetchone()
        return self._row(r) if r else None

    def list(self, *, kind: str | None = None, unacknowledged: bool = False,
             limit: int = 100) -> list[dict]:
        """Newest first."""
        sql = ("SELECT message_id, kind, received, body, acknowledged_at, acknowledged_by "
               "FROM inbox WHERE 1")
        params: list = []
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        if unacknowledged:
            sql += " AND acknowledged_at IS NULL"
        sql += " ORDER BY received DESC, message_id LIMIT ?"
        params.append(int(limit))
        with self._s._lock:
            return [self._row(r) for r in self._s.conn.execute(sql, params)]

    def acknowledge(self, message_id: str, operator: str, *, now: float | None = None) -> bool:
        """The officer has seen it. False if unknown or already acknowledged."""
        now = time.time() if now is None else now
        with self._s.transaction():
            cur = self._s.conn.execute(
                "UPDATE inbox SET acknowledged_at = ?, acknowledged_by = ? "
                "WHERE message_id = ? AND acknowledged_at IS NULL", (now, operator, message_id))
            if cur.rowcount != 1:
                return False
            self._s.audit.append(operator, "notification.acknowledged",
                                 {"message_id": message_id}, now=now)
        return True

    def purge_expired(self, now: float | None = None, *, actor: str = "agent") -> int:
        """Delete notifications an officer acknowledged more than retention_days ago
        (personal data kept no longer than needed). Unacknowledged ones are kept."""
        now = time.time() if now is None else now
        cutoff = now - self._s.config.retention_days * 86400.0
        with self._s.transaction():
            n = self._s.conn.execute(
                "DELETE FROM inbox WHERE acknowledged_at IS NOT NULL AND acknowledged_at <= ?",
                (cutoff,)).rowcount
            if n:
                self._s.audit.append(actor, "inbox.purged", {"count": n}, now=now)
        return n

    def count(self, *, unacknowledged: bool = False) -> int:
        sql = "SELECT COUNT(*) FROM inbox" + (" WHERE acknowledged_at IS NULL" if unacknowledged else "")
        with self._s._lock:
            return self._s.conn.execute(sql).fetchone()[0]


# --------------------------------------------------------------------------- seen ids


class SeenIds:
    """Message ids already processed, per scope, until they expire (replay defence).
    Use `store.seen`."""

    def __init__(self, store):
        self._s = store

    def add(self, scope: str, message_id: str, *, ttl_s: float, now: float | None = None) -> bool:
        """Remember an id; False if it was already seen and not yet expired (a replay)."""
        now = time.time() if now is None else now
        with self._s.transaction():
            row = self._s.conn.execute("SELECT expires FROM seen_ids WHERE scope = ? AND id = ?",
                                       (scope, message_id)).fetchone()
            if row is not None and row[0] > now:
                return False
            self._s.conn.execute(
                "INSERT INTO seen_ids (scope, id, seen_at, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(scope, id) DO UPDATE SET seen_at = excluded.seen_at, "
                "expires = excluded.expires", (scope, message_id, now, now + ttl_s))
        return True

    def contains(self, scope: str, message_id: str, *, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._s._lock:
            row = self._s.conn.execute("SELECT expires FROM seen_ids WHERE scope = ? AND id = ?",
                                       (scope, message_id)).fetchone()
        return row is not None and row[0] > now

    def expire(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._s.transaction():
            return self._s.conn.execute("DELETE FROM seen_ids WHERE expires <= ?", (now,)).rowcount
