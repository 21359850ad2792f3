"""Generalisation sets made from the shared images without new data.

`--derive resample:569,resample:1000,crop:330x360,pad:40` on `fpagent bench accuracy`
turns each 500 ppi folder into more sets: the same prints as a sensor of
another resolution gives them (resampled, the new ppi written in the PNG's
pHYs chunk so extraction reads it and normalises back to 500 ppi), as a
small-area sensor gives them (a window of at most WIDTHxHEIGHT pixels at
500 ppi around the print's centre), and as a larger glass gives them (a blank
border of N pixels at 500 ppi, of the background's grey, on every side: the
print's edge then meets blank glass inside the image, not at its border, and
the extractor must not find minutiae along it). `faint:PERCENT` and `dry:PERCENT`
imitate a small USB optical sensor's light, low-contrast prints of dry skin:
ridges at most PERCENT of the full contrast, less where the finger presses
lightly, on a bright, unevenly lit glass with sensor noise; or PERCENT of the
ridge area lifted off the glass in small blobs (broken ridges). Steps joined
by `+` apply in order to one set: `crop:330x360+dry:20+faint:40`. The noise is
seeded by the image's pixels, so a set is the same on every run. A derived
set takes its source's split (fpagent.bench.splits).
"""

from __future__ import annotations

import pathlib
import zlib

import numpy as np

from fpagent.errors import UserError


Step = tuple[str, tuple[int, ...]]

USAGE = ("use steps resample:PPI (250-1200), crop:WIDTHxHEIGHT (64-2048 px at 500 ppi), "
         "pad:PIXELS[:GREY] (1-512 px at 500 ppi; grey 0-255, default the background's), "
         "faint:PERCENT (5-100: ridge contrast left) or dry:PERCENT (1-60: ridge area lifted), "
         "joined by + to apply in order")


def _parse_step(part: str) -> Step:
    kind, _, arg = part.partition(":")
    if kind == "resample":
        ppi = int(arg)
        if not 250 <= ppi <= 1200:
            raise ValueError
        return "resample", (ppi,)
    if kind == "pad":
        values = tuple(int(v) for v in arg.split(":"))
        if not (len(values) in (1, 2) and 1 <= values[0] <= 512
                and all(0 <= v <= 255 for v in values[1:])):
            raise ValueError
        return "pad", values
    if kind == "crop":
        w, h = (int(v) for v in arg.lower().split("x"))
        if not (64 <= w <= 2048 and 64 <= h <= 2048):
            raise ValueError
        return "crop", (w, h)
    if kind in ("faint", "dry"):
        percent = int(arg)
        if not (5 <= percent <= 100 if kind == "faint" else 1 <= percent <= 60):
            raise ValueError
        return kind, (percent,)
    raise ValueError


def parse(text: str) -> list[tuple[Step, ...]]:
    """One chain of steps per comma-separated set: "resample:569,crop:330x360+faint:40" ->
    [(("resample", (569,)),), (("crop", (330, 360)), ("faint", (40,)))]."""
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        try:
            out.append(tuple(_parse_step(step.strip()) for step in part.split("+")))
        except ValueError:
            raise UserError(f"--derive {part!r}: {USAGE}") from None
    return out


def suffix(chain: tuple[Step, ...]) -> str:
    """The derived set's name suffix: 'resample569', 'crop330x360', 'pad40g255', 'crop330x360+faint40'."""
    return "+".join(kind + ("g" if kind == "pad" else "x").join(str(v) for v in arg) for kind, arg in chain)


def resample(pixels: np.ndarray, ppi_from: int, ppi_to: int) -> np.ndarray:
    """The image a sensor of `ppi_to` would give of the same skin (Pillow, antialiased)."""
    from PIL import Image  # noqa: PLC0415

    if ppi_from == ppi_to:
        return np.asarray(pixels)
    h, w = pixels.shape
    f = ppi_to / ppi_from
    size = (max(16, int(round(w * f))), max(16, int(round(h * f))))
    return np.asarray(Image.fromarray(np.asarray(pixels)).resize(size, Image.Resampling.LANCZOS))


