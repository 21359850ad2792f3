"""Reading an ANSI/NIST-ITL transaction back, and checking it against our profile.

`parse_transaction` reads traditional-encoding bytes with `nistitl` into a
`ParsedTransaction` (the facts others need by name, the fingers, the Type-9
minutiae back as Templates); `validate` checks the mandatory fields of the
profile (fpagent.records.transaction_format), so what we send is what an independent
reader sees; `record_lengths` walks the raw bytes without nistitl. Used on
what we build before it is sealed, and by central on what it receives:
untrusted bytes only ever raise TransactionError.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional

import numpy as np

import nistitl
from fpagent.biometrics.template import MINUTIA_DTYPE, Template
from fpagent.records.images import decompress_image
from fpagent.records.transaction_format import (MISSING_CODES, SEG_FIELD, SLAP_FINGERS, TransactionError,
                                                yyyymmdd)


@dataclasses.dataclass(frozen=True, eq=False)
class ParsedFinger:
    position: int
    impression_type: int
    missing: str  # "", "XX" or "UP"
    cga: str  # "" when missing
    width: int
    height: int
    ppi: int
    quality: Optional[int]
    image_data: bytes  # compressed bytes (b"" when missing)
    minutiae_count: Optional[int]  # from the matching Type-9, None when absent
    comment: str = ""
    segments: tuple = ()  # slaps: 14.021 SEG as (FGP, left, right, top, bottom) per finger

    def pixels(self) -> np.ndarray:
        """Decode the image (WSQ or PNG)."""
        if self.missing:
            raise TransactionError(f"finger {self.position} is {self.missing}: no image")
        return decompress_image(self.cga, self.image_data)

    def __repr__(self) -> str:
        return f"ParsedFinger(fgp={self.position}, {self.missing or self.cga}, {len(self.image_data)} B)"


@dataclasses.dataclass(frozen=True, eq=False)
class ParsedTransaction:
    """A transaction read back with nistitl, with the facts others need by name."""

    message: nistitl.Message
    version: str
    tot: str
    date: str
    destination: str
    ori: str
    tcn: str
    fingers: tuple  # ParsedFinger, in record order
    descriptive: dict  # Type-2 field number -> text
    tcr: str = ""  # 1.010: the transaction this one resubmits (a reprint), if any

    def finger(self, position: int) -> ParsedFinger:
        for f in self.fingers:
            if f.position == position:
                return f
        raise KeyError(position)

    def records(self, record_type: int) -> list:
        return list(self.message.iter(record_type))

    def templates(self) -> dict[int, Template]:
        """The Type-9 minutiae back as Templates, keyed by finger position
        (central can match these without re-extracting from the images).
        Coordinates are whole pixels and angles 2-degree steps, as sent."""
        out = {}
        for r9 in self.message.iter(9):
            try:
                out.update(_template_of(r9))
            except TransactionError:
                raise
            except Exception as exc:  # untrusted fields: any shape, any number
                raise TransactionError(f"Type-9 IDC {str(r9.IDC)[:20]}: minutiae do not read back "
                                       f"({type(exc).__name__}: {exc})"[:300]) from None
        return out

    def __repr__(self) -> str:
        return f"ParsedTransaction(tcn={self.tcn!r}, tot={self.tot}, {len(self.fingers)} fingers)"


def _bounded(text: str, low: int, high: int, what: str) -> int:
    """An integer field within [low, high]; TransactionError otherwise."""
    if not re.fullmatch(r"-?\d{1,10}", text.strip()):
        raise TransactionError(f"{what} {text[:20]!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise TransactionError(f"{what} {value} is not within {low}-{high}")
    return value


def _template_of(r9) -> dict[int, Template]:
    """One Type-9 record's INCITS 378 minutiae as {finger position: Template}."""
    position = _bounded(_text(r9, 134), 0, 20, "9.134 FGP")
    width = _bounded(_text(r9, 128), 1, 0xFFFF, "9.128 HLL")
    height = _bounded(_text(r9, 129), 1, 0xFFFF, "9.129 VLL")
    rows = []
    for items in _subfield_items(r9, 137):
        if len(items) < 6:
            raise TransactionError(f"9.137 minutia has {len(items)} items, expected 6")
        _, x, y, theta, quality, kind = items[:6]
        rows.append((_bounded(x, 0, width, "minutia x"), _bounded(y, 0, height, "minutia y"),
                     math.radians(2.0 * _bounded(theta, 0, 179, "minutia angle")),
                     _bounded(kind, 0, 2, "minutia type"),
                     _bounded(quality, 0, 100, "minutia quality")))
    fqd = _subfield_items(r9, 135)
    quality = _bounded(fqd[0][0], 0, 100, "9.135 FQD") if fqd and fqd[0] else 0
    return {position: Template(
        np.array(rows, dtype=MINUTIA_DTYPE) if rows else np.zeros(0, MINUTIA_DTYPE),
        width=width, height=height, ppi=_bounded(_text(r9, 131) or "500", 1, 0xFFFF, "9.131 ppi"),
        quality=quality, finger_position=position,
        impression_type=_bounded(_text(r9, 3) or "0", 0, 99, "9.003 IMP"),
    )}


