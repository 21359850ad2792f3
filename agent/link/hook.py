"""The `[notifications] hook`: a local command run for each new notification from central.

Sites use it to print or forward an answer (a jail-management system, a desk
printer). It runs in a worker thread of its own, so a slow script never
stalls the link. It receives every state change of a booking's answers: each
new notification as it arrives (with its `version`: a stale one is passed on
too, and the receiver keeps the highest per booking and check, as the
appliance does), and `{"event": "reminder"|"acknowledged", ...}` objects from
the service's reminders and an officer's acknowledgement.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import threading

from fpagent.link import messages

log = logging.getLogger("fpagent.link")


class NotificationHook:
    """Runs `[notifications] hook` for each new notification, JSON on stdin.

    A worker thread, so a slow printer script never stalls the link; a
    timeout; failures logged and counted, never fatal. The JSON holds the
    notification's fields only (no biometric data is ever in one).
    """

    def __init__(self, command: str, timeout_s: float):
        self.command = command
        self.timeout_s = timeout_s
        self.failures = 0
        self.runs = 0
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, notification: dict) -> None:
        if not self.command:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="fpagent-hook", daemon=True)
            self._thread.start()
        self._queue.put(notification)

    def run_one(self, notification: dict) -> bool:
        # the script may print the text: no control characters or terminal escapes reach it
        data = json.dumps(messages.printable_body(notification), sort_keys=True).encode()
        self.runs += 1
        try:
            done = subprocess.run(self.command, shell=True, input=data, timeout=self.timeout_s,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except subprocess.TimeoutExpired:
            self.failures += 1
            log.warning("notification hook timed out after %.0f s: %s", self.timeout_s, self.command)
            return False
        except OSError as exc:
            self.failures += 1
            log.warning("notification hook could not run (%s): %s", exc, self.command)
            return False
        if done.returncode != 0:
            self.failures += 1
            log.warning("notification hook exited %d: %s", done.returncode,
                        done.stderr.decode(errors="replace").strip()[:300])
            return False
        return True

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.run_one(item)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
