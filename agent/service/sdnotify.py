"""The systemd notify protocol, by hand: one datagram per message to $NOTIFY_SOCKET.

Why by hand: the protocol is a few lines (sd_notify(3)), and a dependency on
libsystemd or a Python binding would be one more thing to build on a Pi.
Outside systemd (no $NOTIFY_SOCKET) every call is a cheap no-op, so the
service runs the same in a terminal, a test and a unit.

    notifier = Notifier.from_environment()
    notifier.ready("sensor present, link up")      # READY=1 + STATUS=
    notifier.watchdog()                             # WATCHDOG=1
    notifier.status("queue 3, oldest 12 s")         # STATUS=
    notifier.extend_timeout(90)                     # EXTEND_TIMEOUT_USEC=
    notifier.stopping()                             # STOPPING=1

`watchdog_interval()` reads $WATCHDOG_USEC / $WATCHDOG_PID and returns how
often to ping (half the timeout, as sd_watchdog_enabled(3) recommends), or
None when systemd is not watching this process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

log = logging.getLogger(__name__)


def _address(value: str) -> str | bytes | None:
    """Turn $NOTIFY_SOCKET into a socket address ('@' = abstract namespace)."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock:... and others are not for an appliance


class Notifier:
    """Sends sd_notify messages; a no-op when not started by systemd."""

    def __init__(self, socket_path: str | None):
        self.address = _address(socket_path or "")
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.failed = False  # the last send failed (logged once)

    @classmethod
    def from_environment(cls, unset: bool = False) -> "Notifier":
        """Read $NOTIFY_SOCKET; with unset=True remove it so children don't inherit it."""
        path = os.environ.get("NOTIFY_SOCKET", "")
        if unset:
            os.environ.pop("NOTIFY_SOCKET", None)
        return cls(path)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send KEY=VALUE lines in one datagram; True when it was delivered."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self.address)
            except OSError as exc:
                if not self.failed:
                    log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET", "?"), exc)
                self.failed = True
                self._close_locked()
                return False
        self.failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        fields = ["READY=1", f"MAINPID={os.getpid()}"]
        if status is not None:
            fields.append("STATUS=" + _one_line(status))
        return self.notify(*fields)

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify("STATUS=" + _one_line(text))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before a start (or stop) timeout fires."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def stopping(self, status: str | None = None) -> bool:
        fields = ["STOPPING=1"]
        if status is not None:
            fields.append("STATUS=" + _one_line(status))
        return self.notify(*fields)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def watchdog_interval(environ: dict | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when off.

    As sd_watchdog_enabled(3): $WATCHDOG_USEC gives the timeout; when
    $WATCHDOG_PID is set it must be our pid (else the variables were
    inherited from a parent and are not meant for us).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 1_000_000 / 2