MAX_SEGMENTS = 4  # a slap holds at most four fingers


def _segments_of(record, position: int, width: int, height: int) -> tuple:
    """14.021 SEG as ((FGP, left, right, top, bottom), ...), every value bounded by the image."""
    where = f"Type-14 IDC {str(record.IDC)[:20]} 14.021 SEG"
    subfields = _subfield_items(record, SEG_FIELD)
    if not subfields:
        return ()
    if position not in SLAP_FINGERS:
        raise TransactionError(f"{where}: segments in a record of FGP {position}, not a slap (13-15)")
    if len(subfields) > MAX_SEGMENTS:
        raise TransactionError(f"{where}: {len(subfields)} segments, at most {MAX_SEGMENTS}")
    out = []
    for items in subfields:
        if len(items) != 5:
            raise TransactionError(f"{where}: a segment has {len(items)} items, expected 5")
        finger = _bounded(items[0], 1, 10, f"{where} FGP")
        if finger not in SLAP_FINGERS[position] or finger in (s[0] for s in out):
            raise TransactionError(f"{where}: finger {finger} is not one of slap {position}'s, "
                                   "or repeats")
        left = _bounded(items[1], 0, max(width - 1, 0), f"{where} left")
        right = _bounded(items[2], left + 1, width, f"{where} right")
        top = _bounded(items[3], 0, max(height - 1, 0), f"{where} top")
        bottom = _bounded(items[4], top + 1, height, f"{where} bottom")
        out.append((finger, left, right, top, bottom))
    return tuple(out)


def _text(record, tag: int) -> str:
    f = record[tag]
    if f is None:
        return ""
    v = f.value
    return "" if isinstance(v, list) else str(v)


def _subfield_items(record, tag: int) -> list[list[str]]:
    """A field as a list of subfields, each a list of items (tolerant of shapes)."""
    f = record[tag]
    if f is None:
        return []
    v = f.value
    if not isinstance(v, list):
        return [[str(v)]] if str(v) != "" else []
    out = []
    for sf in v:
        out.append([str(x) for x in sf] if isinstance(sf, list) else [str(sf)])
    return out


