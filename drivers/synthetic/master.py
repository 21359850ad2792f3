"""Master fingers: the first stage of the synthetic generator (see generator.py).

A master finger is drawn once per (seed, person, finger): a pattern class
with population frequencies, core and delta positions, the orientation field
and ridge-period map they imply, a fingertip silhouette, and the ridges grown
over it (ridges.py). Impressions (impression.py) are rendered from it.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from fpagent.drivers.synthetic.ridges import BANK_PERIODS, grow_ridges

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


def check_index(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def seeded_rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


# Stream tags keep the random streams for master and impressions independent.
MASTER_STREAM = 0x4D41
IMPRESSION_STREAM = 0x494D


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
    return np.clip(period, BANK_PERIODS[0], BANK_PERIODS[-1]).astype(np.float32)


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
    person = check_index("person", person)
    finger = check_index("finger", finger)
    seed = check_index("seed", seed)
    rng = seeded_rng(MASTER_STREAM, seed, person, finger)
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
