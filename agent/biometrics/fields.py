"""The ridge fields of a 500 ppi fingerprint image, shared by quality scoring and extraction.

`analyse` computes them: local contrast normalisation, the orientation field
from the smoothed gradient structure tensor (its coherence is the
orientation certainty), the ridge period from the ratio of gradient energy
to grey-level variance (for a ridge pattern A*sin(2*pi*x/T): mean |grad|^2 /
variance = (2*pi/T)^2), and the foreground mask, which stops a few pixels
short of blank glass and of the image's edge alike, and leaves out a
textured glass's stripes where a faint print meets them. The block and
half-resolution helpers here are the grid arithmetic both users need.
Everything is numpy (plus the box-filter kernels of
fpagent.biometrics.kernels.boxfilter) on a 500 ppi image; `resample_to_500`
brings other resolutions there.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fpagent.biometrics import portable_math
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
FG_NOISE_FACTOR = 1.5  # ... and a local std above this many times the quietest blocks' (glass noise),
FG_FLOOR_MIN, FG_FLOOR_MAX = 3.0, 6.0  # ... that floor kept within these grey levels
TEXTURE_MIN = 0.3  # the glass has a texture when the background's flow is this coherent overall;
TEXTURE_TOL_DEG = 15.0  # ... a block whose flow is within this of the texture's direction,
TEXTURE_COHERENCE = 0.35  # ... whose orientation certainty is at most this and whose local std
#                           is at most FG_FLOOR_MAX is the glass's texture, not a faint print
BLANK_REL = 0.08  # blank glass: 5x5 grey std below this share of the image's 95th percentile ...
BLANK_MIN_PX = 15  # ... over a patch this wide (~1.7 periods: a dry print's pale patches are narrower)
BLANK_MARGIN = 3  # px of the print kept off blank glass (the 5x5 window's reach, plus one)


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


# --------------------------------------------------------------------------- grid helpers

def blocks(a: np.ndarray, b: int, reduce=np.mean) -> np.ndarray:
    """Reduce each b x b block of a 2-D array to one value (edges replicated)."""
    h, w = a.shape
    hb, wb = -(-h // b), -(-w // b)
    p = np.pad(a, ((0, hb * b - h), (0, wb * b - w)), mode="edge")
    return reduce(p.reshape(hb, b, wb, b), axis=(1, 3))


def upsample_blocks(a: np.ndarray, b: int, shape) -> np.ndarray:
    """A per-block grid back at pixel resolution `shape` (each block value repeated)."""
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


_COS_TEXTURE_TOL = portable_math.cos_sin(2.0 * TEXTURE_TOL_DEG * math.pi / 180.0)[0]


def _glass_texture(fg, s_blk, c_blk, vx_blk, vy_blk) -> np.ndarray:
    """Blocks that are the glass's own texture (stripes of a sensor's rows or columns).

    A textured glass (one flow direction over the whole background, as the column
    stripes of FVC2002 DB3_B's capacitive sensor) shows faint, incoherent "ridges"
    that pass the low floor a faint print needs, at the print's edge: there the
    foreground runs on into the glass. A block along the texture's direction, with
    no more contrast than FG_FLOOR_MAX and a weak flow, is taken for the texture.
    Blocks: fg the candidate foreground, s_blk local std, c_blk orientation
    certainty, (vx_blk, vy_blk) the doubled-angle flow weighted by certainty.

    The TEXTURE_* constants were set before measuring: DB1_B, the tuning split, has
    no textured glass, and none of its sets moves. `fpagent bench accuracy` EER on
    the validation sets, before -> after: DB3_B dry:30+faint:40 16.18% -> 13.93%
    (NBIS 18.77%), faint:20 4.43% -> 4.63%; DB4_B crop:330x360+faint:20 1.78% -> 2.13%,
    dry:30+faint:40 3.20% -> 3.56% (one genuine pair each); the others unchanged.
    """
    bg = ~fg
    out = np.zeros_like(fg)
    if not bg.any():
        return out
    # sums in a fixed order and sqrt, not hypot: the same bits on every CPU (docs/arm64.md)
    tx, ty = math.fsum(vx_blk[bg].tolist()), math.fsum(vy_blk[bg].tolist())
    t = math.sqrt(tx * tx + ty * ty)
    if t <= TEXTURE_MIN * max(math.fsum(c_blk[bg].tolist()), 1e-6):
        return out  # clean glass, or a texture of no one direction
    # cosine of the doubled angle between each block's flow and the texture's
    vx, vy = vx_blk.astype(np.float64), vy_blk.astype(np.float64)
    cos2 = (vx * tx + vy * ty) / (np.sqrt(vx * vx + vy * vy) * t + 1e-9)
    along = cos2 > _COS_TEXTURE_TOL
    return fg & along & (s_blk <= FG_FLOOR_MAX) & (c_blk <= TEXTURE_COHERENCE)


def dilate(m, r=1):
    """Grow a boolean grid by `r` steps of 4-neighbours."""
    out = m.copy()
    for _ in range(r):
        p = np.pad(out, 1)
        out = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return out


def erode(m, r=1):
    """Shrink a boolean grid by `r` steps of 4-neighbours."""
    return ~dilate(~m, r)


def half(a: np.ndarray) -> np.ndarray:
    """2x2 mean (odd edges replicated): the smooth fields are computed at half resolution."""
    h, w = a.shape[-2:]
    if h % 2 or w % 2:
        pad = [(0, 0)] * (a.ndim - 2) + [(0, h % 2), (0, w % 2)]
        a = np.pad(a, pad, mode="edge")
    a = a.astype(np.float32, copy=False)
    return 0.25 * (a[..., ::2, ::2] + a[..., 1::2, ::2] + a[..., ::2, 1::2] + a[..., 1::2, 1::2])


def full(a: np.ndarray, shape) -> np.ndarray:
    """A half-resolution field back at full resolution `shape` (inverse of `half`)."""
    return np.repeat(np.repeat(a, 2, axis=-2), 2, axis=-1)[..., : shape[0], : shape[1]]


# --------------------------------------------------------------------------- analysis

def blank_glass(img: np.ndarray) -> np.ndarray:
    """Where the image holds no texture at all (bool per pixel): empty glass or a blank border.

    Blank glass is uniform, and no darker than the print's middle grey, over
    patches wider than a ridge; a print is never flat over more than a ridge's
    width. Where the two meet, the grey step looks like one strong, perfectly
    coherent ridge edge to every other field, so the fields treat blank glass
    as outside the image: a print on a larger glass (or inside a blank
    border) gives the same minutiae as the same print filling the image.
    """
    m = box_mean(img, 2)
    s = np.sqrt(np.maximum(box_mean(img * img, 2) - m * m, 0.0))
    flat = s < max(BLANK_REL * float(np.percentile(s[::4, ::4], 95)), 1.0)
    # glass reads as the bright side; a flat dark patch is skin (a wet or pressed finger)
    flat = (flat & (m >= float(np.median(img[::4, ::4])))).astype(np.float32)
    r = BLANK_MIN_PX // 2
    core = box_mean(flat, r) > 0.999  # opening: flat over a whole patch ...
    return box_mean(core.astype(np.float32), r) > 1e-3  # ... grown back to its own extent


def _masked_mean(a: np.ndarray, weight: np.ndarray, weight_mean: np.ndarray, r: int) -> np.ndarray:
    """Box mean of `a` over the pixels where weight is 1 (the plain mean where there are none)."""
    num = box_mean(a * weight, r)
    return np.where(weight_mean > 1e-3, num / np.maximum(weight_mean, 1e-3), box_mean(a, r))


def analyse(img500: np.ndarray) -> Fields:
    """Orientation, period, coherence and foreground of a 500 ppi grey image.

    The normalised image is full resolution; the smooth fields (structure
    tensor, flow, period, contrast) are computed on a half-resolution grid,
    4x less work, and repeated back to full resolution.
    """
    img = np.asarray(img500, dtype=np.float32)
    h, w = img.shape
    blank = blank_glass(img)
    # local statistics over the print only: blank glass would pull the mean and
    # the contrast of the print's last ridges towards its own grey
    valid = (~blank).astype(np.float32)
    valid_mean = box_mean(valid, 8)
    mean = _masked_mean(img, valid, valid_mean, 8)
    var = np.maximum(_masked_mean((img - mean) ** 2, valid, valid_mean, 8), 1e-3)
    std = np.sqrt(var)
    normalised = np.clip((mean - img) / (std + 2.0), -3.0, 3.0)

    # gradients of the lightly smoothed image; structure tensor over ~2 periods
    # (none across the step from the print to blank glass: it is not a ridge)
    sm = box_mean(img, 1)
    gx = np.zeros_like(sm)
    gy = np.zeros_like(sm)
    gx[:, 1:-1] = 0.5 * (sm[:, 2:] - sm[:, :-2])
    gy[1:-1, :] = 0.5 * (sm[2:, :] - sm[:-2, :])
    near_blank = box_mean(blank.astype(np.float32), BLANK_MARGIN) > 1e-3
    gx[near_blank] = 0.0
    gy[near_blank] = 0.0
    dev = np.where(near_blank, 0.0, sm - mean).astype(np.float32)
    t = box_mean(half(np.stack([gx * gx, gy * gy, gx * gy, dev * dev])), TENSOR_R // 2)
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
    theta = full(np.mod(phi + np.pi / 2, np.pi).astype(np.float32), (h, w))
    coherence = full(coherence_h.astype(np.float32), (h, w))

    # ridge period from gradient energy / variance (see the module docstring)
    raw_period = 2 * np.pi * np.sqrt(np.maximum(svar, 0) / (energy + 1e-3)) * PERIOD_CORRECTION

    # foreground: enough contrast, a coherent ridge flow and a ridge-like period
    s_blk = blocks(std, 8)
    c_blk = blocks(coherence_h, 4)
    p_blk = blocks(np.minimum(raw_period, 40.0), 4)
    bh, bw = s_blk.shape
    c_blk, p_blk = c_blk[:bh, :bw], p_blk[:bh, :bw]
    ref = max(float(np.percentile(s_blk, 95)), 1e-3)
    # the quietest blocks are the glass's own noise where the image shows glass: a faint
    # print on clean glass is foreground well below the usual floor
    floor = float(np.clip(FG_NOISE_FACTOR * np.percentile(s_blk, 5), FG_FLOOR_MIN, FG_FLOOR_MAX))
    fg = (s_blk > max(FG_CONTRAST_REL * ref, floor)) & (c_blk > FG_COHERENCE) & (p_blk > 3.5) & (p_blk < 20)
    fg &= ~_glass_texture(fg, s_blk, c_blk, blocks(wx * coherence_h, 4)[:bh, :bw],
                          blocks(wy * coherence_h, 4)[:bh, :bw])
    fg = erode(dilate(fg, 1), 1)  # close small gaps
    fg = dilate(erode(fg, 1), 1)  # drop specks
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
    # the image's own edge is where the glass ends: the same margin as at blank glass
    mask = upsample_blocks(fg, 8, (h, w)) & ~near_blank
    mask[:BLANK_MARGIN, :] = mask[-BLANK_MARGIN:, :] = False
    mask[:, :BLANK_MARGIN] = mask[:, -BLANK_MARGIN:] = False

    # smoothed period inside the foreground
    mask_h = upsample_blocks(fg, 4, raw_period.shape)
    pm = np.where(mask_h, np.clip(raw_period, MIN_PERIOD, MAX_PERIOD), 0).astype(np.float32)
    num = box_mean(np.stack([pm, mask_h.astype(np.float32)]), 8)
    median_period = float(np.median(raw_period[mask_h])) if mask_h.any() else 9.0
    period = np.where(num[1] > 1e-3, num[0] / np.maximum(num[1], 1e-3),
                      np.clip(median_period, MIN_PERIOD, MAX_PERIOD)).astype(np.float32)
    period = full(np.clip(period, MIN_PERIOD, MAX_PERIOD), (h, w))
    block_fg = blocks(mask.astype(np.float32), BLOCK) > 0.5
    return Fields(img, normalised.astype(np.float32), std, theta, coherence,
                  period, mask, block_fg, reason)
