"""How a full or failing disk shows through sqlite3 and the OS, and the words for the officer.

The store refuses to open, and the outbox refuses a new booking, with
`fpagent.errors.StorageFull` when either of these recognises the error.
"""

from __future__ import annotations

import sqlite3


def is_disk_full(exc: BaseException) -> bool:
    """True when `exc` means no space (or a file-size limit, or a failing card)."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "full" in text or "disk i/o" in text
    return isinstance(exc, OSError) and exc.errno in (28, 27, 122)  # ENOSPC, EFBIG, EDQUOT


def disk_full_text(exc: BaseException) -> str:
    """What the officer reads: "the disk is full", or what else it may be."""
    if "full" in str(exc).lower() or getattr(exc, "errno", None) == 28:
        return "the disk is full"
    return (f"the disk is full or failing ({exc}; a file-size limit or a worn SD card "
            f"shows like this: check `df` and the system log)")
