"""The appliance's durable state in one SQLite file: outbox, inbox, seen ids, counters, audit.

Why one file: a booking's outbox row and its audit entry commit in one
transaction, so a crash or power cut leaves both or neither. Opened through
sqlite-utils on a `sqlite3` connection configured here: WAL journal,
`synchronous=FULL` (every commit that returns has reached the disk: these
are bookings), `secure_delete` (purged envelopes are overwritten), a busy
timeout so the CLI and the daemon can share the file.

Schema: versioned with `PRAGMA user_version` and the MIGRATIONS list below.
A file newer than this code is refused with a clear error (never "fixed");
nothing is ever silently reset. At start-up a `quick_check` (or a full
`integrity_check`) runs; a corrupt file is moved aside with its -wal/-shm
(renamed `<name>.corrupt-<UTC time>`, never deleted), a fresh one is started,
and that is logged at ERROR and written to the new audit log.

Outbox states: pending -> sent -> acknowledged -> purged, and rejected
(central refused it, with a reason; never retried). "sent" still counts as
unacknowledged: it is re-published with backoff until a signed ack arrives.
Purging deletes the envelope bytes and keeps the row.

Full disk or quota: `Outbox.enqueue` refuses the NEW booking with
`fpagent.errors.StorageFull` saying what to do; queued bookings are never
dropped or overwritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import pathlib
import shutil
import sqlite3
import threading
import time

import sqlite_utils

from fpagent.storage.audit import AuditLog, check_detail
from fpagent.errors import StorageFull, UserError

log = logging.getLogger(__name__)

MB = 1024 * 1024
STATES = ("pending", "sent", "acknowledged", "rejected", "purged")
UNACKNOWLEDGED = ("pending", "sent")
RETRY_BASE_S = 10.0
RETRY_MAX_S = 300.0


class StoreError(UserError):
    """The database cannot be used as it is (schema too new, unreadable...)."""

    exit_code = 74  # EX_IOERR


# --------------------------------------------------------------------------- schema


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["outbox"].create({
        "submission_id": str, "tcn": str, "booking_number": str, "seq": int,
        "created": float, "state": str, "attempts": int, "last_attempt": float,
        "next_attempt": float, "envelope": bytes, "size": int, "meta": str,
        "ack": str, "central_tcn": str, "acknowledged_at": float,
        "rejected_at": float, "reason": str, "purged_at": float,
    }, pk="submission_id", not_null={"created", "state", "attempts", "size"},
        defaults={"attempts": 0})
    db["outbox"].create_index(["state", "next_attempt"])
    db["outbox"].create_index(["tcn"])
    db["inbox"].create({
        "message_id": str, "kind": str, "received": float, "body": str,
        "acknowledged_at": float, "acknowledged_by": str,
    }, pk="message_id", not_null={"kind", "received", "body"})
    db["inbox"].create_index(["received"])
    db["seen_ids"].create({"scope": str, "id": str, "seen_at": float, "expires": float},
                          pk=("scope", "id"), not_null={"seen_at", "expires"})
    db["seen_ids"].create_index(["expires"])
    db["counters"].create({"name": str, "value": int}, pk="name", not_null={"value"})
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["audit"].create({
        "seq": int, "ts": str, "actor": str, "action": str, "detail": str,
        "prev_hash": str, "hash": str,
    }, pk="seq", not_null={"ts", "actor", "action", "detail", "prev_hash", "hash"})
    db.execute("CREATE INDEX idx_audit_action ON audit(action)")
    db.execute("CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
               "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")
    db.execute("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
               "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")


# Append only; never edit a released migration. user_version = how many ran.
MIGRATIONS = [_m1_initial]
SCHEMA_VERSION = len(MIGRATIONS)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- rows


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


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "full" in text or "disk i/o" in text
    return isinstance(exc, OSError) and exc.errno in (28, 27, 122)  # ENOSPC, EFBIG, EDQUOT


def _full_text(exc: BaseException) -> str:
    if "full" in str(exc).lower() or getattr(exc, "errno", None) == 28:
        return "the disk is full"
    return (f"the disk is full or failing ({exc}; a file-size limit or a worn SD card "
            f"shows like this: check `df` and the system log)")


# --------------------------------------------------------------------------- store


class Store:
    """Open (create, migrate, check) the agent database. Thread-safe; one per process.

    `config`: an fpagent.config.Config or its StoreConfig (retention and
    quotas); None uses the defaults. `check`: "quick" (default), "full"
    (PRAGMA integrity_check) or "none". `on_corrupt`: "move" (the daemon:
    move the file aside and start fresh) or "raise" (the CLI, which must not
    pull the file from under a running daemon: StoreError).
    """

    def __init__(self, path, config=None, *, check: str = "quick", actor: str = "agent",
                 on_corrupt: str = "move"):
        self.path = pathlib.Path(path)
        store_cfg = getattr(config, "store", config)
        if store_cfg is None:
            from fpagent.config import StoreConfig
            store_cfg = StoreConfig()
        self.config = store_cfg
        self.actor = actor
        self._lock = threading.RLock()
        self.recovered_from: pathlib.Path | None = None  # set when a corrupt file was moved aside
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        problem = None
        try:
            self._connect()
            problem = self._check(check)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_disk_full(exc):
                raise StorageFull(f"cannot open the database {self.path}: {_full_text(exc)}. "
                                  f"Free disk space, then start again") from None
            if isinstance(exc, sqlite3.OperationalError) and not _looks_corrupt(exc):
                raise StoreError(f"cannot open the database {self.path}: {exc}") from None
            problem = str(exc)
        if problem and on_corrupt != "move":
            with contextlib.suppress(Exception):
                self.conn.close()
            raise StoreError(f"database {self.path} is corrupt ({problem[:200]}). Nothing was "
                             f"changed. Restart the agent service: it moves the file aside "
                             f"(keeping it) and starts a fresh one")
        if problem:
            self._move_aside(problem)
            self._connect()
        try:
            self._migrate()
        except sqlite3.OperationalError as exc:
            if _is_disk_full(exc):
                raise StorageFull(f"cannot prepare the database {self.path}: {_full_text(exc)}. "
                                  f"Free disk space, then start again") from None
            raise
        self.audit = AuditLog(self)
        self.outbox = Outbox(self)
        self.inbox = Inbox(self)
        self.seen = SeenIds(self)
        self.counters = Counters(self)
        if problem:
            self.audit.append("store", "store.corrupt_moved_aside",
                              {"moved_to": str(self.recovered_from), "problem": problem[:200]})

    # -- connection

    def _connect(self) -> None:
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)  # personal data: 0600
            os.close(fd)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                               timeout=30.0)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                log.warning("database %s: journal mode is %s, not WAL", self.path, mode)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA trusted_schema = OFF")
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self.db = sqlite_utils.Database(conn, execute_plugins=False)

    def _check(self, check: str) -> str | None:
        """Run the start-up check; return a problem description, or None when fine."""
        if check == "none":
            return None
        pragma = {"quick": "quick_check", "full": "integrity_check"}[check]
        rows = [r[0] for r in self.conn.execute(f"PRAGMA {pragma}").fetchall()]
        if rows != ["ok"]:
            return f"{pragma}: " + "; ".join(str(r) for r in rows[:5])
        return None

    def _move_aside(self, problem: str) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm", "-journal"):
            src = pathlib.Path(str(self.path) + suffix)
            if src.exists():
                os.rename(src, str(target) + suffix)
        self.recovered_from = target
        log.error("DATABASE %s IS CORRUPT (%s). It was moved aside to %s (not deleted) and a "
                  "fresh database was started. Bookings queued in the old file are NOT in the "
                  "new queue: keep that file and contact support to recover them.",
                  self.path, problem, target)

    def _migrate(self) -> None:
        with self._lock:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                self.conn.close()
                raise StoreError(
                    f"database {self.path} has schema version {version}, newer than this agent "
                    f"knows ({SCHEMA_VERSION}); it was written by a newer fpagent. Upgrade "
                    f"fpagent; the file was left unchanged")
            for number in range(version, SCHEMA_VERSION):
                with self.transaction():
                    # re-read inside the write lock: another process may have migrated
                    current = self.conn.execute("PRAGMA user_version").fetchone()[0]
                    if current > number:
                        continue
                    MIGRATIONS[number](self.db)
                    self.conn.execute(f"PRAGMA user_version = {number + 1}")
                if number:
                    log.warning("database %s migrated to schema version %d", self.path, number + 1)

    def next_sequence(self) -> int:
        """The next envelope sequence number (same as counters.next_sequence())."""
        return self.counters.next_sequence()

    def schema_version(self) -> int:
        with self._lock:
            return self.conn.execute("PRAGMA user_version").fetchone()[0]

    @contextlib.contextmanager
    def transaction(self):
        """One atomic, durable unit of work (BEGIN IMMEDIATE ... COMMIT); nests as savepoints."""
        with self._lock:
            if self.conn.in_transaction:
                with self.db.atomic():
                    yield self
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def integrity_check(self) -> list[str]:
        """Full PRAGMA integrity_check: ["ok"] when the file is sound."""
        with self._lock:
            return [r[0] for r in self.conn.execute("PRAGMA integrity_check").fetchall()]

    def file_paths(self) -> list[pathlib.Path]:
        """The database file and its WAL/SHM/journal companions that exist now."""
        return [p for p in (pathlib.Path(str(self.path) + s) for s in ("", "-wal", "-shm", "-journal"))
                if p.exists()]

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.file_paths())

    def check_consistency(self) -> list[str]:
        """Problems found (empty list = all good): integrity, audit chain, outbox vs audit.

        Every outbox row has exactly one `booking.enqueued` audit entry and every
        such entry has its row; an unpurged row holds an envelope of its recorded
        size whose header names it; a purged row holds none and has a purge entry;
        an acknowledged row has its ack entry. Used by the crash tests and
        `fpagent queue check`.
        """
        from fpagent.sealing import envelope as envelope_mod

        problems = []
        with self._lock:
            ic = self.integrity_check()
            if ic != ["ok"]:
                problems.append("integrity_check: " + "; ".join(ic[:5]))
            ok, bad, msg = self.audit.verify()
            if not ok:
                problems.append(msg)

            def audited(action):
                out = {}
                for (sid,) in self.conn.execute(
                        "SELECT json_extract(detail, '$.submission_id') FROM audit "
                        "WHERE action = ?", (action,)):
                    out[sid] = out.get(sid, 0) + 1
                return out

            enq, acked, purged = (audited("booking.enqueued"), audited("outbox.acknowledged"),
                                  audited("outbox.purged"))
            rows = {r[0]: r for r in self.conn.execute(
                "SELECT submission_id, state, envelope, size, acknowledged_at FROM outbox")}
            for sid, n in enq.items():
                if n != 1:
                    problems.append(f"{sid}: {n} enqueue audit entries")
                if sid not in rows:
                    problems.append(f"{sid}: audited as enqueued but not in the outbox")
            for sid, (_, state, env, size, acked_at) in rows.items():
                if sid not in enq:
                    problems.append(f"{sid}: in the outbox without its enqueue audit entry")
                if state not in STATES:
                    problems.append(f"{sid}: unknown state {state!r}")
                if state == "purged":
                    if env is not None:
                        problems.append(f"{sid}: purged but envelope still stored")
                    if sid not in purged:
                        problems.append(f"{sid}: purged without a purge audit entry")
                else:
                    if env is None or len(env) != size:
                        problems.append(f"{sid}: envelope missing or of the wrong size")
                    else:
                        try:
                            if envelope_mod.inspect(env).submission_id != sid:
                                problems.append(f"{sid}: envelope belongs to another submission")
                        except envelope_mod.EnvelopeError as exc:
                            problems.append(f"{sid}: envelope unreadable: {exc}")
                if acked_at is not None and acked.get(sid) != 1:
                    problems.append(f"{sid}: acknowledged with {acked.get(sid, 0)} ack audit entries")
        return problems

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(Exception):
                self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _looks_corrupt(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("malformed", "not a database", "corrupt", "encrypted"))


def open_store(cfg, **kwargs) -> Store:
    """The store at the configured path (`cfg.paths.database()`)."""
    return Store(cfg.paths.database(), cfg, **kwargs)


# --------------------------------------------------------------------------- outbox


class Outbox:
    """Sealed submissions waiting for central's signed ack. Use `store.outbox`."""

    def __init__(self, store: Store):
        self._s = store

    # -- policy

    def _check_space(self, incoming: int) -> None:
        cfg = self._s.config
        queued = self._s.conn.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox WHERE envelope IS NOT NULL"
        ).fetchone()
        limit = cfg.max_queue_mb * MB
        if queued[0] + incoming > limit:
            unacked = self._s.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('pending','sent')").fetchone()[0]
            closed_mb = self._s.conn.execute(
                "SELECT COALESCE(SUM(size), 0) FROM outbox WHERE envelope IS NOT NULL AND "
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
                old = st.conn.execute("SELECT envelope, state FROM outbox WHERE submission_id = ?",
                                      (submission_id,)).fetchone()
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
                    "last_attempt": None, "next_attempt": now, "envelope": envelope,
                    "size": len(envelope), "meta": json.dumps(meta, sort_keys=True),
                })
                st.audit.append(actor or meta.get("operator") or st.actor, "booking.enqueued",
                                {"submission_id": submission_id, "tcn": tcn,
                                 "booking_number": meta.get("booking_number"),
                                 "size": len(envelope), "seq": header.seq,
                                 "suite": header.suite,  # key use: which keys sealed it
                                 "device_key_id": header.device_key_id,
                                 "central_key_id": header.central_key_id}, now=now)
        except (sqlite3.OperationalError, OSError) as exc:
            if _is_disk_full(exc):
                raise StorageFull(
                    f"could not write the booking to {st.path}: {_full_text(exc)}. This booking "
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
        cols = ", ".join(c for c in _OUTBOX_COLS if with_envelope or c != "envelope")
        sql = f"SELECT {cols} FROM outbox WHERE {where} ORDER BY {order}"
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
                "SELECT COALESCE(SUM(size), 0) FROM outbox WHERE envelope IS NOT NULL").fetchone()[0]


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the n-th unacknowledged publish (10, 20, 40 ... 300)."""
    return min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, attempts - 1))


# --------------------------------------------------------------------------- inbox


class Inbox:
    """Verified messages from central (notifications, commands). Use `store.inbox`."""

    def __init__(self, store: Store):
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


# --------------------------------------------------------------------------- seen ids, counters


class SeenIds:
    """Message ids already processed, per scope, until they expire (replay defence)."""

    def __init__(self, store: Store):
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


class Counters:
    """Named durable integers: the envelope sequence number, rejected-message counts..."""

    def __init__(self, store: Store):
        self._s = store

    def incr(self, name: str, n: int = 1) -> int:
        with self._s.transaction():
            self._s.conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))
            return self._s.conn.execute("SELECT value FROM counters WHERE name = ?",
                                        (name,)).fetchone()[0]

    def get(self, name: str) -> int:
        with self._s._lock:
            row = self._s.conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def all(self) -> dict[str, int]:
        with self._s._lock:
            return dict(self._s.conn.execute("SELECT name, value FROM counters ORDER BY name"))

    def next_sequence(self) -> int:
        """The next envelope sequence number (durable, strictly increasing, gaps possible)."""
        return self.incr("envelope.seq")
