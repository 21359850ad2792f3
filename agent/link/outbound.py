"""The outbox pump: what the link publishes, and when it publishes it again.

A submission is published (QoS 1) from the durable SQLite outbox with at most
`mqtt.inflight` unanswered at a time. paho's own queue never holds the only
copy: the outbox row stays pending until a valid signed `ack` for its id
arrives; without one within `mqtt.ack_timeout_s` (then twice that, and so on
up to 5 minutes), or after any reconnect, it is published again with the same
id (central deduplicates). Submissions whose answers are missing or came back
stale are published again too (`ask_again`): central answers a duplicate anew.

State only; the store and the paho client are passed in by the link's thread.
"""

from __future__ import annotations

import logging
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fpagent.link import messages
from fpagent.storage.releases import Releases

log = logging.getLogger("fpagent.link")

RELEASE_EVERY_S = 10.0  # a release notice central has not answered goes out again this often
RETRY_MAX_S = 300.0  # the longest wait between re-publications of an unanswered submission
ASK_AGAIN_EVERY_S = 60.0  # at most this often per submission...
# ...and [answers] ask_again_times times (e.g. our clock is wrong: don't ask forever)


def submission_properties(sid: str) -> Properties:
    """MQTT 5 properties of a submission publish (contract: fp-kind, fp-id, content type)."""
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("fp-kind", "submission"), ("fp-id", str(sid))]
    props.ContentType = "application/vnd.fpagent.envelope"
    return props


