"""1:N screen: a compact fixed-length descriptor per template and a gallery scan.

Descriptor: a histogram of every minutia pair 30 to 120 px apart
(at 500 ppi) over (length, angle at one end, angle at the other end), each
pair weighted by the product of its minutiae's qualities (plus a floor, so
a template without qualities still works). Those features ignore rotation
and translation, and a partial print still shares most of its local edges
with its mate, so two impressions of one finger have similar histograms
whatever the placement; the quality weights keep doubtful minutiae (of
which a poor impression has many) from swamping the histogram. The
histogram is square-rooted (Hellinger), scaled to unit length, quantised to
uint8, and compared by cosine after subtracting the gallery mean (which
removes what all fingerprints share, e.g. mostly parallel ridges).

Measured on the dev sets (`fpagent bench prefilter --gallery-size 10000`,
DB1_B + DB3_B probes, hit rate at 10% penetration): 8 length x 10 angle
bins from 4 px, unweighted (the previous descriptor, 440 B): 97.1%; 12
angle bins 99.3%; 12 bins quality-weighted 100%; the same without pairs
shorter than 30 px (468 B) 100% with the worst mate ranked at 7% instead
of 9%. Soft (linear) binning, extra nearest-neighbour blocks, per-dimension
whitening and several scaled probe descriptors (max over) measured worse.

`Gallery` keeps every descriptor in one contiguous (capacity, D) uint8 array
(D = 468 bytes per template; column-major, which the scan reads fastest), the
ISO 19794-2 record of each template (what `to_bytes` saves) and its prepared
form (`matcher.Stored`: the matcher's minutiae, grid and key, ~13 bytes per
minutia + 80) and, by default, its matcher edges packed (see `Gallery`).
`search` scans all descriptors (fpagent.screening.prefilter_scan), keeps the
best fraction (`penetration`) and lets the 1:1 matcher rank those: a
candidate is restored from its stored form and kept edges, never re-prepared
from its record (rebuilding the edges, about 0.1 ms for a 40-minutia
template, costs more than the match itself: measured with `fpagent bench
search`). Entries loaded by `from_bytes` are prepared from their records the
first time they are candidates, once.

`to_bytes`/`from_bytes` give a self-describing binary form (no pickle: a
gallery may come from elsewhere) that fpagent.screening.galleries encrypts at rest.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from fpagent.errors import FpagentError
from fpagent.records import fmr
from fpagent.biometrics import matcher, portable_math
from fpagent.biometrics.template import Template

LEN_BINS = 6  # of 15 px
LEN_MIN = 30.0  # px at 500 ppi: shorter pairs are left out (they told mates apart worse: measured)
LEN_MAX = 120.0  # px at 500 ppi: every minutia pair closer than this (and >= LEN_MIN) is an edge
ANG_BINS = 12
_UPPER = np.triu_indices(ANG_BINS)
DESCRIPTOR_BYTES = LEN_BINS * len(_UPPER[0])  # 6 x 78 = 468
QUALITY_FLOOR = 0.2  # pair weight = q_i * q_j / 100^2 + this
QUANT_SCALE = 1000.0  # unit-norm histogram -> uint8 (clipped at 255)
DEFAULT_PENETRATION = 0.05
MIN_CANDIDATES = 100  # small galleries: the matcher ranks at least this many (it is cheap)
MAX_CANDIDATES = 2000  # large galleries: at most this many (~0.15 ms each to expand and match)

_MAGIC = b"FPGALRY2"


class GalleryError(FpagentError, ValueError):
    """A gallery blob that cannot be loaded, or a bad add/remove."""


def descriptor_from_prepared(p: matcher.Prepared) -> np.ndarray:
    """uint8 descriptor (DESCRIPTOR_BYTES) of a prepared template (on the record's grid)."""
    return descriptor_from_minutiae(p.x, p.y, p.th, p.quality)


def descriptor_from_minutiae(x, y, th, quality) -> np.ndarray:
    """uint8 descriptor (DESCRIPTOR_BYTES) of minutiae in the matcher's frame.

    Histogram of every minutia pair closer than LEN_MAX over (length,
    angle at one end, angle at the other), weighted by the pair's minutia
    qualities, folded so the order of the ends does not matter,
    square-rooted, scaled to unit length and quantised.
    """
    x, y, th = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(th, np.float64)
    q = (quality.astype(np.float64) / 100.0 if quality is not None
         else np.zeros(x.shape[0], dtype=np.float64))
    hist = np.zeros((LEN_BINS, ANG_BINS, ANG_BINS), dtype=np.float64)
    if x.size >= 2:
        dx = x[None, :] - x[:, None]
        dy = y[None, :] - y[:, None]
        d = np.sqrt(dx * dx + dy * dy)  # not hypot or arctan2: their last bit varies by CPU
        ii, jj = np.nonzero((d <= LEN_MAX) & (d >= LEN_MIN))
        direction = portable_math.atan2_array(dy[ii, jj], dx[ii, jj])
        a = np.mod(direction - th[ii], 2 * math.pi)
        b = np.mod(direction + math.pi - th[jj], 2 * math.pi)
        # hard bins: measured better than linear soft assignment on the dev sets
        li = np.minimum(((d[ii, jj] - LEN_MIN) * (LEN_BINS / (LEN_MAX - LEN_MIN))).astype(np.int64),
                        LEN_BINS - 1)
        ai = (a * (ANG_BINS / (2 * math.pi))).astype(np.int64) % ANG_BINS
        bi = (b * (ANG_BINS / (2 * math.pi))).astype(np.int64) % ANG_BINS
        np.add.at(hist, (li, ai, bi), q[ii] * q[jj] + QUALITY_FLOOR)
    hist = hist + hist.transpose(0, 2, 1)
    h = np.sqrt(hist[:, _UPPER[0], _UPPER[1]].reshape(-1))
    norm = math.sqrt(math.fsum(h * h))  # exact sum: no BLAS summation order
    if norm > 0:
        h = h / norm
    return np.clip(np.rint(h * QUANT_SCALE), 0, 255).astype(np.uint8)


def descriptor(template: Template) -> np.ndarray:
    """The descriptor of a template from the extractor's own minutiae, not the record grid's:
    its hard bins move when a rotation re-rounds a minutia (a rotated copy fell from 1.0 to
    0.969 alike, and two mates of 140 out of the 10% on the real sets). The floats may differ
    in the last bit between CPUs; a pair changes bin only within an ulp of a bin edge (about
    1e-6 of a bin), so the replay of tests/test_determinism.py holds in practice, not by proof."""
    x, y, th, quality = matcher.frame(template, on_grid=False)
    return descriptor_from_minutiae(x, y, th, quality)


class Gallery:
    """Templates kept for 1:N search: add/remove by id, search, to_bytes/from_bytes.

    By default each entry also keeps its matcher edges compactly
    (fpagent.screening.candidate_edges, 1.6-2.2 KB more per entry: about
    290-375 MB at 100,000 entries instead of 130-160 MB), so a search does not
    rebuild them: the same scores, about half the search time at 1% penetration
    (`fpagent bench search` against `--no-keep-edges`). `keep_edges=False`
    trades that time back for memory."""

    def __init__(self, capacity: int = 64, keep_edges: bool = True):
        # column-major: the scan reads each descriptor byte of a block of rows contiguously;
        # at least 2 rows, or numba would see a C-contiguous array and compile another scan
        self._desc = np.zeros((max(capacity, 2), DESCRIPTOR_BYTES), dtype=np.uint8, order="F")
        self._inv_norm = np.zeros(max(capacity, 2), dtype=np.float32)
        self._sum = np.zeros(DESCRIPTOR_BYTES, dtype=np.float64)
        self._mean = np.zeros(DESCRIPTOR_BYTES, dtype=np.float32)
        self._dirty = True  # mean / centred norms need recomputing
        self._ids: list[str] = []
        self._records: list[bytes] = []
        self._stored: list[matcher.Stored | None] = []
        self._keep_edges = keep_edges
        self._edges: list[np.ndarray | None] = []  # packed edges per entry (keep_edges only)
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: str) -> bool:
        return id in self._index

    def ids(self) -> list[str]:
        return list(self._ids)

    def nbytes(self) -> int:
        """Memory held per entry by descriptors, norms, records and ids (bytes, excl. slack)."""
        n = len(self)
        return n * (DESCRIPTOR_BYTES + 4) + sum(len(r) for r in self._records) + \
            sum(len(i) + 8 for i in self._ids) + sum(s.nbytes() for s in self._stored if s is not None) + \
            sum(e.nbytes for e in self._edges if e is not None)

    def _grow(self, need: int) -> None:
        cap = self._desc.shape[0]
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        desc = np.zeros((new_cap, DESCRIPTOR_BYTES), dtype=np.uint8, order="F")
        desc[:cap] = self._desc
        self._desc = desc
        self._inv_norm = np.zeros(new_cap, dtype=np.float32)
        self._dirty = True

    def add(self, id: str, template: Template) -> None:
        """Add (or replace) the template stored under `id`."""
        record = fmr.encode_iso(template)
        # the descriptor from the template as given (as before); the matcher's form from the
        # record, which is what a saved and reloaded gallery prepares from: the same scores
        (kept,) = fmr.decode(record)
        self.add_descriptor(id, descriptor(template), record, matcher.store(matcher.prepare(kept)))

    def add_descriptor(self, id: str, desc: np.ndarray, record: bytes = b"",
                       stored: matcher.Stored | None = None) -> None:
        """Add a precomputed descriptor (and the template's record and prepared form); an entry
        without a record is screened but never ranked."""
        if not isinstance(id, str) or not id:
            raise GalleryError("gallery ids are non-empty strings")
        desc = np.asarray(desc, dtype=np.uint8).reshape(-1)
        if desc.shape[0] != DESCRIPTOR_BYTES:
            raise GalleryError(f"descriptor must be {DESCRIPTOR_BYTES} bytes")
        if id in self._index:
            row = self._index[id]
            self._sum -= self._desc[row]
            self._records[row] = record
            self._stored[row] = stored
            self._edges[row] = self._packed_edges(stored)
        else:
            row = len(self._ids)
            self._grow(row + 1)
            self._ids.append(id)
            self._records.append(record)
            self._stored.append(stored)
            self._edges.append(self._packed_edges(stored))
            self._index[id] = row
        self._desc[row] = desc
        self._sum += desc
        self._dirty = True

    def remove(self, id: str) -> None:
        """Remove an entry (the last one moves into its row: the array stays contiguous)."""
        row = self._index.pop(id, None)
        if row is None:
            raise GalleryError(f"no gallery entry {id!r}")
        self._sum -= self._desc[row]
        last = len(self._ids) - 1
        if row != last:
            moved = self._ids[last]
            self._ids[row] = moved
            self._records[row] = self._records[last]
            self._stored[row] = self._stored[last]
            self._edges[row] = self._edges[last]
            self._desc[row] = self._desc[last]
            self._index[moved] = row
        self._ids.pop()
        self._records.pop()
        self._stored.pop()
        self._edges.pop()
        self._desc[last] = 0
        self._dirty = True

    def _refresh(self) -> None:
        """Recompute the gallery mean and each row's centred norm (after adds/removes)."""
        from fpagent.screening.prefilter_scan import centred_inv_norms  # noqa: PLC0415 (numba import is slow)

        n = len(self)
        self._mean = (self._sum / max(n, 1)).astype(np.float32)
        self._inv_norm[:n] = centred_inv_norms(self._desc, self._mean, n)
        self._dirty = False

    def screen_descriptor(self, desc: np.ndarray, count: int) -> list[tuple[str, float]]:
        """The `count` entries with the best prefilter scores, best first (no matcher)."""
        rows, scores = self._screen_rows(desc, count)
        return [(self._ids[i], float(s)) for i, s in zip(rows.tolist(), scores.tolist())]

    def _screen_rows(self, desc: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the `count` best prefilter scores, best first."""
        from fpagent.screening.prefilter_scan import scan  # noqa: PLC0415 (numba import is slow)

        n = len(self)
        if n == 0 or count <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self._dirty:
            self._refresh()
        pc = np.asarray(desc, dtype=np.float32) - self._mean
        # exact sum (math.fsum), not a BLAS dot whose summation order depends on the CPU
        c = np.float32(math.fsum((self._mean.astype(np.float64) * pc.astype(np.float64)).tolist()))
        scores = scan(self._desc, self._inv_norm, pc, c, n)
        count = min(count, n)
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        return top, scores[top]

    def screen(self, template: Template, count: int) -> list[tuple[str, float]]:
        return self.screen_descriptor(descriptor(template), count)

    def search(self, template: Template, top: int = 10,
               penetration: float = DEFAULT_PENETRATION) -> list[tuple[str, float]]:
        """Best `top` entries by matcher score among the prefilter's best `penetration` share
        (at least MIN_CANDIDATES, at most MAX_CANDIDATES of them)."""
        n = len(self)
        if n == 0:
            return []
        count = max(top, MIN_CANDIDATES, min(MAX_CANDIDATES, int(math.ceil(penetration * n))))
        probe = matcher.prepare(template)
        rows, _ = self._screen_rows(descriptor(template), count)
        compare, stored = matcher.compare_prepared, self._stored
        if self._keep_edges:
            from fpagent.screening.candidate_edges import prepared  # noqa: PLC0415 (numba import is slow)

            edges = self._edges

            def expand(row, entry):
                return prepared(entry, edges[row])
        else:
            def expand(row, entry):
                return matcher.expand(entry)
        ranked = []
        for row in rows.tolist():
            entry = stored[row]
            if entry is None:
                entry = self._prepared_entry(row)
                if entry is None:
                    continue
            ranked.append((row, compare(probe, expand(row, entry))))
        ranked.sort(key=lambda r: -r[1])
        return [(self._ids[row], score) for row, score in ranked[:top]]

    def _prepared_entry(self, row: int) -> matcher.Stored | None:
        """The row's prepared form; prepared from its record once if it was loaded without one."""
        stored = self._stored[row]
        if stored is None and self._records[row]:
            (ref,) = fmr.decode(self._records[row])
            stored = self._stored[row] = matcher.store(matcher.prepare(ref))
            self._edges[row] = self._packed_edges(stored)
        return stored

    def _packed_edges(self, stored: matcher.Stored | None) -> np.ndarray | None:
        if not self._keep_edges or stored is None:
            return None
        from fpagent.screening import candidate_edges  # noqa: PLC0415 (numba import is slow)

        return candidate_edges.pack(matcher.expand(stored))

    # ------------------------------------------------------------ persistence

    def to_bytes(self) -> bytes:
        """FPGALRY2 | u32 count | u32 D | per entry: u16 id length, id (UTF-8), u32 record
        length, ISO record | descriptors (D bytes x count)."""
        n = len(self)
        parts = [_MAGIC, struct.pack(">II", n, DESCRIPTOR_BYTES)]
        for id, rec in zip(self._ids, self._records):
            b = id.encode("utf-8")
            parts += [struct.pack(">H", len(b)), b, struct.pack(">I", len(rec)), rec]
        parts.append(self._desc[:n].tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, keep_edges: bool = True) -> "Gallery":
        data = bytes(data)
        if data[:8] != _MAGIC:
            raise GalleryError("not a gallery (bad magic); was it decrypted with the right key?")
        if len(data) < 16:
            raise GalleryError("truncated gallery header")
        n, d = struct.unpack_from(">II", data, 8)
        if d != DESCRIPTOR_BYTES:
            raise GalleryError(f"gallery descriptors are {d} bytes, this version uses "
                               f"{DESCRIPTOR_BYTES}: rebuild the gallery from its templates")
        if n * (d + 6) > len(data):
            raise GalleryError(f"gallery says {n} entries but holds only {len(data)} bytes")
        pos = 16
        ids, recs = [], []
        for _ in range(n):
            if pos + 2 > len(data):
                raise GalleryError("truncated gallery (entry list)")
            (ln,) = struct.unpack_from(">H", data, pos)
            idb = data[pos + 2:pos + 2 + ln]
            pos += 2 + ln
            if len(idb) != ln or pos + 4 > len(data):
                raise GalleryError("truncated gallery (entry list)")
            (lr,) = struct.unpack_from(">I", data, pos)
            rec = data[pos + 4:pos + 4 + lr]
            pos += 4 + lr
            if len(rec) != lr:
                raise GalleryError("truncated gallery (entry list)")
            try:
                ids.append(idb.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise GalleryError("gallery id is not UTF-8") from exc
            recs.append(rec)
        if len(data) != pos + d * n:
            raise GalleryError(f"gallery size mismatch: {len(data)} bytes, expected {pos + d * n}")
        if len(set(ids)) != n or any(not i for i in ids):
            raise GalleryError("empty or duplicate ids in gallery")
        g = cls(capacity=n, keep_edges=keep_edges)
        desc = np.frombuffer(data, dtype=np.uint8, count=n * d, offset=pos).reshape(n, d)
        g._desc[:n] = desc
        g._sum = desc.sum(axis=0, dtype=np.float64)
        g._ids, g._records = ids, recs
        g._stored = [None] * n
        g._edges = [None] * n
        g._index = {id: i for i, id in enumerate(ids)}
        return g


def warm_up() -> None:
    """Compile or load the scan kernel with the types a real screening uses (the service
    calls this before READY, so the first booking's screening compiles nothing)."""
    from fpagent.biometrics.template import MINUTIA_DTYPE  # noqa: PLC0415

    rng = np.random.default_rng(0)
    gallery = Gallery()
    for i in range(2):
        m = np.zeros(20, dtype=MINUTIA_DTYPE)
        m["x"] = rng.uniform(20, 230, 20)
        m["y"] = rng.uniform(20, 270, 20)
        m["angle"] = rng.uniform(0, 2 * math.pi, 20)
        m["kind"] = 1
        gallery.add(f"warm-up/{i}", Template(minutiae=m, width=256, height=288))
    probe = Template(minutiae=m, width=256, height=288)
    gallery.search(probe, top=1)
