"""One booking record from a jail management system (JMS), as Type-2 values.

The JMS already holds everything the bureau asks for at booking time; this
module turns one record of the documented JSON shape
(docs/booking-record.schema.json) into the Type-2 field values, keyed by
mnemonic, that fpagent.records.profile_check validates against the selected
profile. The shape is checked strictly here (unknown keys, wrong types and
impossible values are refused with the key named) so the appliance does not
need a JSON-Schema library at run time; whether the values satisfy the
bureau is the profile's job, not this module's.

Pure functions: no I/O, no logging of the personal data the record holds.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Mapping

from fpagent.errors import DataError
SCHEMA_ID = "fpagent-booking-record/1"
MAX_CHARGES = 40  # 2.047 ASL occurs at most 40 times
MAX_ALIASES = 10  # 2.019 AKA occurs at most 10 times


class BookingRecordError(DataError):
    """A JMS booking record does not have the documented shape; names the key."""


class _Obj:
    """A JSON object read key by key; leftover keys are an error."""

    def __init__(self, data, where: str):
        if not isinstance(data, Mapping):
            raise BookingRecordError(f"{where} must be an object")
        self.data, self.where = dict(data), where

    def get(self, key, kind, required=False):
        if key not in self.data or self.data[key] is None:
            self.data.pop(key, None)
            if required:
                raise BookingRecordError(f"{self.where}.{key} is missing")
            return None
        value = self.data.pop(key)
        if kind is int and (type(value) is not int):
            raise BookingRecordError(f"{self.where}.{key} must be a whole number")
        if kind is not int and not isinstance(value, kind):
            raise BookingRecordError(f"{self.where}.{key} must be {kind.__name__}")
        if isinstance(value, str):
            if len(value) > 300 or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
                raise BookingRecordError(f"{self.where}.{key} is over 300 characters or holds control characters")
            value = value.strip()
        return value

    def done(self):
        if self.data:
            raise BookingRecordError(f"{self.where}: unknown key(s) {', '.join(sorted(map(str, self.data)))}")


def _date(text, where: str) -> str:
    if text is None:
        return ""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise BookingRecordError(f"{where} must be a date YYYY-MM-DD")
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        raise BookingRecordError(f"{where} is not a real date") from None
    return text.replace("-", "")


def _name(obj: _Obj) -> str:
    last = obj.get("last_name", str, required=True)
    first = obj.get("first_name", str, required=True)
    middle = obj.get("middle_name", str) or ""
    given = " ".join(part for part in (first, middle) if part)
    return f"{last},{given}".upper()


def _code(value) -> str:
    return value.upper() if value else ""


def _height(inches) -> str:
    if inches is None:
        return ""
    if not 0 < inches < 120:
        raise BookingRecordError("person.height_in must be 1-119 inches")
    return f"{inches // 12}{inches % 12:02d}"


def _weight(pounds) -> str:
    if pounds is None:
        return ""
    if not 0 < pounds < 1000:
        raise BookingRecordError("person.weight_lb must be 1-999 pounds")
    return f"{pounds:03d}"


def _officer(data) -> str:
    """2.006 ATN: the officer the answer is for, without periods (EBTS refuses them)."""
    if data is None:
        return ""
    obj = _Obj(data, "officer")
    name = obj.get("name", str, required=True)
    badge = obj.get("badge", str) or ""
    obj.done()
    return " ".join(f"{name} {badge}".replace(".", " ").upper().split())


def to_type2(record: Mapping, *, offense_code_field: str = "", statute_field: str = "") -> dict:
    """The Type-2 values (mnemonic -> value) of one JMS booking record.

    Absent data stays absent, so the profile check names what is missing.
    Offense codes and statutes have no national field: pass the mnemonics of
    the selected overlay's fields (e.g. "AOC", "AST") to carry them.
    """
    top = _Obj(record, "record")
    schema = top.get("schema", str, required=True)
    if schema != SCHEMA_ID:
        raise BookingRecordError(f"record.schema must be {SCHEMA_ID!r}, got {schema[:40]!r}")
    out: dict = {}
    booking_number = top.get("booking_number", str, required=True)
    if not booking_number:
        raise BookingRecordError("record.booking_number is empty")
    out["OCA"] = booking_number

    person = _Obj(top.get("person", Mapping, required=True), "person")
    out["NAM"] = _name(person)
    aliases = person.get("aliases", list) or []
    if len(aliases) > MAX_ALIASES:
        raise BookingRecordError(f"person.aliases holds more than {MAX_ALIASES} names")
    akas = []
    for i, alias in enumerate(aliases):
        obj = _Obj(alias, f"person.aliases[{i}]")
        akas.append(_name(obj))
        obj.done()
    out["DOB"] = _date(person.get("date_of_birth", str), "person.date_of_birth")
    for key, mnemonic in (("sex", "SEX"), ("race", "RAC"), ("eye_color", "EYE"), ("hair_color", "HAI"),
                          ("place_of_birth", "POB"), ("citizenship", "CTZ")):
        out[mnemonic] = _code(person.get(key, str))
    out["HGT"] = _height(person.get("height_in", int))
    out["WGT"] = _weight(person.get("weight_lb", int))
    ids = _Obj(person.get("ids", Mapping) or {}, "person.ids")
    out["FBI"] = _code(ids.get("fbi", str))
    out["SID"] = _code(ids.get("sid", str))
    out["SOC"] = (ids.get("ssn", str) or "").replace("-", "")
    ids.done()
    person.done()
    out["AKA"] = akas

    arrest = _Obj(top.get("arrest", Mapping, required=True), "arrest")
    out["DOA"] = _date(arrest.get("date", str, required=True), "arrest.date")
    retain = arrest.get("retain", bool)
    out["RET"] = "" if retain is None else ("Y" if retain else "N")
    out["CRI"] = _code(arrest.get("controlling_agency", str))
    charges = arrest.get("charges", list, required=True)
    if not 1 <= len(charges) <= MAX_CHARGES:
        raise BookingRecordError(f"arrest.charges must hold 1-{MAX_CHARGES} charges")
    segments, codes, statutes = [], [], []
    for i, charge in enumerate(charges):
        obj = _Obj(charge, f"arrest.charges[{i}]")
        literal = obj.get("literal", str, required=True)
        segments.append([_date(obj.get("offense_date", str), f"arrest.charges[{i}].offense_date"), literal.upper()])
        codes.append(obj.get("code", str) or "")
        statutes.append(obj.get("statute", str) or "")
        obj.done()
    arrest.done()
    out["ASL"] = segments
    if offense_code_field and any(codes):
        out[offense_code_field] = codes
    if statute_field and any(statutes):
        out[statute_field] = statutes

    out["ATN"] = _officer(top.get("officer", Mapping))
    top.done()
    return {key: value for key, value in out.items() if value not in ("", [], None)}
