"""Booking profiles: which Type-1 and Type-2 fields a bureau requires, as data.

A profile is a versioned TOML table shipped in `fpagent.records.profiles`
(the national criminal ten-print profile, `ebts-national`) or a state/local
overlay file that extends one: it may add fields, make optional fields
mandatory and replace code tables, never loosen what the national profile
requires. Config `[transaction] profile` names a shipped profile or gives
the absolute path of an overlay file.

The parser is strict because a profile decides what is refused at the desk:
bounded size, exact types, no unknown keys, every reference resolved. Any
fault in a file is one ProfileError that says where; nothing else escapes.
Where each field and code comes from, and what is unconfirmed, is in
docs/booking-profile.md.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
import tomllib
from typing import Mapping, Optional

from fpagent.errors import ConfigError
NATIONAL = "ebts-national"
PROFILE_PACKAGE = "fpagent.records.profiles"
MAX_PROFILE_BYTES = 256 * 1024
MAX_FIELDS = 400
MAX_CODES = 2000
MAX_TEXT = 2000
CONDITIONS = ("M", "O")  # mandatory, optional
CHARSETS = ("A", "N", "AN", "AS", "NS", "ANS")  # EBTS character types
FORMATS = ("date", "date-or-zero", "gmt", "resolution", "height", "weight", "name")
PRINTABLE = "PRINT"  # `special = "PRINT"`: any printable 7-bit ASCII character
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_MNEMONIC = re.compile(r"[A-Z][A-Z0-9_]{0,11}")
_NUMBER = re.compile(r"([12])\.(\d{3})")


class ProfileError(ConfigError):
    """A booking profile file is missing, unreadable or wrong; says where."""


@dataclasses.dataclass(frozen=True)
class ValueRule:
    """What one value (a field occurrence or one of its items) may hold."""

    charset: str
    min_length: int
    max_length: int
    special: str = ""  # allowed special characters, or PRINTABLE
    exclude: str = ""  # characters refused even if `special` allows them
    format: str = ""  # one of FORMATS, checked after charset and length
    codes: str = ""  # name of the code table the value must be in


@dataclasses.dataclass(frozen=True)
class Item:
    """One information item of a grouped field (e.g. 2.047 ASL: DOO, AOL)."""

    mnemonic: str
    name: str
    condition: str
    rule: ValueRule


@dataclasses.dataclass(frozen=True)
class Field:
    record: int  # 1 or 2
    tag: int
    mnemonic: str
    name: str
    condition: str
    max_occurrences: int = 1
    rule: Optional[ValueRule] = None  # None for grouped or structural fields
    items: tuple = ()  # Item, for grouped fields
    structural: bool = False  # LEN, CNT, IDC: the encoder's business, checked for presence only
    confirmed: bool = False
    source: str = ""
    note: str = ""

    @property
    def number(self) -> str:
        return f"{self.record}.{self.tag:03d}"

    @property
    def mandatory(self) -> bool:
        return self.condition == "M"


@dataclasses.dataclass(frozen=True)
class CodeTable:
    name: str
    values: Mapping[str, str]  # code -> meaning
    confirmed: bool = False
    source: str = ""
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    version: str
    title: str
    tot: str  # the type of transaction this profile describes (1.004)
    fields: tuple  # Field, in record and field-number order
    codes: Mapping[str, CodeTable]
    sources: Mapping[str, str]  # key -> citation
    base: str = ""  # for an overlay: the shipped profile it extends

    def field(self, record: int, tag: int) -> Optional[Field]:
        for f in self.fields:
            if f.record == record and f.tag == tag:
                return f
        return None

    def by_mnemonic(self, record: int, mnemonic: str) -> Optional[Field]:
        for f in self.fields:
            if f.record == record and f.mnemonic == mnemonic:
                return f
        return None

    def record_fields(self, record: int) -> list[Field]:
        return [f for f in self.fields if f.record == record]

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" + (f" (extends {self.base})" if self.base else "")


# ---------------------------------------------------------------------------
# Strict reading of the TOML tables
# ---------------------------------------------------------------------------


class _Table:
    """A TOML table read key by key; leftover keys are an error."""

    def __init__(self, data, where: str):
        if not isinstance(data, dict):
            raise ProfileError(f"{where} must be a table")
        self.data = dict(data)
        self.where = where

    def _take(self, key, kind, name, required, default):
        if key not in self.data:
            if required:
                raise ProfileError(f"{self.where}: missing key {key!r}")
            return default
        value = self.data.pop(key)
        if type(value) is not kind:  # exact: a bool is not an int, a table is not a list
            raise ProfileError(f"{self.where}: {key} must be {name}, got {type(value).__name__}")
        return value

    def text(self, key, required=False, default="", pattern=None) -> str:
        value = self._take(key, str, "a string", required, default)
        if len(value) > MAX_TEXT:
            raise ProfileError(f"{self.where}: {key} is longer than {MAX_TEXT} characters")
        if any(ord(c) < 0x20 and c not in "\t" for c in value):
            raise ProfileError(f"{self.where}: {key} holds a control character")
        if pattern is not None and value and not pattern.fullmatch(value):
            raise ProfileError(f"{self.where}: {key} {value!r} is not a valid {key}")
        return value

    def integer(self, key, required=False, default=0, low=0, high=10**6) -> int:
        value = self._take(key, int, "a whole number", required, default)
        if not low <= value <= high:
            raise ProfileError(f"{self.where}: {key} {value} is not {low}-{high}")
        return value

    def flag(self, key, default=False) -> bool:
        return self._take(key, bool, "true or false", False, default)

    def listing(self, key, default=()) -> list:
        return self._take(key, list, "a list", False, list(default))

    def table(self, key) -> dict:
        return self._take(key, dict, "a table", False, {})

    def choice(self, key, choices, required=False, default="") -> str:
        value = self.text(key, required, default)
        if value and value not in choices:
            raise ProfileError(f"{self.where}: {key} {value!r} must be one of {', '.join(choices)}")
        return value

    def done(self):
        if self.data:
            raise ProfileError(f"{self.where}: unknown key(s) {', '.join(sorted(map(str, self.data)))}")


def _rule(t: _Table) -> ValueRule:
    length = t.listing("length")
    if len(length) != 2 or any(type(n) is not int for n in length) or not 0 <= length[0] <= length[1] <= 100_000:
        raise ProfileError(f"{t.where}: length must be [min, max] whole numbers, min <= max")
    special = t.text("special")
    if special != PRINTABLE and any(not (0x20 <= ord(c) <= 0x7E) or c.isalnum() for c in special):
        raise ProfileError(f"{t.where}: special must be printable non-alphanumeric ASCII or {PRINTABLE!r}")
    return ValueRule(
        charset=t.choice("charset", CHARSETS, required=True),
        min_length=length[0], max_length=length[1], special=special,
        exclude=t.text("exclude"), format=t.choice("format", FORMATS), codes=t.text("codes", pattern=_NAME),
    )


def _item(data, where: str) -> Item:
    t = _Table(data, where)
    item = Item(t.text("mnemonic", True, pattern=_MNEMONIC), t.text("name", True),
                t.choice("condition", CONDITIONS, required=True), _rule(t))
    t.done()
    return item


def _field(data, where: str) -> Field:
    t = _Table(data, where)
    number = t.text("number", required=True)
    m = _NUMBER.fullmatch(number)
    if not m or int(m.group(2)) == 0:
        raise ProfileError(f"{where}: number {number!r} must be 1.nnn or 2.nnn")
    where = f"{where} ({number})"
    t.where = where
    mnemonic = t.text("mnemonic", True, pattern=_MNEMONIC)
    structural = t.flag("structural")
    raw_items = t.listing("items")
    rule = None
    if not structural and not raw_items:
        rule = _rule(t)
    field = Field(
        record=int(m.group(1)), tag=int(m.group(2)), mnemonic=mnemonic, name=t.text("name", True),
        condition=t.choice("condition", CONDITIONS, required=True),
        max_occurrences=t.integer("occurrences", default=1, low=1, high=9999),
        rule=rule, structural=structural,
        items=tuple(_item(d, f"{where} item {i + 1}") for i, d in enumerate(raw_items[:32])),
        confirmed=t.flag("confirmed"), source=t.text("source", pattern=_NAME), note=t.text("note"),
    )
    if len(raw_items) > 32:
        raise ProfileError(f"{where}: more than 32 items")
    t.done()
    return field


def _code_table(name: str, data, where: str) -> CodeTable:
    if not _NAME.fullmatch(name):
        raise ProfileError(f"{where}: code table name {name!r} must be lower-case letters, digits, -")
    t = _Table(data, f"{where} [codes.{name}]")
    values = t.table("values")
    if not values or len(values) > MAX_CODES:
        raise ProfileError(f"{t.where}: values must hold 1-{MAX_CODES} codes")
    for code, meaning in values.items():
        if not re.fullmatch(r"[A-Z0-9]{1,8}", code) or type(meaning) is not str or len(meaning) > 200:
            raise ProfileError(f"{t.where}: code {code!r} must be 1-8 capitals/digits with a text meaning")
    table = CodeTable(name, dict(values), t.flag("confirmed"), t.text("source", pattern=_NAME), t.text("note"))
    t.done()
    return table


def _parse_toml(text, where: str) -> dict:
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_PROFILE_BYTES:
            raise ProfileError(f"{where}: larger than {MAX_PROFILE_BYTES} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ProfileError(f"{where}: not UTF-8 text") from None
    if not isinstance(text, str) or len(text) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{where}: not text of at most {MAX_PROFILE_BYTES} bytes")
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise ProfileError(f"{where}: not valid TOML: {str(exc)[:200]}") from None


def _header(data: dict, where: str) -> tuple[_Table, dict]:
    top = _Table(data, where)
    head = _Table(top.table("profile"), f"{where} [profile]")
    return top, {
        "name": head.text("name", True, pattern=_NAME),
        "version": head.text("version", True),
        "title": head.text("title"),
        "tot": head.text("tot", pattern=re.compile(r"[A-Z]{1,16}")),
        "extends": head.text("extends", pattern=_NAME),
        "_head": head,
    }


def _sources(top: _Table, where: str) -> dict:
    out = {}
    for key, value in top.table("sources").items():
        if not _NAME.fullmatch(key) or type(value) is not str or not 0 < len(value) <= MAX_TEXT:
            raise ProfileError(f"{where} [sources]: {key!r} must name a non-empty citation")
        out[key] = value
    return out


def _codes(top: _Table, where: str) -> dict:
    raw = top.table("codes")
    if len(raw) > 100:
        raise ProfileError(f"{where}: more than 100 code tables")
    return {name: _code_table(name, data, where) for name, data in raw.items()}


def _fields(top: _Table, where: str) -> list[Field]:
    raw = top.listing("field")
    if len(raw) > MAX_FIELDS:
        raise ProfileError(f"{where}: more than {MAX_FIELDS} fields")
    return [_field(d, f"{where} field {i + 1}") for i, d in enumerate(raw)]


def _check_whole(profile: Profile, where: str) -> Profile:
    seen_numbers, seen_mnemonics = set(), set()
    for f in profile.fields:
        if f.number in seen_numbers:
            raise ProfileError(f"{where}: field {f.number} is defined twice")
        if (f.record, f.mnemonic) in seen_mnemonics:
            raise ProfileError(f"{where}: mnemonic {f.mnemonic} is used twice in Type-{f.record}")
        seen_numbers.add(f.number)
        seen_mnemonics.add((f.record, f.mnemonic))
        for rule, what in [(f.rule, f.number)] + [(i.rule, f"{f.number} {i.mnemonic}") for i in f.items]:
            if rule is not None and rule.codes and rule.codes not in profile.codes:
                raise ProfileError(f"{where}: {what} names code table {rule.codes!r}, which is not defined")
        for key in [f.source] + [c.source for c in profile.codes.values()]:
            if key and key not in profile.sources:
                raise ProfileError(f"{where}: source {key!r} is not listed in [sources]")
    if not profile.tot:
        raise ProfileError(f"{where}: [profile] tot is required")
    return dataclasses.replace(profile, fields=tuple(sorted(profile.fields, key=lambda f: (f.record, f.tag))))


def parse_profile(text, where: str = "<profile>", extends_loader=None) -> Profile:
    """A profile from TOML text or bytes. An overlay (`extends = NAME`) is
    applied over the profile `extends_loader(NAME)` returns (default: the
    shipped profiles; an overlay cannot extend another overlay)."""
    data = _parse_toml(text, where)
    top, head = _header(data, where)
    head.pop("_head").done()
    sources, codes, fields = _sources(top, where), _codes(top, where), _fields(top, where)
    requires = top.listing("require")
    top.done()
    if not head["extends"]:
        if requires:
            raise ProfileError(f"{where}: [[require]] is only for overlays (set [profile] extends)")
        return _check_whole(Profile(head["name"], head["version"], head["title"], head["tot"],
                                    tuple(fields), codes, sources), where)
    base = (extends_loader or _load_shipped)(head["extends"])
    if base.base:
        raise ProfileError(f"{where}: extends {head['extends']!r}, itself an overlay; extend a national profile")
    if head["tot"] and head["tot"] != base.tot:
        raise ProfileError(f"{where}: tot {head['tot']} differs from {base.name}'s {base.tot}")
    merged = {f.number: f for f in base.fields}
    for f in fields:
        if f.number in merged:
            raise ProfileError(f"{where}: field {f.number} already exists in {base.name}; use [[require]]")
        merged[f.number] = f
    for i, data in enumerate(requires[:MAX_FIELDS]):
        t = _Table(data, f"{where} require {i + 1}")
        number = t.text("number", True)
        t.done()
        if number not in merged:
            raise ProfileError(f"{t.where}: field {number!r} is not in {base.name}")
        merged[number] = dataclasses.replace(merged[number], condition="M")
    overlay = Profile(head["name"], head["version"], head["title"] or base.title, base.tot,
                      tuple(merged.values()), {**base.codes, **codes}, {**base.sources, **sources},
                      base=base.name)
    return _check_whole(overlay, where)


def shipped_profiles() -> list[str]:
    folder = importlib.resources.files(PROFILE_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _load_shipped(name: str) -> Profile:
    if not _NAME.fullmatch(name or "") or name not in shipped_profiles():
        raise ProfileError(f"no shipped profile {name!r}; shipped: {', '.join(shipped_profiles())}")
    data = importlib.resources.files(PROFILE_PACKAGE).joinpath(f"{name}.toml").read_bytes()
    profile = parse_profile(data, f"profile {name}")
    if profile.name != name:
        raise ProfileError(f"shipped profile {name}.toml calls itself {profile.name!r}")
    return profile


def load_profile(selection: str = NATIONAL) -> Profile:
    """The profile config `[transaction] profile` selects: a shipped name or
    the absolute path of a profile/overlay file."""
    if not os.path.isabs(selection or ""):
        return _load_shipped(selection)
    try:
        with open(selection, "rb") as fh:
            raw = fh.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ProfileError(f"cannot read profile {selection}: {exc.strerror or exc}") from None
    return parse_profile(raw, selection)