def centre_of_print(pixels: np.ndarray) -> tuple[int, int]:
    """(row, col) of the dark mass of the image: where the finger pressed."""
    ink = np.clip(255.0 - np.asarray(pixels, dtype=np.float64), 0, None)
    ink = np.where(ink > 0.25 * max(float(ink.max()), 1.0), ink, 0.0)
    total = ink.sum()
    if total <= 0:
        return pixels.shape[0] // 2, pixels.shape[1] // 2
    rows, cols = np.indices(pixels.shape)
    return int(round((rows * ink).sum() / total)), int(round((cols * ink).sum() / total))


def crop(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """A window of at most width x height around the print's centre.

    An image already smaller than the window in one direction keeps its size
    there: padding would add a border no sensor gives (a white band around
    DB3_B's 300x300 prints raised our EER from 2.85% to 7.30%), and a small
    sensor never shows more skin than it has.
    """
    h, w = pixels.shape
    height, width = min(height, h), min(width, w)
    cy, cx = centre_of_print(pixels)
    top = int(np.clip(cy - height // 2, 0, h - height))
    left = int(np.clip(cx - width // 2, 0, w - width))
    return np.ascontiguousarray(pixels[top:top + height, left:left + width])


def background_grey(pixels: np.ndarray) -> int:
    """The grey of the blank glass: the image's 90th percentile (the glass where a print
    leaves some, the valleys' grey where it fills the image, as on DB3_B and DB4_B)."""
    return int(np.percentile(np.asarray(pixels)[::2, ::2], 90))


def pad(pixels: np.ndarray, border: int, grey: int | None = None) -> np.ndarray:
    """The image inside a blank border of `border` pixels of `grey` (default: the background's)."""
    grey = background_grey(pixels) if grey is None else grey
    return np.pad(np.asarray(pixels), border, mode="constant", constant_values=grey).astype(np.uint8)


def _rng(pixels: np.ndarray, salt: int) -> np.random.Generator:
    """A generator seeded by the image itself: the same derived set on every run."""
    return np.random.default_rng([zlib.crc32(np.ascontiguousarray(pixels).tobytes()), salt])


def _ink(pixels: np.ndarray) -> np.ndarray:
    """How dark each pixel is: 0 at the background's grey, 1 at the darkest ridges (2nd percentile)."""
    px = np.asarray(pixels, dtype=np.float64)
    bg = background_grey(pixels)
    dark = float(np.percentile(px[::2, ::2], 2))
    return np.clip((bg - px) / max(bg - dark, 1.0), 0.0, 1.0)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a cells x cells random grid, bicubically enlarged (Pillow)."""
    from PIL import Image  # noqa: PLC0415

    grid = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize(shape[::-1], Image.Resampling.BICUBIC),
                      dtype=np.float64).clip(-1.0, 1.0)


def faint(pixels: np.ndarray, percent: int) -> np.ndarray:
    """The print as a light, low-contrast optical sensor gives it.

    The glass is bright (about 236) and unevenly lit: a linear gradient of
    +-14 grey in a random direction and a broad +-6 blotch. The finger touches
    the glass unevenly: the darkest ridge reaches `percent` of the way from the
    glass's grey to black where it presses hardest and a third of that where it
    presses least (a smooth random field). Pixel noise of 2.5 grey. The ridge
    and valley structure is the source image's own (its ink scale runs from its
    background grey to its 2nd percentile).
    """
    ink = _ink(pixels)
    rng = _rng(pixels, 1)
    h, w = ink.shape
    theta = rng.uniform(0.0, 2.0 * np.pi)
    rows, cols = np.indices((h, w), dtype=np.float64)
    ramp = (np.cos(theta) * (cols / max(w - 1, 1) - 0.5) + np.sin(theta) * (rows / max(h - 1, 1) - 0.5))
    light = 236.0 + 28.0 * ramp + 6.0 * _smooth_field(rng, (h, w), 4)
    pressure = 2.0 / 3.0 + _smooth_field(rng, (h, w), 3) / 3.0  # 1/3 .. 1
    out = light * (1.0 - ink * pressure * percent / 100.0) + rng.normal(0.0, 2.5, (h, w))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _rank_filter(px: np.ndarray, size: int, brightest: bool) -> np.ndarray:
    """The brightest (or darkest) pixel of the size x size window around each pixel (Pillow)."""
    from PIL import Image, ImageFilter  # noqa: PLC0415

    rank = ImageFilter.MaxFilter(size) if brightest else ImageFilter.MinFilter(size)
    return np.asarray(Image.fromarray(np.asarray(px, dtype=np.uint8)).filter(rank), dtype=np.float64)


def dry(pixels: np.ndarray, percent: int) -> np.ndarray:
    """The print of dry skin: about `percent` of the ridge area lifted off the glass.

    Soft blobs of 2-4 px radius, centred on ridge pixels, fade the ridge to its
    neighbouring valleys' grey (the brightest pixel within 9 px), so ridges break
    into pieces as dry fingers' do and no blob is brighter than the valleys.
    """
    px = np.asarray(pixels, dtype=np.float64)
    high, low = _rank_filter(pixels, 9, True), _rank_filter(pixels, 9, False)
    spread = float(np.percentile(px[::2, ::2], 98) - np.percentile(px[::2, ::2], 2))
    ridge = ((high - px) > 0.5 * (high - low)) & ((high - low) > 0.3 * spread)
    ridge_rows, ridge_cols = np.nonzero(ridge)
    n = int(round(percent / 100.0 * ridge_rows.size / (np.pi * 3.0 ** 2)))
    if n == 0:
        return np.asarray(pixels).copy()
    rng = _rng(pixels, 2)
    h, w = px.shape
    lift = np.zeros((h, w))
    picks = rng.integers(0, ridge_rows.size, n)
    radii = rng.uniform(2.0, 4.0, n)
    for r0, c0, rad in zip(ridge_rows[picks], ridge_cols[picks], radii):
        k = int(np.ceil(rad))
        top, left = max(r0 - k, 0), max(c0 - k, 0)
        rr, cc = np.indices((min(r0 + k + 1, h) - top, min(c0 + k + 1, w) - left))
        d = np.hypot(rr + top - r0, cc + left - c0) / rad
        window = lift[top:top + rr.shape[0], left:left + rr.shape[1]]
        np.maximum(window, np.clip(1.5 - 1.5 * d, 0.0, 1.0), out=window)
    out = px + (high - px) * lift
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def derive_image(pixels: np.ndarray, ppi: int, kind: str, arg: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """(pixels, ppi) of one derivation step."""
    if kind == "resample":
        return resample(pixels, ppi, arg[0]), arg[0]
    if kind == "crop":
        w, h = arg
        if ppi != 500:  # the window is given at 500 ppi
            w, h = int(round(w * ppi / 500)), int(round(h * ppi / 500))
        return crop(pixels, w, h), ppi
    if kind == "pad":
        return pad(pixels, int(round(arg[0] * ppi / 500)), *arg[1:]), ppi
    if kind == "faint":
        return faint(pixels, arg[0]), ppi
    if kind == "dry":
        return dry(pixels, arg[0]), ppi
    raise ValueError(kind)


def derive_chain(pixels: np.ndarray, ppi: int, chain: tuple[Step, ...]) -> tuple[np.ndarray, int]:
    """(pixels, ppi) after every step of `chain`, in order."""
    for kind, arg in chain:
        pixels, ppi = derive_image(pixels, ppi, kind, arg)
    return pixels, ppi


def write_folder(source: pathlib.Path, files, chain: tuple[Step, ...],
                 into: pathlib.Path, load) -> pathlib.Path:
    """Write the derived images of `files` as PNGs (ppi in pHYs) into into/<source>@<suffix>/."""
    from PIL import Image  # noqa: PLC0415

    out = into / f"{source.name}@{suffix(chain)}"
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        px, new_ppi = derive_chain(*load(path), chain)
        Image.fromarray(np.ascontiguousarray(px)).save(out / (path.stem + ".png"), dpi=(new_ppi, new_ppi))
    return out
