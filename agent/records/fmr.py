"""Finger minutiae records: ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004.

Both formats start with "FMR\\0" " 20\\0" and are big-endian; the layouts are
in ../shared/specs/records-ansi-nist-iso.md part C. We write exactly that
layout (no extended data: the block length is written as 00 00) and read it
back, skipping any extended data block whose length fits. `decode` tells the
two formats apart by the record length field (ISO: 4 bytes at offset 8, ANSI:
2 bytes, or 00 00 then 4 bytes), so a record of the wrong flavour or a bad
length gives an `FmrError` that says which, never garbage minutiae.

One leniency is deliberate: nbis-py 0.1.3 (the NBIS wheel we compare with)
writes "ISO" records with a non-conformant 26-byte prefix (no view count, the
finger view folded into the header, no extended data block). `decode` accepts
that exact layout when the standard parse fails, so NBIS templates can be
read; our writer always produces the standard layout.
"""

from __future__ import annotations

import math
import struct
from typing import Iterable

import numpy as np

from fpagent.errors import FpagentError
from fpagent.biometrics.template import MINUTIA_DTYPE, Template

MAGIC = b"FMR\x00"
VERSION_2005 = b" 20\x00"
ISO_HEADER_LEN = 24
ANSI_HEADER_LEN = 26
ANSI_LONG_HEADER_LEN = 30
VIEW_HEADER_LEN = 4
MINUTIA_LEN = 6
MAX_VIEWS = 176
MAX_MINUTIAE = 255
COORD_MAX = 0x3FFF  # 14 bits

ISO_ANGLE_UNITS = 256  # 360/256 = 1.40625 degrees per unit
ANSI_ANGLE_UNITS = 180  # 2 degrees per unit

# minutia type bits 15-14 <-> fpagent.biometrics.template kinds (0 other, 1 ending, 2 bifurcation)
_TYPE_BITS = {0: 0b00, 1: 0b01, 2: 0b10}
_KIND_FROM_BITS = {0b00: 0, 0b01: 1, 0b10: 2}

_IMPRESSION_TYPES = {0, 1, 2, 3, 8}


class FmrError(FpagentError, ValueError):
    """A finger minutiae record that cannot be written or read; the message says why."""


# ---------------------------------------------------------------- writing


def _as_list(template_or_list) -> list[Template]:
    if isinstance(template_or_list, Template):
        return [template_or_list]
    templates = list(template_or_list)
    if not templates:
        raise FmrError("nothing to encode: give at least one template (finger view)")
    for t in templates:
        if not isinstance(t, Template):
            raise FmrError(f"expected fpagent.biometrics.template.Template, got {type(t).__name__}")
    return templates


def _ppi_to_ppcm(ppi: float) -> int:
    return int(round(float(ppi) / 2.54))


def _ppcm_to_ppi(ppcm: int) -> int:
    # 0 means "not given" (some writers, e.g. nbis-py 0.1.3): assume 500 ppi
    return int(round(ppcm * 2.54)) if ppcm else 500


def _encode_angle(angle: np.ndarray, units: int) -> np.ndarray:
    a = np.mod(np.asarray(angle, dtype=np.float64), 2 * math.pi)
    return (np.rint(a * (units / (2 * math.pi))).astype(np.int64)) % units


