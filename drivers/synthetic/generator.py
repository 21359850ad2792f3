"""Seeded synthetic fingerprints in the manner of SFinGe (Cappelli, Maio, Maltoni).

Why: the demo, load tests and large-gallery benchmarks need fingerprints, and
neither a user's machine nor CI should need a real person's prints or any data
from outside the project. Everything here is pure numpy and deterministic.

Two stages, as in SFinGe:

1. A *master finger* from (seed, person, finger): a pattern class drawn with
   realistic frequencies, core and delta positions for that class, an
   orientation field from them (Sherlock-Monro zero-pole model with a
   Vizcaya-Gerhardt style piecewise-linear correction per singularity, plus a
   smooth random wander so no two fingers of a class flow alike), a
   ridge-period map (about 9 px at 500 ppi, gently varying, and closing up
   where the flow converges as skin conserves ridges), a fingertip-shaped
   silhouette, and a ridge pattern grown from sparse random noise by iterated
   contextual Gabor filtering (an analytic Gabor bank applied through the FFT).
   Minutiae are not placed: they arise where the grown ridge systems meet.
   About 0.35 s of CPU per master, 15 ms per 288x256 impression: fast enough
   in numpy, so there is no Numba kernel here.
2. *Impressions* of a master: displacement, rotation, non-linear elastic skin
   distortion (Cappelli's rigid-core / braked-periphery model), pressure and
   dryness, partial contact, sensor noise, background and contrast. Dark ridges
   on a light background as an optical sensor gives, 8-bit, 500 ppi.

Coordinates: x = column, y = row (down). Orientations are ridge *tangent*
angles in radians in [0, pi), measured from +x towards +y (image convention).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

PPI = 500

# Henry classes with their frequencies in the population (Wilson, Candela &
# Watson 1994, as used by SFinGe): arch 3.7%, tented arch 2.9%, left loop 33.8%,
# right loop 31.7%, whorl 27.9%.
PATTERN_CLASSES = ("arch", "tented_arch", "left_loop", "right_loop", "whorl")
CLASS_FREQUENCIES = (0.037, 0.029, 0.338, 0.317, 0.279)
ULNAR_SHARE = 0.85  # of loops on a known finger, those opening towards the little finger

# The master canvas: a whole fingertip at 500 ppi (about 22 x 19 mm). Output
# images are windows of it, so 288x256 is a partial print like a small UART
# sensor gives, and 400x400 shows the whole tip with background around it.
MASTER_SHAPE = (448, 384)

# Master finger tuning. The values were chosen by looking at the prints and by
# NBIS (mindtct + bozorth3) scores against real FVC2002 DB1_B prints in
# `fpagent bench synthetic`; changing them changes every synthetic image.
#
# Orientation field
ORIENTATION_CORRECTION = 0.35  # rad, per control point of a singularity's g(alpha)
ORIENTATION_WANDER = 0.6  # rad, amplitude of the smooth random orientation term
WANDER_CELLS = 3  # its scale: cells across the canvas height
LOOP_DELTA_DX = (30, 150)  # px, delta offset from the core of a loop (sideways)
LOOP_DELTA_DY = (50, 180)  # px, (downwards)
# Ridge period
PERIOD_RANGE = (8.0, 10.2)  # px, a finger's mean ridge period (people differ)
PERIOD_VARIATION = 0.07  # relative amplitude of the smooth ridge-period wander
PERIOD_CELLS = 6  # its scale: cells across the canvas height
FLUX_STRENGTH = 0.5  # how far the skin goes towards conserving ridges (1 = fully)
FLUX_ADAPTATION = 0.2  # max |ln| change of the period from ridge conservation
# Ridge growth. The Gabor bank is tuned to quantised orientations x periods;
# each pixel mixes the responses of its two nearest orientations and periods.
_N_ORIENTATIONS = 12
_BANK_PERIODS = (7.0, 9.0, 11.5)  # px; the period map is clipped to this range
_SIGMA_NORMAL = 3.6  # px, Gaussian envelope across ridges
_SIGMA_TANGENT = 4.6  # px, and along them (elongated: smooth, continuous ridges)
GROWTH_ITERATIONS = 7
SEED_DENSITY = 1.0 / 700.0  # random seeds per px of the fingertip
_GROWTH_GAIN = 2.0  # times the local mean |response|: saturates, a soft binarisation
# Impression rendering
TEXTURE = 0.25  # skin texture noise added to the ridge field
PRESSURE_PX = 1.5  # px of ridge-width change per side at the extreme pressures
PRESSURE_SD = 0.35  # spread of pressure between impressions (+-1: very wet / very dry)
NOISE_SCALE = 1.0  # multiplies the sensor noise drawn per impression


# ----------------------------------------------------------------------------
# master finger
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class MasterFinger:
    """One synthetic finger: everything an impression is rendered from.

    `ridges` is float32 in [-1, 1] over the master canvas, > 0 on ridges.
    `cores` and `deltas` are (k, 2) arrays of (x, y) in master pixels.
    """

    seed: int
    person: int
    finger: int
    pattern: str
    cores: np.ndarray
    deltas: np.ndarray
    orientation: np.ndarray  # float16 HxW, ridge tangent angle in [0, pi)
    period: np.ndarray  # float16 HxW, ridge period in px
    mask: np.ndarray  # bool HxW, fingertip silhouette
    ridges: np.ndarray  # float32 HxW in [-1, 1]
    center: tuple[float, float]  # (x, y) of the silhouette's centre

    @property
    def shape(self) -> tuple[int, int]:
        return self.ridges.shape

    def __repr__(self) -> str:  # never dump arrays
        return (
            f"MasterFinger(seed={self.seed}, person={self.person}, finger={self.finger}, "
            f"pattern={self.pattern!r}, cores={len(self.cores)}, deltas={len(self.deltas)})"
        )


def _check_index(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


# Stream tags keep the random streams for master and impressions independent.
_MASTER_STREAM = 0x4D41
_IMPRESSION_STREAM = 0x494D


def class_frequencies(finger: int | None = None) -> np.ndarray:
    """Pattern class probabilities for a finger position (FGP 1-10), else the population's.

    Loops mostly open towards the little finger (ulnar loops): on the right
    hand (FGP 1-5) that is a right loop in the image, on the left hand
    (FGP 6-10) a left loop. The other classes keep their population share.
    """
    p = np.asarray(CLASS_FREQUENCIES, dtype=float)
    if finger is not None and 1 <= int(finger) <= 10:
        loops = p[2] + p[3]
        ulnar, radial = ULNAR_SHARE * loops, (1.0 - ULNAR_SHARE) * loops
        p[2], p[3] = (radial, ulnar) if int(finger) <= 5 else (ulnar, radial)
    return p / p.sum()


def choose_pattern(rng: np.random.Generator, finger: int | None = None) -> str:
    """A Henry pattern class drawn with realistic frequencies (for the finger, if given)."""
    p = class_frequencies(finger)
    return PATTERN_CLASSES[int(rng.choice(len(PATTERN_CLASSES), p=p))]


def singular_points(
    pattern: str, center: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Core and delta positions (x, y) typical of `pattern` around `center`.

    A left loop's ridges enter and leave on the left, so its delta lies to the
    lower right of the core; a right loop is the mirror image.
    """
    cx, cy = center
    u = rng.uniform
    if pattern == "arch":
        return np.zeros((0, 2)), np.zeros((0, 2))
    if pattern == "tented_arch":
        core = (cx + u(-20, 20), cy + u(-50, 0))
        delta = (core[0] + u(-8, 8), core[1] + u(55, 85))
        return np.array([core]), np.array([delta])
    if pattern in ("left_loop", "right_loop"):
        side = 1.0 if pattern == "left_loop" else -1.0
        core = (cx - side * u(0, 30), cy + u(-60, 10))
        delta = (core[0] + side * u(*LOOP_DELTA_DX), core[1] + u(*LOOP_DELTA_DY))
        return np.array([core]), np.array([delta])
    if pattern == "whorl":
        gap = u(15, 40)
        tilt = u(-0.6, 0.6)
        mx, my = cx + u(-20, 20), cy + u(-50, 0)
        dx, dy = 0.5 * gap * np.sin(tilt), 0.5 * gap * np.cos(tilt)
        cores = np.array([(mx - dx, my - dy), (mx + dx, my + dy)])
        deltas = np.array(
            [
                (mx - u(90, 130), my + u(80, 130)),
                (mx + u(90, 130), my + u(80, 130)),
            ]
        )
        return cores, deltas
    raise ValueError(f"unknown pattern class {pattern!r}")


