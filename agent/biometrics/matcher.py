"""1:1 fingerprint matcher: similarity of two minutiae templates.

How it works (kernels in fpagent.biometrics.match_kernels, each with a numpy reference):
1. `prepare` (once per template): coordinates to 500 ppi, at most
   MAX_MINUTIAE minutiae (best quality first), "edges" from each minutia to its
   nearest neighbours described by rotation/translation-invariant features
   (length, the two angles between edge and minutia directions), sorted by
   length; a coarse occupancy grid of the print's minutiae area.
2. Edge votes: edges of A and B that agree vote for minutia correspondences
   and for the rotation between the prints (local-structure matching, which
   is what makes the matcher indifferent to rotation, translation and the
   part of the finger that was presented).
3. Consolidation: the best-voted correspondences anchor rigid alignments;
   each is paired one-to-one with distance tolerances that grow away from the
   anchor (skin distortion); the best alignment is refitted by least squares
   and paired again.
4. Score: squared matched count over the product of the minutiae counts in
   the overlapping area, damped when few minutiae agree; in [0, 1].

`compare(a, b) == compare(b, a)` exactly: the pair is put in a canonical
order before the (asymmetric) kernel runs.

MATCH_THRESHOLD = 0.095 was calibrated on the shared FVC2002 DB1_B + DB3_B
sets with fpagent.biometrics.extraction's templates (extended impostor sets, 5,760
impostor pairs): FMR 0.087% (5 impostor pairs at or above it), FNMR 9.3% of
the 560 genuine pairs; re-checked with 7 neighbours and 5 anchors: FMR 0.069%
(4 pairs), FNMR 9.5%; and with the extractor that keeps a faint print's
foreground: FMR 0.017% (1 pair, on DB1_B), FNMR 8.8% (DB1_B 1.8%, DB3_B 15.7%).
Re-run `fpagent bench accuracy --scores-out` (and re-calibrate) after changing
the extractor or the parameters below.

Measured and not kept: scoring 0, without aligning, a pair whose best-voted
correspondence has few votes. Under 2.5 votes it cut 42% of DB1_B's impostor
pairs (about 20% more comparisons/s; EER DB1_B 0.47% -> 0.44%, DB3_B 3.20% ->
2.66%, DB4_B the same) but lost genuine pairs of faint prints (DB1_B
crop:330x360+faint:20 1.43% -> 1.78%, DB3_B +faint:20 4.43% -> 6.43%). Under
2.25 and only for two prints of 20 minutiae or more (17% cut, about 10% more
comparisons/s) those held, but another vendor's records did not (SecuGen
DB3_B, ours vs theirs 5.18% -> 5.71%, theirs as recorded 4.63% -> 4.98%;
DB4_B ours vs theirs 1.43% -> 1.60%): a genuine pair of distorted coordinates
can have few agreeing edges and still align.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import weakref

import numpy as np

from fpagent.biometrics import portable_math
from fpagent.biometrics.match_kernels.constants import ANGLE_UNITS, BUCKET_SHIFT, BUCKETS_PER_ANGLE, EDGE_LEN_BIN
from fpagent.biometrics.template import Template

MAX_MINUTIAE = 96
NEIGHBOURS = 7  # edges from each minutia to its k nearest neighbours (8: same EER, 12% slower)
MAX_EDGE_LEN = 160.0  # px at 500 ppi
MIN_EDGE_LEN = 4.0
GRID_CELL = 16.0  # px at 500 ppi
GRID_DILATE = 2  # cells
EDGE_LEN_BINS = int(math.ceil(MAX_EDGE_LEN / EDGE_LEN_BIN))
N_BUCKETS = BUCKETS_PER_ANGLE * EDGE_LEN_BINS * BUCKETS_PER_ANGLE

# kernel parameters (see fpagent.biometrics.match_kernels.match_score P_*), px at 500 ppi, radians
PARAMS = np.array([
    6.0,                 # P_LEN_TOL: edge length tolerance
    0.06,                # P_LEN_TOL_REL: ... plus this fraction of the length
    math.radians(22),    # P_EDGE_ANG: edge angle tolerance
    10.0,                # P_DIST_TOL: pairing distance tolerance at the anchor
    0.08,                # P_DIST_TOL_REL: ... growing with distance from the anchor
    26.0,                # P_DIST_TOL_MAX
    math.radians(30),    # P_PAIR_ANG: pairing direction tolerance
    5,                   # P_ANCHORS: alignments tried (6: same EER, 7% slower)
    10.0,                # P_MIN_OVERLAP: normaliser floor (minutiae)
    GRID_CELL,           # P_CELL
    1.0,                 # P_MIN_VOTES
    0.0,                 # P_SELECT_BY_SCORE: keep the alignment with the best score (else most pairs)
    10.0,                # P_SATURATION: matched count at which the evidence damping is 1 - 1/e
    EDGE_LEN_BIN,        # P_EDGE_LEN_BIN: edge bucket layout (see build_edges)
    EDGE_LEN_BINS,       # P_EDGE_LEN_BINS
], dtype=np.float64)

MATCH_THRESHOLD = 0.095


@dataclasses.dataclass(eq=False)
class Prepared:
    """Per-template features the kernel needs; build once with `prepare`, compare many times.

    Fields that the kernel reads together share one array (fewer arguments per call):
    x, y, th are the rows of `xyt`, the edges' byte fields the rows of `edges`."""

    xyt: np.ndarray  # (3, n) float32: x, y, direction in the internal frame
    e_len: np.ndarray
    edges: np.ndarray  # (5, m) uint8: i, j, angle at i, angle at j, direction (1/256 turns)
    e_bucket_start: np.ndarray
    grid: np.ndarray
    key: bytes  # canonical order of a pair (symmetry)
    quality: np.ndarray | None = None  # per minutia 0-100 (same order as x), for the prefilter

    def __post_init__(self):
        self.args = self.kernel_args()  # the kernel's argument tuple, built once

    def __len__(self) -> int:
        return int(self.xyt.shape[1])

    x = property(lambda self: self.xyt[0])
    y = property(lambda self: self.xyt[1])
    th = property(lambda self: self.xyt[2])
    e_i = property(lambda self: self.edges[0])
    e_j = property(lambda self: self.edges[1])
    e_ai = property(lambda self: self.edges[2])
    e_aj = property(lambda self: self.edges[3])
    e_dir = property(lambda self: self.edges[4])

    def kernel_args(self):
        return (self.xyt, self.e_len, self.edges, self.e_bucket_start, self.grid)

    def __repr__(self) -> str:
        return f"Prepared({len(self)} minutiae, {len(self.e_len)} edges)"


