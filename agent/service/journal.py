"""The service's log lines for journald: one event per line, states and counts only.

Under systemd the events go to the journal with their fields as journal
fields (`journalctl -u fpagent FPAGENT_EVENT=sensor-absent`); elsewhere they
are `key=value` lines on stderr. Only states, counts, paths and durations
are logged: never images, templates, keys or personal data.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time

log = logging.getLogger("fpagent.service")

JOURNAL_SOCKET = "/run/systemd/journal/socket"

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def log_event(level: int, message: str, **fields) -> None:
    """Log one service event with its key=value fields."""
    log.log(level, message, extra={"fields": fields})


class JournalFormatter(logging.Formatter):
    """`<prio>message key=value ...` for journald's stream (SyslogLevelPrefix),
    or `time level message key=value` for a terminal."""

    def __init__(self, journal: bool):
        super().__init__()
        self.journal = journal

    @staticmethod
    def text(record: logging.LogRecord) -> str:
        """The message and its key=value fields, without time or level."""
        fields = getattr(record, "fields", None) or {}
        text = record.getMessage()
        if fields:
            text += " " + " ".join(f"{k}={_field(v)}" for k, v in fields.items())
        if record.exc_info and record.levelno >= logging.ERROR:
            text += " error=" + _field(repr(record.exc_info[1]))
        return text

    def format(self, record: logging.LogRecord) -> str:
        text = self.text(record)
        if self.journal:
            prio = _PRIORITY.get(record.levelno, 6)
            return f"<{prio}>{text}"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname.lower():7s} {text}"


def _field(value) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
    return text


def stderr_is_journal() -> bool:
    """True when systemd connected stderr to the journal ($JOURNAL_STREAM)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return st.st_dev == dev and st.st_ino == ino


class JournalHandler(logging.Handler):
    """journald's native protocol: each event with its fields as journal fields.

    `journalctl -u fpagent FPAGENT_EVENT=sensor-absent` then finds every time
    the sensor went away. Values are states, counts and paths; never
    biometric data or secrets (the callers log nothing else).
    """

    def __init__(self, path: str = JOURNAL_SOCKET, identifier: str = "fpagent"):
        super().__init__()
        self.path = path
        self.identifier = identifier
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                "MESSAGE": JournalFormatter.text(record),
                "PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
                "SYSLOG_IDENTIFIER": self.identifier,
                "CODE_FILE": record.pathname, "CODE_LINE": str(record.lineno), "CODE_FUNC": record.funcName,
                "LOGGER": record.name,
                "FPAGENT_EVENT": "-".join(record.getMessage().lower().split()[:4]),
            }
            for key, value in (getattr(record, "fields", None) or {}).items():
                name = "FPAGENT_" + "".join(c if c.isalnum() else "_" for c in str(key)).upper()
                fields[name] = str(value)
            self.sock.sendto(_journal_datagram(fields), self.path)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def _journal_datagram(fields: dict) -> bytes:
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")[:8192]
        if b"\n" in data:
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def setup_logging(level: str, journal: bool | None = None,
                  journal_socket: str = JOURNAL_SOCKET) -> None:
    """Native journal fields under systemd, else `key=value` lines on stderr."""
    use_journal = stderr_is_journal() if journal is None else journal
    handler: logging.Handler
    if use_journal and os.path.exists(journal_socket):
        handler = JournalHandler(journal_socket)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JournalFormatter(use_journal))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))  # [service] log_level is checked on load
