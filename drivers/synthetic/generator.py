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

The stages live in master.py (with ridge growth in ridges.py) and
impression.py; this module is their public face.
"""

from __future__ import annotations

import numpy as np

# The generator's API, re-exported from the stages (tests also reach the
# filter bank and class model through this module).
from fpagent.drivers.synthetic.impression import (  # noqa: F401
    DISTORTION_SHIFT,
    DISTORTION_TWIST_DEG,
    NOISE_SCALE,
    PLACEMENT_RADIUS,
    PRESSURE_PX,
    PRESSURE_SD,
    SKIN_WARP,
    TEXTURE,
    ImpressionParams,
    bilinear,
    contact_strength,
    draw_impression_params,
    impression_coordinates,
    impression_of,
    render_impression,
)
from fpagent.drivers.synthetic.master import (  # noqa: F401
    CLASS_FREQUENCIES,
    MASTER_SHAPE,
    PATTERN_CLASSES,
    ULNAR_SHARE,
    MasterFinger,
    arch_orientation,
    choose_pattern,
    class_frequencies,
    fingertip_mask,
    flux_log_spacing,
    master_finger,
    orientation_field,
    ridge_period_map,
    singular_points,
    smooth_noise,
)
from fpagent.drivers.synthetic.ridges import (  # noqa: F401
    GROWTH_ITERATIONS,
    SEED_DENSITY,
    bank_weights,
    gabor_bank,
    contextual_filter,
    grow_ridges,
)

PPI = 500

# the names the generator's tests have always used for the filter bank
_gabor_bank = gabor_bank
_bank_weights = bank_weights


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
