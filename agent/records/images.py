"""Type-14 image compression: WSQ (the FBI's, at 500 ppi) or PNG, and back to pixels."""

from __future__ import annotations

import io

import numpy as np

from fpagent.records.transaction_format import COMPRESSIONS, TransactionError


def compress_image(pixels: np.ndarray, ppi: int, compression: str) -> tuple[str, bytes]:
    """Return (CGA code, bytes). WSQ via the `wsq` Pillow plugin, PNG via Pillow.

    WSQ (CGA `WSQ20`) is defined for 500 ppi only; another resolution falls
    back to PNG rather than sending an image the bureau must reject.
    """
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L")
    buf = io.BytesIO()
    if compression == "wsq" and int(ppi) == 500:
        import wsq  # noqa: F401  (registers the WSQ plugin with Pillow)

        img.save(buf, format="WSQ")
        return "WSQ20", buf.getvalue()
    if compression not in COMPRESSIONS:
        raise TransactionError(f"unknown compression {compression!r}; use wsq or png")
    img.save(buf, format="PNG", dpi=(int(ppi), int(ppi)))
    return "PNG", buf.getvalue()


def decompress_image(cga: str, data: bytes) -> np.ndarray:
    """The pixels of a Type-14 image (WSQ20, PNG or NONE is not supported here)."""
    from PIL import Image

    if cga == "WSQ20":
        import wsq  # noqa: F401
    elif cga != "PNG":
        raise TransactionError(f"cannot decode CGA {cga!r} (this profile uses WSQ20 or PNG)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except Exception as exc:  # Pillow raises many kinds
        raise TransactionError(f"{cga} image does not decode: {exc}") from None