def _corrected_arg(angle: np.ndarray, correction: np.ndarray | None) -> np.ndarray:
    """Vizcaya-Gerhardt style g(alpha): piecewise linear through 8 control angles.

    `correction` holds the 8 offsets g(alpha_i) - alpha_i at alpha_i = -pi + i*pi/4;
    g is continued periodically (g(a + 2pi) = g(a) + 2pi). None means g(a) = a.
    """
    if correction is None:
        return angle
    corr = np.asarray(correction, dtype=float)
    if corr.shape != (8,):
        raise ValueError("a singularity correction has 8 control offsets")
    knots = -np.pi + np.arange(9) * (np.pi / 4)
    offsets = np.append(corr, corr[0])  # g(pi) - pi == g(-pi) + pi
    return angle + np.interp(angle, knots, offsets)


def orientation_field(
    shape: tuple[int, int],
    cores,
    deltas,
    theta_inf: float = 0.0,
    core_corrections=None,
    delta_corrections=None,
) -> np.ndarray:
    """Sherlock-Monro zero-pole orientation model (with optional corrections).

        theta(z) = theta_inf + 1/2 * (sum_d g_d(arg(z - d)) - sum_c g_c(arg(z - c)))

    with z = x + i*y in image coordinates (y down). Returns the ridge tangent
    angle mod pi as float64 HxW in [0, pi).
    """
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(float)
    theta = np.full(shape, float(theta_inf))
    for k, (px, py) in enumerate(np.asarray(deltas, dtype=float).reshape(-1, 2)):
        corr = None if delta_corrections is None else delta_corrections[k]
        theta -= 0.5 * _corrected_arg(np.arctan2(y - py, x - px), corr)
    for k, (px, py) in enumerate(np.asarray(cores, dtype=float).reshape(-1, 2)):
        corr = None if core_corrections is None else core_corrections[k]
        theta += 0.5 * _corrected_arg(np.arctan2(y - py, x - px), corr)
    return np.mod(theta, np.pi)


