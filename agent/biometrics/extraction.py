"""Minutiae extraction: grey image -> `Template` (+ quality and the fields for the overlay).

Pipeline (at 500 ppi; other resolutions are resampled and the coordinates
scaled back to the original image):
  1. fields (fpagent.biometrics.fields.analyse): local contrast normalisation, orientation
     from the smoothed gradient structure tensor, ridge period, foreground;
  2. contextual enhancement: Gaussian smoothing along the ridges then a 1-D
     Gabor across them tuned to the local period (fpagent.biometrics.kernels.enhance);
  3. binarisation (sign of the enhanced image) and Zhang-Suen thinning;
  4. minutiae from crossing numbers; a short walk along each branch gives the
     direction and reveals false minutiae, which are removed: border, spurs,
     bridges/holes, short ridges, broken ridges, ridges cut off by the edge
     of the print, clusters;
  5. reliability per minutia (orientation certainty, clarity, distance from
     the border); the MAX_MINUTIAE most reliable are kept (template <= ~400 B).

Angle convention (fpagent.biometrics.template, ISO/IEC 19794-2, same as NBIS mindtct's
ISO output): radians counter-clockwise from +x with y pointing down in the
image. A ridge ending points from the ending into its ridge (along the
ridge body); a bifurcation points from the junction into the valley between
its two branches (away from the stem). Checked against NBIS mindtct on the
shared images: matched minutiae agree within +-30 degrees.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fpagent.biometrics import fields
from fpagent.biometrics.quality import QualityReport, report_from_fields
from fpagent.errors import NoUsableFingerprint
from fpagent.biometrics.kernels import boxfilter, enhance, skeleton, thinning
from fpagent.biometrics.template import BIFURCATION, MINUTIA_DTYPE, RIDGE_ENDING, Template

MAX_MINUTIAE = 60
MIN_MINUTIAE = 4  # fewer than this after cleaning: not a usable fingerprint
# false-minutia rules, in ridge periods (local) or pixels at 500 ppi
SPUR_PERIODS = 1.0  # an ending this close (along the ridge) to another minutia
BRIDGE_PERIODS = 0.9  # two bifurcations joined by a ridge this short
GAP_PERIODS = 1.3  # two endings facing each other across a gap this small
BORDER_PX = 4  # distance from the edge of the foreground
EDGE_PX = 12  # an ending whose ridge would leave the foreground this close was cut off
CLUSTER_PX = 8  # 3+ minutiae within this radius are noise
MIN_RELIABILITY = 0.0  # minutiae less reliable than this are dropped (0..1)
DIR_STEPS = 9  # walk this many pixels along the ridge to tell a minutia's direction

_PERIODS = np.arange(fields.MIN_PERIOD, fields.MAX_PERIOD + 0.01, 0.5)
_ALONG_STEP = 2.0  # along the ridges the signal is smooth: every other pixel is enough
_ALONG = enhance.gaussian_row(sigma=4.0, radius=4, step=_ALONG_STEP)
_ACROSS = enhance.gabor_rows(_PERIODS, sigma=3.2, radius=7)


@dataclasses.dataclass(eq=False)
class Extraction:
    """The template plus what the overlay and the tests look at (500 ppi arrays).

    scale: original-pixel size of one 500 ppi pixel (1.0 at 500 ppi).
    """

    template: Template
    quality: QualityReport
    mask: np.ndarray  # bool, foreground (500 ppi grid)
    theta: np.ndarray  # ridge direction [0, pi) (500 ppi grid)
    skeleton: np.ndarray  # uint8 0/1 ridge skeleton (500 ppi grid)
    enhanced: np.ndarray  # float32 enhanced ridges (positive = ridge)
    scale: float = 1.0

    def __repr__(self) -> str:
        return f"Extraction({self.template!r}, score={self.quality.score})"


def _as_pixels(image, ppi):
    px = getattr(image, "pixels", None)
    if px is not None:
        return np.asarray(px), int(getattr(image, "ppi", ppi)), image
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise NoUsableFingerprint(f"expected a grey image (2-D), got {arr.ndim}-D")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr, int(ppi), None


def _enhance(f: fields.Fields):
    """Contextual filtering; returns (enhanced, clarity 0..1 per pixel)."""
    h, w = f.mask.shape
    # filter the foreground and a band of 8 px around it (the across pass reads it)
    near = fields.full(fields.dilate(f.mask[::2, ::2], 4), (h, w)) | f.mask
    ct, st = np.cos(f.theta).astype(np.float32), np.sin(f.theta).astype(np.float32)
    zero = np.zeros(f.mask.shape, dtype=np.int64)
    along = enhance.line_filter(f.normalised, ct * _ALONG_STEP, st * _ALONG_STEP, zero, near,
                                _ALONG)
    idx = np.clip(np.rint((f.period - fields.MIN_PERIOD) / 0.5), 0, len(_PERIODS) - 1).astype(np.int64)
    # across the ridges: the normal (-sin, cos) of the ridge direction
    out = enhance.line_filter(along, -st, ct, idx, f.mask, _ACROSS)
    e2 = fields.box_mean(fields.half(np.stack([out * out, f.normalised * f.normalised])), 3)
    clarity = fields.full(np.clip(e2[0] / (e2[1] + 1e-3) * 1.6, 0, 1), (h, w))
    return out, clarity


def _looks_like_ridges(f: fields.Fields, clarity: np.ndarray) -> bool:
    """A print's contrast is spread evenly over its area and most of it is a clean ridge pattern.

    Edges in a photo also have a coherent orientation, but their contrast sits
    on the edges alone (uneven local std) and a ridge filter explains little of
    it. On the shared prints the two figures never fail together.
    """
    s = f.std[f.mask][::5]
    evenness = float(np.percentile(s, 25) / max(float(np.percentile(s, 75)), 1e-3))
    clar_blocks = fields.blocks(clarity, fields.BLOCK)[f.block_fg]
    clean_share = float(np.mean(clar_blocks > 0.5)) if clar_blocks.size else 0.0
    return evenness >= 0.45 or clean_share >= 0.15


def _raise(reason: str, quality=None):
    exc = NoUsableFingerprint(f"no usable fingerprint: {reason}; place one finger flat on "
                              "the sensor and capture again")
    exc.quality = quality
    raise exc


def extract(image, ppi: int = 500) -> Extraction:
    """Extract a minutiae template from a grey image (hal.FingerImage or uint8 HxW array).

    Raises NoUsableFingerprint (with .quality set) when the image holds no
    fingerprint: blank, noise, a photo, or too little ridge area.
    """
    pixels, ppi, fimg = _as_pixels(image, ppi)
    if pixels.shape[0] < 32 or pixels.shape[1] < 32:
        _raise(f"image too small ({pixels.shape[1]}x{pixels.shape[0]})")
    img500, scale = fields.resample_to_500(pixels, ppi)
    f = fields.analyse(img500)
    if f.reason:
        _raise(f.reason, report_from_fields(f, scale=scale))
    if f.mask.sum() < 64 * 64:
        _raise("too little ridge area", report_from_fields(f, scale=scale))
    enhanced, clarity = _enhance(f)
    if float(np.median(clarity[f.mask][::5])) < 0.10 or not _looks_like_ridges(f, clarity):
        _raise("no ridge pattern found (edges of a photo or an object, not friction ridges)",
               report_from_fields(f, clarity, scale=scale))
    binary = (enhanced > 0) & f.mask
    skel = thinning.thin(binary.astype(np.uint8))
    minutiae = _minutiae(skel, f, clarity)
    report = report_from_fields(f, clarity, scale=scale, minutiae_count=len(minutiae))
    if len(minutiae) < MIN_MINUTIAE:
        _raise(f"only {len(minutiae)} reliable minutiae found", report)
    h, w = pixels.shape
    if scale != 1.0:  # pixel centres map to pixel centres
        minutiae["x"] = np.clip((minutiae["x"] + 0.5) * scale - 0.5, 0, w - 1)
        minutiae["y"] = np.clip((minutiae["y"] + 0.5) * scale - 0.5, 0, h - 1)
    tpl = Template(
        minutiae=minutiae, width=int(w), height=int(h), ppi=int(ppi), quality=report.score,
        finger_position=int(getattr(fimg, "finger_position", 0) or 0),
        impression_type=int(getattr(fimg, "impression_type", 0) or 0),
    )
    return Extraction(tpl, report, f.mask, f.theta, skel, enhanced, scale)


def assess_quality(pixels, ppi: int = 500) -> QualityReport:
    """Quality of one grey image (uint8 HxW, dark ridges, or a hal.FingerImage) at `ppi`.

    The score uses the ridge clarity from the enhancement and the minutiae
    count, so this runs the whole extraction and equals `extract(...).quality`;
    an image without a usable fingerprint gets score 0 and advice instead of
    an exception.
    """
    image = pixels if hasattr(pixels, "pixels") else np.asarray(pixels)
    try:
        return extract(image, ppi=ppi).quality
    except NoUsableFingerprint as exc:
        report = getattr(exc, "quality", None)
        if report is None:
            report = QualityReport(0, fields.BLOCK, np.zeros((1, 1), np.float32),
                                   np.zeros((1, 1), bool), str(exc))
        report.score = 0  # the gate must refuse it, whatever the fields said
        if not report.advice:
            report.advice = "no usable fingerprint: place one finger flat on the glass"
        return report


# --------------------------------------------------------------------------- minutiae

def _minutiae(skel: np.ndarray, f: fields.Fields, clarity: np.ndarray) -> np.ndarray:
    """Detect, orient, clean and rank minutiae on the skeleton (500 ppi coordinates)."""
    h, w = skel.shape
    cn = skeleton.crossing_numbers(skel)
    # minutia candidates inside the foreground, away from the image border
    inner = f.mask.copy()
    inner[:4, :] = inner[-4:, :] = False
    inner[:, :4] = inner[:, -4:] = False
    ys, xs = np.nonzero(((cn == 1) | (cn >= 3)) & inner)
    kinds = np.where(cn[ys, xs] == 1, RIDGE_ENDING, BIFURCATION).astype(np.uint8)
    # merge bifurcation pixels that touch (one junction drawn as 2-3 pixels)
    keep = np.ones(len(ys), dtype=bool)
    bif = np.nonzero(kinds == BIFURCATION)[0]
    by, bx = ys[bif].astype(np.int32), xs[bif].astype(np.int32)
    touch = (np.abs(by[:, None] - by[None, :]) <= 2) & (np.abs(bx[:, None] - bx[None, :]) <= 2)
    for a, b in zip(*np.nonzero(np.triu(touch, 1))):  # (row-major order: first one wins)
        if keep[bif[a]]:
            keep[bif[b]] = False
    ys, xs, kinds = ys[keep], xs[keep], kinds[keep]
    n = len(ys)
    if n == 0:
        return np.zeros(0, dtype=MINUTIA_DTYPE)
    label = np.zeros((h, w), dtype=np.int32)
    label[ys, xs] = np.arange(1, n + 1, dtype=np.int32)
    period = f.period[ys, xs]
    max_steps = 24
    nbranch, steps, stop, hit, dy, dx = skeleton.trace_branches(
        skel, cn, label, ys.astype(np.int64), xs.astype(np.int64), max_steps, DIR_STEPS)

    alive = np.ones(n, dtype=bool)
    # ridge-level false minutiae, from the walks (every rule only ever kills)
    ending = (kinds == RIDGE_ENDING)[:, None]
    valid = np.arange(4)[None, :] < nbranch[:, None]
    p = period[:, None]
    met = valid & (stop == skeleton.STOP_MINUTIA)
    other_bif = kinds[np.maximum(hit, 0)] == BIFURCATION
    spur = ending & met & (steps <= SPUR_PERIODS * p)  # spur or short ridge: both go
    island = ending & valid & (stop == skeleton.STOP_ENDING) & (steps <= SPUR_PERIODS * p)
    bridge = ~ending & met & other_bif & (steps <= BRIDGE_PERIODS * p)  # bridge or hole
    junction = ~ending & valid & (stop == skeleton.STOP_JUNCTION) & (steps <= 0.8 * p)
    alive[(spur | island | bridge | junction).any(axis=1)] = False
    alive[hit[spur | bridge]] = False
    alive[(kinds == BIFURCATION) & (nbranch != 3)] = False
    alive[(kinds == RIDGE_ENDING) & (nbranch != 1)] = False

    angles = _directions(kinds, ys, xs, nbranch, dy, dx, f.theta)

    # broken ridges: two endings facing each other across a short gap
    end = np.nonzero(alive & (kinds == RIDGE_ENDING))[0]
    if len(end) > 1:
        py, px = ys[end].astype(np.float32), xs[end].astype(np.float32)
        d = np.hypot(py[:, None] - py[None, :], px[:, None] - px[None, :])
        lim = GAP_PERIODS * np.maximum(period[end][:, None], period[end][None, :])
        diff = np.abs((angles[end][:, None] - angles[end][None, :] + np.pi) % (2 * np.pi) - np.pi)
        pairs = np.triu((d <= lim) & (diff > 2 * np.pi / 3), 1)
        for a, b in zip(*np.nonzero(pairs)):  # in order: a pair already broken up is skipped
            i, j = end[a], end[b]
            if alive[i] and alive[j]:
                alive[i] = alive[j] = False

    # border: too close to the edge of the foreground
    # (outside the image is background too)
    integral = _integral(f.mask)
    alive &= _window_share(integral, ys, xs, BORDER_PX) > 0.999
    # ridges cut off by the edge of the print: an ending whose ridge, carried
    # on past the ending, leaves the foreground within EDGE_PX
    if EDGE_PX > 0:
        e = np.nonzero(alive & (kinds == RIDGE_ENDING))[0]
        out_dir = -angles[e].astype(np.float64)  # image angle of the ridge body, y down
        k = np.arange(2, EDGE_PX + 1, 2, dtype=np.float64)[None, :]
        # the ending's angle points into the ridge body: step the opposite way
        py = np.rint(ys[e][:, None] - k * np.sin(out_dir)[:, None]).astype(np.int64)
        px = np.rint(xs[e][:, None] - k * np.cos(out_dir)[:, None]).astype(np.int64)
        inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
        fg = np.zeros(py.shape, dtype=bool)
        fg[inside] = f.mask[py[inside], px[inside]]
        alive[e[~fg.all(axis=1)]] = False

    # clusters: many minutiae in a small area are noise, not ridges
    idx = np.nonzero(alive)[0]
    if len(idx) > 2:
        py, px = ys[idx].astype(np.float32), xs[idx].astype(np.float32)
        d = np.hypot(py[:, None] - py[None, :], px[:, None] - px[None, :])
        close = (d < CLUSTER_PX).sum(axis=1) - 1
        alive[idx[close >= 2]] = False

    idx = np.nonzero(alive)[0]
    # reliability: local orientation certainty x ridge clarity x distance from the border
    deep = _window_share(integral, ys[idx], xs[idx], 20)
    rel = (np.sqrt(np.clip(f.coherence[ys[idx], xs[idx]], 0, 1) * clarity[ys[idx], xs[idx]])
           * (0.5 + 0.5 * deep))
    good = rel >= MIN_RELIABILITY
    if good.sum() >= MIN_MINUTIAE:  # a poor print keeps its best minutiae rather than none
        idx, rel = idx[good], rel[good]
    order = np.argsort(-rel, kind="stable")[:MAX_MINUTIAE]
    idx, rel = idx[order], rel[order]
    out = np.zeros(len(idx), dtype=MINUTIA_DTYPE)
    out["x"] = xs[idx]
    out["y"] = ys[idx]
    out["angle"] = angles[idx]
    out["kind"] = kinds[idx]
    out["quality"] = np.clip(np.rint(rel * 100), 1, 100).astype(np.uint8)
    return out


def _integral(mask: np.ndarray) -> np.ndarray:
    c = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
    c[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int32), axis=1)
    return c


def _window_share(c: np.ndarray, ys, xs, r: int) -> np.ndarray:
    """Share of foreground in the (2r+1)^2 window round each point, from the mask's
    integral image `c` (outside the image counts as background)."""
    h, w = c.shape[0] - 1, c.shape[1] - 1
    y0, y1 = np.clip(ys - r, 0, h), np.clip(ys + r + 1, 0, h)
    x0, x1 = np.clip(xs - r, 0, w), np.clip(xs + r + 1, 0, w)
    return (c[y1, x1] - c[y0, x1] - c[y1, x0] + c[y0, x0]) / float((2 * r + 1) ** 2)


def _directions(kinds, ys, xs, nbranch, dy, dx, theta) -> np.ndarray:
    """Minutia angles (ISO convention), radians [0, 2pi).

    Ridge ending: from the ending into its ridge. Bifurcation: away from the
    stem, into the valley between the two branches (the stem is the branch
    most opposite to the other two). The walk only decides between the two
    senses of the local ridge orientation, which gives the precise angle.
    """
    cy = ys.astype(np.float64)[:, None]
    cx = xs.astype(np.float64)[:, None]
    by, bx = dy[:, :3] - cy, dx[:, :3] - cx  # branch vectors (n, 3)
    nrm = np.hypot(by, bx) + 1e-6
    by, bx = by / nrm, bx / nrm
    # for each branch: its dot product with the sum of the other two
    sy, sx = by.sum(axis=1, keepdims=True), bx.sum(axis=1, keepdims=True)
    opp = by * (sy - by) + bx * (sx - bx)
    stem = np.argmin(opp, axis=1)
    rows = np.arange(len(ys))
    fork_y, fork_x = -by[rows, stem], -bx[rows, stem]  # from the stem towards the fork
    ending = (kinds == RIDGE_ENDING) | (nbranch < 3)
    vy = np.where(ending, by[:, 0], fork_y)  # endings: into the ridge body
    vx = np.where(ending, bx[:, 0], fork_x)
    t = theta[ys, xs].astype(np.float64)
    # snap to the local orientation, keeping the sense of the walk
    flip = np.cos(t) * vx + np.sin(t) * vy < 0
    a_img = np.where(flip, t + np.pi, t)  # angle with y down, clockwise on screen
    return np.mod(-a_img, 2 * np.pi).astype(np.float32)  # ISO: counter-clockwise, y down


def warm_up() -> None:
    """Compile (first run) or load from the cache (later runs) every numba kernel that
    `extract` uses, with the argument types it uses, so the first real extraction
    compiles nothing."""
    rng = np.random.default_rng(0)
    img = rng.random((24, 24), dtype=np.float32)
    one = np.ones((24, 24), dtype=np.float32)
    zero = np.zeros((24, 24), dtype=np.int64)
    mask = np.ones((24, 24), dtype=bool)
    # the foreground mask is a strided view when the image size is not a multiple of 8
    strided_mask = np.ones((24, 32), dtype=bool)[:, :24]
    boxfilter.box_mean(img, 1)  # the fields and the quality blocks
    boxfilter.largest_component(mask)
    for m in (mask, strided_mask):
        enhance.line_filter(img, one, one * 0, zero, m, _ALONG)
        enhance.line_filter(img, one, one * 0, zero, m, _ACROSS)
    skel = thinning.thin((img > 0.5).astype(np.uint8))
    cn = skeleton.crossing_numbers(skel)
    ys, xs = np.nonzero(cn == 1)
    label = np.zeros((24, 24), dtype=np.int32)
    skeleton.trace_branches(skel, cn, label, ys.astype(np.int64), xs.astype(np.int64), 24, 9)
