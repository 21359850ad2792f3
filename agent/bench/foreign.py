"""Foreign minutiae records in `fpagent bench accuracy`: what integrators hold.

A folder of NNN_I.iso (or .ist/.ansi/.fmr) ISO/IEC 19794-2 or ANSI 378
records made by another vendor's extractor is scored by our matcher against
itself (foreign vs foreign) and, when the images of the same prints are at
hand, against our own templates of them (ours vs foreign, every ordered pair
of different images). Reported: EER over the extended impostor set, and the
false non-match and false match rates at MATCH_THRESHOLD, the threshold the
appliance uses.

Resampling by header: a record whose header size differs from the image it
came from (the shared SecuGen records were made from images resized to
300x400 whatever their shape) has its coordinates mapped back to the image's
own size (x * W_image / W_header, y * H_image / H_header) and the image's
resolution, so both templates describe the same pixels. Without the images
the header is taken at its word.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np

RECORD_NAME = re.compile(r"^(\d+)_(\d+)\.(iso|ist|ansi|fmr)$", re.IGNORECASE)
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg")


def is_record_folder(folder: pathlib.Path) -> bool:
    return folder.is_dir() and any(RECORD_NAME.match(p.name) for p in folder.iterdir())


def load_records(folder: pathlib.Path) -> dict:
    """{'NNN_I': Template} of the first finger view of every record (FmrError on a bad one)."""
    from fpagent.records import fmr  # noqa: PLC0415

    out = {}
    for p in sorted(folder.iterdir()):
        m = RECORD_NAME.match(p.name)
        if m:
            try:
                out[f"{m.group(1)}_{m.group(2)}"] = fmr.decode(p.read_bytes())[0]
            except fmr.FmrError as exc:
                raise fmr.FmrError(f"{p}: {exc}") from exc
    return out


def prints_folder_for(folder: pathlib.Path) -> pathlib.Path | None:
    """The image folder of the same prints in the shared layout (templates/VENDOR_SET beside
    fingerprints/SET), or None."""
    parts = folder.resolve().name.split("_", 1)
    if len(parts) != 2:
        return None
    candidate = folder.resolve().parent.parent / "fingerprints" / parts[1]
    return candidate if candidate.is_dir() else None


def unstretch(template, width: int, height: int, ppi: int):
    """The template's minutiae mapped from its header's image size to (width, height) at ppi."""
    from fpagent.biometrics.template import Template  # noqa: PLC0415

    m = template.minutiae.copy()
    sx, sy = width / float(template.width), height / float(template.height)
    m["x"] = np.minimum(m["x"] * sx, width - 1)
    m["y"] = np.minimum(m["y"] * sy, height - 1)
    if sx != sy:  # a direction (cos a, sin a) stretches with the coordinates
        a = m["angle"].astype(np.float64)
        m["angle"] = np.mod(np.arctan2(np.sin(a) * sy, np.cos(a) * sx), 2 * np.pi)
    return Template(m, width=width, height=height, ppi=ppi, quality=template.quality,
                    finger_position=template.finger_position, impression_type=template.impression_type)


def rates_at(genuine, impostor, threshold: float) -> tuple[float, float]:
    """(FNMR, FMR) at `threshold` (score >= threshold means 'match')."""
    g = np.asarray(genuine, dtype=np.float64)
    i = np.asarray(impostor, dtype=np.float64)
    return float(np.mean(g < threshold)) if g.size else 0.0, float(np.mean(i >= threshold)) if i.size else 0.0


def cross_pairs(names: list[str]):
    """(genuine, impostor) ordered pairs (a, b) of different images: a's template from one
    extractor, b's from the other."""
    genuine, impostor = [], []
    for a in names:
        for b in names:
            if a != b:
                (genuine if a.split("_")[0] == b.split("_")[0] else impostor).append((a, b))
    return genuine, impostor
