"""A picture for people: the print with its foreground, quality map and minutiae drawn over it.

Blocks outside the finger are dimmed; foreground blocks are tinted from red
(poor) through yellow to green (good); ridge endings are red circles and
bifurcations blue squares, each with a tick showing its direction. Pure:
arrays in, a Pillow image out (the command writes it).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from fpagent.biometrics.template import BIFURCATION, RIDGE_ENDING

ENDING_COLOUR = (230, 30, 30)
BIFURCATION_COLOUR = (30, 90, 240)


def _quality_colour(q: float) -> tuple[int, int, int]:
    q = float(np.clip(q, 0, 1))
    if q < 0.5:
        return (230, int(460 * q), 0)  # red -> yellow
    return (int(230 * (2 - 2 * q)), 200, 0)  # yellow -> green


def render(pixels: np.ndarray, extraction=None, quality=None, zoom: int = 2,
           skeleton: bool = False) -> Image.Image:
    """RGB picture of `pixels` (uint8 HxW) with the quality map and the minutiae.

    extraction: an fpagent.biometrics.extraction.Extraction (gives minutiae and quality);
    quality: a QualityReport when there is no extraction (a rejected image).
    """
    px = np.asarray(pixels, dtype=np.uint8)
    h, w = px.shape
    report = extraction.quality if extraction is not None else quality
    base = np.repeat(px[:, :, None], 3, axis=2).astype(np.float32)
    if report is not None and report.block_map.size > 1:
        b = max(1, int(report.block_size))
        qmap = np.repeat(np.repeat(report.block_map, b, 0), b, 1)[:h, :w]
        fg = np.repeat(np.repeat(report.foreground, b, 0), b, 1)[:h, :w]
        qh, qw = qmap.shape
        tint = np.zeros((h, w, 3), dtype=np.float32)
        tint[:qh, :qw] = np.array([_quality_colour(v) for v in np.linspace(0, 1, 101)],
                                  dtype=np.float32)[np.clip((qmap * 100).astype(int), 0, 100)]
        fgm = np.zeros((h, w), dtype=bool)
        fgm[:qh, :qw] = fg
        base[fgm] = 0.8 * base[fgm] + 0.2 * tint[fgm]
        base[~fgm] = 0.6 * base[~fgm] + 0.4 * np.array([40, 40, 70], dtype=np.float32)
    if skeleton and extraction is not None:
        sk = extraction.skeleton.astype(bool)
        if extraction.scale != 1.0:
            sk = np.asarray(Image.fromarray(sk.astype(np.uint8) * 255).resize((w, h))) > 127
        base[sk[:h, :w]] = (0.5 * base[sk[:h, :w]] + 0.5 * np.array([0, 160, 160]))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    img = img.resize((w * zoom, h * zoom), Image.Resampling.NEAREST)
    if extraction is not None:
        draw = ImageDraw.Draw(img)
        r = 3 * zoom
        tick = 9 * zoom
        for m in extraction.template.minutiae:
            x, y = (float(m["x"]) + 0.5) * zoom, (float(m["y"]) + 0.5) * zoom
            a = float(m["angle"])  # ISO: counter-clockwise from +x, y down
            ex, ey = x + tick * math.cos(a), y - tick * math.sin(a)
            colour = BIFURCATION_COLOUR if m["kind"] == BIFURCATION else ENDING_COLOUR
            if m["kind"] == RIDGE_ENDING:
                draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=2)
            else:
                draw.rectangle([x - r, y - r, x + r, y + r], outline=colour, width=2)
            draw.line([x, y, ex, ey], fill=colour, width=2)
    return img