def parse_transaction(data: bytes) -> ParsedTransaction:
    """Parse traditional-encoding bytes with nistitl; TransactionError if unreadable."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < 20:
        raise TransactionError("not an ANSI/NIST-ITL transaction (too short)")
    if not bytes(data[:6]) == b"1.001:":
        raise TransactionError("not an ANSI/NIST-ITL transaction (does not start with 1.001:)")
    msg = nistitl.Message()
    try:
        msg.parse(bytes(data))
    except nistitl.NistException as exc:
        raise TransactionError(f"transaction does not parse: {exc}") from None
    except Exception as exc:  # untrusted bytes: nistitl can raise KeyError, struct.error...
        raise TransactionError(
            f"transaction does not parse: {type(exc).__name__}: {exc}"[:300]
        ) from None
    try:
        return _read(msg)
    except TransactionError:
        raise
    except Exception as exc:  # a field of the wrong shape in otherwise parseable bytes
        raise TransactionError(f"transaction fields are malformed: {type(exc).__name__}: {exc}"[:300]) from None


def _read(msg: nistitl.Message) -> ParsedTransaction:
    r1 = msg[0]
    minutiae: dict[int, int] = {}
    for r9 in msg.iter(9):
        try:
            minutiae[int(_text(r9, 134) or r9.IDC)] = int(_text(r9, 136) or 0)
        except ValueError:
            raise TransactionError(f"Type-9 IDC {r9.IDC}: FGP/NOM are not numbers") from None
    fingers = []
    for r in msg.iter(14):
        try:
            position = int(_text(r, 13))
            width, height = int(_text(r, 6) or 0), int(_text(r, 7) or 0)
        except ValueError as exc:
            raise TransactionError(f"Type-14 IDC {r.IDC}: bad numeric field ({exc})") from None
        segments = _segments_of(r, position, width, height)
        try:
            amp = _subfield_items(r, 18)
            missing = amp[0][1] if amp and len(amp[0]) >= 2 else ""
            fqm = _subfield_items(r, 24)
            data_field = r[999]
            fingers.append(
                ParsedFinger(
                    position=position,
                    impression_type=int(_text(r, 3) or -1),
                    missing=missing,
                    cga=_text(r, 11),
                    width=int(_text(r, 6) or 0),
                    height=int(_text(r, 7) or 0),
                    ppi=int(_text(r, 9) or 0),
                    quality=int(fqm[0][1]) if fqm and len(fqm[0]) >= 2 else None,
                    image_data=bytes(data_field.value) if data_field is not None else b"",
                    minutiae_count=minutiae.get(position),
                    comment=_text(r, 20),
                    segments=segments,
                )
            )
        except ValueError as exc:
            raise TransactionError(f"Type-14 IDC {r.IDC}: bad numeric field ({exc})") from None
    r2s = list(msg.iter(2))
    descriptive = {}
    if r2s:
        for f in r2s[0]._fields:
            if f.tag > 2 and not isinstance(f.value, list):
                descriptive[f.tag] = str(f.value)
    return ParsedTransaction(
        message=msg,
        version=_text(r1, 2),
        tot=_text(r1, 4),
        date=_text(r1, 5),
        destination=_text(r1, 7),
        ori=_text(r1, 8),
        tcn=_text(r1, 9),
        tcr=_text(r1, 10),
        fingers=tuple(fingers),
        descriptive=descriptive,
    )


_TYPE1_MANDATORY = {2: "VER", 3: "CNT", 4: "TOT", 5: "DAT", 7: "DAI", 8: "ORI", 9: "TCN", 11: "NSR", 12: "NTR"}
_TYPE14_MANDATORY = {3: "IMP", 4: "SRC", 5: "FCD", 13: "FGP"}
_TYPE14_WITH_IMAGE = {6: "HLL", 7: "VLL", 8: "SLC", 9: "THPS", 10: "TVPS", 11: "CGA", 12: "BPX"}
_TYPE9_MANDATORY = {3: "IMP", 4: "FMT"}
_TYPE9_378 = {126: "CBI", 128: "HLL", 129: "VLL", 134: "FGP", 136: "NOM"}


def validate(parsed: ParsedTransaction) -> None:
    """Check the mandatory fields of this profile; TransactionError names the first gap."""
    try:
        _validate(parsed)
    except TransactionError:
        raise
    except Exception as exc:  # a field of the wrong shape
        raise TransactionError(f"transaction fields are malformed: {type(exc).__name__}: {exc}"[:300]) from None


def _validate(parsed: ParsedTransaction) -> None:
    msg = parsed.message
    r1 = msg[0]
    for tag, name in _TYPE1_MANDATORY.items():
        if r1[tag] is None or (tag != 3 and _text(r1, tag) == ""):
            raise TransactionError(f"Type-1 misses mandatory field 1.{tag:03d} {name}")
    if not re.fullmatch(r"\d{4}", parsed.version):
        raise TransactionError(f"1.002 VER {parsed.version!r} is not 4 digits")
    for tag in (5,):
        yyyymmdd(_text(r1, tag))
    gmt = _text(r1, 14)
    if gmt and not re.fullmatch(r"\d{14}Z", gmt):
        raise TransactionError(f"1.014 GMT {gmt!r} is not YYYYMMDDHHMMSSZ")
    cnt = _subfield_items(r1, 3)
    if not cnt or cnt[0][0] != "1" or int(cnt[0][1]) != len(msg) - 1:
        raise TransactionError("1.003 CNT does not count the records that follow")
    listed = [(int(t), int(i)) for t, i in cnt[1:]]
    actual = [(r.type, int(r.IDC)) for r in list(msg)[1:]]
    if listed != actual:
        raise TransactionError("1.003 CNT does not list the records in order (type, IDC)")
    if not list(msg.iter(2)):
        raise TransactionError("no Type-2 record")
    t14 = list(msg.iter(14))
    if not t14:
        raise TransactionError("no Type-14 record")
    for r in msg:
        if r.type == 1:
            continue
        if _text(r, 2) == "" and r[2] is None:
            raise TransactionError(f"Type-{r.type} record misses {r.type}.002 IDC")
    for r in t14:
        where = f"Type-14 IDC {r.IDC}"
        for tag, name in _TYPE14_MANDATORY.items():
            if _text(r, tag) == "":
                raise TransactionError(f"{where} misses 14.{tag:03d} {name}")
        fgp = int(_text(r, 13))
        if fgp not in range(0, 20):
            raise TransactionError(f"{where}: 14.013 FGP {fgp} out of range")
        if r[999] is not None:
            for tag, name in _TYPE14_WITH_IMAGE.items():
                if _text(r, tag) == "":
                    raise TransactionError(f"{where} has an image but misses 14.{tag:03d} {name}")
            if _text(r, 11) not in ("WSQ20", "PNG", "NONE", "JP2", "JP2L", "JPEGL"):
                raise TransactionError(f"{where}: 14.011 CGA {_text(r, 11)!r} is not a known code")
            if not r[999].value:
                raise TransactionError(f"{where}: 14.999 image is empty")
        else:
            amp = _subfield_items(r, 18)
            if not amp or len(amp[0]) < 2 or amp[0][1] not in MISSING_CODES:
                raise TransactionError(f"{where} has no image and no 14.018 AMP XX/UP")
    for r in msg.iter(9):
        where = f"Type-9 IDC {r.IDC}"
        for tag, name in {**_TYPE9_MANDATORY, **_TYPE9_378}.items():
            if _text(r, tag) == "" and r[tag] is None:
                raise TransactionError(f"{where} misses 9.{tag:03d} {name}")
        nom = int(_text(r, 136))
        fmd = _subfield_items(r, 137)
        if nom != len(fmd):
            raise TransactionError(f"{where}: 9.136 NOM {nom} but 9.137 holds {len(fmd)} minutiae")
    _check_lengths(msg)


def _check_lengths(msg: nistitl.Message) -> None:
    """Each record's x.001 LEN equals its encoded length (recomputed by nistitl)."""
    for r in msg:
        declared = r[1].value if hasattr(r, "_fields") else None
        if declared is None:
            continue
        encoded = len(r.NIST)
        if int(declared) != encoded:
            raise TransactionError(
                f"Type-{r.type} record: {r.type}.001 LEN says {declared} but it is {encoded} bytes"
            )


def record_lengths(data: bytes) -> list[tuple[int, int, int]]:
    """(record type, offset, declared LEN) for each record, found by walking the
    raw bytes independently of nistitl: every LEN must land exactly on the
    record's FS and the records must tile the whole transaction (for tests
    and diagnostics)."""
    out = []
    offset = 0
    while offset < len(data):
        m = re.match(rb"(\d+)\.001:(\d+)\x1d", data[offset:offset + 40])
        if not m:
            raise TransactionError(f"no LEN field at byte {offset}")
        rtype, length = int(m.group(1)), int(m.group(2))
        end = offset + length
        if end > len(data) or data[end - 1:end] != b"\x1c":
            raise TransactionError(f"Type-{rtype} record at byte {offset}: LEN {length} does not end on FS")
        out.append((rtype, offset, length))
        offset = end
    return out
