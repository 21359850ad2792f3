"""Impressions of a master finger: the second stage of the synthetic generator (see generator.py).

Placement, rotation, elastic skin distortion, pressure and dryness, partial
contact, sensor noise, background and contrast: what makes two captures of
one finger differ as real captures do.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fpagent.drivers.synthetic.master import (
    IMPRESSION_STREAM,
    MasterFinger,
    check_index,
    seeded_rng,
    smooth_noise,
)
from fpagent.drivers.synthetic.ridges import box_mean

# Impression rendering
TEXTURE = 0.25  # skin texture noise added to the ridge field
PRESSURE_PX = 1.5  # px of ridge-width change per side at the extreme pressures
PRESSURE_SD = 0.35  # spread of pressure between impressions (+-1: very wet / very dry)
NOISE_SCALE = 1.0  # multiplies the sensor noise drawn per impression


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


def bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, outside: float) -> np.ndarray:
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


def contact_strength(master: MasterFinger, params: ImpressionParams, xs: np.ndarray,
                     ys: np.ndarray) -> np.ndarray:
    """How hard the skin at each sample point presses on the glass: 1 in the pressed
    centre, falling off towards the rim of the contact patch (the silhouette,
    shrunk and shifted by how the finger lies)."""
    mcx, mcy = master.center
    half_w = 135.0 * (0.55 + 0.45 * params.contact)
    half_h = 190.0 * (0.55 + 0.45 * params.contact)
    px = (xs - (mcx + params.contact_dx)) / half_w
    py = (ys - (mcy + params.contact_dy)) / half_h
    patch = np.sqrt(px * px + py * py)
    silhouette = bilinear(master.mask.astype(np.float32), xs, ys, outside=0.0)
    return np.clip((1.0 - patch) / 0.25, 0.0, 1.0) * np.clip(silhouette * 1.6 - 0.3, 0.0, 1.0)


def render_impression(
    master: MasterFinger,
    params: ImpressionParams,
    size: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """One 8-bit impression of `master` (rows x cols), dark ridges on light glass."""
    rows, cols = size
    xs, ys = impression_coordinates(master, params, size, rng)
    ridges = bilinear(master.ridges, xs, ys, outside=-1.0)
    # contact patch: the silhouette, shrunk and shifted by how the finger lies
    strength = contact_strength(master, params, xs, ys)
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
    texture = box_mean(texture, 1) * (0.9 + 2.2 * dryness)
    value = ridges - threshold + TEXTURE * texture
    softness = 0.22 + 0.2 * max(0.0, params.pressure)  # wet prints blur
    darkness = 1.0 / (1.0 + np.exp(-value / softness))
    darkness *= strength

    grey = params.valley_level + (params.ridge_level - params.valley_level) * darkness
    outside = np.clip(1.0 - strength * 4.0, 0.0, 1.0)
    grey = grey * (1.0 - outside) + params.background * outside
    # sensor: illumination gradient, a little blur, noise
    grey += 10.0 * smooth_noise(rng, size, 2).astype(np.float32)
    grey = box_mean(grey, 1) * 0.6 + grey * 0.4
    grey += rng.normal(0.0, params.noise, size).astype(np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def impression_of(
    master: MasterFinger, impression: int, size: tuple[int, int] = (288, 256)
) -> np.ndarray:
    """Impression number `impression` of an existing master (deterministic)."""
    impression = check_index("impression", impression)
    size = _check_size(size)
    rng = seeded_rng(IMPRESSION_STREAM, master.seed, master.person, master.finger, impression)
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
