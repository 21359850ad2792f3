"""Slap segmentation: the finger boxes of a four-finger or two-thumb slap, on the device.

Why: a ten-print booking captures the fingers of each hand together (plain
impressions), and the bureau wants each finger's place in the slap; the
sequence check compares each segment with its rolled finger. The booking
station must find the fingers itself and ask for a new slap at once when a
finger is missing.

In the manner of NIST's NFSEG: find where the friction skin is (local
contrast, looked at on a coarse grid), find the hand's angle as the one that
best separates the fingers (the projection across the fingers is most
concentrated), split that projection into fingers at its valleys, keep each
finger's top segment down to the first gap (the distal crease) or a typical
length, then take each finger's own angle as the mean of the angle that best
gathers its skin and the long axis of its fingertip.
Finger numbers follow the image order of the slap (right hand: index to
little finger from the left; left hand: little to index; thumbs: left, then
right). Each segment is cut out upright and its quality measured with
`fpagent.biometrics.extraction.assess_quality`. Pure numpy (plus the box-filter kernel).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fpagent.biometrics import fields
from fpagent.biometrics.extraction import assess_quality
from fpagent.biometrics.quality import QualityReport

STEP = 2  # px: the grid the skin mask is looked at on
CONTRAST_RADIUS = 4  # px: local contrast window radius
ANGLES = np.arange(-27.0, 27.01, 1.5)  # degrees searched for the hand angle
BIN = 8.0  # px: bins of the projection across the fingers
TIP_ASPECT = 1.35  # a flat fingertip's contact is about this much taller than wide
MAX_FINGER_TILT = 20.0  # degrees a finger may lean away from the hand angle
MARGIN = 12  # px of skin context kept around each cut-out segment

# image order of finger positions: the left hand's little finger at the left
_IMAGE_RANK = {10: 0, 9: 1, 8: 2, 7: 3, 6: 4, 1: 5, 2: 6, 3: 7, 4: 8, 5: 9}
FINGER_NAMES = {1: "right thumb", 2: "right index", 3: "right middle", 4: "right ring",
                5: "right little", 6: "left thumb", 7: "left index", 8: "left middle",
                9: "left ring", 10: "left little"}


@dataclasses.dataclass(frozen=True, eq=False)
class Segment:
    """One finger found in a slap: its box, its number, its upright image and quality."""

    finger: int
    center: tuple[float, float]  # (x, y) px in the slap
    size: tuple[float, float]  # (width across the finger, height along it) px
    angle: float  # degrees, the fingertip leaning clockwise from straight up
    pixels: np.ndarray  # uint8, the segment cut out upright (with a small margin)
    quality: QualityReport

    def __repr__(self) -> str:  # never the pixels
        return (f"Segment(finger={self.finger}, center=({self.center[0]:.0f}, {self.center[1]:.0f}), "
                f"size=({self.size[0]:.0f}, {self.size[1]:.0f}), angle={self.angle:.1f}, "
                f"quality={self.quality.score})")


@dataclasses.dataclass(frozen=True)
class Segmentation:
    """The fingers found in one slap; `message` tells the officer what to redo ("" if nothing)."""

    segments: tuple[Segment, ...]
    expected: tuple[int, ...]  # in image order
    hand_angle: float
    message: str

    @property
    def complete(self) -> bool:
        return len(self.segments) == len(self.expected)


def image_order(fingers) -> tuple[int, ...]:
    """Finger positions in the order a slap shows them from left to right."""
    fingers = tuple(int(f) for f in fingers)
    unknown = [f for f in fingers if f not in _IMAGE_RANK]
    if unknown or len(set(fingers)) != len(fingers):
        raise ValueError(f"expected fingers must be distinct positions 1-10, got {fingers!r}")
    return tuple(sorted(fingers, key=_IMAGE_RANK.__getitem__))


def retry_message(found: int, expected) -> str:
    """What to tell the person when fewer fingers than expected were found ("" if none missing)."""
    expected = image_order(expected)
    if found >= len(expected):
        return ""
    thumbs = all(f in (1, 6) for f in expected)
    noun = ("thumb" if found == 1 else "thumbs") if thumbs else ("finger" if found == 1 else "fingers")
    if set(expected) in ({2, 3, 4, 5}, {7, 8, 9, 10}):
        hand = "right" if expected[0] in (2, 3, 4, 5) else "left"
        what = f"all four fingers of the {hand} hand"
    elif set(expected) == {1, 6}:
        what = "both thumbs"
    else:
        names = [FINGER_NAMES[f] for f in expected]
        what = "the " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])
    return f"only {found} {noun} found: place {what} flat on the glass"


def skin_mask(pixels: np.ndarray) -> np.ndarray:
    """Where the friction skin touches the glass, on a STEP-px grid (bool)."""
    f = np.asarray(pixels, dtype=np.float32)
    mean = fields.box_mean(f, CONTRAST_RADIUS)
    square = fields.box_mean(f * f, CONTRAST_RADIUS)
    std = np.sqrt(np.maximum(square - mean * mean, 0.0))[::STEP, ::STEP]
    noise = float(np.median(std))  # most of a slap is empty glass
    threshold = max(4.0 * noise, 0.3 * float(np.percentile(std, 99.5)))
    mask = std > threshold
    # open (drop specks), then close (fill the valleys between ridges)
    return _erode(_dilate(_dilate(_erode(mask, 1), 1), 2), 2)


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    return fields.box_mean(m.astype(np.float32), r) > 1e-3


def _erode(m: np.ndarray, r: int) -> np.ndarray:
    return fields.box_mean(m.astype(np.float32), r) > 1.0 - 1e-3


def _across(xs, ys, angle_deg):
    a = np.deg2rad(angle_deg)
    return xs * np.cos(a) + ys * np.sin(a)


def _along(xs, ys, angle_deg):
    a = np.deg2rad(angle_deg)
    return -xs * np.sin(a) + ys * np.cos(a)


def hand_angle(xs: np.ndarray, ys: np.ndarray, count: int) -> float:
    """The angle (degrees) at which the skin's projection across the fingers is most concentrated.

    Angles that separate the expected number of fingers come first: at a steep
    wrong angle two fingertips can line up one above the other.
    """
    best, best_key = 0.0, (False, -1.0)
    for angle in ANGLES:
        u = _across(xs, ys, angle)
        hist = np.bincount(((u - u.min()) / BIN).astype(np.intp))
        key = (len(finger_bands(u, count)) == count, float(np.sum(hist.astype(np.float64) ** 2)))
        if key > best_key:
            best, best_key = float(angle), key
    return best


def finger_bands(u: np.ndarray, count: int) -> list[tuple[float, float]]:
    """Split the skin's positions across the fingers into at most `count` fingers (u ranges)."""
    origin = float(u.min())
    hist = np.bincount(((u - origin) / BIN).astype(np.intp)).astype(np.float64)
    hist = np.convolve(hist, np.ones(3) / 3.0, mode="same")
    on = hist > 0.12 * hist.max()
    bands, start = [], None
    for i, flag in enumerate(np.append(on, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            bands.extend(_split_at_valleys(hist, start, i))
            start = None
    if not bands:
        return []
    mass = np.array([hist[a:b].sum() for a, b in bands])
    keep = mass >= 0.2 * np.median(mass)
    bands = [b for b, k in zip(bands, keep) if k]
    mass = mass[keep]
    if len(bands) > count:  # extra skin (a palm edge, another finger): keep the largest
        largest = sorted(np.argsort(mass)[::-1][:count])
        bands = [bands[i] for i in largest]
    return [(origin + a * BIN, origin + b * BIN) for a, b in bands]


def _split_at_valleys(hist: np.ndarray, a: int, b: int) -> list[tuple[int, int]]:
    """Split a run of bins at its deepest valley while one is below half its lower shoulder."""
    if b - a < 6:
        return [(a, b)]
    inner = hist[a:b]
    best, best_depth = None, 0.5
    for i in range(2, len(inner) - 2):
        shoulder = min(inner[:i].max(), inner[i + 1:].max())
        depth = inner[i] / shoulder if shoulder > 0 else 1.0
        if depth < best_depth:
            best, best_depth = i, depth
    if best is None:
        return [(a, b)]
    return _split_at_valleys(hist, a, a + best) + _split_at_valleys(hist, a + best + 1, b)


def _band_angle(xs, ys, hand: float) -> float:
    """One finger's own angle: the one that gathers its skin (all phalanges) into the fewest bins."""
    best, best_score = hand, -1.0
    for angle in np.arange(hand - MAX_FINGER_TILT, hand + MAX_FINGER_TILT + 0.01, 1.0):
        u = _across(xs, ys, angle)
        hist = np.bincount(((u - u.min()) / (BIN / 2)).astype(np.intp))
        score = float(np.sum(hist.astype(np.float64) ** 2))
        if score > best_score:
            best, best_score = float(angle), score
    return best


def _distal(px, py, angle) -> tuple[np.ndarray, np.ndarray]:
    """The points of one finger's top segment: from the tip down to the crease (or a typical length)."""
    u, v = _across(px, py, angle), _along(px, py, angle)
    if len(v) == 0:
        return px, py
    tip = float(np.percentile(v, 0.2))
    u0, u1 = np.percentile(u, [1, 99])
    width = u1 - u0
    expected = TIP_ASPECT * width
    rows = np.bincount(((v - tip).clip(0) / 4.0).astype(np.intp)).astype(np.float64)
    body = np.median(rows[: max(2, int(expected / 8))])
    lo, hi = int(0.55 * expected / 4), int(1.5 * expected / 4)
    gaps = np.flatnonzero(rows[lo:hi] < 0.2 * body)
    bottom = tip + ((lo + gaps[0]) * 4.0 if len(gaps) else expected)
    keep = v <= bottom
    return px[keep], py[keep]


def _finger_angle(px, py, hand: float) -> float:
    """The long axis of a fingertip's points (degrees), kept near the hand angle."""
    if len(px) < 10:
        return hand
    dx, dy = px - px.mean(), py - py.mean()
    sxx, syy, sxy = float(np.mean(dx * dx)), float(np.mean(dy * dy)), float(np.mean(dx * dy))
    # long axis direction (ex, ey); a finger's axis leaning clockwise has ex > 0 when ey < 0
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)  # major axis angle from +x
    ex, ey = np.cos(theta), np.sin(theta)
    if ey > 0:
        ex, ey = -ex, -ey
    angle = float(np.degrees(np.arctan2(ex, -ey)))
    return float(np.clip(angle, hand - MAX_FINGER_TILT, hand + MAX_FINGER_TILT))


def _box(px, py, angle) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centre and size of the points' box in the finger's own frame (the mask's rim trimmed)."""
    u, v = _across(px, py, angle), _along(px, py, angle)
    trim = 0.0  # the contrast window's reach past the skin and the faded rim about cancel
    u0, u1 = np.percentile(u, [0.5, 99.5])
    v0, v1 = np.percentile(v, [0.5, 99.5])
    u0, u1, v0, v1 = u0 + trim, u1 - trim, v0 + trim, v1 - trim
    cu, cv = (u0 + u1) / 2.0, (v0 + v1) / 2.0
    a = np.deg2rad(angle)
    centre = (cu * np.cos(a) - cv * np.sin(a), cu * np.sin(a) + cv * np.cos(a))
    return (float(centre[0]), float(centre[1])), (float(u1 - u0), float(v1 - v0))


def crop_upright(pixels: np.ndarray, center, size, angle: float, margin: int = MARGIN) -> np.ndarray:
    """The box cut out of the image and turned upright (nearest pixel; glass-coloured outside)."""
    pixels = np.asarray(pixels)
    w, h = int(round(size[0])) + 2 * margin, int(round(size[1])) + 2 * margin
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u -= (w - 1) / 2.0
    v -= (h - 1) / 2.0
    a = np.deg2rad(angle)
    x = np.rint(center[0] + u * np.cos(a) - v * np.sin(a)).astype(np.intp)
    y = np.rint(center[1] + u * np.sin(a) + v * np.cos(a)).astype(np.intp)
    inside = (x >= 0) & (y >= 0) & (x < pixels.shape[1]) & (y < pixels.shape[0])
    glass = np.uint8(np.percentile(pixels[::8, ::8], 90))
    out = np.full((h, w), glass, np.uint8)
    out[inside] = pixels[y[inside], x[inside]]
    return out


def segment_slap(pixels, fingers, ppi: int = 500) -> Segmentation:
    """Find the expected fingers (positions 1-10) in a slap image (uint8 HxW, dark ridges).

    Returns the segments in image order, numbered by that order, each with its
    box, upright image and quality; `message` asks for a new slap when fewer
    fingers than expected were found.
    """
    expected = image_order(fingers)
    image = np.asarray(getattr(pixels, "pixels", pixels))
    if image.ndim != 2:
        raise ValueError(f"expected a grey image (2-D), got {image.ndim}-D")
    img500, scale = fields.resample_to_500(image, ppi)
    mask = skin_mask(img500)
    ys, xs = np.nonzero(mask)
    if len(xs) < 100:
        return Segmentation((), expected, 0.0, retry_message(0, expected))
    xs = xs.astype(np.float64) * STEP + (STEP - 1) / 2.0
    ys = ys.astype(np.float64) * STEP + (STEP - 1) / 2.0
    hand = hand_angle(xs, ys, len(expected))
    bands = finger_bands(_across(xs, ys, hand), len(expected))
    found = []
    across = _across(xs, ys, hand)
    for u0, u1 in bands:
        inside = (across >= u0) & (across <= u1)
        fx, fy = xs[inside], ys[inside]
        band_angle = _band_angle(fx, fy, hand)
        px, py = _distal(fx, fy, band_angle)
        if len(px) < 100:
            continue
        # the whole finger's alignment and the fingertip's own long axis, each a few degrees
        # off in its own way: their mean is steadier than either
        angle = 0.5 * (band_angle + _finger_angle(px, py, band_angle))
        px, py = _distal(fx, fy, angle)
        centre, size = _box(px, py, angle)
        found.append((centre, size, angle))
    found.sort(key=lambda b: b[0][0])
    numbers = expected if len(found) == len(expected) else expected[: len(found)]
    segments = []
    for finger, (centre, size, angle) in zip(numbers, found):
        cut = crop_upright(img500, centre, size, angle)
        centre = (centre[0] * scale, centre[1] * scale)
        size = (size[0] * scale, size[1] * scale)
        segments.append(Segment(finger, centre, size, angle, cut, assess_quality(cut)))
    return Segmentation(tuple(segments), expected, hand, retry_message(len(segments), expected))