def _encode_view(t: Template, view_number: int, width: int, height: int, angle_units: int) -> bytes:
    m = t.minutiae
    n = len(m)
    if n > MAX_MINUTIAE:
        raise FmrError(f"a finger view holds at most {MAX_MINUTIAE} minutiae, this template has {n}: "
                       "keep the best ones before encoding")
    if not 0 <= t.finger_position <= 10:
        raise FmrError(f"finger position {t.finger_position} is not 0-10")
    if t.impression_type not in _IMPRESSION_TYPES:
        raise FmrError(f"impression type {t.impression_type} is not one of 0, 1, 2, 3, 8")
    if not 0 <= view_number <= 15:
        raise FmrError(f"more than 16 views of finger {t.finger_position}")
    quality = int(min(max(int(t.quality), 0), 100))
    out = bytearray(struct.pack(">BBBB", t.finger_position, (view_number << 4) | t.impression_type,
                                quality, n))
    if n:
        x = np.rint(m["x"].astype(np.float64))
        y = np.rint(m["y"].astype(np.float64))
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise FmrError("a minutia has a non-finite coordinate")
        # allow rounding up to the edge (x = width - 0.4 rounds to width) but nothing further out
        if x.min() < 0 or y.min() < 0 or x.max() > width or y.max() > height:
            raise FmrError(f"a minutia lies outside the {width}x{height} image")
        xi = np.minimum(x, max(width - 1, 0)).astype(np.int64)
        yi = np.minimum(y, max(height - 1, 0)).astype(np.int64)
        if xi.max() > COORD_MAX or yi.max() > COORD_MAX:
            raise FmrError(f"coordinates above {COORD_MAX} do not fit the 14-bit field")
        kinds = m["kind"]
        if np.any(kinds > 2):
            raise FmrError("minutia kind must be 0 (other), 1 (ending) or 2 (bifurcation)")
        type_bits = np.where(kinds == 1, 0b01, np.where(kinds == 2, 0b10, 0b00)).astype(np.int64)
        angles = _encode_angle(m["angle"], angle_units)
        qual = np.minimum(m["quality"].astype(np.int64), 100)
        rec = np.empty(n, dtype=[("xt", ">u2"), ("y", ">u2"), ("a", "u1"), ("q", "u1")])
        rec["xt"] = (type_bits << 14) | xi
        rec["y"] = yi
        rec["a"] = angles
        rec["q"] = qual
        out += rec.tobytes()
    out += b"\x00\x00"  # extended data block length: none
    return bytes(out)


def _encode_views(templates: list[Template], angle_units: int) -> tuple[bytes, int, int, int, int]:
    width = max(int(t.width) for t in templates)
    height = max(int(t.height) for t in templates)
    if not (0 < width <= 0xFFFF and 0 < height <= 0xFFFF):
        raise FmrError(f"image size {width}x{height} does not fit the 16-bit fields")
    ppcm = _ppi_to_ppcm(templates[0].ppi)
    if not 0 < ppcm <= 0xFFFF:
        raise FmrError(f"resolution {templates[0].ppi} ppi does not fit the record")
    if len(templates) > MAX_VIEWS:
        raise FmrError(f"at most {MAX_VIEWS} finger views per record, got {len(templates)}")
    seen: dict[int, int] = {}
    body = bytearray()
    for t in templates:
        view = seen.get(t.finger_position, 0)
        seen[t.finger_position] = view + 1
        body += _encode_view(t, view, width, height, angle_units)
    return bytes(body), width, height, ppcm, len(templates)


def encode_iso(template_or_list, *, capture_equipment: int = 0) -> bytes:
    """ISO/IEC 19794-2:2005 record; a list of templates becomes one record with several views."""
    templates = _as_list(template_or_list)
    body, width, height, ppcm, nviews = _encode_views(templates, ISO_ANGLE_UNITS)
    length = ISO_HEADER_LEN + len(body)
    header = MAGIC + VERSION_2005 + struct.pack(
        ">IHHHHHBB", length, capture_equipment & 0x0FFF, width, height, ppcm, ppcm, nviews, 0)
    return header + body


def encode_ansi(template_or_list, *, product_owner: int = 0, product_type: int = 0,
                capture_equipment: int = 0) -> bytes:
    """ANSI INCITS 378-2004 record (2-byte length, or 00 00 + 4 bytes above 65535; CBEFF product id)."""
    templates = _as_list(template_or_list)
    body, width, height, ppcm, nviews = _encode_views(templates, ANSI_ANGLE_UNITS)
    rest = struct.pack(">HHHHHHHBB", product_owner & 0xFFFF, product_type & 0xFFFF,
                       capture_equipment & 0x0FFF, width, height, ppcm, ppcm, nviews, 0)
    short_len = 8 + 2 + len(rest) + len(body)
    if short_len <= 0xFFFF:
        return MAGIC + VERSION_2005 + struct.pack(">H", short_len) + rest + body
    long_len = short_len + 4
    return MAGIC + VERSION_2005 + struct.pack(">HI", 0, long_len) + rest + body


