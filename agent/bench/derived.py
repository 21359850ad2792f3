"""Generalisation sets made from the shared images without new data.

`--derive resample:569,resample:1000,crop:330x360,pad:40` on `fpagent bench accuracy`
turns each 500 ppi folder into more sets: the same prints as a sensor of
another resolution gives them (resampled, the new ppi written in the PNG's
pHYs chunk so extraction reads it and normalises back to 500 ppi), as a
small-area sensor gives them (a window of at most WIDTHxHEIGHT pixels at
500 ppi around the print's centre), and as a larger glass gives them (a blank
border of N pixels at 500 ppi, of the background's grey, on every side: the
print's edge then meets blank glass inside the image, not at its border, and
the extractor must not find minutiae along it). A derived set takes its
source's split (fpagent.bench.splits).
"""

from __future__ import annotations

import pathlib

import numpy as np

from fpagent.errors import UserError


def parse(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """"resample:569,crop:330x360" -> [("resample", (569,)), ("crop", (330, 360))]."""
    out = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        kind, _, arg = part.partition(":")
        try:
            if kind == "resample":
                ppi = int(arg)
                if not 250 <= ppi <= 1200:
                    raise ValueError
                out.append(("resample", (ppi,)))
            elif kind == "pad":
                values = tuple(int(v) for v in arg.split(":"))
                if not (len(values) in (1, 2) and 1 <= values[0] <= 512
                        and all(0 <= v <= 255 for v in values[1:])):
                    raise ValueError
                out.append(("pad", values))
            elif kind == "crop":
                w, h = (int(v) for v in arg.lower().split("x"))
                if not (64 <= w <= 2048 and 64 <= h <= 2048):
                    raise ValueError
                out.append(("crop", (w, h)))
            else:
                raise ValueError
        except ValueError:
            raise UserError(f"--derive {part!r}: use resample:PPI (250-1200), crop:WIDTHxHEIGHT "
                            f"(64-2048 px at 500 ppi) or pad:PIXELS[:GREY] "
                            f"(1-512 px at 500 ppi; grey 0-255, default the background's)") from None
    return out


def suffix(kind: str, arg: tuple[int, ...]) -> str:
    """The derived set's name suffix: 'resample569', 'crop330x360', 'pad40', 'pad40g255'."""
    return kind + ("g" if kind == "pad" else "x").join(str(v) for v in arg)


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


def derive_image(pixels: np.ndarray, ppi: int, kind: str, arg: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """(pixels, ppi) of one derived image."""
    if kind == "resample":
        return resample(pixels, ppi, arg[0]), arg[0]
    if kind == "crop":
        w, h = arg
        if ppi != 500:  # the window is given at 500 ppi
            w, h = int(round(w * ppi / 500)), int(round(h * ppi / 500))
        return crop(pixels, w, h), ppi
    if kind == "pad":
        return pad(pixels, int(round(arg[0] * ppi / 500)), *arg[1:]), ppi
    raise ValueError(kind)


def write_folder(source: pathlib.Path, files, kind: str, arg: tuple[int, ...],
                 into: pathlib.Path, load) -> pathlib.Path:
    """Write the derived images of `files` as PNGs (ppi in pHYs) into into/<source>@<suffix>/."""
    from PIL import Image  # noqa: PLC0415

    out = into / f"{source.name}@{suffix(kind, arg)}"
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        pixels, ppi = load(path)
        px, new_ppi = derive_image(pixels, ppi, kind, arg)
        Image.fromarray(np.ascontiguousarray(px)).save(out / (path.stem + ".png"), dpi=(new_ppi, new_ppi))
    return out
