"""Central's fleet commands, acted on: the service's handler of verified `command` messages.

The link verifies and records each command and calls this handler first
(fpagent.link.inbound.CommandHandler); the handler reads the arguments
(fpagent.link.fleet_commands), does the slow checks, and returns the step
that applies the command inside the transaction that records it. Every step
returns the command's result, which the link audits and sends back to
central, signed, on this appliance's `result` topic:

- `watchlist.replace`: whole (fpagent.screening.watchlist) or chunked, and
  `watchlist.update`: adds and removes (fpagent.screening.watchlist_changes);
- `purge`: bookings by TCN or age, never one central has not acknowledged
  (fpagent.service.fleet_purge);
- `config-change`: allow-listed keys, validated, written atomically, rolled
  back if the service does not take them (fpagent.service.fleet_config);
- `key-rotation`: central's next signing key with an overlap window
  (fpagent.sealing.rotation), effective for the very next message.

Anything else (the old `watchlist-update` name included) is refused as
not supported; bad arguments are refused with the field at fault.
"""

from __future__ import annotations

import logging

from fpagent.link import fleet_commands as fc
from fpagent.sealing.rotation import CentralKeyRing, RotationError
from fpagent.screening.watchlist import WatchlistCommands
from fpagent.screening.watchlist_changes import WatchlistChanges
from fpagent.service.fleet_config import ConfigChanger
from fpagent.service.fleet_purge import purge_bookings

log = logging.getLogger("fpagent.service")


def _refusal(reason: str, detail: str):
    result = {"outcome": "refused", "reason": reason, "detail": detail[:200]}
    return lambda store: dict(result)


class FleetCommands:
    """A CommandHandler for the link; `counters` come from the watch-list handler."""

    def __init__(self, cfg, *, key_ring: CentralKeyRing | None = None,
                 watchlist: WatchlistCommands | None = None, config_health=None):
        self.cfg = cfg
        self.watchlist = watchlist or WatchlistCommands.from_config(cfg)
        self.changes = WatchlistChanges.from_config(cfg, self.watchlist)
        self.key_ring = key_ring
        self.config = ConfigChanger(cfg, health=config_health)

    @property
    def counters(self):
        return self.watchlist.counters

    def __call__(self, msg):
        action = msg.body.get("action")
        args = msg.body.get("args", {})
        try:
            if action == "watchlist.replace":
                return self._replace(msg, fc.parse_watchlist_replace(args))
            if action == "watchlist.update":
                update = fc.parse_watchlist_update(args)
                return self.changes.update_step(msg, add=update.add, remove=update.remove)
            if action == "purge":
                purge = fc.parse_purge(args)
                return lambda store: purge_bookings(store, self.cfg, tcns=purge.tcns,
                                                    older_than_days=purge.older_than_days,
                                                    message_id=msg.id)
            if action == "config-change":
                changes = fc.parse_config_change(args)
                return lambda store: self.config.apply(store, changes, message_id=msg.id)
            if action == "key-rotation":
                return self._rotation_step(msg, fc.parse_key_rotation(args))
        except fc.CommandArgsError as exc:
            return _refusal("bad-args", str(exc))
        return _refusal("not-supported", f"{str(action)[:32]} is not acted on by this appliance")

    def _replace(self, msg, replace: fc.WatchlistReplace):
        if not replace.list_id:
            return self.watchlist(msg)
        return self.changes.chunk_step(msg, entries=replace.entries, list_id=replace.list_id,
                                       chunk=replace.chunk, chunks=replace.chunks,
                                       digest=replace.digest)

    def _rotation_step(self, msg, rotation: fc.KeyRotationArgs):
        if self.key_ring is None:
            return _refusal("not-supported", "this link does not take central key rotations")

        def step(store) -> dict:
            try:
                new_id = self.key_ring.install(rotation.public_key_pem, rotation.not_before,
                                               rotation.not_after)
            except RotationError as exc:
                return {"outcome": "refused", "reason": "bad-args", "detail": str(exc)[:200]}
            except OSError as exc:
                return {"outcome": "refused", "reason": "not-saved", "detail": type(exc).__name__}
            store.audit.append("central", "central-key-rotation", {
                "message_id": msg.id, "key_id": new_id,
                "not_before": rotation.not_before, "not_after": rotation.not_after})
            return {"outcome": "applied", "reason": "done",
                    "detail": f"key {new_id} accepted from not_before, alone after not_after"}
        return step
