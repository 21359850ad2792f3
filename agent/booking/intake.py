"""Booking data from the jail's system: one JMS booking record -> a checked BookingInfo.

The same path for all three ways a record arrives (`fpagent book --from`,
the spool folder, the loopback endpoint): bounded bytes -> JSON ->
fpagent.records.booking_record.to_type2 (shape) -> BookingInfo -> the
booking profile (content). Anything wrong is a BookingRecordError (shape)
or a BookingRefused (one finding per field); nothing else escapes.

Person fields the configuration does not collect (booking.descriptive_fields)
are left out, as are the record's aliases, citizenship and identity numbers,
which this version does not send. Pure functions: no I/O, no logging of the
record's personal data.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from typing import Optional

from fpagent.booking.session import BookingError, BookingInfo
from fpagent.records.booking_record import BookingRecordError, to_type2
from fpagent.records.transaction_format import DESCRIPTIVE_FIELDS

MAX_RECORD_BYTES = 64 * 1024  # a booking record is a few hundred bytes; 40 charges fit easily
_DESCRIPTIVE_BY_MNEMONIC = {mnemonic: key for key, (_tag, mnemonic) in DESCRIPTIVE_FIELDS.items()}


@dataclasses.dataclass(frozen=True)
class JmsBooking:
    """A validated booking from the JMS: what the booking needs, and what the officer sees first."""

    info: BookingInfo
    name: str  # 2.018 NAM as sent, shown to the officer before the first finger
    charges: tuple  # offense literals, shown likewise

    def announcement(self) -> str:
        """What the officer reads before the first finger (not for logs)."""
        listed = "; ".join(self.charges) or "-"
        return f"Booking {self.info.booking_number} from the jail system: {self.name}. Charges: {listed}"

    def __repr__(self) -> str:  # no personal data in logs
        return f"JmsBooking({self.info!r})"


def parse_record(data: bytes) -> dict:
    """Bounded JSON bytes -> the record object; BookingRecordError otherwise."""
    if not isinstance(data, (bytes, bytearray)):
        raise BookingRecordError("a booking record must be bytes")
    if len(data) > MAX_RECORD_BYTES:
        raise BookingRecordError(f"the booking record is larger than {MAX_RECORD_BYTES} bytes")
    try:
        record = json.loads(bytes(data).decode("utf-8"))
    except UnicodeDecodeError:
        raise BookingRecordError("the booking record is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise BookingRecordError(f"the booking record is not JSON: {str(exc)[:120]}") from None
    if not isinstance(record, dict):
        raise BookingRecordError("the booking record must be a JSON object")
    return record


def _operator(record: dict, operator: str) -> str:
    """Who takes the prints: the command line's --operator, else the record's officer (badge, else name)."""
    if operator:
        return operator
    officer = record.get("officer")
    if isinstance(officer, dict):
        for key in ("badge", "name"):
            value = officer.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    raise BookingError("the booking record names no officer; give --operator")


def booking_from_record(record: dict, *, ori: str, allowed_fields, operator: str = "",
                        profile=None) -> JmsBooking:
    """A JMS record (already parsed) -> a JmsBooking checked like a typed booking."""
    values = to_type2(record)  # BookingRecordError on a wrong shape
    allowed = set(allowed_fields)
    descriptive = {}
    for mnemonic, key in _DESCRIPTIVE_BY_MNEMONIC.items():
        if mnemonic in values and key in allowed:
            descriptive[key] = values[mnemonic]
    doa = values.get("DOA")
    charges = tuple((date, literal) for date, literal in values.get("ASL", []))
    info = BookingInfo(
        booking_number=values["OCA"], ori=ori, operator_id=_operator(record, operator),
        descriptive=descriptive,
        arrest_date=_dt.date(int(doa[:4]), int(doa[4:6]), int(doa[6:])) if doa else None,
        retention=values.get("RET", ""), charges=charges,
        controlling_agency=values.get("CRI", ""), attention=values.get("ATN", ""),
    )
    info.check(allowed, profile)  # BookingRefused: one line per field
    return JmsBooking(info, values.get("NAM", ""), tuple(literal for _d, literal in charges))


def booking_from_bytes(data: bytes, *, ori: str, allowed_fields, operator: str = "",
                       profile=None) -> JmsBooking:
    return booking_from_record(parse_record(data), ori=ori, allowed_fields=allowed_fields,
                               operator=operator, profile=profile)


def booking_from_config(data: bytes, cfg, *, operator: str = "", profile=None) -> JmsBooking:
    """The configuration's ORI, collected fields and booking profile applied to one record."""
    if profile is None:
        from fpagent.records.profile import load_profile
        profile = load_profile(cfg.transaction.profile)
    return booking_from_bytes(data, ori=cfg.device.ori, allowed_fields=cfg.booking.descriptive_fields,
                              operator=operator, profile=profile)


def findings_of(exc: Exception) -> list[str]:
    """The lines a result file or an HTTP answer carries for a refused record."""
    found = getattr(exc, "findings", None)
    return [str(f) for f in found] if found else [str(exc)]


def result_document(name: str, status: str, *, booking_number: Optional[str] = None,
                    findings: Optional[list] = None, tcn: str = "", submission_id: str = "") -> dict:
    """The result JSON the JMS reads back (spool result file and endpoint answer)."""
    out = {"schema": "fpagent-booking-result/1", "record": name, "status": status,
           "at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if booking_number:
        out["booking_number"] = booking_number
    if findings:
        out["findings"] = list(findings)
    if tcn:
        out["tcn"] = tcn
    if submission_id:
        out["submission_id"] = submission_id
    return out
