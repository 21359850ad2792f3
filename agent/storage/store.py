"""The appliance's durable state in one SQLite file: outbox, inbox, seen ids, counters, audit.

Why one file: a booking's outbox row and its audit entry commit in one
transaction, so a crash or power cut leaves both or neither. Opened through
sqlite-utils on a `sqlite3` connection configured here: WAL journal,
`synchronous=FULL` (every commit that returns has reached the disk: these
are bookings), `secure_delete` (purged envelopes are overwritten), a busy
timeout so the CLI and the daemon can share the file.

Schema: versioned with `PRAGMA user_version` and the MIGRATIONS list below.
Inbox bodies (what central answered: names, criminal-history text) are sealed
under the appliance's local data key (fpagent.sealing.at_rest), like the
galleries; version 2 sealed the rows an older version had stored in clear.
A file newer than this code is refused with a clear error (never "fixed");
nothing is ever silently reset. At start-up a `quick_check` (or a full
`integrity_check`) runs; a corrupt file is moved aside with its -wal/-shm
(renamed `<name>.corrupt-<UTC time>`, never deleted), a fresh one is started,
and that is logged at ERROR and written to the new audit log.

The tables' own rules live beside this module: fpagent.storage.outbox
(states, backoff, quotas), fpagent.storage.inbox (inbox, seen ids),
fpagent.storage.audit (the hash-chained log); `Counters` is here.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import pathlib
import sqlite3
import threading
import time

import sqlite_utils

from fpagent.errors import StorageError, StorageFull
from fpagent.sealing import at_rest
from fpagent.sealing.keys import LOCAL_DATA_KEY
from fpagent.storage.audit import AuditLog
from fpagent.storage.disk_full import disk_full_text, is_disk_full
from fpagent.storage.inbox import Inbox, SeenIds, inbox_body_seal
from fpagent.storage.outbox import STATES, Outbox

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0  # SQLite's own wait on a lock, per statement
OPEN_TIMEOUT_S = 90.0  # how long a start keeps trying a locked database (systemd allows 120 s)


class StoreError(StorageError):
    """The database cannot be used as it is (schema too new, unreadable...)."""


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


def _m2_seal_inbox_bodies(db: sqlite_utils.Database, store: "Store") -> None:
    """Inbox bodies (criminal-history text, names) become sealed under the local data key."""
    key = store.local_key()
    for message_id, body in db.execute("SELECT message_id, body FROM inbox").fetchall():
        if not at_rest.is_sealed(body):
            db.execute("UPDATE inbox SET body = ? WHERE message_id = ?",
                       (inbox_body_seal(key, message_id, body.encode() if isinstance(body, str)
                                        else bytes(body)), message_id))


def _m3_envelopes_apart(db: sqlite_utils.Database) -> None:
    """Envelope bytes in a table of their own; the quota sum read from an index.

    SQLite rewrites a whole row when its size changes (and secure_delete zeroes
    the pages it frees), so with the envelope in the outbox row, marking a
    booking sent and then acknowledged wrote its envelope twice more (about
    345 KiB written per 32 KiB envelope). And a row's `size` sat after its
    envelope bytes, so the quota check in every enqueue followed each kept
    envelope's overflow pages (11 ms of CPU with 1,000 of 32 KiB kept).
    A row keeps its envelope until it is purged: stored = not purged.
    """
    db.execute("CREATE TABLE outbox_envelope (submission_id TEXT PRIMARY KEY "
               "REFERENCES outbox(submission_id), envelope BLOB NOT NULL)")
    db.execute("INSERT INTO outbox_envelope (submission_id, envelope) "
               "SELECT submission_id, envelope FROM outbox WHERE envelope IS NOT NULL")
    db.execute("UPDATE outbox SET envelope = NULL WHERE envelope IS NOT NULL")
    db.execute("CREATE INDEX idx_outbox_state_size ON outbox(state, size)")


# Append only; never edit a released migration. user_version = how many ran.
# Each takes the database (and the store, for what needs its keys).
MIGRATIONS = [lambda db, store: _m1_initial(db), _m2_seal_inbox_bodies,
              lambda db, store: _m3_envelopes_apart(db)]
SCHEMA_VERSION = len(MIGRATIONS)


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
                 on_corrupt: str = "move", busy_timeout_s: float = BUSY_TIMEOUT_S,
                 open_timeout_s: float = OPEN_TIMEOUT_S):
        self.path = pathlib.Path(path)
        store_cfg = getattr(config, "store", config)
        if store_cfg is None:
            from fpagent.config import StoreConfig
            store_cfg = StoreConfig()
        self.config = store_cfg
        self.local_key_path = _local_key_path(self.path, config)  # seals inbox bodies at rest
        self._local_key: bytes | None = None
        self.actor = actor
        self._lock = threading.RLock()
        self.recovered_from: pathlib.Path | None = None  # set when a corrupt file was moved aside
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._busy_timeout_s = busy_timeout_s
        problem = None
        try:
            problem = self._open_and_check(check, open_timeout_s)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and is_disk_full(exc):
                raise StorageFull(f"cannot open the database {self.path}: {disk_full_text(exc)}. "
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
            if is_disk_full(exc):
                raise StorageFull(f"cannot prepare the database {self.path}: {disk_full_text(exc)}. "
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

    def _open_and_check(self, check: str, open_timeout_s: float) -> str | None:
        """Connect and run the start-up check, again while the file stays locked.

        SQLite's busy timeout covers most waits, but not every one: an agent
        restarted right after a kill -9, while other processes were writing the
        same file, was once refused with "database is locked" under heavy load.
        Retrying the whole open for a bounded time turns such a lock into a
        wait, and a lock that stays into an error that says what to do.
        """
        deadline = time.monotonic() + open_timeout_s
        pause = 0.05
        while True:
            try:
                self._connect()
                return self._check(check)
            except sqlite3.OperationalError as exc:
                with contextlib.suppress(Exception):
                    self.conn.close()
                if not _is_busy(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreError(
                        f"cannot open the database {self.path}: it stayed locked for "
                        f"{open_timeout_s:g} s ({exc}). Another process holds it: check that "
                        f"only one agent runs (systemctl status fpagent), wait for any "
                        f"'fpagent queue' or 'fpagent audit' command to end, then start "
                        f"again") from None
                log.warning("database %s is locked (%s); trying again for up to %.0f s",
                            self.path, exc, left)
                time.sleep(min(pause, left))
                pause = min(pause * 2, 2.0)

    def _connect(self) -> None:
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)  # personal data: 0600
            os.close(fd)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                               timeout=self._busy_timeout_s)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
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
                    MIGRATIONS[number](self.db, self)
                    self.conn.execute(f"PRAGMA user_version = {number + 1}")
                if number:
                    log.warning("database %s migrated to schema version %d", self.path, number + 1)

    def local_key(self) -> bytes:
        """The appliance's local data key (created 0600 on first use)."""
        if self._local_key is None:
            self._local_key = at_rest.load_or_create_local_key(self.local_key_path)
        return self._local_key

    def next_sequence(self) -> int:
        """The next envelope sequence number (same as counters.next_sequence())."""
        return self.counters.next_sequence()

    def schema_version(self) -> int:
        with self._lock:
            return self.conn.execute("PRAGMA user_version").fetchone()[0]

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True):
        """One atomic, durable unit of work (BEGIN IMMEDIATE ... COMMIT); nests as savepoints.

        `durable=False` (outermost only) commits without waiting for the disk: for
        bookkeeping that may be lost in a power cut, such as a publish attempt
        (the row stays due and is published again). It stays atomic, and the
        next durable commit syncs it too (the WAL is written in order), so it
        never weakens what a durable commit before or after it promised.
        """
        with self._lock:
            if self.conn.in_transaction:
                with self.db.atomic():
                    yield self
                return
            if not durable:
                self.conn.execute("PRAGMA synchronous = NORMAL")  # WAL: no sync at commit
            try:
                yield from self._outermost()
            finally:
                if not durable:
                    self.conn.execute("PRAGMA synchronous = FULL")

    def _outermost(self):
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
                "SELECT o.submission_id, o.state, e.envelope, o.size, o.acknowledged_at "
                "FROM outbox o LEFT JOIN outbox_envelope e USING (submission_id)")}
            for (sid,) in self.conn.execute(
                    "SELECT submission_id FROM outbox_envelope WHERE submission_id NOT IN "
                    "(SELECT submission_id FROM outbox)"):
                problems.append(f"{sid}: an envelope stored without its outbox row")
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


def _local_key_path(db_path: pathlib.Path, config) -> pathlib.Path:
    """The configuration's keys folder when this is its database, else `keys/` beside the file."""
    paths = getattr(config, "paths", None)
    if paths is not None and paths.database().resolve() == db_path.resolve():
        return paths.keys() / LOCAL_DATA_KEY
    return db_path.parent / "keys" / LOCAL_DATA_KEY


def _is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes (BUSY_RECOVERY, BUSY_SNAPSHOT...) included."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _looks_corrupt(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("malformed", "not a database", "corrupt", "encrypted"))


def open_store(cfg, **kwargs) -> Store:
    """The store at the configured path (`cfg.paths.database()`)."""
    return Store(cfg.paths.database(), cfg, **kwargs)


# --------------------------------------------------------------------------- counters


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

    def local_key(self) -> bytes:
        """The appliance's local data key (created 0600 on first use)."""
        if self._local_key is None:
            self._local_key = at_rest.load_or_create_local_key(self.local_key_path)
        return self._local_key

    def next_sequence(self) -> int:
        """The next envelope sequence number (durable, strictly increasing, gaps possible)."""
        return self.incr("envelope.seq")
