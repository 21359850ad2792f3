"""One booking as an ANSI/NIST-ITL 1-2011 transaction (traditional encoding).

A criminal ten-print submission: Type-1 (transaction information), one
Type-2 (the few descriptive fields the central system needs), one Type-14 per
finger (the image, WSQ at the FBI's usual 0.75 bpp, or PNG when lossless is
wanted; amputated / unable-to-print fingers carry 14.018 AMP and no image)
and one Type-9 per imaged finger with the minutiae as the INCITS 378 block.

Everything is built with `nistitl` (records, fields, the LEN arithmetic, the
CNT directory); this module only decides *what* goes in. `parse_transaction`
reads a transaction back with `nistitl` and `validate` checks the mandatory
fields, so what we send is what an independent reader sees. The profile, and
which parts are checked against the standard versus from memory, is in
docs/transaction.md.

Pure functions over bytes and arrays: no I/O, no logging of images,
templates or personal data.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import math
import re
from typing import Iterable, Mapping, Optional

import numpy as np

import nistitl
from fpagent.biometrics.template import MINUTIA_DTYPE, Template

VERSION = "0502"  # ANSI/NIST-ITL 1-2011 Update 2015 [memory; EBTS/state ICD decide]
DOMAIN = "NORAM"
FINGERS = tuple(range(1, 11))  # FGP 1 (right thumb) .. 10 (left little), the standard order
MISSING_CODES = {"XX": "amputated", "UP": "unable to print"}
COMPRESSIONS = ("wsq", "png")
WSQ_BITRATE = 0.75  # bits per pixel the `wsq` package encodes at (fixed in its C wrapper)

# INCITS 378 as registered with CBEFF: format owner INCITS M1 (0x001B),
# format type 0x0201 (finger minutiae, 378) [memory].
CBEFF_OWNER_INCITS = 27
CBEFF_TYPE_378 = 513

# The descriptive fields we know how to write, keyed by the names used in
# config `booking.descriptive_fields`, with the EBTS Type-2 field number.
DESCRIPTIVE_FIELDS: dict[str, tuple[int, str]] = {
    "name": (18, "NAM"),  # Last,First Middle
    "pob": (20, "POB"),  # place of birth (state/country code)
    "dob": (22, "DOB"),  # YYYYMMDD
    "sex": (24, "SEX"),  # M F X U
    "race": (25, "RAC"),
    "height": (27, "HGT"),
    "weight": (29, "WGT"),
    "eyes": (31, "EYE"),
    "hair": (32, "HAI"),
}
OCA_FIELD = 9  # 2.009 originating agency case number: our booking number
DPR_FIELD = 38  # 2.038 date printed
DOA_FIELD = 45  # 2.045 date of arrest


class TransactionError(ValueError):
    """The transaction is malformed or misses a mandatory field; says which."""


# ---------------------------------------------------------------------------
# What goes in
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class FingerCapture:
    """One finger of a booking: an image (+ template) or a reason it is missing.

    `quality` is our own 0-100 score (fpagent.biometrics.quality), not NFIQ. `below_gate`
    marks a print kept after the last attempt although it never passed the
    quality gate, so the central examiner knows. `repr` hides pixels.
    """

    position: int  # FGP 1..10
    pixels: Optional[np.ndarray] = None  # uint8 HxW, None when missing
    ppi: int = 500
    quality: int = 0
    template: Optional[Template] = None
    missing: str = ""  # "", "XX" (amputated) or "UP" (unable to print)
    below_gate: bool = False
    attempts: int = 1
    impression_type: int = 0  # IMP 0: live-scan plain (a UART area sensor)
    captured_at: Optional[_dt.datetime] = None

    def __post_init__(self):
        if int(self.position) not in FINGERS:
            raise TransactionError(f"finger position {self.position} is not 1-10")
        if self.missing:
            if self.missing not in MISSING_CODES:
                raise TransactionError(
                    f"finger {self.position}: missing code {self.missing!r} must be XX or UP"
                )
            if self.pixels is not None:
                raise TransactionError(f"finger {self.position} is marked {self.missing} but has an image")
        else:
            if self.pixels is None:
                raise TransactionError(f"finger {self.position} has neither an image nor XX/UP")
            px = np.asarray(self.pixels)
            if px.ndim != 2 or px.dtype != np.uint8:
                raise TransactionError(f"finger {self.position}: image must be 2-D uint8")
        if not 0 <= int(self.quality) <= 100:
            raise TransactionError(f"finger {self.position}: quality {self.quality} not 0-100")

    def __repr__(self) -> str:
        what = self.missing or f"{self.pixels.shape[1]}x{self.pixels.shape[0]}@{self.ppi}"
        return f"FingerCapture(fgp={self.position}, {what}, q={self.quality})"


@dataclasses.dataclass(frozen=True, eq=False)
class BookingRecord:
    """Everything a transaction is built from (one booking, already captured)."""

    tcn: str
    ori: str  # booking agency ORI: 1.008 and 14.004 SRC
    destination: str  # 1.007 DAI: the state bureau / central system
    fingers: tuple  # FingerCapture, one per finger position present in the booking
    booking_number: str = ""  # 2.009 OCA
    descriptive: Mapping[str, str] = dataclasses.field(default_factory=dict)
    type_of_transaction: str = "CAR"
    created_at: _dt.datetime = dataclasses.field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc)
    )
    arrest_date: Optional[_dt.date] = None  # 2.045 DOA; default: the booking date

    def __repr__(self) -> str:  # no personal data in logs
        return f"BookingRecord(tcn={self.tcn!r}, {len(self.fingers)} fingers)"


# ---------------------------------------------------------------------------
# Transaction control number
# ---------------------------------------------------------------------------

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _check_char(body: str) -> str:
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
    return f"{body}-{_check_char(body)}"


def tcn_is_valid(tcn: str) -> bool:
    """True when `tcn` has our shape and its check character matches."""
    m = re.fullmatch(r"([A-Z0-9]{9}-\d{8}-\d{8})-([A-Z0-9])", tcn or "")
    return bool(m) and _check_char(m.group(1)) == m.group(2)


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------


def compress_image(pixels: np.ndarray, ppi: int, compression: str) -> tuple[str, bytes]:
    """Return (CGA code, bytes). WSQ via the `wsq` Pillow plugin, PNG via Pillow.

    WSQ (CGA `WSQ20`) is defined for 500 ppi only; another resolution falls
    back to PNG rather than sending an image the bureau must reject.
    """
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L")
    buf = io.BytesIO()
    if compression == "wsq" and int(ppi) == 500:
        import wsq  # noqa: F401  (registers the WSQ plugin with Pillow)

        img.save(buf, format="WSQ")
        return "WSQ20", buf.getvalue()
    if compression not in COMPRESSIONS:
        raise TransactionError(f"unknown compression {compression!r}; use wsq or png")
    img.save(buf, format="PNG", dpi=(int(ppi), int(ppi)))
    return "PNG", buf.getvalue()


def decompress_image(cga: str, data: bytes) -> np.ndarray:
    """The pixels of a Type-14 image (WSQ20, PNG or NONE is not supported here)."""
    from PIL import Image

    if cga == "WSQ20":
        import wsq  # noqa: F401
    elif cga != "PNG":
        raise TransactionError(f"cannot decode CGA {cga!r} (this profile uses WSQ20 or PNG)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except Exception as exc:  # Pillow raises many kinds
        raise TransactionError(f"{cga} image does not decode: {exc}") from None


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def _field(record_type: int, tag: int, value) -> nistitl.Field:
    return nistitl.Field(record_type, tag, value)


def _items(record_type: int, tag: int, *subfields: Iterable) -> nistitl.Field:
    """A field made of subfields of items (RS between subfields, US between items)."""
    field = nistitl.Field(record_type, tag)
    for items in subfields:
        sf = nistitl.SubField()
        sf.add_values(*[str(i) for i in items])
        field.add_subfields(sf)
    return field


def _yyyymmdd(value: str) -> str:
    text = str(value).strip().replace("-", "")
    if not re.fullmatch(r"\d{8}", text):
        raise TransactionError(f"date {value!r} must be YYYYMMDD or YYYY-MM-DD")
    try:
        _dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise TransactionError(f"date {value!r} is not a real date") from None
    return text


def _clean_text(key: str, value) -> str:
    text = str(value).strip()
    if not text:
        raise TransactionError(f"descriptive field {key} is empty")
    if any(ord(c) < 0x20 or ord(c) > 0xFF for c in text):
        raise TransactionError(
            f"descriptive field {key} holds a control or non-Latin-1 character"
        )
    return text


def _angle_378(radians: float) -> int:
    """INCITS 378 angle: 2-degree units 0..179, counter-clockwise from +x."""
    return int(round(math.degrees(float(radians)) / 2.0)) % 180


def normalise_descriptive(descriptive: Mapping[str, str],
                          allowed: Optional[Iterable[str]] = None) -> dict[str, str]:
    """Check and normalise Type-2 descriptive data (dates to YYYYMMDD, sex
    upper-case); empty values are left out. Raises TransactionError naming
    the field. `allowed` is config booking.descriptive_fields."""
    allowed = set(allowed) if allowed is not None else set(DESCRIPTIVE_FIELDS)
    out = {}
    for key, value in descriptive.items():
        if key not in DESCRIPTIVE_FIELDS:
            raise TransactionError(
                f"unknown descriptive field {key!r}; known: {', '.join(DESCRIPTIVE_FIELDS)}"
            )
        if key not in allowed:
            raise TransactionError(
                f"descriptive field {key!r} is not enabled in booking.descriptive_fields"
            )
        if value is None or value == "":
            continue
        text = _yyyymmdd(value) if key == "dob" else _clean_text(key, value)
        if key == "sex":
            text = text.upper()
            if text not in ("M", "F", "X", "U"):
                raise TransactionError(f"sex must be M, F, X or U, got {value!r}")
        out[key] = text
    return out


def _type2(rec: BookingRecord, descriptive_fields: Optional[Iterable[str]]) -> nistitl.AsciiRecord:
    r2 = nistitl.AsciiRecord(2)
    r2.IDC = 0
    for key, text in normalise_descriptive(rec.descriptive, descriptive_fields).items():
        r2 += _field(2, DESCRIPTIVE_FIELDS[key][0], text)
    if rec.booking_number:
        r2 += _field(2, OCA_FIELD, _clean_text("booking_number", rec.booking_number))
    when = rec.created_at.astimezone(_dt.timezone.utc)
    r2 += _field(2, DPR_FIELD, f"{when:%Y%m%d}")
    r2 += _field(2, DOA_FIELD, f"{(rec.arrest_date or when.date()):%Y%m%d}")
    return r2


def _type14(rec: BookingRecord, f: FingerCapture, compression: str) -> nistitl.AsciiRecord:
    r = nistitl.AsciiRecord(14)
    r.IDC = int(f.position)
    r.IMP = int(f.impression_type)
    r.SRC = rec.ori
    when = (f.captured_at or rec.created_at).astimezone(_dt.timezone.utc)
    r.FCD = f"{when:%Y%m%d}"
    r.FGP = int(f.position)
    if f.missing:
        r += _items(14, 18, (int(f.position), f.missing))  # AMP: FRAP US ABC
        return r
    px = np.asarray(f.pixels)
    cga, data = compress_image(px, f.ppi, compression)
    r.HLL = px.shape[1]
    r.VLL = px.shape[0]
    r.SLC = 1  # pixels per inch
    r.THPS = int(f.ppi)
    r.TVPS = int(f.ppi)
    r.CGA = cga
    r.BPX = 8
    if f.below_gate:
        r.COM = f"BELOW QUALITY GATE AFTER {int(f.attempts)} ATTEMPTS"
    # 14.024 FQM: FRMP US QVAL US QAV US QAP. Our score is 0-100, which is
    # what FQM carries; 14.022 NQM is reserved for NFIQ 1-5 [memory].
    r += _items(14, 24, (int(f.position), int(f.quality), "0000", 1))
    r.DATA = data
    return r


def _type9(rec: BookingRecord, f: FingerCapture) -> nistitl.AsciiRecord:
    t = f.template
    r = nistitl.AsciiRecord(9)
    r.IDC = int(f.position)  # same IDC as the Type-14 the minutiae came from
    r += _field(9, 3, int(f.impression_type))  # IMP
    r += _field(9, 4, "S")  # FMT: standard format
    r += _items(9, 126, (CBEFF_OWNER_INCITS, CBEFF_TYPE_378, 0))  # CBI
    r += _items(9, 127, ("NA", 0))  # CEI: appendix-F status, equipment id
    r += _field(9, 128, int(t.width))  # HLL
    r += _field(9, 129, int(t.height))  # VLL
    r += _field(9, 130, 1)  # SLC: ppi
    r += _field(9, 131, int(t.ppi))  # THPS
    r += _field(9, 132, int(t.ppi))  # TVPS
    r += _field(9, 133, 0)  # FVW: finger view number
    r += _field(9, 134, int(f.position))  # FGP
    r += _items(9, 135, (int(t.quality or f.quality), "0000", 1))  # FQD
    m = np.asarray(t.minutiae, dtype=MINUTIA_DTYPE)
    r += _field(9, 136, int(m.shape[0]))  # NOM
    if m.shape[0]:
        xs = np.clip(np.rint(m["x"]), 0, max(t.width - 1, 0)).astype(int)
        ys = np.clip(np.rint(m["y"]), 0, max(t.height - 1, 0)).astype(int)
        rows = [
            (i + 1, int(xs[i]), int(ys[i]), _angle_378(m["angle"][i]),
             int(m["quality"][i]), int(m["kind"][i]))
            for i in range(m.shape[0])
        ]
        r += _items(9, 137, *rows)  # FMD: index US x US y US theta US quality US type
    return r


def build_transaction(
    rec: BookingRecord,
    *,
    compression: str = "wsq",
    wsq_bitrate: float = WSQ_BITRATE,
    descriptive_fields: Optional[Iterable[str]] = None,
    version: str = VERSION,
) -> bytes:
    """The booking as ANSI/NIST-ITL traditional-encoding bytes, built with nistitl.

    `descriptive_fields` (config booking.descriptive_fields) limits which
    Type-2 fields may be written; anything else given raises, so a
    configuration change, not a caller, decides what personal data leaves.
    The result is parsed back and validated before it is returned.
    """
    if compression not in COMPRESSIONS:
        raise TransactionError(f"unknown compression {compression!r}; use wsq or png")
    if compression == "wsq" and abs(float(wsq_bitrate) - WSQ_BITRATE) > 1e-9:
        raise TransactionError(
            f"booking.wsq_bitrate = {wsq_bitrate}: the wsq package encodes at its fixed "
            f"{WSQ_BITRATE} bpp (the FBI's usual rate); set wsq_bitrate = {WSQ_BITRATE} "
            "or compression = \"png\""
        )
    if not rec.fingers:
        raise TransactionError("a booking needs at least one finger")
    positions = [int(f.position) for f in rec.fingers]
    if len(set(positions)) != len(positions):
        raise TransactionError(f"finger positions repeat: {positions}")
    if not any(not f.missing for f in rec.fingers):
        raise TransactionError("every finger is XX/UP: there is no print to submit")
    if not re.fullmatch(r"[A-Z]{1,16}", rec.type_of_transaction or ""):
        raise TransactionError(f"TOT {rec.type_of_transaction!r} must be 1-16 capital letters")
    for name, value in (("ORI", rec.ori), ("DAI", rec.destination)):
        if not re.fullmatch(r"[A-Za-z0-9]{1,32}", value or ""):
            raise TransactionError(f"{name} {value!r} must be letters and digits")
    if not rec.tcn or not re.fullmatch(r"[ -~]{1,40}", rec.tcn):
        raise TransactionError("TCN must be 1-40 printable ASCII characters")

    when = rec.created_at.astimezone(_dt.timezone.utc)
    msg = nistitl.Message()
    r1 = msg[0]
    r1.VER = version
    r1.TOT = rec.type_of_transaction
    r1.DAT = f"{when:%Y%m%d}"
    r1.DAI = rec.destination
    r1.ORI = rec.ori
    r1.TCN = rec.tcn
    r1.NSR = "00.00"  # no legacy Type-3..7 image records
    r1.NTR = "00.00"
    r1.DOM = DOMAIN
    r1.GMT = f"{when:%Y%m%d%H%M%S}Z"

    msg += _type2(rec, descriptive_fields)
    ordered = sorted(rec.fingers, key=lambda f: int(f.position))
    for f in ordered:
        msg += _type14(rec, f, compression)
    for f in ordered:
        if not f.missing and f.template is not None:
            msg += _type9(rec, f)
    data = msg.NIST
    validate(parse_transaction(data))
    return data


# ---------------------------------------------------------------------------
# Reading back
# ---------------------------------------------------------------------------


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
                position = int(_text(r9, 134))
                rows = []
                for items in _subfield_items(r9, 137):
                    _, x, y, theta, quality, kind = items[:6]
                    rows.append((float(x), float(y), math.radians(2.0 * int(theta)),
                                 int(kind), int(quality)))
                fqd = _subfield_items(r9, 135)
                out[position] = Template(
                    np.array(rows, dtype=MINUTIA_DTYPE) if rows else np.zeros(0, MINUTIA_DTYPE),
                    width=int(_text(r9, 128)), height=int(_text(r9, 129)),
                    ppi=int(_text(r9, 131) or 500),
                    quality=int(fqd[0][0]) if fqd and fqd[0] else 0,
                    finger_position=position, impression_type=int(_text(r9, 3) or 0),
                )
            except (ValueError, IndexError) as exc:
                raise TransactionError(f"Type-9 IDC {r9.IDC}: minutiae do not read back ({exc})") from None
        return out

    def __repr__(self) -> str:
        return f"ParsedTransaction(tcn={self.tcn!r}, tot={self.tot}, {len(self.fingers)} fingers)"


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
        _yyyymmdd(_text(r1, tag))
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