def arch_orientation(
    shape: tuple[int, int], center: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """A plain arch: ridges cross the finger with a hump that flattens downwards."""
    h, w = shape
    cx, cy = center
    y, x = np.mgrid[0:h, 0:w].astype(float)
    width = rng.uniform(60, 100)  # px, half-width of the hump
    height = rng.uniform(90, 150)  # px, hump height at the top
    top, bottom = cy - rng.uniform(140, 180), cy + rng.uniform(60, 110)
    depth = np.clip((bottom - y) / (bottom - top), 0.0, 1.0) ** 1.5
    g = np.exp(-(((x - cx) / width) ** 2))
    # ridge curve y = y0 - a*g(x): dy/dx = a * 2 (x - cx) / width^2 * g
    slope = height * depth * 2.0 * (x - cx) / width**2 * g
    return np.mod(np.arctan(slope), np.pi)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random field in about [-1, 1]: a coarse grid, bicubically upsampled."""
    h, w = shape
    gh, gw = cells + 3, max(2, int(round(cells * w / h))) + 3
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw))
    ys = 1.0 + np.linspace(0, gh - 3.0001, h)
    xs = 1.0 + np.linspace(0, gw - 3.0001, w)
    return _cubic_resample(grid, ys, xs)


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Catmull-Rom weights for the 4 neighbours at fractional offset t."""
    t2, t3 = t * t, t * t * t
    return np.stack(
        [
            -0.5 * t3 + t2 - 0.5 * t,
            1.5 * t3 - 2.5 * t2 + 1.0,
            -1.5 * t3 + 2.0 * t2 + 0.5 * t,
            0.5 * t3 - 0.5 * t2,
        ]
    )


def _cubic_resample(grid: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
    wy, wx = _cubic_weights(ys - iy), _cubic_weights(xs - ix)
    rows = sum(wy[k][:, None] * grid[iy - 1 + k, :] for k in range(4))
    return sum(wx[k][None, :] * rows[:, ix - 1 + k] for k in range(4))


def fingertip_mask(
    shape: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """A fingertip silhouette: a rounded top, straight sides, a flatter bottom.

    Returns (mask, rho, center): rho is 0 at the centre and 1 on the outline
    (used for contact fall-off), center is (x, y).
    """
    h, w = shape
    cx = w / 2 + rng.uniform(-8, 8)
    half_w = rng.uniform(118, 150)
    top_h = rng.uniform(135, 175)  # rounded top (half-ellipse)
    bottom_h = rng.uniform(150, 200)  # flatter bottom
    cy = min(h - bottom_h * 0.85, top_h + rng.uniform(20, 40))
    y, x = np.mgrid[0:h, 0:w].astype(float)
    dx = (x - cx) / half_w
    dy = np.where(y < cy, (y - cy) / top_h, (y - cy) / bottom_h)
    # superellipse: a squarer bottom, as a finger pressed on glass looks
    exponent = np.where(y < cy, 2.0, 3.0)
    wobble = 1.0 + 0.03 * smooth_noise(rng, shape, 3)
    rho = (np.abs(dx) ** exponent + np.abs(dy) ** exponent) ** (1.0 / exponent) / wobble
    return rho < 1.0, rho, (cx, cy)


def ridge_period_map(
    shape: tuple[int, int],
    center: tuple[float, float],
    rng: np.random.Generator,
    orientation: np.ndarray | None = None,
) -> np.ndarray:
    """Ridge period in px: about 9 at 500 ppi, a little finer towards the tip,
    and (given the orientation field) closer where the flow converges."""
    h, _ = shape
    base = rng.uniform(*PERIOD_RANGE)
    y = np.arange(h, dtype=float)[:, None]
    gradient = -0.05 * np.clip((center[1] - y) / 150.0, -1.0, 1.0)  # finer at the top
    variation = PERIOD_VARIATION * smooth_noise(rng, shape, PERIOD_CELLS)
    period = base * (1.0 + gradient + variation)
    if orientation is not None and FLUX_ADAPTATION > 0:
        log_spacing = flux_log_spacing(orientation)
        log_spacing = np.clip(
            FLUX_STRENGTH * (log_spacing - np.median(log_spacing)), -FLUX_ADAPTATION, FLUX_ADAPTATION
        )
        period = period * np.exp(log_spacing)
    return np.clip(period, _BANK_PERIODS[0], _BANK_PERIODS[-1]).astype(np.float32)


def flux_log_spacing(
    orientation: np.ndarray, cell: int = 8, smoothing: float = 0.3, iterations: int = 300
) -> np.ndarray:
    """log of the ridge spacing that conserves ridges along the flow, up to a constant.

    Ridges neither start nor stop where the spacing h obeys t . grad(ln h) = div t
    (t: unit ridge tangent): where the flow converges the ridges close up
    instead of ending in a row of minutiae at the same places in every finger
    of a class. Solved in the least-squares sense with a smoothness term, by
    gradient descent on a coarse grid; every term is invariant to the sign of
    t, so the orientation's pi-ambiguity does no harm. Returns HxW float32.
    """
    h, w = orientation.shape
    gh, gw = h // cell, w // cell
    doubled = np.exp(2j * orientation[: gh * cell, : gw * cell].astype(np.float64))
    theta = 0.5 * np.angle(doubled.reshape(gh, cell, gw, cell).mean(axis=(1, 3)))
    c, s = np.cos(2 * theta), np.sin(2 * theta)
    c_y, c_x = np.gradient(c)
    s_y, s_x = np.gradient(s)
    theta_x = 0.5 * (c * s_x - s * c_x) / cell  # grad(theta) from the smooth doubled angle
    theta_y = 0.5 * (c * s_y - s * c_y) / cell
    tx, ty = np.cos(theta), np.sin(theta)
    divergence = np.clip(-ty * theta_x + tx * theta_y, -0.03, 0.03)  # tame the singular points
    phi = np.zeros((gh, gw))
    step = 20.0
    for _ in range(iterations):
        phi_y, phi_x = np.gradient(phi)
        residual = (tx * phi_x + ty * phi_y) / cell - divergence
        back = np.gradient(tx * residual, axis=1) + np.gradient(ty * residual, axis=0)
        padded = np.pad(phi, 1, mode="edge")
        laplacian = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * phi
        phi -= step * (-back / cell - smoothing * laplacian / cell**2)
    ys = np.clip((np.arange(h) + 0.5) / cell - 0.5, 0, gh - 1.0001)
    xs = np.clip((np.arange(w) + 0.5) / cell - 0.5, 0, gw - 1.0001)
    iy, ix = ys.astype(int), xs.astype(int)
    fy, fx = (ys - iy)[:, None], (xs - ix)[None, :]
    top = phi[iy][:, ix] * (1 - fx) + phi[iy][:, ix + 1] * fx
    bottom = phi[iy + 1][:, ix] * (1 - fx) + phi[iy + 1][:, ix + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


@functools.lru_cache(maxsize=2)  # ~17 MB per canvas shape
def _gabor_bank(shape: tuple[int, int]) -> np.ndarray:
    """Frequency responses (rfft2 layout) of the Gabor bank, peak gain 1.

    Built analytically (the transform of a Gaussian-windowed cosine is a pair
    of Gaussians at +-f0 across the ridges), so no spatial kernels are needed.
    Shape: (n_periods, n_orientations, H, W//2+1), float32.
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    bank = np.empty((len(_BANK_PERIODS), _N_ORIENTATIONS, h, w // 2 + 1), np.float32)
    for i, period in enumerate(_BANK_PERIODS):
        f0 = 1.0 / period
        for j in range(_N_ORIENTATIONS):
            theta = j * np.pi / _N_ORIENTATIONS
            fn = -fx * np.sin(theta) + fy * np.cos(theta)  # across the ridges
            ft = fx * np.cos(theta) + fy * np.sin(theta)  # along them
            env_t = np.exp(-2 * np.pi**2 * (_SIGMA_TANGENT * ft) ** 2)
            resp = env_t * (
                np.exp(-2 * np.pi**2 * (_SIGMA_NORMAL * (fn - f0)) ** 2)
                + np.exp(-2 * np.pi**2 * (_SIGMA_NORMAL * (fn + f0)) ** 2)
            )
            # no DC and nothing near it: a flat blob (all ridge or all valley)
            # must fade, not sustain itself through the gain control below
            resp *= 1.0 - np.exp(-((fx**2 + fy**2) / (0.4 * f0) ** 2))
            bank[i, j] = resp / resp.max()
    return bank


def _bank_weights(orientation: np.ndarray, period: np.ndarray):
    """Per-pixel linear weights over the bank's (period, orientation) entries.

    Returns a list of (i_period, j_orientation, weight HxW float32), only for
    the entries some pixel uses.
    """
    n_o, periods = _N_ORIENTATIONS, np.asarray(_BANK_PERIODS)
    pos = np.asarray(orientation, dtype=np.float64) / (np.pi / n_o)
    j0 = np.floor(pos).astype(np.intp) % n_o
    wj1 = (pos - np.floor(pos)).astype(np.float32)
    j1 = (j0 + 1) % n_o
    i0 = np.clip(np.searchsorted(periods, period, side="right") - 1, 0, len(periods) - 2)
    wi1 = np.clip((period - periods[i0]) / (periods[i0 + 1] - periods[i0]), 0.0, 1.0).astype(np.float32)
    wj = _spread(j0, j1, wj1, n_o)
    wi = _spread(i0, i0 + 1, wi1, len(periods))
    used = np.zeros(len(periods) * n_o, bool)
    for a, wa in ((i0, 1.0 - wi1), (i0 + 1, wi1)):
        for b, wb in ((j0, 1.0 - wj1), (j1, wj1)):
            used |= np.bincount((a * n_o + b).ravel(), weights=(wa * wb).ravel(), minlength=used.size) > 0
    return [(i, j, wi[i] * wj[j]) for i in range(len(periods)) for j in range(n_o) if used[i * n_o + j]]


def _spread(first: np.ndarray, second: np.ndarray, frac: np.ndarray, n: int) -> np.ndarray:
    """(n, H, W) float32: 1-frac at index `first`, frac at index `second`, else 0."""
    out = np.zeros((n, first.size), np.float32)
    cols = np.arange(first.size)
    out[first.ravel(), cols] = 1.0 - frac.ravel()
    out[second.ravel(), cols] += frac.ravel()
    return out.reshape((n,) + first.shape)


def contextual_filter(image: np.ndarray, terms, bank: np.ndarray) -> np.ndarray:
    """One pass of contextual Gabor filtering: each pixel gets the response of
    the filter tuned to its own orientation and period (mixed linearly)."""
    spectrum = np.fft.rfft2(image)
    out = np.zeros(image.shape, np.float32)
    for i, j, weight in terms:
        out += weight * np.fft.irfft2(spectrum * bank[i, j], s=image.shape).astype(np.float32)
    return out


def grow_ridges(
    orientation: np.ndarray,
    period: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    iterations: int | None = None,
    seed_density: float | None = None,
) -> np.ndarray:
    """Grow a ridge pattern from sparse random noise by iterated Gabor filtering.

    Each pass filters with the local orientation and period, rescales and clips
    to [-1, 1] (a soft binarisation); ridges spread from the seeds and meet
    where they must, leaving endings and bifurcations behind.
    """
    shape = orientation.shape
    iterations = GROWTH_ITERATIONS if iterations is None else iterations
    bank = _gabor_bank(shape)
    terms = _bank_weights(orientation, period)
    image = np.zeros(shape, np.float32)
    region = np.flatnonzero(_dilate_box(mask, 12).ravel())
    if seed_density is None:
        seed_density = SEED_DENSITY
    n_seeds = max(8, int(len(region) * seed_density))
    picks = rng.choice(region, size=n_seeds, replace=False)
    image.ravel()[picks] = rng.choice(np.array([-1.0, 1.0], np.float32), size=n_seeds)
    for _ in range(iterations):
        image = contextual_filter(image, terms, bank)
        # local gain control: every region reaches full contrast (no grey
        # holes where two growing ridge systems cancel), then clip
        magnitude = np.abs(image)
        floor = 0.05 * float(magnitude.mean()) + 1e-12  # faint regions stay faint
        envelope = np.maximum(_box_mean(magnitude, 6), floor)
        image = np.clip(image * (_GROWTH_GAIN / envelope), -1.0, 1.0)
    return image


def _dilate_box(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 box (separable, via cumulative sums)."""
    return _box_mean(mask.astype(np.float32), radius) > 1e-6


def _box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 box, edges replicated; separable cumulative sums."""
    if radius <= 0:
        return image.astype(np.float32, copy=True)
    out = image.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis)
        n = out.shape[axis]
        hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        out = (hi - lo) / (2 * radius + 1)
    return out.astype(np.float32)


def _rotate_points(points: np.ndarray, center: tuple[float, float], angle: float) -> np.ndarray:
    if len(points) == 0:
        return points
    c, s = np.cos(angle), np.sin(angle)
    rel = points - np.asarray(center)
    return np.asarray(center) + rel @ np.array([[c, s], [-s, c]])


def _random_corrections(rng: np.random.Generator, count: int, amplitude: float):
    return [rng.uniform(-amplitude, amplitude, size=8) for _ in range(count)]


# 12 masters (~1.2 MB each): a ten-print booking re-captures without regrowing.
@functools.lru_cache(maxsize=12)
def master_finger(person: int, finger: int, seed: int = 0) -> MasterFinger:
    """The master finger for (seed, person, finger); cached, so the impressions
    of one finger cost one master. Deterministic."""
    person = _check_index("person", person)
    finger = _check_index("finger", finger)
    seed = _check_index("seed", seed)
    rng = _rng(_MASTER_STREAM, seed, person, finger)
    shape = MASTER_SHAPE
    mask, rho, center = fingertip_mask(shape, rng)
    pattern = choose_pattern(rng, finger)
    cores, deltas = singular_points(pattern, center, rng)
    # every finger sits a little differently in its silhouette
    tilt = float(np.clip(rng.normal(0.0, 0.18), -0.4, 0.4))
    cores, deltas = _rotate_points(cores, center, tilt), _rotate_points(deltas, center, tilt)
    if pattern == "arch":
        orientation = arch_orientation(shape, center, rng) + tilt
    else:
        orientation = orientation_field(
            shape,
            cores,
            deltas,
            theta_inf=tilt,
            core_corrections=_random_corrections(rng, len(cores), ORIENTATION_CORRECTION),
            delta_corrections=_random_corrections(rng, len(deltas), ORIENTATION_CORRECTION),
        )
    # low-frequency wander: no two fingers of a class flow quite alike
    wander = ORIENTATION_WANDER * (0.4 if pattern == "arch" else 1.0)  # keep the hump visible
    orientation = np.mod(orientation + wander * smooth_noise(rng, shape, WANDER_CELLS), np.pi)
    period = ridge_period_map(shape, center, rng, orientation)
    ridges = grow_ridges(orientation, period, mask, rng)
    orientation, period = orientation.astype(np.float16), period.astype(np.float16)
    for array in (cores, deltas, orientation, period, mask, ridges):
        array.flags.writeable = False  # cached and shared: nobody may change a master
    return MasterFinger(
        seed=seed,
        person=person,
        finger=finger,
        pattern=pattern,
        cores=cores,
        deltas=deltas,
        orientation=orientation,  # float16: for inspection only, keep it small
        period=period,
        mask=mask,
        ridges=ridges,
        center=(float(center[0]), float(center[1])),
    )


# ----------------------------------------------------------------------------
# impressions
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImpressionParams:
    """How one impression differs from the master (drawn per impression)."""

    dx: float  # px, where the sensor centre falls relative to the finger centre
    dy: float
    rotation: float  # radians, finger rotation on the glass
    distortion_shift: tuple[float, float]  # px, elastic drag of the periphery
    distortion_twist: float  # radians, elastic rotation of the periphery
    pressure: float  # -1 (light, dry, thin broken ridges) .. +1 (heavy, wet, thick)
    contact: float  # 0.6 .. 1.0: fraction of the silhouette touching the glass
    contact_dx: float  # px, where the contact patch sits within the silhouette
    contact_dy: float
    noise: float  # grey-level sd of sensor noise
    background: float  # grey level of the empty glass
    ridge_level: float  # grey level of a fully pressed ridge
    valley_level: float  # grey level of a valley


# How much impressions of one finger differ (tuned so that NBIS mindtct +
# bozorth3 scores genuine pairs about as real optical-sensor prints score).
PLACEMENT_RADIUS = 35.0  # px, sensor centre vs finger centre
DISTORTION_SHIFT = 14.0  # px, elastic drag of the periphery
DISTORTION_TWIST_DEG = 6.0
SKIN_WARP = 3.0  # px, amplitude of the smooth random non-linear skin warp


def draw_impression_params(rng: np.random.Generator) -> ImpressionParams:
    """Random variation between impressions, as volunteers produce on a sensor."""
    u = rng.uniform
    angle = u(0, 2 * np.pi)
    radius = PLACEMENT_RADIUS * np.sqrt(u(0, 1))
    return ImpressionParams(
        dx=radius * np.cos(angle),
        dy=radius * np.sin(angle) + u(-5, 15),
        rotation=float(np.deg2rad(np.clip(rng.normal(0.0, 8.0), -20.0, 20.0))),
        distortion_shift=(u(-1, 1) * DISTORTION_SHIFT, u(-1, 1) * DISTORTION_SHIFT),
        distortion_twist=float(np.deg2rad(u(-1, 1) * DISTORTION_TWIST_DEG)),
        pressure=float(np.clip(rng.normal(0.0, PRESSURE_SD), -1.0, 1.0)),
        contact=u(0.72, 1.0),
        contact_dx=u(-25, 25),
        contact_dy=u(-30, 30),
        noise=u(3.0, 9.0) * NOISE_SCALE,
        background=u(205.0, 245.0),
        ridge_level=u(15.0, 70.0),
        valley_level=u(170.0, 225.0),
    )


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, outside: float) -> np.ndarray:
    """Sample `image` at float coordinates; `outside` beyond the edges."""
    h, w = image.shape
    x0, y0 = np.floor(xs).astype(np.intp), np.floor(ys).astype(np.intp)
    fx, fy = (xs - x0).astype(np.float32), (ys - y0).astype(np.float32)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 < w - 1) & (y0 < h - 1)
    x0c, y0c = np.clip(x0, 0, w - 2), np.clip(y0, 0, h - 2)
    a = image[y0c, x0c]
    b = image[y0c, x0c + 1]
    c = image[y0c + 1, x0c]
    d = image[y0c + 1, x0c + 1]
    top = a + (b - a) * fx
    bottom = c + (d - c) * fx
    out = top + (bottom - top) * fy
    return np.where(inside, out, np.float32(outside)).astype(np.float32)


def impression_coordinates(
    master: MasterFinger,
    params: ImpressionParams,
    size: tuple[int, int],
    warp_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Master coordinates (xs, ys) seen by each output pixel.

    Output pixel -> rotate and shift onto the finger -> elastic distortion:
    the skin near the contact centre sticks to the glass, the periphery is
    dragged (shift + twist) with a smooth brake in between (Cappelli et al.).
    """
    rows, cols = size
    v, u = np.mgrid[0:rows, 0:cols].astype(np.float32)
    u = u - (cols - 1) / 2.0
    v = v - (rows - 1) / 2.0
    c, s = np.cos(params.rotation), np.sin(params.rotation)
    cx = master.center[0] + params.dx
    cy = master.center[1] + params.dy
    xr = c * u - s * v
    yr = s * u + c * v
    # elastic part, relative to the contact centre
    dist = np.sqrt(xr * xr + yr * yr)
    rigid, transition = 45.0, 110.0
    t = np.clip((dist - rigid) / transition, 0.0, 1.0)
    brake = t * t * (3.0 - 2.0 * t)  # smoothstep
    ct, st = np.cos(params.distortion_twist), np.sin(params.distortion_twist)
    ex = (ct * xr - st * yr - xr) + params.distortion_shift[0]
    ey = (st * xr + ct * yr - yr) + params.distortion_shift[1]
    xs = cx + xr + brake * ex
    ys = cy + yr + brake * ey
    if warp_rng is not None and SKIN_WARP > 0:
        xs += SKIN_WARP * smooth_noise(warp_rng, size, 2).astype(np.float32)
        ys += SKIN_WARP * smooth_noise(warp_rng, size, 2).astype(np.float32)
    return xs, ys


def _max3(a: np.ndarray) -> np.ndarray:
    p = np.pad(a, 1, mode="edge")
    h = np.maximum(np.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])
    return np.maximum(np.maximum(h[:-2], h[1:-1]), h[2:])


def _thicken_ridges(ridges: np.ndarray, pixels: float) -> np.ndarray:
    """Grey-level dilation (pixels > 0) or erosion (< 0) of the ridges by about
    |pixels| on each side; fractional amounts blend the last 3x3 step."""
    if abs(pixels) < 1e-3:
        return ridges
    sign = 1.0 if pixels > 0 else -1.0
    steps = int(np.ceil(abs(pixels)))
    out = ridges * sign  # erosion of ridges == dilation of valleys
    for k in range(steps):
        grown = _max3(out)
        frac = min(1.0, abs(pixels) - k)
        out = out + frac * (grown - out)
    return out * sign


def render_impression(
    master: MasterFinger,
    params: ImpressionParams,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """One 8-bit impression of `master` (rows x cols), dark ridges on light glass."""
    rows, cols = size
    xs, ys = impression_coordinates(master, params, size, rng)
    ridges = _bilinear(master.ridges, xs, ys, outside=-1.0)
    # contact patch: the silhouette, shrunk and shifted by how the finger lies
    mcx, mcy = master.center
    half_w = 135.0 * (0.55 + 0.45 * params.contact)
    half_h = 190.0 * (0.55 + 0.45 * params.contact)
    px = (xs - (mcx + params.contact_dx)) / half_w
    py = (ys - (mcy + params.contact_dy)) / half_h
    patch = np.sqrt(px * px + py * py)
    silhouette = _bilinear(master.mask.astype(np.float32), xs, ys, outside=0.0)
    # contact strength: 1 in the pressed centre, falling off towards the rim
    strength = np.clip((1.0 - patch) / 0.25, 0.0, 1.0) * np.clip(silhouette * 1.6 - 0.3, 0.0, 1.0)
    strength *= 0.85 + 0.15 * (0.5 + 0.5 * smooth_noise(rng, size, 3)).astype(np.float32)

    # pressure: a heavy (or wet) finger spreads its ridges, a light (or dry)
    # one leaves them thin -- grey-level dilation / erosion of the ridge field
    ridges = _thicken_ridges(ridges, params.pressure * PRESSURE_PX)
    dryness = max(0.0, -params.pressure)
    if dryness > 0.1:
        # dry skin: ridges break up in blotches a few pixels across
        blotch = smooth_noise(rng, size, max(4, rows // 6))
        breaks = np.clip((blotch - (1.0 - 0.5 * dryness)) / 0.15, 0.0, 1.0).astype(np.float32)
        ridges = ridges - 2.0 * breaks * np.maximum(ridges, 0.0)
    threshold = 0.25 * (1.0 - strength)  # ridges fade towards the rim of the contact
    texture = rng.normal(0.0, 1.0, size).astype(np.float32)
    texture = _box_mean(texture, 1) * (0.9 + 2.2 * dryness)
    value = ridges - threshold + TEXTURE * texture
    softness = 0.22 + 0.2 * max(0.0, params.pressure)  # wet prints blur
    darkness = 1.0 / (1.0 + np.exp(-value / softness))
    darkness *= strength

    grey = params.valley_level + (params.ridge_level - params.valley_level) * darkness
    outside = np.clip(1.0 - strength * 4.0, 0.0, 1.0)
    grey = grey * (1.0 - outside) + params.background * outside
    # sensor: illumination gradient, a little blur, noise
    grey += 10.0 * smooth_noise(rng, size, 2).astype(np.float32)
    grey = _box_mean(grey, 1) * 0.6 + grey * 0.4
    grey += rng.normal(0.0, params.noise, size).astype(np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def impression_of(
    master: MasterFinger, impression: int, size: tuple[int, int] = (288, 256)
) -> np.ndarray:
    """Impression number `impression` of an existing master (deterministic)."""
    impression = _check_index("impression", impression)
    size = _check_size(size)
    rng = _rng(_IMPRESSION_STREAM, master.seed, master.person, master.finger, impression)
    params = draw_impression_params(rng)
    return render_impression(master, params, size, rng)


def _check_size(size) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (rows, cols), got {size!r}") from None
    if not (16 <= rows <= 2048 and 16 <= cols <= 2048):
        raise ValueError(f"size {rows}x{cols} is out of range (16..2048 each)")
    return rows, cols


def finger_image(
    person: int,
    finger: int,
    impression: int,
    seed: int = 0,
    size: tuple[int, int] = (288, 256),
) -> np.ndarray:
    """A synthetic 500 ppi fingerprint: uint8, rows x cols, dark ridges on light.

    Deterministic for the same arguments. All impressions of one
    (seed, person, finger) come from one master finger (cached); different
    persons or fingers are different fingers. `size` is (rows, cols); the
    default 288x256 is a ZFM module's image (a partial print); larger sizes
    show more of the fingertip.
    """
    master = master_finger(person, finger, seed)
    return impression_of(master, impression, size)
