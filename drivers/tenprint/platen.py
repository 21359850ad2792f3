"""What a ten-print live-scanner's platen sees: slaps, thumbs and rolled fingers.

Why: a booking desk captures four-finger slaps, the two thumbs and ten rolled
fingers; segmentation and the sequence check need such images with known
truth, and no real person's prints. Everything is drawn from the synthetic
generator's master fingers (`fpagent.drivers.synthetic.generator`), so the
slaps and the rolls of one emulated person are the same ten fingers and match
each other. Pure numpy and deterministic for (seed, person, capture).

Geometry (500 ppi, x = column, y = row down):

- The platen is 3.2 x 3.0 inches (1600 x 1500 px), the slap size of ANSI/NIST
  live-scanners. A right-hand slap (position 13) shows fingers 2, 3, 4, 5 from
  left to right, a left-hand slap (14) fingers 10, 9, 8, 7, the two-thumb slap
  (15) the left thumb (6) left of the right thumb (1).
- Fingers sit on an arc: the middle finger reaches highest, index and ring a
  little lower, the little finger much lower; they fan out a few degrees each
  and the whole hand is turned by a hand angle. Pressure and contact vary per
  finger. The middle phalanges touch the glass below the distal crease, as
  they do on a real platen.
- A rolled impression (nail to nail) is the whole fingertip unwrapped from a
  cylinder: wider than the flat, with ridges stretched towards the nails and
  an uneven rolling speed and drift (rolling distortion). 1.6 x 1.5 inches
  (800 x 750 px), the rolled box of the FBI card.

A finger's box (`FingerBox`) is the truth: the distal phalanx's contact area
in full contact as rendered, its centre, width along the knuckles, height along the finger
and the finger's angle (degrees, the fingertip leaning clockwise from straight
up is positive).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from fpagent.drivers.synthetic.generator import (
    PPI,
    bilinear,
    contact_strength,
    draw_impression_params,
    impression_coordinates,
    master_finger,
    render_impression,
    smooth_noise,
)

PLATEN_SHAPE = (1500, 1600)  # rows, cols: 3.0 x 3.2 in at 500 ppi
ROLLED_SHAPE = (750, 800)  # 1.5 x 1.6 in
TILE_SHAPE = (448, 384)  # one fingertip rendered upright before it is placed

RIGHT_SLAP, LEFT_SLAP, THUMBS_SLAP = 13, 14, 15
# finger positions of each slap, from left to right in the image
SLAP_FINGERS = {RIGHT_SLAP: (2, 3, 4, 5), LEFT_SLAP: (10, 9, 8, 7), THUMBS_SLAP: (6, 1)}

# Right hand, image order index, middle, ring, little: (x offset from the
# middle finger in px, how far the fingertip sits below the middle one in px,
# fan angle in degrees), each with its spread. The left hand is the mirror.
_RIGHT_HAND = (
    ((-380.0, 30.0), (120.0, 50.0), (-8.0, 3.0)),
    ((0.0, 0.0), (0.0, 0.0), (-1.0, 2.0)),
    ((370.0, 30.0), (80.0, 40.0), (5.0, 3.0)),
    ((720.0, 40.0), (330.0, 50.0), (11.0, 3.0)),
)
HAND_ANGLE_SD = 5.0  # degrees
HAND_ANGLE_MAX = 15.0
SLAP_CONTACT = (0.6, 0.9)  # a flat finger in a slap touches less than a rolled one
PHALANX_GAP = (28.0, 45.0)  # px, the white distal crease between the phalanges
ROLL_ARC = 1.3  # radians of the finger's cylinder rolled on either side of the pad

_SLAP_STREAM, _ROLL_STREAM = 0x534C, 0x524F
_CREASE_CUT = 60  # px above its centre where the middle phalanx's print starts


@dataclasses.dataclass(frozen=True)
class FingerBox:
    """Where one finger's distal phalanx lies in a slap (px at 500 ppi)."""

    finger: int  # finger position 1-10
    center: tuple[float, float]  # (x, y)
    size: tuple[float, float]  # (width across the finger, height along it)
    angle: float  # degrees, the fingertip leaning clockwise from straight up


