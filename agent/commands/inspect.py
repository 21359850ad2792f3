"""`fpagent inspect IMAGE --out FILE.png`: what the agent sees in a print, as a picture.

Draws the foreground, the block quality map (red = poor .. green = good) and
the minutiae (red circles = ridge endings, blue squares = bifurcations, a
tick for the direction) over the image, and prints one summary line. A print
with no usable fingerprint still gets its picture (foreground and quality
map only) and exits 65.
"""

from __future__ import annotations

import pathlib

import numpy as np

from fpagent.commands import exit_code_for
from fpagent.errors import NoUsableFingerprint, UserError


def _load(path: pathlib.Path) -> tuple[np.ndarray, int | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            dpi = im.info.get("dpi")
            pixels = np.asarray(im.convert("L"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path}: not an image Pillow can read ({exc})") from None
    ppi = None
    try:
        v = int(round(float(dpi[0])))
        if 300 <= v <= 2000:
            ppi = v
    except (TypeError, ValueError, IndexError):
        pass
    return pixels, ppi


def run(args) -> int:
    from fpagent.biometrics import extraction
    from fpagent.biometrics import overlay

    path = pathlib.Path(args.image)
    pixels, file_ppi = _load(path)
    ppi = args.ppi or file_ppi or 500
    out = pathlib.Path(args.out)
    try:
        ext = extraction.extract(pixels, ppi=ppi)
        picture = overlay.render(pixels, ext, zoom=args.zoom, skeleton=args.skeleton)
        q = ext.quality
        line = (f"{path.name}: quality {q.score}/100, {len(ext.template)} minutiae "
                f"({int((ext.template.minutiae['kind'] == 1).sum())} endings, "
                f"{int((ext.template.minutiae['kind'] == 2).sum())} bifurcations), "
                f"{ppi} ppi; advice: {q.advice or 'none, the print is good'}")
        code = 0
    except NoUsableFingerprint as exc:
        picture = overlay.render(pixels, None, quality=getattr(exc, "quality", None), zoom=args.zoom)
        line = f"{path.name}: {exc}"
        code = exit_code_for(exc)
    try:
        picture.save(out, format="PNG")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(line)
    print(f"picture written to {out}")
    return code


def register(sub):
    p = sub.add_parser("inspect", help="draw foreground, quality map and minutiae over a print",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("image", metavar="IMAGE", help="fingerprint image (PNG, BMP, TIFF...)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="picture to write")
    p.add_argument("--ppi", type=int, default=0,
                   help="image resolution (default: from the file, else 500)")
    p.add_argument("--zoom", type=int, default=2, choices=range(1, 5), metavar="1-4",
                   help="magnification of the picture (default 2)")
    p.add_argument("--skeleton", action="store_true", help="also draw the ridge skeleton")
    p.set_defaults(func=run)
