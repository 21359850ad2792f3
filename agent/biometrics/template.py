"""The minutiae template every part of the agent passes around.

Extraction produces it, the matcher and prefilter consume it, the ISO/ANSI
writers serialise it. Coordinates are pixels of the *original* image (origin
top-left, y down); angles are radians in [0, 2*pi), counter-clockwise from
the x axis pointing right, as ISO/IEC 19794-2 defines them (so with y
pointing down, a ridge ending whose ridge runs off to the right has angle 0).
`repr` never shows minutiae: templates are biometric data and must not reach
logs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

RIDGE_ENDING = 1
BIFURCATION = 2
OTHER = 0

MINUTIA_DTYPE = np.dtype(
    [
        ("x", np.float32),
        ("y", np.float32),
        ("angle", np.float32),  # radians, [0, 2*pi)
        ("kind", np.uint8),  # RIDGE_ENDING, BIFURCATION or OTHER
        ("quality", np.uint8),  # 0-100, 0 = not reported
    ]
)


def minutiae_array(rows=()) -> np.ndarray:
    """Build a MINUTIA_DTYPE array from (x, y, angle, kind, quality) tuples."""
    return np.array([tuple(r) for r in rows], dtype=MINUTIA_DTYPE)


@dataclasses.dataclass(eq=False)
class Template:
    minutiae: np.ndarray  # MINUTIA_DTYPE, shape (n,)
    width: int
    height: int
    ppi: int = 500
    quality: int = 0  # finger quality 0-100
    finger_position: int = 0  # FGP 0-10
    impression_type: int = 0  # IMP

    def __post_init__(self):
        m = np.asarray(self.minutiae)
        if m.dtype != MINUTIA_DTYPE:
            m = np.asarray(m, dtype=MINUTIA_DTYPE)
        self.minutiae = m.reshape(-1)

    def __len__(self) -> int:
        return int(self.minutiae.shape[0])

    def __repr__(self) -> str:
        return (
            f"Template({len(self)} minutiae, {self.width}x{self.height} @ {self.ppi} ppi, "
            f"quality={self.quality}, fgp={self.finger_position})"
        )
