"""What the link says about itself: its counters for the service, its retained `status` for central.

The retained status (version, queue depth, sensor state, last capture, free
disk, the audit chain's head) is signed with the device key; the MQTT will replaces it with
"offline" when the connection dies without a goodbye.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import shutil
from typing import Callable

import fpagent
from fpagent.link import messages


@dataclasses.dataclass
class LinkStats:
    """Counters and the last problem, shared by the link's parts, read by `Link.health()`."""

    counters: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    rejected: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    last_error: str = ""


class StatusMessage:
    """Builds the signed `status` payload of this appliance."""

    def __init__(self, config, *, signing_key=None,
                 status_extra: Callable[[], dict] | None = None):
        self.ori = config.device.ori
        self.device = config.device.device_id
        self.state_dir = config.paths.state_dir
        self.signing_key = signing_key
        self.status_extra = status_extra

    def payload(self, state: str, store=None) -> bytes:
        """`store` (when online) gives the queue depth; unsigned without a device key."""
        body = messages.message("status", self.fields(state, store), ori=self.ori,
                                device=self.device)
        if self.signing_key is not None:
            return messages.sign(body, self.signing_key)
        return json.dumps({"v": 1, "body": body}, sort_keys=True).encode()

    def fields(self, state: str, store=None) -> dict:
        online = state == "online"
        queue_info = {}
        audit = None
        if online and store is not None:
            try:
                seq, head_hash = store.audit.head()
                audit = {"seq": seq, "hash": head_hash}
            except Exception:  # noqa: BLE001 - status must never kill the link
                audit = None
            try:
                counts = store.outbox.counts()
                queue_info = dict(counts) if isinstance(counts, dict) else {"pending": counts}
                queue_info["oldest_pending_age_s"] = store.outbox.oldest_pending_age()
            except Exception as exc:  # noqa: BLE001 - status must never kill the link
                queue_info = {"error": str(exc)[:100]}
        disk = None
        try:
            disk = round(shutil.disk_usage(self.state_dir).free / 2**20, 1)
        except OSError:
            pass
        extra = {}
        if self.status_extra and online:
            try:
                extra = self.status_extra() or {}
            except Exception:  # noqa: BLE001
                extra = {}
        sensor = extra.get("sensor")
        if sensor is not None and not isinstance(sensor, dict):
            sensor = {"state": str(sensor)}
        return messages.status_body(state=state, version=fpagent.__version__, queue=queue_info,
                                    sensor=sensor, last_capture_at=extra.get("last_capture_at"),
                                    disk_free_mb=disk if online else None, audit=audit)
