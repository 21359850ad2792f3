"""Fingerprint image quality: the capture gate's judgement, and the fields extraction reuses.

`assess(pixels, ppi)` answers the officer's question "is this print good
enough, and if not what should the person do?" with a 0-100 score (ranked
like NIST's NFIQ 2, checked by `fpagent bench quality`), a per-block quality
map, the foreground blocks and one line of advice.

The same analysis (`analyse`) is the first half of minutiae extraction: local
contrast normalisation, the orientation field from the smoothed gradient
structure tensor (its coherence is the orientation certainty), the ridge
period from the ratio of gradient energy to grey-level variance (for a ridge
pattern A*sin(2*pi*x/T): mean |grad|^2 / variance = (2*pi/T)^2), and the
foreground mask. Everything here is numpy (plus the box-filter kernels of
fpagent.biometrics.kernels.boxfilter) on a 500 ppi image; `resample_to_500` brings
other resolutions there.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fpagent.biometrics.kernels import boxfilter

TARGET_PPI = 500
BLOCK = 16  # quality map block (pixels at 500 ppi), ~ 1.7 ridge periods
MIN_PERIOD, MAX_PERIOD = 5.0, 15.0  # ridge period limits at 500 ppi (px)
PERIOD_CORRECTION = 0.80  # smoothing/differencing bias and sharp ridge profiles; chosen on FVC2002
TENSOR_R = 8  # structure tensor window radius (px)
FLOW_R = 10  # extra smoothing of the doubled-angle field (px)
FLOW_R2 = 30  # ... and the wider smoothing used where the flow is unclear
FG_CONTRAST_REL = 0.15  # foreground: local std above this share of the image's 95th percentile
FG_COHERENCE = 0.25  # ... and an orientation certainty above this


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

    def __repr__(self) -> str:
        return (f"QualityReport(score={self.score}, advice={self.advice!r}, "
                f"blocks={self.block_map.shape[1]}x{self.block_map.shape[0]})")


# --------------------------------------------------------------------------- filters

def box_mean(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window (edges replicated), for 2-D or stacked (K, H, W) arrays."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if r <= 0:
        return a.copy()
    if a.ndim == 3:
        return np.stack([boxfilter.box_mean(c, r) for c in a])
    return boxfilter.box_mean(a, r)


def resample_to_500(pixels: np.ndarray, ppi: float) -> tuple[np.ndarray, float]:
    """Resample to 500 ppi (Pillow, antialiased); returns (image, scale original/500)."""
    pixels = np.asarray(pixels)
    if abs(float(ppi) - TARGET_PPI) < 5:
        return pixels, 1.0
    from PIL import Image

    scale = float(ppi) / TARGET_PPI
    h, w = pixels.shape
    size = (max(16, int(round(w / scale))), max(16, int(round(h / scale))))
    out = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(out), scale


# --------------------------------------------------------------------------- fields

@dataclasses.dataclass(eq=False)
class Fields:
    """Pixel fields of one 500 ppi image (all HxW float32 unless said)."""

    image: np.ndarray  # grey levels 0..255
    normalised: np.ndarray  # (local mean - grey) / local std: ridges positive, ~unit variance
    std: np.ndarray  # local grey std
    theta: np.ndarray  # ridge direction, radians in [0, pi), image axes (x right, y down)
    coherence: np.ndarray  # orientation certainty 0..1
    period: np.ndarray  # ridge period (px), smoothed and clamped
    mask: np.ndarray  # bool foreground
    block_fg: np.ndarray  # bool per BLOCK
    reason: str  # why the foreground is empty ("" if not)


def _blocks(a: np.ndarray, b: int, reduce=np.mean) -> np.ndarray:
    h, w = a.shape
    hb, wb = -(-h // b), -(-w // b)
    p = np.pad(a, ((0, hb * b - h), (0, wb * b - w)), mode="edge")
    return reduce(p.reshape(hb, b, wb, b), axis=(1, 3))


def _upsample_blocks(a: np.ndarray, b: int, shape) -> np.ndarray:
    return np.repeat(np.repeat(a, b, axis=0), b, axis=1)[: shape[0], : shape[1]]


def _largest_component(m: np.ndarray) -> np.ndarray:
    """Largest 4-connected component of a small boolean grid, holes filled."""
    h, w = m.shape
    out = boxfilter.largest_component(np.ascontiguousarray(m, dtype=np.bool_))
    # fill holes: background not reachable from the grid border
    free = np.pad(~out, 1, constant_values=True)
    # the outside is the free region holding the padding ring (normally the largest)
    outside = boxfilter.largest_component(free)
    if not outside[0, 0]:  # the ring is always connected; guard anyway
        return out
    return ~outside[1:-1, 1:-1]


def _dilate(m, r=1):
    out = m.copy()
    for _ in range(r):
        p = np.pad(out, 1)
        out = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return out


def _erode(m, r=1):
    return ~_dilate(~m, r)


def _half(a: np.ndarray) -> np.ndarray:
    """2x2 mean (odd edges replicated): the smooth fields are computed at half resolution."""
    h, w = a.shape[-2:]
    if h % 2 or w % 2:
        pad = [(0, 0)] * (a.ndim - 2) + [(0, h % 2), (0, w % 2)]
        a = np.pad(a, pad, mode="edge")
    a = a.astype(np.float32, copy=False)
    return 0.25 * (a[..., ::2, ::2] + a[..., 1::2, ::2] + a[..., ::2, 1::2] + a[..., 1::2, 1::2])


def _full(a: np.ndarray, shape) -> np.ndarray:
    return np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)[..., : shape[0], : shape[1]]


def analyse(img500: np.ndarray) -> Fields:
    """Orientation, period, coherence and foreground of a 500 ppi grey image.

    The normalised image is full resolution; the smooth fields (structure
    tensor, flow, period, contrast) are computed on a half-resolution grid,
    4x less work, and repeated back to full resolution.
    """
    img = np.asarray(img500, dtype=np.float32)
    h, w = img.shape
    mean = box_mean(img, 8)
    var = np.maximum(box_mean((img - mean) ** 2, 8), 1e-3)
    std = np.sqrt(var)
    normalised = np.clip((mean - img) / (std + 2.0), -3.0, 3.0)

    # gradients of the lightly smoothed image; structure tensor over ~2 periods
    sm = box_mean(img, 1)
    gx = np.zeros_like(sm)
    gy = np.zeros_like(sm)
    gx[:, 1:-1] = 0.5 * (sm[:, 2:] - sm[:, :-2])
    gy[1:-1, :] = 0.5 * (sm[2:, :] - sm[:-2, :])
    t = box_mean(_half(np.stack([gx * gx, gy * gy, gx * gy, (sm - mean) ** 2])), TENSOR_R // 2)
    jxx, jyy, jxy, svar = t[0], t[1], t[2], t[3]
    energy = jxx + jyy
    vx, vy = jxx - jyy, 2 * jxy
    coherence_h = np.sqrt(vx * vx + vy * vy) / (energy + 1e-3)
    # smooth the doubled-angle vectors further so the flow is stable in noisy
    # areas, adaptively: a small window where the flow is clear (keeps the core
    # and deltas sharp), a large one where it is not (scars, creases, noise)
    sv = box_mean(np.stack([vx, vy, np.sqrt(vx * vx + vy * vy)]), FLOW_R // 2)
    svl = box_mean(sv[:2], FLOW_R2 // 2) if FLOW_R2 else sv[:2]
    clear = np.hypot(sv[0], sv[1]) / (sv[2] + 1e-3)  # 1 = all gradients agree
    norm_s = np.hypot(sv[0], sv[1]) + 1e-6
    norm_l = np.hypot(svl[0], svl[1]) + 1e-6
    wx = clear * sv[0] / norm_s + (1 - clear) * svl[0] / norm_l
    wy = clear * sv[1] / norm_s + (1 - clear) * svl[1] / norm_l
    phi = 0.5 * np.arctan2(wy, wx)  # gradient direction (across ridges)
    theta = _full(np.mod(phi + np.pi / 2, np.pi).astype(np.float32), (h, w))
    coherence = _full(coherence_h.astype(np.float32), (h, w))

    # ridge period from gradient energy / variance (see the module docstring)
    raw_period = 2 * np.pi * np.sqrt(np.maximum(svar, 0) / (energy + 1e-3)) * PERIOD_CORRECTION

    # foreground: enough contrast, a coherent ridge flow and a ridge-like period
    s_blk = _blocks(std, 8)
    c_blk = _blocks(coherence_h, 4)
    p_blk = _blocks(np.minimum(raw_period, 40.0), 4)
    bh, bw = s_blk.shape
    c_blk, p_blk = c_blk[:bh, :bw], p_blk[:bh, :bw]
    ref = max(float(np.percentile(s_blk, 95)), 1e-3)
    fg = (s_blk > max(FG_CONTRAST_REL * ref, 6.0)) & (c_blk > FG_COHERENCE) & (p_blk > 3.5) & (p_blk < 20)
    fg = _erode(_dilate(fg, 1), 1)  # close small gaps
    fg = _dilate(_erode(fg, 1), 1)  # drop specks
    reason = ""
    if fg.sum() < 12:
        if ref < 6.0:
            reason = "the image is blank (no contrast)"
        elif float(np.median(c_blk)) < 0.25:
            reason = "no ridge pattern found (the image looks like noise)"
        else:
            reason = "no ridge pattern of fingerprint size found"
        fg = np.zeros_like(fg)
    else:
        fg = _largest_component(fg)
    mask = _upsample_blocks(fg, 8, (h, w))

    # smoothed period inside the foreground
    mask_h = _upsample_blocks(fg, 4, raw_period.shape)
    pm = np.where(mask_h, np.clip(raw_period, MIN_PERIOD, MAX_PERIOD), 0).astype(np.float32)
    num = box_mean(np.stack([pm, mask_h.astype(np.float32)]), 8)
    median_period = float(np.median(raw_period[mask_h])) if mask_h.any() else 9.0
    period = np.where(num[1] > 1e-3, num[0] / np.maximum(num[1], 1e-3),
                      np.clip(median_period, MIN_PERIOD, MAX_PERIOD)).astype(np.float32)
    period = _full(np.clip(period, MIN_PERIOD, MAX_PERIOD), (h, w))
    block_fg = _blocks(mask.astype(np.float32), BLOCK) > 0.5
    return Fields(img, normalised.astype(np.float32), std, theta, coherence,
                  period, mask, block_fg, reason)


# --------------------------------------------------------------------------- scoring

ADVICE_BELOW = 35  # the capture gate's default minimum (config quality.min_score)


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
    if clarity < 0.3:  # broken, patchy ridges
        return "finger too dry: moisten it slightly and press a little harder"
    if grey < 100 and (contrast < 20 or clarity < 0.5):
        return "finger too wet: dry it and capture again"
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
    coh_b = _blocks(f.coherence, BLOCK)
    if clarity is None:
        clarity = np.clip(f.coherence, 0, 1)
    clar_b = _blocks(clarity, BLOCK)
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
    # The score multiplies the usable area (good blocks), the mean block quality,
    # the ridge clarity and the minutiae count, then saturates; the form and the
    # constants were chosen so that it ranks the shared FVC2002 sets like NFIQ 2
    # (Spearman 0.76-0.82 per set, `fpagent bench quality`) on the same scale.
    m_term = 1.0 if minutiae_count is None else math.sqrt(max(minutiae_count, 1) / 30.0)
    contrast = float(np.median(f.std[f.mask][::5]))
    c_term = min(1.0, contrast / 15.0) ** 2  # faint or blurred ridges (the shared sets: >= 17)
    x = good_blocks / 100.0 * float(block_q[block_fg].mean()) * rc * m_term * c_term
    score = int(np.clip(round(100.0 * (1.0 - math.exp(-x / 2.2))), 1, 100))

    # advice for the officer, most useful first
    advice = _advice(f, usable, contrast, rc) if score < ADVICE_BELOW else ""
    return QualityReport(
        score=score, block_size=int(round(BLOCK * scale)), block_map=block_q,
        foreground=block_fg, advice=advice, orientation_certainty=oc, ridge_clarity=rc,
        ridge_period=period * scale, usable_area=usable, contrast=contrast,
        minutiae_count=minutiae_count,
    )


def assess(pixels, ppi: int = 500) -> QualityReport:
    """Quality of one grey image (uint8 HxW, dark ridges, or a hal.FingerImage) at `ppi`.

    Runs the extraction pipeline (the score uses the ridge clarity from the
    enhancement and the minutiae count), so it equals
    `fpagent.biometrics.extraction.extract(...).quality`; an image without a usable
    fingerprint gets score 0 and advice instead of an exception.
    """
    from fpagent.biometrics import extraction  # extraction imports this module
    from fpagent.errors import NoUsableFingerprint

    image = pixels if hasattr(pixels, "pixels") else np.asarray(pixels)
    try:
        return extraction.extract(image, ppi=ppi).quality
    except NoUsableFingerprint as exc:
        report = getattr(exc, "quality", None)
        if report is None:
            report = QualityReport(0, BLOCK, np.zeros((1, 1), np.float32),
                                   np.zeros((1, 1), bool), str(exc))
        report.score = 0  # the gate must refuse it, whatever the fields said
        if not report.advice:
            report.advice = "no usable fingerprint: place one finger flat on the glass"
        return report
