"""The appliances central knows: each (ORI, device id) with the signing keys it may use.

Device ids are only unique within an agency (two agencies may both have a
"booking-01"), so a device key is registered for the pair (ORI, device id)
and a submission is verified only with the keys of the pair its topic names.
A key rotation keeps the previous key for an overlap window: bookings queued
on the appliance before the rotation were signed with it and still arrive.

Layout of the devices folder:

    <ORI>/<device id>.pub                            the current key
    <ORI>/<device id>.until-<YYYYMMDDTHHMMSSZ>.pub   a previous key, accepted until then (UTC)

A `<device id>.pub` directly in the folder names no agency and is ignored
(with a warning): move it under its ORI.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import pathlib
import re
import time

from fpagent.sealing import keys as keys_mod

log = logging.getLogger("fpagent.central")

DEFAULT_OVERLAP_S = 14 * 86400.0  # long enough for an appliance offline over a holiday to drain
_ORI = re.compile(r"^[A-Za-z0-9]{9}$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UNTIL = "%Y%m%dT%H%M%SZ"


@dataclasses.dataclass(frozen=True)
class DeviceKey:
    """One registered device verify key; `not_after` (epoch seconds) None = current key."""

    ori: str
    device: str
    key: object  # Ed25519PublicKey
    key_id: str
    not_after: float | None = None


def _check_identity(ori: str, device: str) -> None:
    if not _ORI.match(ori or ""):
        raise ValueError(f"ORI {ori!r} must be 9 letters or digits")
    if not _DEVICE.match(device or "") or ".until-" in device:
        raise ValueError(f"device id {device!r} must be 1-64 letters, digits, '.', '-' or '_'")


def _parse_name(name: str) -> tuple[str, float | None] | None:
    """'booking-01.pub' -> ('booking-01', None); 'booking-01.until-20261201T000000Z.pub' ->
    ('booking-01', epoch); anything else None."""
    if not name.endswith(".pub"):
        return None
    stem = name[:-4]
    until = None
    if ".until-" in stem:
        stem, stamp = stem.rsplit(".until-", 1)
        try:
            until = datetime.datetime.strptime(stamp, _UNTIL).replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            return None
    return (stem, until) if _DEVICE.match(stem) else None


class DeviceRegistry:
    """The registered device keys, looked up by the (ORI, device) a submission's topic names."""

    def __init__(self, entries=()):
        self._by_pair: dict[tuple[str, str], list[DeviceKey]] = {}
        for e in entries:
            self._by_pair.setdefault((e.ori, e.device), []).append(e)

    @classmethod
    def load(cls, devices_dir) -> "DeviceRegistry":
        root = pathlib.Path(devices_dir)
        entries = []
        for stray in sorted(root.glob("*.pub")):
            log.warning("central: %s names no agency and is ignored: move it to %s/<ORI>/%s",
                        stray, root, stray.name)
        for path in sorted(root.glob("*/*.pub")):
            parsed = _parse_name(path.name)
            if parsed is None or not _ORI.match(path.parent.name):
                log.warning("central: %s is not <ORI>/<device id>[.until-<time>].pub; ignored", path)
                continue
            vk = keys_mod.load_verify_key(path, "device verify key")
            entries.append(DeviceKey(path.parent.name, parsed[0], vk, keys_mod.key_id(vk), parsed[1]))
        return cls(entries)

    def keys_for(self, ori: str, device: str, now: float | None = None) -> dict:
        """{key id: verify key} that (ori, device) may sign with now (current + overlapping)."""
        now = time.time() if now is None else now
        return {e.key_id: e.key for e in self._by_pair.get((ori, device), ())
                if e.not_after is None or now <= e.not_after}

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_pair.values())

    def pairs(self) -> list[tuple[str, str]]:
        return sorted(self._by_pair)


def register_device_key(devices_dir, ori: str, device: str, public_key, *,
                        overlap_s: float = DEFAULT_OVERLAP_S, now: float | None = None) -> pathlib.Path:
    """Register `public_key` (an Ed25519PublicKey) as the current key of (ori, device).

    A different current key is kept as a previous key, accepted for `overlap_s`
    more seconds (the rotation's overlap); registering the same key again
    changes nothing. Returns the current key's path."""
    _check_identity(ori, device)
    now = time.time() if now is None else now
    folder = pathlib.Path(devices_dir) / ori
    folder.mkdir(parents=True, exist_ok=True)
    current = folder / f"{device}.pub"
    new = keys_mod.encode_public(public_key)
    if current.exists():
        old = keys_mod.load_verify_key(current, "device verify key")
        if keys_mod.key_id(old) == keys_mod.key_id(public_key):
            return current
        until = datetime.datetime.fromtimestamp(now + overlap_s, datetime.timezone.utc)
        os.replace(current, folder / f"{device}.until-{until.strftime(_UNTIL)}.pub")
    keys_mod.write_file_atomic(current, new, mode=0o644, overwrite=True)
    return current