def _wrap(a):
    return np.mod(a, 2 * math.pi)


def build_edges(x: np.ndarray, y: np.ndarray, th: np.ndarray, k: int = NEIGHBOURS,
                max_len: float = MAX_EDGE_LEN):
    """Directed edges (both directions) to the k nearest neighbours (plain-numpy reference of
    fpagent.biometrics.match_kernels.edge_build, which `prepare` runs).

    Lengths, the byte fields as the rows of one (5, m) array (i, j, angle at i, angle at j,
    direction) and the bucket start offsets, sorted by (bucket, length) as
    fpagent.biometrics.match_kernels.match_edges.edge_votes wants B's edges. A bucket is
    (first angle // 16 units, length // EDGE_LEN_BIN, second angle // 16 units),
    numbered in that (row-major) order.
    """
    n = x.shape[0]
    empty = (np.zeros(0, np.float32), np.zeros((5, 0), np.uint8), np.zeros(N_BUCKETS + 1, np.int32))
    if n < 2:
        return empty
    dx = x[None, :] - x[:, None]
    dy = y[None, :] - y[:, None]
    d = np.sqrt(dx * dx + dy * dy)  # as the kernel: not hypot, whose last bit varies by CPU
    np.fill_diagonal(d, np.inf)
    kk = min(k, n - 1)
    nn = np.argsort(d, axis=1, kind="stable")[:, :kk]
    sel = np.zeros((n, n), dtype=bool)
    rows = np.repeat(np.arange(n), kk)
    sel[rows, nn.reshape(-1)] = True
    sel |= sel.T
    sel &= (d <= max_len) & (d >= MIN_EDGE_LEN)
    ii, jj = np.nonzero(sel)
    if ii.size == 0:
        return empty
    length = d[ii, jj]
    direction = portable_math.atan2_array(dy[ii, jj], dx[ii, jj])
    a_i = _wrap(direction - th[ii])
    a_j = _wrap(direction + math.pi - th[jj])
    ai_u = _units(a_i)
    aj_u = _units(a_j)
    lbin = np.minimum((length / EDGE_LEN_BIN).astype(np.int64), EDGE_LEN_BINS - 1)
    bucket = ((ai_u >> BUCKET_SHIFT) * EDGE_LEN_BINS + lbin) * BUCKETS_PER_ANGLE + (aj_u >> BUCKET_SHIFT)
    order = np.lexsort((length, bucket))
    starts = np.searchsorted(bucket[order], np.arange(N_BUCKETS + 1)).astype(np.int32)
    # minutia indexes (MAX_MINUTIAE <= 256) and angles in 1/256 turns, a byte each, one row per field
    fields = np.stack([ii[order], jj[order], ai_u[order], aj_u[order], _units(direction[order])]).astype(np.uint8)
    return length[order].astype(np.float32), fields, starts


