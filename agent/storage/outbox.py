"""The outbox: sealed submissions waiting for central's signed acknowledgement.

States: pending -> sent -> acknowledged -> purged, and rejected (central
refused it, with a reason; never retried). "sent" still counts as
unacknowledged: it is re-published with backoff until a signed ack arrives.
Purging deletes the envelope bytes and keeps the row. The bytes live in a
table of their own (`outbox_envelope`), so state changes rewrite a small row.

Full disk or quota: `Outbox.enqueue` refuses the NEW booking with
`fpagent.errors.StorageFull` saying what to do; queued bookings are never
dropped or overwritten. Rows live in the store's one SQLite file, so a
row and its audit entry commit together: fpagent.storage.store.Store makes
the Outbox, hands itself in, and the Outbox uses its connection, lock and
transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import sqlite3
import time

from fpagent.errors import StorageFull, UserError
from fpagent.storage.audit import check_detail
from fpagent.storage.disk_full import disk_full_text, is_disk_full

MB = 1024 * 1024
STATES = ("pending", "sent", "acknowledged", "rejected", "purged")
UNACKNOWLEDGED = ("pending", "sent")
RETRY_BASE_S = 10.0
RETRY_MAX_S = 300.0


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class OutboxItem:
    """One queued submission. `envelope` is None once purged (or when not asked for)."""

    submission_id: str
    tcn: str | None
    booking_number: str | None
    seq: int | None
    created: float
    state: str
    attempts: int
    last_attempt: float | None
    next_attempt: float | None
    size: int
    meta: dict
    ack: dict | None
    central_tcn: str | None
    acknowledged_at: float | None
    rejected_at: float | None
    reason: str | None
    purged_at: float | None
    envelope: bytes | None = dataclasses.field(default=None, repr=False)

    def summary(self) -> dict:
        """Everything but the envelope bytes, with readable times (for the CLI)."""
        d = dataclasses.asdict(self)
        d.pop("envelope")
        for k in ("created", "last_attempt", "next_attempt", "acknowledged_at",
                  "rejected_at", "purged_at"):
            d[k] = _iso(d[k])
        return d


_OUTBOX_COLS = [f.name for f in dataclasses.fields(OutboxItem)]


def _item(row: dict) -> OutboxItem:
    row = dict(row)
    row["meta"] = json.loads(row["meta"]) if row.get("meta") else {}
    row["ack"] = json.loads(row["ack"]) if row.get("ack") else None
    return OutboxItem(**{k: row.get(k) for k in _OUTBOX_COLS})


class Outbox:
    """Sealed submissions waiting for central's signed ack. Use `store.outbox`."""

    def __init__(self, store):
        self._s = store

    # -- policy

    def _check_space(self, incoming: int) -> None:
        cfg = self._s.config
        queued = self._s.conn.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox WHERE state != 'purged'"
        ).fetchone()
        limit = cfg.max_queue_mb * MB
        if queued[0] + incoming > limit:
            unacked = self._s.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('pending','sent')").fetchone()[0]
            closed_mb = self._s.conn.execute(
                "SELECT COALESCE(SUM(size), 0) FROM outbox WHERE "
                "state IN ('acknowledged','rejected')").fetchone()[0] / MB
            hint = (f"{closed_mb:.2f} MB of that is already acknowledged: `fpagent queue purge "
                    f"--acknowledged` frees it now. " if closed_mb > 0 else "")
            raise StorageFull(
                f"outbox quota full: {queued[0] / MB:.1f} MB in {queued[1]} stored submissions "
                f"({unacked} not yet acknowledged) of the [store] max_queue_mb = "
                f"{cfg.max_queue_mb:g} MB allowed. This booking was NOT queued and nothing "
                f"queued was dropped. {hint}Restore the link to central so queued bookings are "
                f"acknowledged and purged, or raise [store] max_queue_mb")
        free = shutil.disk_usage(self._s.path.parent).free
        need = cfg.min_free_mb * MB + 2 * incoming  # envelope + its WAL copy
        if free < need:
            raise StorageFull(
                f"disk nearly full: {free / MB:.1f} MB free on {self._s.path.parent}, "
                f"[store] min_free_mb = {cfg.min_free_mb:g} MB must stay free. This booking "
                f"was NOT queued and nothing queued was dropped. Free disk space (old logs, "
                f"diagnostics bundles) or restore the link so acknowledged bookings are purged")

    # -- writes

    def enqueue(self, submission_id: str, tcn: str | None, envelope: bytes,
                meta: dict | None = None, *, actor: str | None = None,
                now: float | None = None) -> bool:
        """Queue one sealed submission durably (one fsynced commit, with its audit entry).

        `meta`: small non-biometric facts (booking_number, seq, operator,
        suite, finger count...). Returns True when queued, False when this
        exact submission was already queued (idempotent retry). Raises
        StorageFull (quota, min free space, or the disk itself full) and
        ValueError for a different envelope under an existing id.
        """
        if not isinstance(envelope, (bytes, bytearray)) or not envelope:
            raise ValueError("enqueue needs the sealed envelope bytes")
        from fpagent.sealing import envelope as envelope_mod

        meta = dict(meta or {})
        check_detail(meta, "meta")
        envelope = bytes(envelope)
        try:
            header = envelope_mod.inspect(envelope, max_size=max(len(envelope), 1))
        except envelope_mod.EnvelopeError as exc:
            raise ValueError(f"enqueue needs a sealed envelope: {exc}") from None
        if header.submission_id != submission_id:
            raise ValueError(f"envelope belongs to submission {header.submission_id}, "
                             f"not {submission_id}")
        now = time.time() if now is None else now
        st = self._s
        try:
            with st.transaction():
                old = st.conn.execute(
                    "SELECT e.envelope, o.state FROM outbox o LEFT JOIN outbox_envelope e "
                    "USING (submission_id) WHERE o.submission_id = ?", (submission_id,)).fetchone()
                if old is not None:
                    if old[0] == envelope or old[1] == "purged":
                        return False
                    raise ValueError(f"submission {submission_id} is already queued with a "
                                     f"different envelope; a new booking needs a new id")
                self._check_space(len(envelope))
                st.db["outbox"].insert({
                    "submission_id": submission_id, "tcn": tcn,
                    "booking_number": meta.get("booking_number"), "seq": meta.get("seq"),
                    "created": now, "state": "pending", "attempts": 0,
                    "last_attempt": None, "next_attempt": now, "envelope": None,
                    "size": len(envelope), "meta": json.dumps(meta, sort_keys=True),
                })
                # apart from the row, so its state changes do not rewrite these bytes
                st.conn.execute("INSERT INTO outbox_envelope (submission_id, envelope) "
                                "VALUES (?, ?)", (submission_id, envelope))
                st.audit.append(actor or meta.get("operator") or st.actor, "booking.enqueued",
                                {"submission_id": submission_id, "tcn": tcn,
                                 "booking_number": meta.get("booking_number"),
                                 "size": len(envelope), "seq": header.seq,
                                 "suite": header.suite,  # key use: which keys sealed it
                                 "device_key_id": header.device_key_id,
                                 "central_key_id": header.central_key_id}, now=now)
        except (sqlite3.OperationalError, OSError) as exc:
            if is_disk_full(exc):
                raise StorageFull(
                    f"could not write the booking to {st.path}: {disk_full_text(exc)}. This booking "
                    f"was NOT queued and nothing queued was dropped. Free disk space, then book "
                    f"again") from None
            raise
        return True

    def mark_sent(self, submission_id: str, *, now: float | None = None,
                  retry_after: float | None = None) -> bool:
        """Record a publish attempt: attempts+1, next try after backoff (or `retry_after` s)."""
        now = time.time() if now is None else now
        with self._s.transaction():
            row = self._s.conn.execute(
                "SELECT attempts FROM outbox WHERE submission_id = ? AND state IN ('pending','sent')",
                (submission_id,)).fetchone()
            if row is None:
                return False
            attempts = row[0] + 1
            delay = retry_after if retry_after is not None else backoff_s(attempts)
            self._s.conn.execute(
                "UPDATE outbox SET state = 'sent', attempts = ?, last_attempt = ?, "
                "next_attempt = ? WHERE submission_id = ?",
                (attempts, now, now + delay, submission_id))
        return True

    def mark_acknowledged(self, submission_id: str, ack: dict, *, now: float | None = None,
                          actor: str = "central") -> bool:
        """Central accepted it (a verified, signed ack). False if unknown or already closed."""
        check_detail(ack, "ack")
        now = time.time() if now is None else now
        central_tcn = ack.get("central_tcn") or ack.get("tcn")
        with self._s.transaction():
            cur = self._s.conn.execute(
                "UPDATE outbox SET state = 'acknowledged', ack = ?, central_tcn = ?, "
                "acknowledged_at = ?, next_attempt = NULL WHERE submission_id = ? "
                "AND state IN ('pending','sent','rejected')",
                (json.dumps(ack, sort_keys=True), central_tcn, now, submission_id))
            if cur.rowcount != 1:
                return False
            self._s.audit.append(actor, "outbox.acknowledged",
                                 {"submission_id": submission_id, "central_tcn": central_tcn},
                                 now=now)
        return True

    def mark_rejected(self, submission_id: str, reason: str, *, ack: dict | None = None,
                      now: float | None = None, actor: str = "central") -> bool:
        """Central refused it (signed ack with a reason): never retried, kept for the operator."""
        if ack is not None:
            check_detail(ack, "ack")
        now = time.time() if now is None else now
        with self._s.transaction():
            cur = self._s.conn.execute(
                "UPDATE outbox SET state = 'rejected', reason = ?, ack = ?, rejected_at = ?, "
                "next_attempt = NULL WHERE submission_id = ? AND state IN ('pending','sent')",
                (str(reason)[:500], json.dumps(ack, sort_keys=True) if ack else None, now,
                 submission_id))
            if cur.rowcount != 1:
                return False
            self._s.audit.append(actor, "outbox.rejected",
                                 {"submission_id": submission_id, "reason": str(reason)[:200]},
                                 now=now)
        return True

    def purge_expired(self, now: float | None = None, *, actor: str = "agent") -> int:
        """Delete envelope bytes of rows closed more than retention_days ago; keep the rows."""
        now = time.time() if now is None else now
        cutoff = now - self._s.config.retention_days * 86400.0
        with self._s.transaction():
            ids = [r[0] for r in self._s.conn.execute(
                "SELECT submission_id FROM outbox WHERE "
                "(state = 'acknowledged' AND acknowledged_at <= ?) OR "
                "(state = 'rejected' AND rejected_at <= ?)", (cutoff, cutoff))]
            for sid in ids:
                self._purge_one(sid, now, actor, "retention")
        return len(ids)

    def purge_acknowledged(self, *, actor: str = "operator", now: float | None = None) -> int:
        """Purge every acknowledged/rejected submission now, retention or not (frees space;
        central already holds them). Unacknowledged ones are never touched."""
        now = time.time() if now is None else now
        with self._s.transaction():
            ids = [r[0] for r in self._s.conn.execute(
                "SELECT submission_id FROM outbox WHERE state IN ('acknowledged','rejected')")]
            for sid in ids:
                self._purge_one(sid, now, actor, "operator")
        return len(ids)

    def purge(self, submission_id: str, *, reason: str, actor: str = "operator",
              now: float | None = None) -> bool:
        """Purge one closed (acknowledged/rejected) submission now. Unacknowledged ones never."""
        now = time.time() if now is None else now
        with self._s.transaction():
            row = self._s.conn.execute("SELECT state FROM outbox WHERE submission_id = ?",
                                       (submission_id,)).fetchone()
            if row is None or row[0] == "purged":
                return False
            if row[0] in UNACKNOWLEDGED:
                raise UserError(f"submission {submission_id} is not acknowledged yet; "
                                f"refusing to purge a booking central has not confirmed")
            self._purge_one(submission_id, now, actor, reason)
        return True

    def _purge_one(self, sid: str, now: float, actor: str, reason: str) -> None:
        self._s.conn.execute(
            "UPDATE outbox SET envelope = NULL, state = 'purged', purged_at = ? "
            "WHERE submission_id = ?", (now, sid))
        self._s.conn.execute("DELETE FROM outbox_envelope WHERE submission_id = ?", (sid,))
        self._s.audit.append(actor, "outbox.purged", {"submission_id": sid, "reason": reason},
                             now=now)

    def retry_all_now(self, now: float | None = None) -> int:
        """Make every unacknowledged submission due now (after a reconnect: resynchronise)."""
        now = time.time() if now is None else now
        with self._s.transaction():
            return self._s.conn.execute(
                "UPDATE outbox SET next_attempt = ? WHERE state IN ('pending','sent')",
                (now,)).rowcount

    # -- reads

    def _select(self, where: str, params=(), *, limit: int | None = None,
                with_envelope: bool = True, order: str = "created, submission_id") -> list[OutboxItem]:
        cols = ", ".join(("e.envelope AS envelope" if c == "envelope" else f"o.{c} AS {c}")
                         for c in _OUTBOX_COLS if with_envelope or c != "envelope")
        sql = (f"SELECT {cols} FROM outbox o "
               + ("LEFT JOIN outbox_envelope e USING (submission_id) " if with_envelope else "")
               + f"WHERE {where} ORDER BY {order}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._s._lock:
            return [_item(r) for r in self._s.db.query(sql, list(params))]

    def get(self, submission_id: str, *, with_envelope: bool = False) -> OutboxItem | None:
        items = self._select("submission_id = ?", [submission_id], with_envelope=with_envelope)
        return items[0] if items else None

    def pending(self, limit: int = 100) -> list[OutboxItem]:
        """Unacknowledged submissions (pending and sent), oldest first, with envelopes."""
        return self._select("state IN ('pending','sent')", limit=limit)

    def due(self, now: float | None = None, limit: int = 8) -> list[OutboxItem]:
        """Unacknowledged submissions whose backoff has expired, oldest first, with envelopes."""
        now = time.time() if now is None else now
        return self._select("state IN ('pending','sent') AND next_attempt <= ?", [now],
                            limit=limit)

    def next_due_time(self) -> float | None:
        """When the next unacknowledged submission becomes due (None: nothing waiting)."""
        with self._s._lock:
            row = self._s.conn.execute(
                "SELECT MIN(next_attempt) FROM outbox WHERE state IN ('pending','sent')").fetchone()
        return row[0]

    def list(self, *, state: str | None = None, limit: int = 50) -> list[OutboxItem]:
        """Newest first, without envelope bytes (for `fpagent queue list`)."""
        where, params = ("state = ?", [state]) if state else ("1", [])
        return self._select(where, params, limit=limit, with_envelope=False,
                            order="created DESC, submission_id")

    def counts(self) -> dict[str, int]:
        """Rows per state (every state present, zeros included) and 'total'."""
        out = dict.fromkeys(STATES, 0)
        with self._s._lock:
            for state, n in self._s.conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state"):
                out[state] = n
        out["total"] = sum(out[s] for s in STATES)
        return out

    def oldest_pending_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest unacknowledged submission was queued (None: none)."""
        now = time.time() if now is None else now
        with self._s._lock:
            row = self._s.conn.execute(
                "SELECT MIN(created) FROM outbox WHERE state IN ('pending','sent')").fetchone()
        return None if row[0] is None else max(0.0, now - row[0])

    def queued_bytes(self) -> int:
        with self._s._lock:
            return self._s.conn.execute(
                "SELECT COALESCE(SUM(size), 0) FROM outbox WHERE state != 'purged'").fetchone()[0]


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the n-th unacknowledged publish (10, 20, 40 ... 300)."""
    return min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, attempts - 1))
