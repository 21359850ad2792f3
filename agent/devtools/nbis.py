"""NIST NBIS (mindtct + bozorth3 + NFIQ 2, via the nbis-py 0.1.3 wheel) as a reference.

Benchmarks and tests only: `nbis` is a test/bench extra, never a runtime
dependency, so it is imported lazily here and nothing at runtime imports this
module. Known quirk of nbis-py 0.1.3: its ISO 19794-2 "2005" writer and
reader use a non-conformant 26-byte prefix (no view count; the finger view
folded into the header; no extended-data block). `fpagent.records.fmr.decode` reads
that layout; `to_nbis_layout` rewrites a standard record into it so NBIS can
load ours (`load_standard_iso` shows NBIS reading the standard bytes as-is
gets the minutiae wrong).
"""

from __future__ import annotations

import functools
import io
import math
import pathlib
import platform
import struct

import numpy as np

from fpagent.errors import FpagentError
from fpagent.biometrics.template import MINUTIA_DTYPE, Template


class NbisUnavailable(FpagentError, RuntimeError):
    """nbis-py is not installed: not yet (pip install 'fpagent[bench]'), or not
    installable on this architecture (its wheels are x86-64 only)."""


def unavailable_reason() -> str:
    """Why the NBIS reference cannot be used here, in words for the person running a bench."""
    machine = platform.machine()
    if machine != "x86_64":
        return (f"NBIS is unavailable on {machine}: nbis-py 0.1.3 ships x86-64 wheels only "
                "(run NBIS comparisons on an x86-64 machine; see docs/arm64.md)")
    return "NBIS reference needs nbis-py 0.1.3: pip install 'fpagent[bench]'"


def _nbis():
    try:
        import nbis  # noqa: PLC0415 (lazy on purpose)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NbisUnavailable(unavailable_reason()) from exc
    return nbis


def available() -> bool:
    try:
        _nbis()
    except NbisUnavailable:
        return False
    return True


@functools.lru_cache(maxsize=2)
def extractor(nfiq2: bool = False, ppi: float = 500.0):
    nbis = _nbis()
    settings = nbis.NbisExtractorSettings(min_quality=0.0, get_center=False, check_fingerprint=False,
                                          compute_nfiq2=nfiq2, ppi=float(ppi))
    return nbis.new_nbis_extractor(settings)


def _png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def extract(image, *, nfiq2: bool = False, ppi: float = 500.0):
    """mindtct on a file path or a uint8 array: the nbis `Minutiae` object."""
    ex = extractor(nfiq2, ppi)
    if isinstance(image, (str, pathlib.Path)):
        return ex.extract_minutiae_from_image_file(str(image))
    return ex.extract_minutiae(_png_bytes(image))


def nfiq2_score(minutiae) -> int:
    """NFIQ 2 score 0-100 of an extraction made with nfiq2=True."""
    return int(minutiae.quality().score)


def to_template(minutiae, width: int, height: int, ppi: int = 500) -> Template:
    """Our Template from NBIS minutiae (degrees -> radians, reliability -> quality 0-100)."""
    nbis = _nbis()
    items = minutiae.get()
    m = np.empty(len(items), dtype=MINUTIA_DTYPE)
    for i, it in enumerate(items):
        m[i] = (it.x(), it.y(), math.radians(it.angle()) % (2 * math.pi),
                1 if it.kind() == nbis.MinutiaKind.RIDGE_ENDING else 2,
                int(round(min(max(it.reliability(), 0.0), 1.0) * 100)))
    return Template(minutiae=m, width=width, height=height, ppi=ppi)


def bozorth3(a, b) -> int:
    """bozorth3 score of two nbis `Minutiae` objects."""
    return int(a.compare(b))


def to_nbis_layout(iso_record: bytes) -> bytes:
    """A standard single-view ISO 19794-2:2005 record rewritten into nbis-py 0.1.3's layout."""
    from fpagent.records.fmr import ISO_HEADER_LEN, decode  # noqa: PLC0415

    (t,) = decode(iso_record)
    n = len(t)
    start = ISO_HEADER_LEN + 4
    minutiae = iso_record[start:start + 6 * n]
    head = b"FMR\x00 20\x00" + struct.pack(">IHHHBBB4sB", 26 + 6 * n, 0, t.width, t.height,
                                           t.finger_position, t.impression_type, t.quality,
                                           b"\x00" * 4, n)
    return head + minutiae


def load_standard_iso(iso_record: bytes):
    """NBIS's own loader on a record (whatever it makes of it)."""
    return extractor().load_iso_19794_2_2005(bytes(iso_record))


def load_ours(iso_record: bytes):
    """NBIS minutiae from one of our standard ISO records (through `to_nbis_layout`)."""
    return extractor().load_iso_19794_2_2005(to_nbis_layout(iso_record))