# ---------------------------------------------------------------- reading


def detect_format(data: bytes) -> str:
    """'iso' or 'ansi' from the length field; FmrError when neither length matches."""
    data = bytes(data)
    head = MAGIC + VERSION_2005
    if len(data) < 12 and head.startswith(data[:8]):
        raise FmrError(f"truncated record: {len(data)} bytes, a finger minutiae record "
                       f"starts with a {ISO_HEADER_LEN}-byte header")
    if data[:4] != MAGIC:
        raise FmrError("not a finger minutiae record: bad magic (expected 'FMR\\0' at the start)")
    if data[4:8] != VERSION_2005:
        raise FmrError(f"unsupported record version {data[4:8]!r}: only ' 20\\0' "
                       "(ISO 19794-2:2005 / ANSI 378-2004) is read")
    if len(data) < 12:
        raise FmrError(f"truncated record: {len(data)} bytes, header is {ISO_HEADER_LEN}")
    n = len(data)
    iso_len = struct.unpack_from(">I", data, 8)[0]
    ansi_len = struct.unpack_from(">H", data, 8)[0]
    if iso_len == n and data[8:10] == b"\x00\x00":
        return "iso"
    if ansi_len and ansi_len == n:
        return "ansi"
    if ansi_len == 0 and n >= 14 and struct.unpack_from(">I", data, 10)[0] == n:
        return "ansi"
    if data[8:10] == b"\x00\x00":
        stated, kind = iso_len, "ISO"  # ISO records under 64 KiB (the only ones we meet)
    else:
        stated, kind = ansi_len, "ANSI"
    if stated > n:
        raise FmrError(f"truncated record: the {kind} length field says {stated} bytes but only {n} are present")
    raise FmrError(f"bad length: the {kind} length field says {stated} bytes but the record has {n}")


def decode(data: bytes) -> list[Template]:
    """Every finger view of an ISO or ANSI record as a Template (raises FmrError)."""
    data = bytes(data)
    fmt = detect_format(data)
    try:
        return _decode(data, fmt)
    except FmrError:
        if fmt == "iso":
            legacy = _decode_nbis_py_layout(data)
            if legacy is not None:
                return legacy
        raise


def _decode(data: bytes, fmt: str) -> list[Template]:
    n = len(data)
    if fmt == "iso":
        hdr = ISO_HEADER_LEN
        if n < hdr:
            raise FmrError(f"truncated record: {n} bytes, ISO header is {hdr}")
        _, cap, width, height, xres, yres, nviews, _ = struct.unpack_from(">IHHHHHBB", data, 8)
        angle_units = ISO_ANGLE_UNITS
    else:
        off = 10 if struct.unpack_from(">H", data, 8)[0] else 14
        hdr = off + 16
        if n < hdr:
            raise FmrError(f"truncated record: {n} bytes, ANSI header is {hdr}")
        (_owner, _ptype, cap, width, height, xres, yres, nviews, _) = struct.unpack_from(
            ">HHHHHHHBB", data, off)
        angle_units = ANSI_ANGLE_UNITS
    if nviews > MAX_VIEWS:
        raise FmrError(f"absurd finger view count {nviews} (at most {MAX_VIEWS})")
    if width == 0 or height == 0:
        raise FmrError(f"image size {width}x{height} in the header: width and height must be given")
    ppi = _ppcm_to_ppi(xres)
    pos = hdr
    out: list[Template] = []
    for v in range(nviews):
        if pos + VIEW_HEADER_LEN > n:
            raise FmrError(f"truncated record: finger view {v + 1} of {nviews} header is missing")
        fgp, view_imp, fquality, count = struct.unpack_from(">BBBB", data, pos)
        pos += VIEW_HEADER_LEN
        need = count * MINUTIA_LEN
        if pos + need > n:
            raise FmrError(f"absurd minutia count {count} in finger view {v + 1}: needs {need} bytes "
                           f"but only {n - pos} remain (truncated record?)")
        if fgp > 10:
            raise FmrError(f"finger position {fgp} in view {v + 1} is not 0-10")
        minutiae = _decode_minutiae(data, pos, count, width, height, angle_units, v + 1)
        pos += need
        if pos + 2 > n:
            raise FmrError(f"truncated record: extended data length of view {v + 1} is missing")
        ext_len = struct.unpack_from(">H", data, pos)[0]
        pos += 2
        if pos + ext_len > n:
            raise FmrError(f"truncated record: extended data of view {v + 1} says {ext_len} bytes, "
                           f"only {n - pos} remain")
        pos += ext_len  # extended data (ridge counts, cores/deltas) is not used: skipped
        out.append(Template(minutiae=minutiae, width=width, height=height, ppi=ppi,
                            quality=min(fquality, 100), finger_position=fgp,
                            impression_type=view_imp & 0x0F))
    if pos != n:
        raise FmrError(f"bad length: {n - pos} bytes left over after {nviews} finger view(s)")
    return out


