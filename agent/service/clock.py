"""Is the clock right? Bookings wait until it is known to be synchronised.

A Pi has no real-time clock: after a power cut it starts at the last saved
time, every answer from central is then refused as stale and bookings carry a
wrong date. So the service books only when the clock is known good:

- `[service] clock_check = "flag"` (default): systemd-timesyncd's flag file
  (`clock_sync_flag`, /run/systemd/timesync/synchronized) exists;
- `"timedatectl"`: `timedatectl show -p NTPSynchronized` says yes (chrony, ntpd);
- `"off"`: not checked (development);
- or an operator compared the time with a trusted clock and confirmed it:
  `fpagent clock confirm --utc ...`, audited, kept in the runtime directory
  (a tmpfs on the appliance: it does not outlive a reboot).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import subprocess
import time

CONFIRM_FILE = "clock-confirmed"
MAX_CONFIRM_SKEW_S = 120.0  # an operator's reading this close to the clock confirms it


@dataclasses.dataclass(frozen=True)
class ClockState:
    synchronised: bool
    detail: str

    def as_dict(self) -> dict:
        return {"synchronised": self.synchronised, "detail": self.detail}


def _confirm_path(cfg) -> pathlib.Path:
    return cfg.paths.runtime() / CONFIRM_FILE


def _timedatectl_says_synchronised() -> bool:
    try:
        done = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == "yes"


def check(cfg) -> ClockState:
    """The clock's state by the configured check, or an operator's confirmation."""
    mode = cfg.service.clock_check
    if mode == "off":
        return ClockState(True, "not checked ([service] clock_check = \"off\")")
    if mode == "flag" and os.path.exists(cfg.service.clock_sync_flag):
        return ClockState(True, "synchronised (time server)")
    if mode == "timedatectl" and _timedatectl_says_synchronised():
        return ClockState(True, "synchronised (timedatectl)")
    try:
        confirmed = json.loads(_confirm_path(cfg).read_text())
        return ClockState(True, f"confirmed by an operator at {confirmed['at']}")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return ClockState(False, "NOT SYNCHRONISED: bookings wait for a time server, or check the "
                             "time against a trusted clock and run `fpagent clock confirm`")


def confirm(cfg, store, operator_utc: datetime.datetime, *, now: float | None = None,
            by: str = "operator") -> float:
    """Record that an operator read `operator_utc` off a trusted clock; return the skew (s).

    Refused (ValueError) when the system clock differs by more than MAX_CONFIRM_SKEW_S:
    then the clock must be set, not confirmed.
    """
    now = time.time() if now is None else now
    skew = now - operator_utc.timestamp()
    if abs(skew) > MAX_CONFIRM_SKEW_S:
        raise ValueError(f"the system clock differs from the time given by {skew:+.0f} s; "
                         f"set the clock (or restore the time server), then confirm")
    at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with store.transaction():
        store.audit.append(by, "clock.confirmed", {"at": at, "skew_s": round(skew, 1)}, now=now)
    path = _confirm_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"at": at, "skew_s": round(skew, 1)}))
    os.replace(tmp, path)
    return skew