@dataclasses.dataclass(frozen=True, eq=False)
class Slap:
    """One slap capture and the generator's truth about it."""

    position: int  # 13 right four fingers, 14 left four fingers, 15 both thumbs
    pixels: np.ndarray  # uint8, PLATEN_SHAPE
    fingers: tuple[FingerBox, ...]  # in image order, left to right
    ppi: int = PPI

    def __repr__(self) -> str:
        return f"Slap(position={self.position}, fingers={[b.finger for b in self.fingers]})"


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _contact_weight(master, params, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """How much of each tile pixel is finger rather than glass (0..1).

    The generator's contact model (render_impression): the contact patch shrunk
    and shifted within the silhouette; a pixel is finger where its contact
    strength reaches a quarter.
    """
    return np.clip(contact_strength(master, params, xs, ys) * 4.0, 0.0, 1.0)


def _render_tile(master, params, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An upright impression of the fingertip and its finger-vs-glass weight."""
    warp_rng = copy.deepcopy(rng)  # render_impression draws its skin warp first
    pixels = render_impression(master, params, TILE_SHAPE, rng).astype(np.float32)
    xs, ys = impression_coordinates(master, params, TILE_SHAPE, warp_rng)
    return pixels, _contact_weight(master, params, xs, ys)


def _box_of(weight: np.ndarray) -> tuple[float, float, float, float]:
    """(centre u, centre v, width, height) of the finger area, relative to the tile centre."""
    full = weight > 0.99  # skin in full contact (the faded rim left out)
    rows = np.flatnonzero(full.any(axis=1))
    cols = np.flatnonzero(full.any(axis=0))
    if len(rows) == 0:
        return 0.0, 0.0, 0.0, 0.0
    h, w = weight.shape
    cu = (cols[0] + cols[-1]) / 2.0 - (w - 1) / 2.0
    cv = (rows[0] + rows[-1]) / 2.0 - (h - 1) / 2.0
    return float(cu), float(cv), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)


def _paste(canvas: np.ndarray, tile: np.ndarray, weight: np.ndarray,
           center: tuple[float, float], angle_deg: float) -> None:
    """Blend an upright tile into the canvas, its centre at `center`, turned by the angle."""
    th, tw = tile.shape
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    reach = 0.5 * np.hypot(th, tw) + 2
    x0, x1 = int(max(0, center[0] - reach)), int(min(canvas.shape[1], center[0] + reach + 1))
    y0, y1 = int(max(0, center[1] - reach)), int(min(canvas.shape[0], center[1] + reach + 1))
    if x0 >= x1 or y0 >= y1:
        return
    y, x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = x - center[0], y - center[1]
    u = c * dx + s * dy + (tw - 1) / 2.0
    v = -s * dx + c * dy + (th - 1) / 2.0
    w = bilinear(weight, u, v, outside=0.0)
    t = bilinear(tile, u, v, outside=0.0)
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = region * (1.0 - w) + t * w


def _to_platen(center, offset, angle_deg) -> tuple[float, float]:
    """A tile offset (u across, v along the finger) placed at `center` and turned."""
    a = np.deg2rad(angle_deg)
    u, v = offset
    return (center[0] + u * np.cos(a) - v * np.sin(a), center[1] + u * np.sin(a) + v * np.cos(a))


def _layout(position: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """(x, y, angle) of each tile centre in image order, before centring on the platen."""
    if position == THUMBS_SLAP:
        gap = rng.normal(330.0, 40.0)
        tilt = abs(rng.normal(12.0, 5.0))
        drop = rng.normal(0.0, 40.0)
        return [(-gap, drop, tilt), (gap, -drop, -tilt)]
    hand = float(np.clip(rng.normal(0.0, HAND_ANGLE_SD), -HAND_ANGLE_MAX, HAND_ANGLE_MAX))
    mirror = -1.0 if position == LEFT_SLAP else 1.0
    spots = []
    for (xm, xs), (ym, ys), (am, asd) in _RIGHT_HAND:
        spots.append((mirror * rng.normal(xm, xs), rng.normal(ym, ys), mirror * rng.normal(am, asd)))
    if mirror < 0:
        spots.reverse()  # the left hand shows the little finger leftmost
    # turn the whole hand about a point in the palm
    pivot = (float(np.mean([p[0] for p in spots])), 700.0)
    return [(*_to_platen(pivot, (x - pivot[0], y - pivot[1]), hand), a + hand) for x, y, a in spots]


def _wander(rng: np.random.Generator, length: int, cells: int) -> np.ndarray:
    """A smooth random curve in about [-1, 1] over `length` samples (a row of smooth noise)."""
    return smooth_noise(rng, (length, length), cells)[0].astype(np.float32)


def _slap_params(master, rng, look: dict, pressure: float, contact: float):
    params = draw_impression_params(rng)
    return dataclasses.replace(
        params, dx=0.0, dy=0.0, rotation=0.0, contact=contact,
        contact_dx=params.contact_dx * 0.4, contact_dy=params.contact_dy * 0.4,
        pressure=float(np.clip(pressure + rng.normal(0.0, 0.15), -1.0, 1.0)), **look)


def slap(seed: int, person: int, position: int, capture: int = 0, *,
         hands_swapped: bool = False, missing=()) -> Slap:
    """A slap capture (13, 14 or 15) of an emulated person, with each finger's truth box.

    hands_swapped: the person put the other hand on the glass (slap 13 shows
    the left hand, 14 the right), as a sequence error to be caught.
    missing: finger positions that do not touch the glass (lifted, amputated).
    """
    if position not in SLAP_FINGERS:
        raise ValueError(f"slap position must be 13, 14 or 15, got {position!r}")
    shown = position
    if hands_swapped and position != THUMBS_SLAP:
        shown = LEFT_SLAP if position == RIGHT_SLAP else RIGHT_SLAP
    rng = _rng(_SLAP_STREAM, seed, person, position, capture)
    look = dict(background=rng.uniform(215.0, 245.0), ridge_level=rng.uniform(20.0, 60.0),
                valley_level=rng.uniform(175.0, 215.0), noise=rng.uniform(3.0, 7.0))
    pressure = float(np.clip(rng.normal(0.0, 0.3), -0.8, 0.8))
    spots = _layout(shown, rng)
    tiles = []
    for finger, (x, y, angle) in zip(SLAP_FINGERS[shown], spots):
        if finger in missing:
            continue
        master = master_finger(person, finger, seed)
        frng = _rng(_SLAP_STREAM, seed, person, position, capture, finger)
        params = _slap_params(master, frng, look, pressure, frng.uniform(*SLAP_CONTACT))
        pixels, weight = _render_tile(master, params, frng)
        cu, cv, bw, bh = _box_of(weight)
        gap = frng.uniform(*PHALANX_GAP)
        # the middle phalanx below the crease: the same skin turned across, fainter, its top cut straight
        lower = dataclasses.replace(params, rotation=float(np.pi / 2), contact=0.45, contact_dx=0.0,
                                    contact_dy=0.0, pressure=params.pressure - 0.3)
        lpix, lweight = _render_tile(master, lower, frng)
        lpix, lweight = lpix[::-1], lweight[::-1] * 0.9
        lweight[: TILE_SHAPE[0] // 2 - _CREASE_CUT] = 0.0
        tiles.append((finger, (x, y), angle, (cu, cv, bw, bh), pixels, weight,
                      bh / 2.0 + gap + _CREASE_CUT, lpix, lweight))
    # centre the fingertips' boxes on the upper part of the platen, with a little jitter
    centres = np.array([_to_platen((x, y), (b[0], b[1]), a) for _, (x, y), a, b, *_ in tiles])
    target = (PLATEN_SHAPE[1] / 2 + rng.uniform(-60, 60), PLATEN_SHAPE[0] * 0.36 + rng.uniform(-50, 50))
    shift = np.array(target) - (centres.min(axis=0) + centres.max(axis=0)) / 2.0
    canvas = np.full(PLATEN_SHAPE, look["background"], np.float32)
    canvas += 8.0 * smooth_noise(rng, PLATEN_SHAPE, 2).astype(np.float32)
    canvas += rng.normal(0.0, look["noise"], PLATEN_SHAPE).astype(np.float32)
    boxes = []
    for finger, (x, y), angle, (cu, cv, bw, bh), pixels, weight, drop, lpix, lweight in tiles:
        tip = (x + shift[0], y + shift[1])
        low = _to_platen(tip, (cu, cv + drop), angle)
        _paste(canvas, lpix, lweight, low, angle)
        _paste(canvas, pixels, weight, tip, angle)
        centre = _to_platen(tip, (cu, cv), angle)
        boxes.append(FingerBox(finger, (float(centre[0]), float(centre[1])), (bw, bh), float(angle)))
    pixels = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return Slap(position, pixels, tuple(boxes))


def rolled(seed: int, person: int, finger: int, capture: int = 0, *,
           swapped_pair: tuple[int, int] | None = None) -> np.ndarray:
    """A rolled impression (nail to nail) of one finger: uint8, ROLLED_SHAPE.

    swapped_pair: the officer rolled these two fingers in each other's place
    (a sequence error to be caught).
    """
    if not 1 <= int(finger) <= 10:
        raise ValueError(f"finger position must be 1-10, got {finger!r}")
    source = int(finger)
    if swapped_pair and source in swapped_pair:
        a, b = swapped_pair
        source = b if source == a else a
    master = master_finger(person, source, seed)
    rng = _rng(_ROLL_STREAM, seed, person, finger, capture)
    params = dataclasses.replace(
        draw_impression_params(rng), dx=0.0, dy=0.0, rotation=0.0, contact=1.0,
        contact_dx=0.0, contact_dy=rng.uniform(-15, 15))
    tile, weight = _render_tile(master, params, rng)
    rows, cols = ROLLED_SHAPE
    th, tw = TILE_SHAPE
    cols_touching = np.flatnonzero((weight > 0.5).any(axis=0))
    half = max(40.0, (cols_touching[-1] - cols_touching[0]) / 2.0) if len(cols_touching) else 120.0
    radius = half / np.sin(ROLL_ARC)  # the finger's cylinder
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    arc = x - (cols - 1) / 2.0
    arc = arc + 12.0 * _wander(rng, cols, 3)  # uneven rolling speed
    phase = np.clip(arc / radius, -np.pi / 2, np.pi / 2)
    u = radius * np.sin(phase) + (tw - 1) / 2.0
    drift = 10.0 * _wander(rng, cols, 2)  # the finger creeps as it rolls
    v = y - (rows - 1) / 2.0 + drift + (th - 1) / 2.0 - 20.0
    beyond = np.abs(arc / radius) < np.pi / 2 * 0.98
    w = bilinear(weight, u, v, outside=0.0) * beyond
    t = bilinear(tile, u, v, outside=float(params.background))
    out = params.background * (1.0 - w) + t * w
    out += rng.normal(0.0, params.noise * 0.5, ROLLED_SHAPE).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
