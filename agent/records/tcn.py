"""Transaction control numbers: `ORI-YYYYMMDD-SEQUENCE-C`, with a check character.

Unique per sender as long as the sequence is unique per device per day (the
store's durable envelope counter); the Luhn mod-36 check character catches a
mistyped digit when an officer reads a TCN out.
"""

from __future__ import annotations

import datetime as _dt
import re

from fpagent.records.transaction_format import TransactionError

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def check_character(body: str) -> str:
    """Luhn mod 36 over the alphanumerics of `body` (separators ignored)."""
    chars = [c for c in body.upper() if c in _ALNUM]
    total, factor = 0, 2
    for c in reversed(chars):
        addend = factor * _ALNUM.index(c)
        total += addend // 36 + addend % 36
        factor = 1 if factor == 2 else 2
    return _ALNUM[(36 - total % 36) % 36]


def make_tcn(ori: str, when: _dt.datetime | _dt.date, sequence: int) -> str:
    """`ORI-YYYYMMDD-SEQUENCE-C`: unique per sender as long as `sequence` is
    unique per device per day (the store's durable counter), with a check
    character that catches a mistyped digit when an officer reads it out."""
    if not re.fullmatch(r"[A-Za-z0-9]{9}", ori or ""):
        raise TransactionError(f"ORI must be 9 letters/digits, got {ori!r}")
    if not 0 <= int(sequence) <= 99_999_999:
        raise TransactionError(f"TCN sequence {sequence} out of range 0-99999999")
    body = f"{ori.upper()}-{when:%Y%m%d}-{int(sequence):08d}"
    return f"{body}-{check_character(body)}"


def tcn_is_valid(tcn: str) -> bool:
    """True when `tcn` has our shape and its check character matches."""
    m = re.fullmatch(r"([A-Z0-9]{9}-\d{8}-\d{8})-([A-Z0-9])", tcn or "")
    return bool(m) and check_character(m.group(1)) == m.group(2)