def _units(angle: np.ndarray) -> np.ndarray:
    """Radians to int32 1/256 turns (the edge kernel's angle unit)."""
    return (np.rint(_wrap(angle) * (256 / (2 * math.pi))).astype(np.int64) % 256).astype(np.int32)


def build_grid(x: np.ndarray, y: np.ndarray, width: float, height: float,
               cell: float = GRID_CELL, dilate: int = GRID_DILATE) -> np.ndarray:
    """Coarse area of the print: cells near minutiae, dilated, holes between filled (plain-numpy
    reference of match_kernels.edge_build.build_grid_kernel, which `prepare` runs)."""
    gh = int(math.ceil(max(height, 1) / cell)) + 1
    gw = int(math.ceil(max(width, 1) / cell)) + 1
    occ = np.zeros((gh, gw), dtype=bool)
    if x.size == 0:
        return occ
    cx = np.clip((x / cell).astype(np.int64), 0, gw - 1)
    cy = np.clip((y / cell).astype(np.int64), 0, gh - 1)
    occ[cy, cx] = True
    grown = occ.copy()
    for dy in range(-dilate, dilate + 1):
        for dx in range(-dilate, dilate + 1):
            if dx * dx + dy * dy > dilate * dilate:
                continue
            shifted = np.zeros_like(occ)
            ys = slice(max(dy, 0), gh + min(dy, 0))
            yd = slice(max(-dy, 0), gh + min(-dy, 0))
            xs = slice(max(dx, 0), gw + min(dx, 0))
            xd = slice(max(-dx, 0), gw + min(-dx, 0))
            shifted[yd, xd] = occ[ys, xs]
            grown |= shifted
    # fill between the extremes of each row and of each column (a convex-ish hull)
    rows = np.zeros_like(grown)
    for r in range(gh):
        idx = np.nonzero(grown[r])[0]
        if idx.size:
            rows[r, idx[0]:idx[-1] + 1] = True
    cols = np.zeros_like(grown)
    for c in range(gw):
        idx = np.nonzero(grown[:, c])[0]
        if idx.size:
            cols[idx[0]:idx[-1] + 1, c] = True
    return rows & cols


_build_kernels = None


def _kernels():
    global _build_kernels
    if _build_kernels is None:
        from fpagent.biometrics.match_kernels.edge_build import (build_edges_kernel,  # noqa: PLC0415
                                                                  build_grid_kernel)

        _build_kernels = (build_edges_kernel, build_grid_kernel)
    return _build_kernels


