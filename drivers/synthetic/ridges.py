"""Ridge growth for master fingers: iterated contextual Gabor filtering through the FFT.

Why a module of its own: it is the one costly stage of a master finger
(about 0.35 s), a pure function of an orientation field, a period map and a
mask, and its filter bank is tested on its own.
"""

from __future__ import annotations

import functools

import numpy as np

# Ridge growth. The Gabor bank is tuned to quantised orientations x periods;
# each pixel mixes the responses of its two nearest orientations and periods.
_N_ORIENTATIONS = 12
BANK_PERIODS = (7.0, 9.0, 11.5)  # px; the period map is clipped to this range
_SIGMA_NORMAL = 3.6  # px, Gaussian envelope across ridges
_SIGMA_TANGENT = 4.6  # px, and along them (elongated: smooth, continuous ridges)
GROWTH_ITERATIONS = 7
SEED_DENSITY = 1.0 / 700.0  # random seeds per px of the fingertip
_GROWTH_GAIN = 2.0  # times the local mean |response|: saturates, a soft binarisation


@functools.lru_cache(maxsize=2)  # ~17 MB per canvas shape
def gabor_bank(shape: tuple[int, int]) -> np.ndarray:
    """Frequency responses (rfft2 layout) of the Gabor bank, peak gain 1.

    Built analytically (the transform of a Gaussian-windowed cosine is a pair
    of Gaussians at +-f0 across the ridges), so no spatial kernels are needed.
    Shape: (n_periods, n_orientations, H, W//2+1), float32.
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    bank = np.empty((len(BANK_PERIODS), _N_ORIENTATIONS, h, w // 2 + 1), np.float32)
    for i, period in enumerate(BANK_PERIODS):
        f0 = 1.0 / period
        for j in range(_N_ORIENTATIONS):
            theta = j * np.pi / _N_ORIENTATIONS
            fn = -fx * np.sin(theta) + fy * np.cos(theta)  # across the ridges
            ft = fx * np.cos(theta) + fy * np.sin(theta)  # along them
            env_t = np.exp(-2 * np.pi**2 * (_SIGMA_TANGENT * ft) ** 2)
            resp = env_t * (
                np.exp(-2 * np.pi**2 * (_SIGMA_NORMAL * (fn - f0)) ** 2)
                + np.exp(-2 * np.pi**2 * (_SIGMA_NORMAL * (fn + f0)) ** 2)
            )
            # no DC and nothing near it: a flat blob (all ridge or all valley)
            # must fade, not sustain itself through the gain control below
            resp *= 1.0 - np.exp(-((fx**2 + fy**2) / (0.4 * f0) ** 2))
            bank[i, j] = resp / resp.max()
    return bank


def bank_weights(orientation: np.ndarray, period: np.ndarray):
    """Per-pixel linear weights over the bank's (period, orientation) entries.

    Returns a list of (i_period, j_orientation, weight HxW float32), only for
    the entries some pixel uses.
    """
    n_o, periods = _N_ORIENTATIONS, np.asarray(BANK_PERIODS)
    pos = np.asarray(orientation, dtype=np.float64) / (np.pi / n_o)
    j0 = np.floor(pos).astype(np.intp) % n_o
    wj1 = (pos - np.floor(pos)).astype(np.float32)
    j1 = (j0 + 1) % n_o
    i0 = np.clip(np.searchsorted(periods, period, side="right") - 1, 0, len(periods) - 2)
    wi1 = np.clip((period - periods[i0]) / (periods[i0 + 1] - periods[i0]), 0.0, 1.0).astype(np.float32)
    wj = _spread(j0, j1, wj1, n_o)
    wi = _spread(i0, i0 + 1, wi1, len(periods))
    used = np.zeros(len(periods) * n_o, bool)
    for a, wa in ((i0, 1.0 - wi1), (i0 + 1, wi1)):
        for b, wb in ((j0, 1.0 - wj1), (j1, wj1)):
            used |= np.bincount((a * n_o + b).ravel(), weights=(wa * wb).ravel(), minlength=used.size) > 0
    return [(i, j, wi[i] * wj[j]) for i in range(len(periods)) for j in range(n_o) if used[i * n_o + j]]


def _spread(first: np.ndarray, second: np.ndarray, frac: np.ndarray, n: int) -> np.ndarray:
    """(n, H, W) float32: 1-frac at index `first`, frac at index `second`, else 0."""
    out = np.zeros((n, first.size), np.float32)
    cols = np.arange(first.size)
    out[first.ravel(), cols] = 1.0 - frac.ravel()
    out[second.ravel(), cols] += frac.ravel()
    return out.reshape((n,) + first.shape)


def contextual_filter(image: np.ndarray, terms, bank: np.ndarray) -> np.ndarray:
    """One pass of contextual Gabor filtering: each pixel gets the response of
    the filter tuned to its own orientation and period (mixed linearly)."""
    spectrum = np.fft.rfft2(image)
    out = np.zeros(image.shape, np.float32)
    for i, j, weight in terms:
        out += weight * np.fft.irfft2(spectrum * bank[i, j], s=image.shape).astype(np.float32)
    return out


def grow_ridges(
    orientation: np.ndarray,
    period: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    iterations: int | None = None,
    seed_density: float | None = None,
) -> np.ndarray:
    """Grow a ridge pattern from sparse random noise by iterated Gabor filtering.

    Each pass filters with the local orientation and period, rescales and clips
    to [-1, 1] (a soft binarisation); ridges spread from the seeds and meet
    where they must, leaving endings and bifurcations behind.
    """
    shape = orientation.shape
    iterations = GROWTH_ITERATIONS if iterations is None else iterations
    bank = gabor_bank(shape)
    terms = bank_weights(orientation, period)
    image = np.zeros(shape, np.float32)
    region = np.flatnonzero(_dilate_box(mask, 12).ravel())
    if seed_density is None:
        seed_density = SEED_DENSITY
    n_seeds = max(8, int(len(region) * seed_density))
    picks = rng.choice(region, size=n_seeds, replace=False)
    image.ravel()[picks] = rng.choice(np.array([-1.0, 1.0], np.float32), size=n_seeds)
    for _ in range(iterations):
        image = contextual_filter(image, terms, bank)
        # local gain control: every region reaches full contrast (no grey
        # holes where two growing ridge systems cancel), then clip
        magnitude = np.abs(image)
        floor = 0.05 * float(magnitude.mean()) + 1e-12  # faint regions stay faint
        envelope = np.maximum(box_mean(magnitude, 6), floor)
        image = np.clip(image * (_GROWTH_GAIN / envelope), -1.0, 1.0)
    return image


def _dilate_box(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 box (separable, via cumulative sums)."""
    return box_mean(mask.astype(np.float32), radius) > 1e-6


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 box, edges replicated; separable cumulative sums."""
    if radius <= 0:
        return image.astype(np.float32, copy=True)
    out = image.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis)
        n = out.shape[axis]
        hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        out = (hi - lo) / (2 * radius + 1)
    return out.astype(np.float32)
