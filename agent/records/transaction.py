"""One booking as an ANSI/NIST-ITL 1-2011 transaction (traditional encoding).

A criminal ten-print submission: Type-1 (transaction information), one
Type-2 (the few descriptive fields the central system needs), one Type-14 per
finger (the image, WSQ at the FBI's usual 0.75 bpp, or PNG when lossless is
wanted; amputated / unable-to-print fingers carry 14.018 AMP and no image),
for a ten-print also the plain impressions (four-finger slaps 13, 14 with
14.021 SEG, plain thumbs 11, 12), and one Type-9 per imaged finger that has
a template, with the minutiae as the INCITS 378 block.

Everything is built with `nistitl` (records, fields, the LEN arithmetic, the
CNT directory); this module only decides *what* goes in. The result is read
back and validated (fpagent.records.transaction_parse) before it is returned,
so what we send is what an independent reader sees. The profile's constants
are in fpagent.records.transaction_format, the TCN in fpagent.records.tcn, the image
compression in fpagent.records.images; docs/transaction.md says which parts
are checked against the standard versus from memory.

Pure functions over bytes and arrays: no I/O, no logging of images,
templates or personal data.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
from typing import Iterable, Mapping, Optional

import numpy as np

import nistitl
from fpagent.biometrics.template import MINUTIA_DTYPE, Template
from fpagent.records.images import compress_image
from fpagent.records.transaction_format import (ASL_FIELD, ATN_FIELD, CBEFF_OWNER_INCITS,
                                                CBEFF_TYPE_378, COMPRESSIONS, CRI_FIELD,
                                                DESCRIPTIVE_FIELDS, DOA_FIELD, DOMAIN, DPR_FIELD,
                                                FINGERS, MISSING_CODES, OCA_FIELD, PLAIN_THUMBS, RET_FIELD,
                                                SEG_FIELD, SLAP_FINGERS, VERSION, WSQ_BITRATE,
                                                TransactionError, yyyymmdd)
from fpagent.records.transaction_parse import parse_transaction, validate


@dataclasses.dataclass(frozen=True, eq=False)
class FingerCapture:
    """One finger of a booking: an image (+ template) or a reason it is missing.

    `quality` is our own 0-100 score (fpagent.biometrics.quality), not NFIQ. `below_gate`
    marks a print kept after the last attempt although it never passed the
    quality gate, so the central examiner knows. `duplicate_of` (FGP, 0 = none)
    marks a print kept although the booking's duplicate-finger check found it
    like that finger (score `duplicate_score`); `duplicate_confirmed` says
    whether the officer confirmed it was the finger asked for. Both go into
    14.020 COM for review. A slap (FGP 13, 14, 15: plain impressions of
    several fingers) carries `segments`, each finger's place in the image as
    (FGP, left, right, top, bottom) px, right and bottom one past the last
    pixel, for 14.021 SEG. A plain thumb (FGP 11 right, 12 left) is one
    thumb's plain impression; when that thumb is missing its record carries
    the thumb's own position (1 or 6) in 14.018 AMP. `repr` hides pixels.
    """

    position: int  # FGP 1..10, 11, 12 for the plain thumbs, or 13, 14, 15 for the slaps
    pixels: Optional[np.ndarray] = None  # uint8 HxW, None when missing
    ppi: int = 500
    quality: int = 0
    template: Optional[Template] = None
    missing: str = ""  # "", "XX" (amputated) or "UP" (unable to print)
    below_gate: bool = False
    attempts: int = 1
    impression_type: int = 0  # IMP 0: live-scan plain (a UART area sensor)
    captured_at: Optional[_dt.datetime] = None
    duplicate_of: int = 0
    duplicate_score: float = 0.0
    duplicate_confirmed: bool = False
    segments: tuple = ()  # slaps only: (FGP, left, right, top, bottom) per finger found

    def __post_init__(self):
        if int(self.position) not in (*FINGERS, *PLAIN_THUMBS, *SLAP_FINGERS):
            raise TransactionError(f"finger position {self.position} is not 1-10, a plain thumb (11, 12) "
                                   "or a slap (13-15)")
        if int(self.position) in SLAP_FINGERS:
            self._check_slap()
        elif self.segments:
            raise TransactionError(f"finger {self.position}: segments belong to slaps (13-15) only")
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

    def _check_slap(self) -> None:
        if self.missing or self.pixels is None:
            raise TransactionError(f"slap {self.position} needs an image (a finger missing from it is "
                                   "marked on its own record)")
        height, width = np.asarray(self.pixels).shape[:2]
        fingers = [int(s[0]) for s in self.segments]
        if len(set(fingers)) != len(fingers) or not set(fingers) <= set(SLAP_FINGERS[int(self.position)]):
            raise TransactionError(f"slap {self.position}: segments {fingers} are not distinct fingers "
                                   f"of {SLAP_FINGERS[int(self.position)]}")
        for finger, left, right, top, bottom in self.segments:
            if not (0 <= left < right <= width and 0 <= top < bottom <= height):
                raise TransactionError(f"slap {self.position}: finger {finger}'s segment "
                                       f"{(left, right, top, bottom)} is not inside the {width}x{height} image")

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
    retention: str = ""  # 2.005 RET: "Y" or "N"
    charges: tuple = ()  # 2.047 ASL: (offense date YYYYMMDD or "", offense literal) per charge
    controlling_agency: str = ""  # 2.073 CRI
    attention: str = ""  # 2.006 ATN
    tcr: str = ""  # 1.010 TCR: the original TCN, on a resubmission

    def __repr__(self) -> str:  # no personal data in logs
        return f"BookingRecord(tcn={self.tcn!r}, {len(self.fingers)} fingers)"


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
        text = yyyymmdd(value) if key == "dob" else _clean_text(key, value)
        if key in _CODED:
            text = text.upper()
        if key == "sex" and len(text) != 1:
            raise TransactionError(f"sex must be a one-letter code (M, F; X when unknown), got {value!r}")
        out[key] = text
    return out


_CODED = ("sex", "race", "eyes", "hair", "pob")  # code-table values: upper case


def type2_values(rec: BookingRecord, descriptive_fields: Optional[Iterable[str]] = None) -> list:
    """The Type-2 fields this booking writes, as (tag, mnemonic, value) in tag
    order: what `build_transaction` encodes and what the booking profile checks
    before the first finger is taken. A value is text, or for 2.047 ASL a list
    of [offense date, literal] occurrences. Raises TransactionError naming a
    malformed field."""
    out = [(DESCRIPTIVE_FIELDS[key][0], DESCRIPTIVE_FIELDS[key][1], text)
           for key, text in normalise_descriptive(rec.descriptive, descriptive_fields).items()]
    if rec.retention:
        out.append((RET_FIELD, "RET", _clean_text("retention", rec.retention).upper()))
    if rec.attention:
        out.append((ATN_FIELD, "ATN", _clean_text("attention", rec.attention)))
    if rec.booking_number:
        out.append((OCA_FIELD, "OCA", _clean_text("booking_number", rec.booking_number)))
    when = rec.created_at.astimezone(_dt.timezone.utc)
    out.append((DPR_FIELD, "DPR", f"{when:%Y%m%d}"))
    out.append((DOA_FIELD, "DOA", f"{(rec.arrest_date or when.date()):%Y%m%d}"))
    if rec.charges:
        segments = []
        for i, charge in enumerate(rec.charges, 1):
            if not isinstance(charge, (tuple, list)) or len(charge) != 2:
                raise TransactionError(f"charge {i} must be (offense date, literal)")
            date, literal = charge
            segments.append([yyyymmdd(date) if date else "", _clean_text(f"charge {i}", literal).upper()])
        out.append((ASL_FIELD, "ASL", segments))
    if rec.controlling_agency:
        out.append((CRI_FIELD, "CRI", _clean_text("controlling_agency", rec.controlling_agency).upper()))
    return sorted(out, key=lambda f: f[0])


def _type2(rec: BookingRecord, descriptive_fields: Optional[Iterable[str]]) -> nistitl.AsciiRecord:
    r2 = nistitl.AsciiRecord(2)
    r2.IDC = 0
    for tag, _mnemonic, value in type2_values(rec, descriptive_fields):
        r2 += _items(2, tag, *value) if isinstance(value, list) else _field(2, tag, value)
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
        # AMP: FRAP US ABC, FRAP the finger (a plain thumb's record names its thumb, 1 or 6)
        r += _items(14, 18, (PLAIN_THUMBS.get(int(f.position), int(f.position)), f.missing))
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
    comments = review_comments(f)
    if comments:
        r.COM = "; ".join(comments)
    if f.segments:  # 14.021 SEG: where each finger of the slap lies
        r += _items(14, SEG_FIELD, *[tuple(int(v) for v in seg) for seg in f.segments])
    # 14.024 FQM: FRMP US QVAL US QAV US QAP. Our score is 0-100, which is
    # what FQM carries; 14.022 NQM is reserved for NFIQ 1-5 [memory].
    r += _items(14, 24, (int(f.position), int(f.quality), "0000", 1))
    r.DATA = data
    return r


def review_comments(f: FingerCapture) -> list[str]:
    """What the central examiner must look at in this print (14.020 COM, at most 126 characters)."""
    out = []
    if f.below_gate:
        out.append(f"BELOW QUALITY GATE AFTER {int(f.attempts)} ATTEMPTS")
    if f.duplicate_of:
        out.append(f"SUSPECTED SAME FINGER AS FGP {int(f.duplicate_of)} "
                   f"(SCORE {float(f.duplicate_score):.3f}): "
                   + ("OPERATOR CONFIRMED" if f.duplicate_confirmed else "NOT CONFIRMED, REVIEW"))
    return out


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
    for name, value in (("TCN", rec.tcn), ("TCR", rec.tcr or "x")):
        if not re.fullmatch(r"[ -~]{1,40}", value or ""):
            raise TransactionError(f"{name} must be 1-40 printable ASCII characters")

    when = rec.created_at.astimezone(_dt.timezone.utc)
    msg = nistitl.Message()
    r1 = msg[0]
    r1.VER = version
    r1.TOT = rec.type_of_transaction
    r1.DAT = f"{when:%Y%m%d}"
    r1.DAI = rec.destination
    r1.ORI = rec.ori
    r1.TCN = rec.tcn
    if rec.tcr:
        r1 += _field(1, 10, rec.tcr)  # TCR: the transaction this one resubmits
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
