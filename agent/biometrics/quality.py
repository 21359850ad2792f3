"""Fingerprint image quality: the capture gate's judgement from the ridge fields.

`report_from_fields` answers the officer's question "is this print good
enough, and if not what should the person do?" with a 0-100 score (ranked
like NIST's NFIQ 2, checked by `fpagent bench quality`), a per-block quality
map, the foreground blocks and one line of advice. It reads the fields of
fpagent.biometrics.fields and, when extraction has run, the ridge clarity of
the enhancement and the minutiae count; `fpagent.biometrics.extraction`
calls it, and its `assess_quality(pixels, ppi)` is the one-call assessment
of an image.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fpagent.biometrics.fields import BLOCK, Fields, blocks


@dataclasses.dataclass(eq=False)
class QualityReport:
    """What the capture gate and the officer need to know about one image.

    score: 0 (no usable print) .. 100 (excellent). block_map: quality 0..1 of
    each BLOCK x BLOCK block (0 outside the finger); foreground: bool per
    block. advice: one short instruction for the officer, "" when the print
    is good. The component figures are what the score is made of.
    """

    score: int
    block_size: int
    block_map: np.ndarray
    foreground: np.ndarray
    advice: str
    orientation_certainty: float = 0.0  # mean coherence of the ridge flow, 0..1
    ridge_clarity: float = 0.0  # share of the signal that is a clean ridge pattern, 0..1
    ridge_period: float = 0.0  # median ridge period, pixels at the original resolution
    usable_area: float = 0.0  # foreground share of the image, 0..1
    contrast: float = 0.0  # median local grey-level std in the foreground
    minutiae_count: int | None = None  # when extraction ran
    terms: dict | None = None  # the score's terms (score_terms), what `bench quality --fit` fits

    def __repr__(self) -> str:
        return (f"QualityReport(score={self.score}, advice={self.advice!r}, "
                f"blocks={self.block_map.shape[1]}x{self.block_map.shape[0]})")


# --------------------------------------------------------------------------- scoring

ADVICE_BELOW = 35  # the capture gate's default minimum (config quality.min_score)

# The score multiplies its terms, each raised to its weight, then saturates:
# 100 * (1 - exp(-x / SCALE)). The weights rank the prints like NIST's NFIQ 2,
# the scale puts the median print at NFIQ 2's median; both were fitted on the
# tuning split only (fpagent.bench.splits) by `fpagent bench quality --fit`.
WEIGHTS = {"area": 1.5, "blocks": 0.5, "clarity": 0.5, "minutiae": 0.5, "contrast": 2.0}
SCALE = 3.11


def score_terms(good_blocks: float, block_quality: float, clarity: float, minutiae: int,
                contrast: float) -> dict:
    """The score's terms, each about 0..1 on a good print.

    area: good blocks / 100; blocks: the mean block quality; clarity: the ridge
    clarity; minutiae: count / 30; contrast: median local std / 15, capped at 1
    (faint or blurred ridges; the shared sets are >= 17).
    """
    return {"area": good_blocks / 100.0, "blocks": block_quality, "clarity": clarity,
            "minutiae": max(minutiae, 1) / 30.0, "contrast": min(1.0, contrast / 15.0)}


def raw_score(terms: dict, weights: dict | None = None) -> float:
    """The product of the terms raised to their weights (before saturation)."""
    weights = WEIGHTS if weights is None else weights
    x = 1.0
    for name, w in weights.items():
        x *= max(terms[name], 1e-9) ** w
    return x


def score_from_terms(terms: dict, weights: dict | None = None, scale: float | None = None) -> int:
    """The 1..100 score of a print with usable foreground."""
    x = raw_score(terms, weights)
    return int(np.clip(round(100.0 * (1.0 - math.exp(-x / (SCALE if scale is None else scale)))), 1, 100))


def _advice(f: Fields, usable: float, contrast: float, clarity: float) -> str:
    """One instruction for the officer about a poor capture, most likely cause first.

    Wet fingers print dark, with ridges run together (little contrast); dry
    ones print pale and broken (little ridge clarity); a finger off the
    glass's centre leaves a small print away from the middle; light pressure
    leaves a small or faint one.
    """
    h, w = f.image.shape
    if usable < 0.02:
        grey_all = float(np.median(f.image[::3, ::3]))
        if grey_all < 70:
            return "finger too wet (the image is dark): dry it and capture again"
        return "no finger found on the glass: place the finger flat and press gently"
    grey = float(np.median(f.image[f.mask][::5]))
    if grey < 100 and (contrast < 20 or clarity < 0.5):  # dark: wet, however patchy
        return "finger too wet: dry it and capture again"
    if clarity < 0.3:  # broken, patchy ridges
        return "finger too dry: moisten it slightly and press a little harder"
    if grey > 150 and clarity < 0.45:
        return "finger too dry: moisten it slightly and press a little harder"
    if contrast < 18:
        return "press a little harder"
    if usable < 0.3:
        ys, xs = np.nonzero(f.mask[::4, ::4])
        cy, cx = 4 * ys.mean() / h, 4 * xs.mean() / w
        if abs(cx - 0.5) > 0.15 or abs(cy - 0.5) > 0.15:
            return "place the finger in the centre of the glass"
        return "press the finger flat on the glass (too little of it touches)"
    return "capture again: the finger flat and still on clean glass"


def report_from_fields(f: Fields, clarity: np.ndarray | None = None, scale: float = 1.0,
                       minutiae_count: int | None = None) -> QualityReport:
    """Score, block map and advice from the fields (and the enhancement clarity, if known).

    clarity: per-pixel share (0..1) of the normalised signal that the ridge
    filter explains; without it the coherence stands in for it.
    """
    h, w = f.image.shape
    block_fg = f.block_fg
    coh_b = blocks(f.coherence, BLOCK)
    if clarity is None:
        clarity = np.clip(f.coherence, 0, 1)
    clar_b = blocks(clarity, BLOCK)
    block_q = np.clip(np.sqrt(np.clip(coh_b, 0, 1) * np.clip(clar_b, 0, 1)) * 1.25, 0, 1)
    block_q = np.where(block_fg, block_q, 0.0).astype(np.float32)
    n_fg = int(block_fg.sum())
    usable = float(f.mask.mean())
    if n_fg == 0:
        return QualityReport(0, int(round(BLOCK * scale)), block_q, block_fg,
                             _advice(f, 0.0, 0.0, 0.0), usable_area=0.0,
                             minutiae_count=minutiae_count)
    oc = float(coh_b[block_fg].mean())
    rc = float(clar_b[block_fg].mean())
    good_blocks = float((block_q[block_fg] > 0.55).sum())
    period = float(np.median(f.period[f.mask][::5]))
    m_count = 30 if minutiae_count is None else minutiae_count
    contrast = float(np.median(f.std[f.mask][::5]))
    terms = score_terms(good_blocks, float(block_q[block_fg].mean()), rc, m_count, contrast)
    score = score_from_terms(terms)

    # advice for the officer, most useful first
    advice = _advice(f, usable, contrast, rc) if score < ADVICE_BELOW else ""
    return QualityReport(
        score=score, block_size=int(round(BLOCK * scale)), block_map=block_q,
        foreground=block_fg, advice=advice, orientation_certainty=oc, ridge_clarity=rc,
        ridge_period=period * scale, usable_area=usable, contrast=contrast,
        minutiae_count=minutiae_count, terms=terms,
    )
