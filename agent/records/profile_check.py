"""Checks against a booking profile: one clear finding per field.

`check_fields` takes the values of one record (Type-1 or Type-2), keyed by
mnemonic, and says for each field what is wrong ("2.024 SEX: missing
(mandatory)", "2.025 RAC: 'Q' is not in the code table (A, B, I, U, W)").
`check_transaction` reads any ANSI/NIST-ITL file with nistitl and checks its
Type-1 and Type-2 records the same way, which is what `fpagent transaction
check` prints.

A value is echoed in a finding only when it is a code (codes identify no
one); for names, dates and numbers the finding says what is wrong without
repeating the value. Pure functions: no I/O, no logging.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from typing import Mapping, Optional

from fpagent.errors import DataError
from fpagent.records.profile import PRINTABLE, Field, Profile, ValueRule

Value = object  # str, or a list of occurrences, each a str or a list of item strings


@dataclasses.dataclass(frozen=True)
class Finding:
    number: str  # "2.024", or "2" for the record as a whole
    mnemonic: str
    message: str

    def __str__(self) -> str:
        return f"{self.number} {self.mnemonic}: {self.message}" if self.mnemonic else f"{self.number}: {self.message}"


class UnreadableTransaction(DataError):
    """The file is not an ANSI/NIST-ITL transaction nistitl can read."""


# ---------------------------------------------------------------------------
# One value
# ---------------------------------------------------------------------------

_LETTERS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGITS = set("0123456789")


def _allowed(rule: ValueRule) -> Optional[set]:
    """The characters a value may hold; None means any printable ASCII."""
    if rule.special == PRINTABLE:
        return None
    chars = set()
    if "A" in rule.charset:
        chars |= _LETTERS
    if "N" in rule.charset:
        chars |= _DIGITS
    if "S" in rule.charset:
        chars |= set(rule.special)
    return chars


def _real_date(text: str) -> bool:
    try:
        _dt.datetime.strptime(text, "%Y%m%d")
        return True
    except ValueError:
        return False


def _format_problem(fmt: str, text: str) -> Optional[str]:
    if fmt == "date" and not (re.fullmatch(r"\d{8}", text) and _real_date(text)):
        return "is not a real date CCYYMMDD"
    if fmt == "date-or-zero" and text != "00000000" and not (re.fullmatch(r"\d{8}", text) and _real_date(text)):
        return "is not a real date CCYYMMDD (00000000 when unknown)"
    if fmt == "gmt" and not (re.fullmatch(r"\d{14}Z", text) and _real_date(text[:8])
                             and int(text[8:10]) < 24 and int(text[10:12]) < 60 and int(text[12:14]) < 60):
        return "is not YYYYMMDDhhmmssZ"
    if fmt == "resolution" and not re.fullmatch(r"\d\d\.\d\d", text):
        return "is not NN.NN pixels per millimetre"
    if fmt == "height":
        if text == "000" or re.fullmatch(r"N\d\d", text):
            return None
        if not re.fullmatch(r"\d\d\d", text) or int(text[1:]) > 11:
            return "is not feet and inches FII (inches 00-11), N and inches, or 000 when unknown"
        if not 400 <= int(text) <= 711:
            return "is outside 400-711 (4 ft 0 in to 7 ft 11 in)"
    if fmt == "weight":
        if not re.fullmatch(r"\d{3}", text):
            return "is not three digits of pounds"
        if text != "000" and not 50 <= int(text) <= 499:
            return "is outside 050-499 pounds (000 when unknown)"
    if fmt == "name":
        surname, comma, given = text.partition(",")
        if not comma or not surname.strip() or not given.strip():
            return "is not SURNAME,GIVEN NAMES"
        if surname != surname.strip() or given != given.strip():
            return "has a blank next to the comma"
    return None


def check_value(rule: ValueRule, text: str, profile: Profile) -> Optional[str]:
    """What is wrong with one value, or None."""
    if not text:
        return "is empty"
    codes = profile.codes.get(rule.codes) if rule.codes else None
    if codes is not None:
        if text not in codes.values:
            shown = repr(text) if len(text) <= 12 and text.isprintable() else "the value"
            listing = ", ".join(sorted(codes.values)[:12]) + (", ..." if len(codes.values) > 12 else "")
            return f"{shown} is not in the code table ({listing})"
        return None
    if not rule.min_length <= len(text) <= rule.max_length:
        span = f"{rule.min_length}" if rule.min_length == rule.max_length else f"{rule.min_length}-{rule.max_length}"
        return f"has {len(text)} characters, needs {span}"
    allowed = _allowed(rule)
    for ch in text:
        if not 0x20 <= ord(ch) <= 0x7E:
            return "holds a character that is not printable 7-bit ASCII"
        if (allowed is not None and ch not in allowed) or ch in rule.exclude:
            return f"character {ch!r} is not allowed ({rule.charset})"
    if text[0] == " ":
        return "begins with a blank"
    return _format_problem(rule.format, text) if rule.format else None


# ---------------------------------------------------------------------------
# One record
# ---------------------------------------------------------------------------


def _occurrences(value: Value) -> Optional[list[list[str]]]:
    """A value as occurrences of items; None when its shape is not text."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [[str(value)]]
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for occ in value:
        if isinstance(occ, (str, int)) and not isinstance(occ, bool):
            out.append([str(occ)])
        elif isinstance(occ, (list, tuple)) and all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in occ):
            out.append([str(i) for i in occ])
        else:
            return None
    return out


