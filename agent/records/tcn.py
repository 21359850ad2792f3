"""Transaction control numbers: `ORI-YYYYMMDD-DEVICE-SEQUENCE-C`, with a check character.

A bureau refuses a duplicate TCN, and one agency may run several appliances,
each with its own durable envelope counter. So the TCN carries the device's
identity (its `[device] device_id`, the CN of its certificate, unique within
the agency) as a short tag: two appliances of one ORI never issue the same
TCN, even on the same day with the same counter. The Luhn mod-36 check
character catches a mistyped digit when an officer reads a TCN out.

The whole stays within EBTS 1.009 (ANS, 10-40 characters): 9 + 8 + at most
10 + 8 characters, four hyphens and the check character.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import re

from fpagent.records.transaction_format import TransactionError

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_TAG = 10
_READABLE_TAG = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{0,8}[A-Z0-9])?")
_TCN = re.compile(r"([A-Z0-9]{9}-\d{8}(?:-[A-Z0-9][A-Z0-9-]{0,8}[A-Z0-9]|-[A-Z0-9])?-\d{8})-([A-Z0-9])")


def check_character(body: str) -> str:
    """Luhn mod 36 over the alphanumerics of `body` (separators ignored)."""
    chars = [c for c in body.upper() if c in _ALNUM]
    total, factor = 0, 2
    for c in reversed(chars):
        addend = factor * _ALNUM.index(c)
        total += addend // 36 + addend % 36
        factor = 1 if factor == 2 else 2
    return _ALNUM[(36 - total % 36) % 36]


def device_tag(device_id: str) -> str:
    """The device's part of the TCN: its id in capitals when that is at most
    10 letters, digits and inner hyphens (`booking-01` -> `BOOKING-01`), else
    `H` and 7 characters of a SHA-256 of the id (stable, and distinct for
    distinct ids but for a one-in-34-billion chance)."""
    text = str(device_id or "").strip()
    if not text:
        raise TransactionError("the device id is empty; the TCN needs it to be unique in the agency")
    if _READABLE_TAG.fullmatch(text.upper()):
        return text.upper()
    digest = base64.b32encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return "H" + digest[:7]


def make_tcn(ori: str, when: _dt.datetime | _dt.date, sequence: int, device: str = "") -> str:
    """`ORI-YYYYMMDD-DEVICE-SEQUENCE-C`: unique in the agency as long as
    `sequence` is unique per device (the store's durable counter) and each
    appliance has its own device id. Without `device`, the older
    `ORI-YYYYMMDD-SEQUENCE-C`, unique only per device."""
    if not re.fullmatch(r"[A-Za-z0-9]{9}", ori or ""):
        raise TransactionError(f"ORI must be 9 letters/digits, got {ori!r}")
    if not 0 <= int(sequence) <= 99_999_999:
        raise TransactionError(f"TCN sequence {sequence} out of range 0-99999999")
    tag = f"-{device_tag(device)}" if device else ""
    body = f"{ori.upper()}-{when:%Y%m%d}{tag}-{int(sequence):08d}"
    return f"{body}-{check_character(body)}"


def tcn_is_valid(tcn: str) -> bool:
    """True when `tcn` has our shape (with or without the device tag) and its
    check character matches."""
    m = _TCN.fullmatch(tcn or "")
    return bool(m) and check_character(m.group(1)) == m.group(2)


def resubmission_tcr(original_tcn: str) -> str:
    """The 1.010 TCR of a resubmission: the TCN of the transaction it
    replaces, checked so that a mistyped one is refused here, not by the
    bureau. Any TCN of EBTS shape (ANS 10-40) is taken; one of ours must
    also pass its check character."""
    text = str(original_tcn or "").strip()
    if not re.fullmatch(r"[ -~]{10,40}", text):
        raise TransactionError("the original TCN must be 10-40 printable characters")
    if _TCN.fullmatch(text.upper()) and not tcn_is_valid(text.upper()):
        raise TransactionError("the original TCN's check character does not match: mistyped?")
    return text
