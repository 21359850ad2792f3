"""What central sends the appliance: acks, notifications and commands.

Every message is verified (the pinned central Ed25519 key, freshness window,
addressee, size, shape), deduplicated by id against the inbox, stored and
COMMITTED, and only then acknowledged to the broker (paho manual acks), so a
crash at any point means redelivery, never loss. Everything refused is
counted and audited, never acted on.

The link does not act on commands itself: it hands each verified, new command
to its owner's `CommandHandler` before the short transaction that records it
(slow work such as decoding templates happens there, outside any SQLite
transaction) and runs the step the handler returns inside that transaction,
so recording and applying a command are all or nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from typing import Callable

from fpagent.link import messages
from fpagent.storage.audit_limit import AuditRateLimit
from fpagent.storage.releases import Releases
from fpagent.storage.store import StoreError

log = logging.getLogger("fpagent.link")

CommandStep = Callable[[object], "dict | None"]
"""Runs inside the transaction that records the command; gets the Store. Returns
the command's result ({"outcome", "reason", "detail"}: see
fpagent.link.fleet_commands) to audit and send back to central, or None."""

CommandHandler = Callable[[messages.Message], "CommandStep | None"]
"""Called with a verified command not yet in the inbox, outside any transaction;
returns the step that applies it (or None: nothing to do). It must not raise for
a bad command: refusing one is its own audited outcome."""


# What a failing local store raises (disk full, I/O error, locked...), as opposed to
# a fault in recording one particular message.
_STORAGE_ERRORS = (sqlite3.Error, OSError, StoreError)


def _topic_of(msg) -> str:
    """The topic as text; paho decodes it as UTF-8 on access."""
    try:
        return msg.topic
    except (UnicodeDecodeError, AttributeError):
        return "<undecodable topic>"


def _payload_of(msg) -> bytes:
    try:
        return bytes(msg.payload)
    except (TypeError, ValueError):
        return b""


@dataclasses.dataclass
class _Checked:
    """One received message after verification (done before the transaction)."""

    topic: str
    size: int
    message: messages.Message | None = None
    error: messages.MessageError | None = None
    step: CommandStep | None = None
    handler_failed: str = ""


class Inbound:
    """Verifies, stores and hands on what arrives; acknowledges it to the broker after the commit."""

    def __init__(self, config, stats, *, verify_keys, outbound,
                 on_ack: Callable[[str, dict], None] | None = None,
                 on_notification: Callable[[dict], None] | None = None,
                 on_command: CommandHandler | None = None, hook=None,
                 on_result: Callable[[messages.Message, dict], None] | None = None):
        self.root = config.mqtt.root
        self.ori = config.device.ori
        self.device = config.device.device_id
        self.freshness_s = config.envelope.freshness_s
        self.max_bytes = config.mqtt.max_message_bytes
        self.stats = stats
        self.verify_keys = verify_keys
        self.outbound = outbound
        self.on_ack = on_ack
        self.on_notification = on_notification
        self.on_command = on_command
        self.on_result = on_result  # sends a command's result to central (after the commit)
        self.hook = hook
        self.incoming: list = []  # paho messages read, not yet stored (see drain)
        self.audit_limit = AuditRateLimit()
        self.committed = False  # the last drain stored something (the store works)

    def pinned_keys(self):
        """Central's verify key(s) now: `verify_keys` may be a callable (a rotation
        with an overlap window changes the set over time)."""
        return self.verify_keys() if callable(self.verify_keys) else self.verify_keys

    def take(self, msg) -> None:
        """paho's on_message: kept, handled in a batch after the read (one commit for all)."""
        self.incoming.append(msg)

    def forget(self) -> None:
        """The connection is gone: what was not acknowledged is delivered again."""
        self.incoming.clear()

    def drain(self, store, client) -> str | None:
        """Verify, store and COMMIT what arrived; only then ack it to the broker, then act.

        Each message is checked on its own and never raises: what fails
        verification is refused, audited (rate limited) and acknowledged like
        anything else. The batch commits in one transaction (one fsync); if one
        message cannot be recorded, they are stored one at a time and that one
        is refused on its own. Only a local storage failure (disk full...)
        leaves messages unacknowledged: the reason is returned, the caller
        drops the connection and the broker redelivers them.
        """
        self.committed = False
        if not self.incoming:
            self._write_summaries(store)
            return None
        batch, self.incoming = self.incoming, []
        checked = [self._check(store, _topic_of(msg), _payload_of(msg)) for msg in batch]
        after: list = []
        failure = ""
        done = 0
        try:
            self._commit(store, checked, after)
            done = len(batch)
        except _STORAGE_ERRORS as exc:
            failure = str(exc)[:200]
        except Exception:  # noqa: BLE001 - one message cannot be recorded: find it below
            after, done, failure = self._commit_one_by_one(store, checked)
        if failure:
            self._ack(client, batch[:done])
            self._run_after(after)
            self.stats.counters["store_errors"] += 1
            log.error("could not store incoming messages (%s); will take %d again",
                      failure, len(batch) - done)
            return f"could not store incoming messages: {failure}"
        self.committed = True
        self._ack(client, batch[:done])
        self._run_after(after)
        return None

    def _commit(self, store, checked: list, after: list) -> None:
        with store.transaction():
            for item in checked:
                self._record(store, item, after)

    def _commit_one_by_one(self, store, checked: list) -> tuple[list, int, str]:
        """(after-commit actions, how many were stored, the storage failure or "")."""
        after: list = []
        for done, item in enumerate(checked):
            mine: list = []
            try:
                self._commit(store, [item], mine)
            except _STORAGE_ERRORS as exc:
                return after, done, str(exc)[:200]
            except Exception as exc:  # noqa: BLE001 - this message cannot be recorded: refuse it
                log.warning("a message on %s could not be recorded (%s); refused",
                            item.topic[:200], type(exc).__name__)
                refused = _Checked(item.topic, item.size, error=messages.MessageError(
                    "malformed", f"cannot be recorded: {type(exc).__name__}"))
                mine = []
                try:
                    self._commit(store, [refused], mine)
                except Exception as exc2:  # noqa: BLE001 - even refusing fails: the store
                    return after, done, str(exc2)[:200]
            after.extend(mine)
        return after, len(checked), ""

    @staticmethod
    def _ack(client, msgs: list) -> None:
        for msg in msgs:
            if msg.qos > 0:
                client.ack(msg.mid, msg.qos)

    @staticmethod
    def _run_after(after: list) -> None:
        for action in after:
            try:
                action()
            except Exception:  # noqa: BLE001 - a display problem must not stop the link
                log.exception("after-commit action failed")

    def _write_summaries(self, store) -> None:
        """Summaries of refusals left out of the audit log, once their window closed."""
        if not self.audit_limit.pending():
            return
        summaries = self.audit_limit.due(time.monotonic())
        if summaries:
            with store.transaction():
                for summary in summaries:
                    store.audit.append("link", "messages-rejected-summary", summary)

    # ---------------------------------------------------------------- before the transaction

    def _check(self, store, topic: str, payload: bytes) -> _Checked:
        """Verify one message; never raises (a fault of ours is refused as malformed)."""
        try:
            return self._verify(store, topic, payload)
        except _STORAGE_ERRORS:
            raise  # the inbox lookup failed: the link reconnects, the broker redelivers
        except Exception as exc:  # noqa: BLE001 - the parser's contract says MessageError only
            log.error("unexpected %s while checking a message on %s", type(exc).__name__,
                      topic[:200])
            return _Checked(topic, len(payload), error=messages.MessageError(
                "malformed", f"unexpected {type(exc).__name__}"))

    def _verify(self, store, topic: str, payload: bytes) -> _Checked:
        item = _Checked(topic, len(payload))
        parts = messages.split_topic(topic)
        if not parts or parts[0] != self.root or parts[1] != self.ori or parts[2] != self.device \
                or parts[3] not in messages.CENTRAL_KINDS:
            item.error = messages.MessageError("wrong-topic", "not one of this appliance's topics")
            return item
        try:
            item.message = messages.parse_and_verify(
                payload, verify_keys=self.pinned_keys(), ori=self.ori, device=self.device,
                topic_kind=parts[3], now=time.time(), freshness_s=self.freshness_s,
                max_bytes=self.max_bytes)
        except messages.MessageError as exc:
            item.error = exc
            return item
        msg = item.message
        if msg.kind == "command" and self.on_command and store.inbox.get(msg.id) is None:
            try:
                item.step = self.on_command(msg)
            except Exception as exc:  # noqa: BLE001 - the handler's fault: recorded, not fatal
                log.exception("command handler failed on %s", msg.id[:8])
                item.handler_failed = f"{type(exc).__name__}: {exc}"
        return item

    # ---------------------------------------------------------------- inside the transaction

    def _record(self, store, item: _Checked, after: list) -> None:
        if item.error is not None:
            exc = item.error
            self._reject(store, exc.reason, exc.detail, item.topic, None, item.size)
            if exc.reason == "stale" and exc.verified_body:
                self._stale_answer(exc.verified_body)
            return
        if item.message.kind == "ack":
            self._record_ack(store, item.message, after)
        else:
            self._record_stored(store, item, after)

    def _reject(self, store, reason: str, detail: str, topic: str, msg_id: str | None,
                size: int) -> None:
        self.stats.rejected[reason] += 1
        self.stats.counters["rejected"] += 1
        store.counters.incr(f"link.rejected.{reason}")
        write, summary = self.audit_limit.admit(reason, time.monotonic())
        if summary:
            store.audit.append("link", "messages-rejected-summary", summary)
        if not write:
            return  # a flood: counted, summarised once its window closes
        log.warning("refused a message on %s: %s %s", topic[:200], reason,
                    messages.printable(detail[:200]))
        entry = {"reason": reason, "topic": messages.printable(topic[:200]), "bytes": size,
                 "detail": messages.printable(detail[:300])[:400]}
        if msg_id:
            entry["message_id"] = messages.printable(str(msg_id)[:64])
        store.audit.append("link", "message-rejected", entry)

    def _stale_answer(self, body: dict) -> None:
        """A genuine but stale answer (it waited in the broker too long): ask again.

        Its content is NOT used. The only effect: the submission it names, if it
        is ours, is published again with the same id; central then answers that
        duplicate with the same ack and freshly signed notifications (rate
        limited, so a replayed old message cannot make the link flood the broker).
        """
        sid = body.get("submission_id")
        if not isinstance(sid, str) or body.get("ori") != self.ori or body.get("device") != self.device:
            return
        self.outbound.ask_again(sid, "stale answer (check this appliance's clock if it repeats)")

    def _record_ack(self, store, msg: messages.Message, after: list) -> None:
        """Apply a verified ack to the outbox. Idempotent: a redelivered ack changes nothing."""
        body = msg.body
        sid = body["submission_id"]
        outbox = store.outbox
        ack = {"id": msg.id, "result": body["result"], "issued_at": body["issued_at"],
               "central_tcn": body.get("central_tcn"), "reason": body.get("reason")}
        if body["result"] == "accepted":
            changed = outbox.mark_acknowledged(sid, ack)
        else:
            changed = outbox.mark_rejected(sid, body.get("reason", "rejected"), ack=ack)
        if changed is False:
            self.stats.counters["duplicate_acks"] += 1
        else:
            self.stats.counters["acks_" + body["result"]] += 1
            if self.on_ack:
                after.append(lambda: self.on_ack(sid, ack))
        self.outbound.answered(sid)

    def _record_stored(self, store, item: _Checked, after: list) -> None:
        """Notification or command: dedup by id, store; a command's step runs here too."""
        msg = item.message
        if not store.inbox.add(msg.id, msg.kind, msg.body):
            self._reject(store, "replayed", "id already in the inbox", item.topic, msg.id, 0)
            return
        self.stats.counters[msg.kind + "s"] += 1
        if msg.kind == "notification":
            if msg.body.get("check") == messages.RELEASE_CHECK:  # central has our release notice
                Releases(store).acknowledged(msg.body["release_id"], msg.id)
            if self.on_notification:
                after.append(lambda: self.on_notification(msg.body))
            if self.hook is not None:
                after.append(lambda: self.hook.submit(msg.body))
            return
        store.audit.append("link", "command-received",
                           {"message_id": msg.id, "action": msg.body.get("action")})
        result = None
        if item.handler_failed:
            self.stats.counters["command_handler_errors"] += 1
            store.audit.append("link", "command-failed", {
                "message_id": msg.id, "action": msg.body.get("action"), "why": "handler-error",
                "detail": item.handler_failed[:200]})
            result = {"outcome": "refused", "reason": "handler-error",
                      "detail": item.handler_failed[:200]}
        elif item.step is not None:
            result = item.step(store)
        if isinstance(result, dict):
            self._command_result(store, msg, result, after)

    def _command_result(self, store, msg: messages.Message, result: dict, after: list) -> None:
        """Audit the command's outcome with it; send it to central once committed."""
        self.stats.counters["command_results." + str(result.get("outcome"))] += 1
        store.audit.append("link", "command-result", {
            "message_id": msg.id, "action": msg.body.get("action"),
            "outcome": result.get("outcome"), "reason": result.get("reason"),
            "detail": messages.printable(str(result.get("detail", "")))[:200]})
        if self.on_result is not None:
            after.append(lambda: self.on_result(msg, result))