def _blank(occurrences: list[list[str]]) -> bool:
    return all(all(item == "" for item in occ) for occ in occurrences)


def check_field(field: Field, value: Value, profile: Profile) -> list[Finding]:
    """Findings for one field's value (None or empty: absent)."""
    def finding(message: str, where: str = "") -> Finding:
        return Finding(field.number, f"{field.mnemonic}{' ' + where if where else ''}", message)

    occurrences = None if value is None else _occurrences(value)
    if value is not None and occurrences is None:
        return [finding("is not text")]
    if not occurrences or _blank(occurrences):
        return [finding("missing (mandatory)")] if field.mandatory else []
    if field.structural:
        return []
    if len(occurrences) > field.max_occurrences:
        return [finding(f"{len(occurrences)} occurrences, at most {field.max_occurrences}")]
    out = []
    for n, occ in enumerate(occurrences, 1):
        where = f"#{n}" if len(occurrences) > 1 else ""
        if field.items:
            if len(occ) > len(field.items):
                out.append(finding(f"{len(occ)} items, at most {len(field.items)}", where))
                continue
            for i, item in enumerate(field.items):
                text = occ[i] if i < len(occ) else ""
                label = f"{where} {item.mnemonic}".strip()
                if text == "":
                    if item.condition == "M":
                        out.append(finding("missing (mandatory)", label))
                    continue
                problem = check_value(item.rule, text, profile)
                if problem:
                    out.append(finding(problem, label))
        else:
            if len(occ) != 1:
                out.append(finding(f"holds {len(occ)} items, expected one", where))
                continue
            problem = check_value(field.rule, occ[0], profile)
            if problem:
                out.append(finding(problem, where))
    return out


def check_fields(profile: Profile, record: int, values: Mapping[str, Value]) -> list[Finding]:
    """Check one record's values, keyed by mnemonic, against the profile:
    every field of the profile in number order, then keys it does not know."""
    out = []
    for field in profile.record_fields(record):
        out.extend(check_field(field, values.get(field.mnemonic), profile))
    for key in values:
        if profile.by_mnemonic(record, key) is None:
            out.append(Finding(f"{record}.???", str(key)[:20],
                               f"is not a Type-{record} field of profile {profile.name}"))
    return out


def check_descriptive(profile: Profile, values: Mapping[str, Value]) -> list[Finding]:
    """A booking's Type-2 descriptive data (mnemonic -> value) against the profile,
    structural fields (LEN, IDC) aside: the encoder writes those."""
    present = dict(values)
    for field in profile.record_fields(2):
        if field.structural:
            present.setdefault(field.mnemonic, "0")
    return check_fields(profile, 2, present)


# ---------------------------------------------------------------------------
# A whole transaction
# ---------------------------------------------------------------------------


def _record_values(profile: Profile, record) -> tuple[dict, list[Finding]]:
    """nistitl record -> (mnemonic -> value, findings for tags the profile lacks)."""
    values, unknown = {}, []
    for f in record._fields:
        field = profile.field(record.type, int(f.tag))
        if field is None:
            unknown.append(Finding(f"{record.type}.{int(f.tag):03d}", "",
                                   f"is not a field of profile {profile.name} for {profile.tot}"))
            continue
        value = f.value
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        values[field.mnemonic] = value
    return values, unknown


def check_transaction(profile: Profile, data: bytes) -> list[Finding]:
    """Read ANSI/NIST-ITL traditional-encoding bytes with nistitl and check the
    Type-1 and Type-2 records against the profile. UnreadableTransaction when
    nistitl cannot read the bytes."""
    import nistitl

    if not isinstance(data, (bytes, bytearray)) or not bytes(data[:6]) == b"1.001:":
        raise UnreadableTransaction("not an ANSI/NIST-ITL transaction (it does not start with 1.001:)")
    message = nistitl.Message()
    try:
        message.parse(bytes(data))
        records = list(message)
    except Exception as exc:  # untrusted bytes: nistitl raises many kinds
        raise UnreadableTransaction(
            f"not a readable ANSI/NIST-ITL transaction: {type(exc).__name__}: {exc}"[:300]) from None
    out = []
    type1 = [r for r in records if r.type == 1]
    type2 = [r for r in records if r.type == 2]
    try:
        for record_type, found in ((1, type1), (2, type2)):
            if not found:
                out.append(Finding(str(record_type), "", f"no Type-{record_type} record"))
                continue
            if len(found) > 1:
                out.append(Finding(str(record_type), "", f"{len(found)} Type-{record_type} records; "
                                                         "the first is checked"))
            values, unknown = _record_values(profile, found[0])
            out.extend(check_fields(profile, record_type, values))
            out.extend(unknown)
    except Exception as exc:  # a field nistitl read in a shape we do not expect
        raise UnreadableTransaction(f"transaction fields are malformed: {type(exc).__name__}: {exc}"[:300]) from None
    return out