def edges(x: np.ndarray, y: np.ndarray, th: np.ndarray):
    """`build_edges` by its kernel (float64 inputs; the numpy form stays the reference)."""
    return _kernels()[0](x, y, th, NEIGHBOURS, MAX_EDGE_LEN, MIN_EDGE_LEN, EDGE_LEN_BIN, EDGE_LEN_BINS,
                        BUCKET_SHIFT, BUCKETS_PER_ANGLE)


def on_record_grid(template: Template) -> np.ndarray:
    """The template's minutiae as its ISO 19794-2 record holds them: x and y rounded to whole
    pixels (at most width - 1, height - 1), directions to 1/256 turns (as
    fpagent.records.fmr encodes them; biometrics may not import records).

    The matcher works on these, not on the extractor's floats: the floats may differ in
    the last bits between CPUs where the record cannot (docs/arm64.md), and a template
    then scores exactly as its record does, wherever it was made or decoded."""
    m = template.minutiae.copy()
    m = m[np.isfinite(m["x"]) & np.isfinite(m["y"]) & np.isfinite(m["angle"])]
    m["x"] = np.minimum(np.rint(m["x"].astype(np.float64)), max(int(template.width) - 1, 0))
    m["y"] = np.minimum(np.rint(m["y"].astype(np.float64)), max(int(template.height) - 1, 0))
    a = np.mod(m["angle"].astype(np.float64), 2 * math.pi)
    units = (np.rint(a * (ANGLE_UNITS / (2 * math.pi))).astype(np.int64)) % ANGLE_UNITS
    m["angle"] = units.astype(np.float64) * (2 * math.pi / ANGLE_UNITS)
    return m


def record_ppi(ppi) -> float:
    """The resolution the template's record gives back: it stores pixels per cm (as
    fpagent.records.fmr), so 1000 ppi comes back as 1001."""
    ppcm = int(round(float(ppi or 500) / 2.54))
    return float(int(round(ppcm * 2.54))) if ppcm else 500.0


def frame(template: Template, *, on_grid: bool = True):
    """x, y, direction (float64, the internal frame) and quality of the minutiae the matcher
    uses: at most MAX_MINUTIAE, sorted by x. `on_grid=False` keeps the extractor's floats
    (the prefilter's descriptor, whose hard bins the record grid's rounding would move)."""
    if on_grid:
        m = on_record_grid(template)
    else:
        m = template.minutiae
        m = m[np.isfinite(m["x"]) & np.isfinite(m["y"]) & np.isfinite(m["angle"])]
    if len(m) > MAX_MINUTIAE:
        m = m[np.argsort(-m["quality"].astype(np.int64), kind="stable")[:MAX_MINUTIAE]]
    m = m[np.argsort(m["x"], kind="stable")]  # sorted by x: the pairing kernel searches x windows
    scale = 500.0 / record_ppi(template.ppi)
    # internal frame: y up (y' = height - y), so that the template's counter-clockwise
    # angles and atan2 of coordinate differences turn the same way
    x = m["x"].astype(np.float64) * scale
    y = (float(template.height) - m["y"].astype(np.float64)) * scale
    th = _wrap(m["angle"].astype(np.float64))
    return x, y, th, m["quality"].copy()


def prepare(template: Template) -> Prepared:
    """Features of one template for `compare_prepared` (do this once per gallery entry)."""
    x, y, th, quality = frame(template)
    scale = 500.0 / record_ppi(template.ppi)
    grid = _kernels()[1](x, y, float(template.width * scale), float(template.height * scale),
                         GRID_CELL, GRID_DILATE)
    xyt = np.array([x, y, th], dtype=np.float32)
    key = len(x).to_bytes(2, "big") + hashlib.blake2b(xyt.tobytes(), digest_size=8).digest()
    return from_minutiae(xyt, grid, key, quality)


