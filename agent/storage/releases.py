"""Release notices the jail sends central, kept until central acknowledges them.

`fpagent release` signs a notice and leaves it here; the link publishes every
pending one (again after each reconnect and every little while) until
central's signed answer for it arrives. They live in the inbox table (kind
"release", body sealed like every inbox body), so no schema change is needed;
`store.inbox.list(kind="notification")` never sees them.
"""

from __future__ import annotations

import base64
import time

from fpagent.storage.inbox import Inbox

KIND = "release"


class Releases:
    """Signed release notices waiting for central's answer. Use `Releases(store)`."""

    def __init__(self, store):
        self._s = store
        self._inbox = Inbox(store)

    def add(self, release_id: str, wire: bytes, body: dict, *, officer: str,
            now: float | None = None) -> bool:
        """Keep a signed notice (`wire`, the bytes to publish) and audit who sent it."""
        now = time.time() if now is None else now
        with self._s.transaction():
            kept = self._inbox.add(release_id, KIND, {
                "wire_b64": base64.b64encode(wire).decode("ascii"),
                "submission_id": body["submission_id"], "tcr": body["tcr"],
                "released_at": body["released_at"]}, now=now)
            if kept:
                self._s.audit.append(officer, "release.sent", {
                    "release_id": release_id, "submission_id": body["submission_id"],
                    "released_at": body["released_at"]}, now=now)
        return kept

    def pending(self) -> list[tuple[str, bytes]]:
        """(release id, wire bytes) of every notice central has not acknowledged yet."""
        return [(item["message_id"], base64.b64decode(item["body"]["wire_b64"]))
                for item in self._inbox.list(kind=KIND, unacknowledged=True, limit=1000)]

    def all(self) -> list[dict]:
        return self._inbox.list(kind=KIND, limit=1000)

    def acknowledged(self, release_id: str, answer_id: str, *, now: float | None = None) -> bool:
        """Central's signed answer for `release_id` arrived: stop publishing it (audited)."""
        now = time.time() if now is None else now
        with self._s.transaction():
            cur = self._s.conn.execute(
                "UPDATE inbox SET acknowledged_at = ?, acknowledged_by = 'central' "
                "WHERE message_id = ? AND kind = ? AND acknowledged_at IS NULL",
                (now, release_id, KIND))
            if cur.rowcount != 1:
                return False
            self._s.audit.append("link", "release.acknowledged-by-central",
                                 {"release_id": release_id, "message_id": answer_id}, now=now)
        return True