class Outbound:
    """In-flight submissions, re-publication and the requests for missing answers."""

    def __init__(self, config, stats, topic: str):
        self.mq = config.mqtt
        self.answers = config.answers
        self.retention_days = config.store.retention_days
        self.stats = stats
        self.topic = topic  # this appliance's submission topic
        self.inflight: dict[str, float] = {}  # submission id -> monotonic time published
        self.mid_to_id: dict[int, str] = {}
        self.pump_needed = True
        self._next_pump = 0.0
        self._resync: dict[str, str] = {}  # submission id -> why its answers are asked for again
        self._asked: dict[str, tuple] = {}  # sid -> (last time asked, times asked)
        self._next_answers_check = 0.0
        self._next_releases = 0.0
        self.release_topic = topic.rsplit("/", 1)[0] + "/release"

    # ---------------------------------------------------------------- connection events

    def connected(self, store) -> None:
        """Resynchronise: everything unanswered goes out again with the same id."""
        store.outbox.retry_all_now()
        self._next_releases = 0.0
        self.forget()
        self.pump_needed = True

    def forget(self) -> None:
        """The connection is gone: nothing is in flight any more."""
        self.inflight.clear()
        self.mid_to_id.clear()

    def answered(self, sid: str) -> None:
        """A verified ack for `sid` arrived: its place in the window is free."""
        if self.inflight.pop(sid, None) is not None:
            self.pump_needed = True

    def published(self, mid: int, reason_code) -> None:
        """PUBACK (or a refusal) from the broker for one of our publishes."""
        sid = self.mid_to_id.pop(mid, None)
        if reason_code is not None and reason_code.is_failure:
            self.stats.counters["publish_refused"] += 1
            self.stats.last_error = f"broker refused a publish: {reason_code}"
            log.warning("broker refused publish of %s: %s", sid, reason_code)

    # ---------------------------------------------------------------- the pump

    def step(self, store, client, now: float) -> None:
        """One turn while connected: publish what is due, look for missing answers."""
        self.pump(store, client, now)
        if now >= self._next_releases:
            self._next_releases = now + RELEASE_EVERY_S
            self.publish_releases(store, client)
        if now >= self._next_answers_check:
            timeout = min([t for t in (self.answers.timeout_for(c, self.mq.answers_timeout_s)
                                       for c in messages.CHECKS) if t] or [240.0])
            self._next_answers_check = now + max(1.0, min(60.0, timeout / 4))
            self.check_missing_answers(store)

    def releases_due(self) -> None:
        """`fpagent release` left a new notice: publish it at the next turn."""
        self._next_releases = 0.0

    def publish_releases(self, store, client) -> None:
        """Publish every release notice central has not answered (it deduplicates by id)."""
        for release_id, wire in Releases(store).pending():
            info = client.publish(self.release_topic, wire, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.stats.last_error = f"publish failed: {mqtt.error_string(info.rc)}"
                return
            self.stats.counters["releases_published"] += 1

    def pump(self, store, client, now: float) -> None:
        """Publish due outbox rows, keeping at most `inflight` unanswered."""
        if self._resync:
            self._publish_resync(store, client)
        timeout = self.mq.ack_timeout_s
        for sid, sent in list(self.inflight.items()):
            if now - sent > timeout:
                del self.inflight[sid]
                self.stats.counters["ack_timeouts"] += 1
                self.pump_needed = True
        free = max(1, self.mq.inflight) - len(self.inflight)
        if free <= 0 or (not self.pump_needed and now < self._next_pump):
            return
        self.pump_needed = False
        self._next_pump = now + 0.5
        # unacknowledged rows whose retry time has come (mark_sent pushes it by the timeout)
        rows = store.outbox.due(limit=len(self.inflight) + free)
        sent = self._publish_rows(client, rows, free, now, timeout)
        if sent:
            # the attempts recorded after publishing, so the store's lock is not held
            # while TLS encrypts and sends the envelopes; one commit for the batch, not
            # waiting for the disk: a crash before it only means they go out again
            with store.transaction(durable=False):
                for sid, retry in sent:
                    store.outbox.mark_sent(sid, retry_after=retry)

    def _publish_rows(self, client, rows, free: int, now: float,
                      timeout: float) -> list[tuple[str, float]]:
        """Publish up to `free` due rows; (submission id, seconds until due again) of each."""
        sent = []
        for row in rows:
            if free <= 0:
                break
            sid = row.submission_id
            if sid in self.inflight or row.envelope is None:
                continue
            info = client.publish(self.topic, bytes(row.envelope), qos=1,
                                  properties=submission_properties(sid))
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.stats.last_error = f"publish failed: {mqtt.error_string(info.rc)}"
                self.pump_needed = True
                break
            self.mid_to_id[info.mid] = sid
            self.stats.counters["republished" if row.attempts else "published"] += 1
            self.inflight[sid] = now
            # unanswered: due again after the ack timeout, doubling each time up to
            # 5 minutes; kept in SQLite, so it holds across restarts (a reconnect
            # makes everything due at once: resynchronisation)
            sent.append((sid, min(RETRY_MAX_S, timeout * 2 ** min(row.attempts, 12))))
            free -= 1
        if free == 0:
            self.pump_needed = True
        return sent

    # ---------------------------------------------------------------- answers asked for again

    def check_missing_answers(self, store) -> None:
        """Accepted bookings still missing an answer after that question's timeout: ask again.

        Central sends both answers (criminal history, immigration) for every
        accepted submission. One lost on the way (e.g. a broker that crashed
        holding it) would otherwise never come: the submission is published
        again with the same id, and central answers the duplicate again. Each
        question has its own timeout ([answers]); any answer to it counts,
        "under review" included: that one may last for weeks and later
        versions come by themselves.
        """
        timeouts = {check: self.answers.timeout_for(check, self.mq.answers_timeout_s)
                    for check in messages.CHECKS}
        due = {check: t for check, t in timeouts.items() if t}
        if not due:
            return
        now = time.time()
        horizon = now - self.retention_days * 86400.0
        late = [r for r in store.outbox.list(state="acknowledged", limit=500)
                if r.acknowledged_at and horizon < r.acknowledged_at < now - min(due.values())]
        if not late:
            return
        have: dict = {}
        for item in store.inbox.list(kind="notification", limit=5000):
            have.setdefault(item["body"].get("submission_id"), set()).add(item["body"].get("check"))
        for row in late:
            got = have.get(row.submission_id, set())
            if messages.REPRINT_CHECK in got:
                continue
            missing = [c for c, t in due.items() if c not in got and row.acknowledged_at < now - t]
            if missing:
                self.ask_again(row.submission_id, f"answers missing: {', '.join(missing)}")

    def ask_again(self, sid: str, why: str) -> None:
        """Publish `sid` again soon, at most once a minute and [answers] ask_again_times times."""
        now = time.monotonic()
        last, tries = self._asked.get(sid, (-1e9, 0))
        times = self.answers.ask_again_times
        if now - last < ASK_AGAIN_EVERY_S or tries >= times:
            if tries >= times:
                self.stats.last_error = (f"asked central {times} times for the answers "
                                         f"to {sid[:8]} ({why})")
            return
        self._asked[sid] = (now, tries + 1)
        self._resync[sid] = why
        self.pump_needed = True

    def _publish_resync(self, store, client) -> None:
        while self._resync:
            sid, why = self._resync.popitem()
            row = store.outbox.get(sid, with_envelope=True)
            if row is None or row.envelope is None:
                continue
            client.publish(self.topic, bytes(row.envelope), qos=1,
                           properties=submission_properties(sid))
            self.stats.counters["resync_requests"] += 1
            store.audit.append("link", "answers-requested-again",
                               {"submission_id": sid, "why": why[:100]})
