"""The conventions of our ANSI/NIST-ITL booking transactions: what both building and reading rely on.

Version, domain, finger positions and missing-finger codes, the image
compressions, the CBEFF identifiers of the INCITS 378 block, the EBTS Type-2
field numbers of the descriptive data, the date format, and the error every
part of fpagent.records' transaction code raises. The profile, and which
parts are checked against the standard versus from memory, is in
docs/transaction.md.
"""

from __future__ import annotations

import datetime as _dt
import re

from fpagent.errors import FpagentError

VERSION = "0502"  # ANSI/NIST-ITL 1-2011 Update 2015 [memory; EBTS/state ICD decide]
DOMAIN = "NORAM"
FINGERS = tuple(range(1, 11))  # FGP 1 (right thumb) .. 10 (left little), the standard order
MISSING_CODES = {"XX": "amputated", "UP": "unable to print"}
# the plain (slap) impressions of a ten-print and the fingers each holds: FGP 13 the
# right four fingers, 14 the left four, 15 both thumbs [std-excerpt: FGP table]
SLAP_FINGERS = {13: (2, 3, 4, 5), 14: (7, 8, 9, 10), 15: (1, 6)}
# the plain thumbs, each its own record in the FBI's 14-image ten-print, and the thumb each
# shows: FGP 11 plain right thumb, 12 plain left thumb [FGP table in the shared spec notes]
PLAIN_THUMBS = {11: 1, 12: 6}
SEG_FIELD = 21  # 14.021 SEG: FGP US left US right US top US bottom, one subfield per finger
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
    "sex": (24, "SEX"),  # EBTS codes (M F X ...; X unknown), checked by the booking profile
    "race": (25, "RAC"),
    "height": (27, "HGT"),
    "weight": (29, "WGT"),
    "eyes": (31, "EYE"),
    "hair": (32, "HAI"),
}
RET_FIELD = 5  # 2.005 retention code: Y keep the prints in the bureau's file, N do not
ATN_FIELD = 6  # 2.006 attention indicator: the officer the answer is for
OCA_FIELD = 9  # 2.009 originating agency case number: our booking number
ASL_FIELD = 47  # 2.047 arrest segment literal: DOO US AOL, one occurrence per charge
CRI_FIELD = 73  # 2.073 controlling agency identifier
DPR_FIELD = 38  # 2.038 date printed
DOA_FIELD = 45  # 2.045 date of arrest


class TransactionError(FpagentError, ValueError):
    """The transaction is malformed or misses a mandatory field; says which."""


def yyyymmdd(value: str) -> str:
    """A date as YYYYMMDD (given so or as YYYY-MM-DD); TransactionError if it is not a real date."""
    text = str(value).strip().replace("-", "")
    if not re.fullmatch(r"\d{8}", text):
        raise TransactionError(f"date {value!r} must be YYYYMMDD or YYYY-MM-DD")
    try:
        _dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise TransactionError(f"date {value!r} is not a real date") from None
    return text