def _decode_minutiae(data: bytes, pos: int, count: int, width: int, height: int,
                     angle_units: int, view: int) -> np.ndarray:
    raw = np.frombuffer(data, dtype=[("xt", ">u2"), ("y", ">u2"), ("a", "u1"), ("q", "u1")],
                        count=count, offset=pos)
    type_bits = raw["xt"] >> 14
    x = raw["xt"] & COORD_MAX
    y = raw["y"] & COORD_MAX
    if count:
        if np.any(type_bits == 0b11):
            raise FmrError(f"reserved minutia type 11 in finger view {view}")
        if np.any(x >= width) or np.any(y >= height):
            raise FmrError(f"minutia coordinates out of range in finger view {view}: "
                           f"outside the {width}x{height} image")
        if np.any(raw["a"] >= angle_units):
            raise FmrError(f"minutia angle out of range in finger view {view}: "
                           f"{int(raw['a'].max())} >= {angle_units} units")
    m = np.empty(count, dtype=MINUTIA_DTYPE)
    m["x"] = x
    m["y"] = y
    m["angle"] = raw["a"].astype(np.float64) * (2 * math.pi / angle_units)
    m["kind"] = np.where(type_bits == 0b01, 1, np.where(type_bits == 0b10, 2, 0))
    m["quality"] = np.minimum(raw["q"], 100)
    return m


def _decode_nbis_py_layout(data: bytes) -> list[Template] | None:
    """nbis-py 0.1.3's non-standard ISO layout, or None when the bytes aren't that either.

    magic(8) length(4) 00 00 width(2) height(2) finger(1) view/imp(1) quality(1)
    reserved(4) count(1) minutiae(6 each), nothing after.
    """
    n = len(data)
    if n < 26:
        return None
    count = data[25]
    if n != 26 + MINUTIA_LEN * count:
        return None
    width, height = struct.unpack_from(">HH", data, 14)
    fgp, view_imp, fquality = data[18], data[19], data[20]
    if width == 0 or height == 0 or fgp > 10:
        return None
    try:
        m = _decode_minutiae(data, 26, count, width, height, ISO_ANGLE_UNITS, 1)
    except FmrError:
        return None
    return [Template(minutiae=m, width=width, height=height, ppi=500, quality=min(fquality, 100),
                     finger_position=fgp, impression_type=view_imp & 0x0F)]


def template_size(templates: Iterable[Template]) -> float:
    """Mean ISO record size in bytes of single-view templates (the benchmark's 'template size')."""
    sizes = [len(encode_iso(t)) for t in templates]
    return float(np.mean(sizes)) if sizes else 0.0