def from_minutiae(xyt: np.ndarray, grid: np.ndarray, key: bytes,
                  quality: np.ndarray | None = None) -> Prepared:
    """A Prepared from its stored minutiae ((3, n) float32: x, y, direction in the internal
    frame), grid and key: the edges are built from the float32 values, so a stored entry and
    a fresh `prepare` agree exactly."""
    if xyt.shape[1] > MAX_MINUTIAE:  # edges keep minutia indexes in a byte
        raise ValueError(f"at most {MAX_MINUTIAE} minutiae are prepared, not {xyt.shape[1]}")
    x, y, th = xyt.astype(np.float64)
    return Prepared(xyt, *edges(x, y, th), grid=grid, key=key, quality=quality)


@dataclasses.dataclass(eq=False, frozen=True)
class Stored:
    """What a gallery keeps of a prepared template: minutiae, the grid as bits, the key
    (about 13 bytes per minutia + 80); `expand` rebuilds the edges in a few microseconds."""

    xyt: np.ndarray  # (3, n) float32: x, y, direction in the internal frame
    grid_bits: np.ndarray  # np.packbits of the grid
    grid_shape: tuple[int, int]
    key: bytes

    def nbytes(self) -> int:
        return self.xyt.nbytes + self.grid_bits.nbytes + len(self.key) + 4


def store(p: Prepared) -> Stored:
    return Stored(p.xyt.copy(), np.packbits(p.grid), p.grid.shape, p.key)


def expand(s: Stored) -> Prepared:
    grid = np.unpackbits(s.grid_bits, count=s.grid_shape[0] * s.grid_shape[1]).astype(bool)
    return from_minutiae(s.xyt, grid.reshape(s.grid_shape), s.key)


def compare_details(pa: Prepared, pb: Prepared) -> np.ndarray:
    """(matched, overlap_a, overlap_b, closeness) of the best alignment, for tuning and benchmarks."""
    from fpagent.biometrics.match_kernels.match_score import match_prepared  # noqa: PLC0415

    if pb.key < pa.key:
        pa, pb = pb, pa
    return match_prepared(*pa.kernel_args(), *pb.kernel_args(), PARAMS)[1]


_kernel = None


def _match_kernel():
    global _kernel
    if _kernel is None:
        from fpagent.biometrics.match_kernels.match_score import similarity  # noqa: PLC0415 (numba is slow to import)

        _kernel = similarity
    return _kernel


def compare_prepared(pa: Prepared, pb: Prepared) -> float:
    """Similarity in [0, 1] (higher = more similar); symmetric."""
    kernel = _kernel or _match_kernel()
    if pb.key < pa.key:
        pa, pb = pb, pa
    return kernel(*pa.args, *pb.args, PARAMS)


_cache: "weakref.WeakKeyDictionary[Template, tuple[int, Prepared]]" = weakref.WeakKeyDictionary()


def _prepared(t: Template) -> Prepared:
    hit = _cache.get(t)
    if hit is not None and hit[0] == id(t.minutiae):
        return hit[1]
    p = prepare(t)
    _cache[t] = (id(t.minutiae), p)
    return p


def compare(a: Template, b: Template) -> float:
    """Similarity of two templates in [0, 1]; >= MATCH_THRESHOLD means "same finger"."""
    return compare_prepared(_prepared(a), _prepared(b))


def warm_up() -> None:
    """Compile or load the cached kernels now (the service calls this before READY)."""
    rng = np.random.default_rng(0)
    from fpagent.biometrics.template import MINUTIA_DTYPE  # noqa: PLC0415

    m = np.zeros(20, dtype=MINUTIA_DTYPE)
    m["x"] = rng.uniform(20, 230, 20)
    m["y"] = rng.uniform(20, 270, 20)
    m["angle"] = rng.uniform(0, 2 * math.pi, 20)
    m["kind"] = 1
    t = Template(minutiae=m, width=256, height=288)
    compare(t, t)
