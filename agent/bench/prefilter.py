"""`fpagent bench prefilter`: 1:N screen speed, memory and hit rate.

Gallery: the first impression of every finger of the shared sets, plus
distractors up to --gallery-size. Probes: every other impression. A probe is
a hit at penetration p when its finger's gallery entry is among the best
ceil(p * N) prefilter candidates.

Distractors: extracting 100,000 synthetic images would take hours, so a few
hundred synthetic prints from the synthetic generator are extracted and the
rest are derived from them by a random rigid transform, a random crop to a
sensor-sized window, minutia dropout and position/direction jitter. Derived
distractors from one base print resemble each other like impressions of one
finger; that is said in the output.
"""

from __future__ import annotations

import math
import os
import pathlib
import time

import numpy as np

from fpagent.bench import add_json_flag, emit, progress

REAL = ("fvc2002_db1_b", "fvc2002_db3_b")
SYNTHETIC = ("fvc2002_db4_b",)


def register(sub):
    p = sub.add_parser("prefilter", help="1:N prefilter scan rate, memory and hit rate",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--gallery-size", type=int, default=10_000, metavar="N",
                   help="gallery entries incl. distractors (default 10000)")
    p.add_argument("--synthetic-bases", type=int, default=100, metavar="K",
                   help="synthetic prints actually extracted for distractors (default 100)")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="shared fingerprint folder (default ../shared/data/fingerprints or "
                        "$FPAGENT_FINGERPRINTS)")
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=run)


def data_dir(arg) -> pathlib.Path:
    if arg:
        return pathlib.Path(arg)
    env = os.environ.get("FPAGENT_FINGERPRINTS")
    if env:
        return pathlib.Path(env)
    return pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fingerprints"


def derive(template, rng, width=256, height=288):
    """A distractor template from a base: rotate, move, crop to a sensor window, drop, jitter."""
    from fpagent.biometrics.template import Template  # noqa: PLC0415

    m = template.minutiae.copy()
    if len(m) == 0:
        return template
    ang = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(ang), math.sin(ang)
    cx, cy = m["x"].mean(), m["y"].mean()
    dx, dy = m["x"] - cx, m["y"] - cy
    x = c * dx + s * dy + width / 2 + rng.normal(0, 25)
    y = -s * dx + c * dy + height / 2 + rng.normal(0, 25)
    x += rng.normal(0, 2.0, len(m))
    y += rng.normal(0, 2.0, len(m))
    keep = (x >= 0) & (x < width) & (y >= 0) & (y < height) & (rng.random(len(m)) > 0.2)
    m = m[keep]
    m["x"], m["y"] = x[keep], y[keep]
    m["angle"] = np.mod(m["angle"] + ang + rng.normal(0, math.radians(4), len(m)), 2 * math.pi)
    return Template(m, width=width, height=height, ppi=template.ppi)


def load_gray(path):
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def real_templates(data, sets):
    """(set, finger, impression, template) of every print of the real sets that
    yields one (a print without a usable fingerprint is left out), with progress."""
    from fpagent.biometrics import extraction  # noqa: PLC0415
    from fpagent.errors import NoUsableFingerprint  # noqa: PLC0415

    for s in sets:
        files = sorted((data / s).glob("*_*.png"))
        for n, f in enumerate(files):
            finger, imp = f.stem.split("_")
            try:
                yield s, finger, imp, extraction.extract(load_gray(f)).template
            except NoUsableFingerprint:
                pass
            progress(f"{s}: extracting", n + 1, len(files))


def run(args) -> int:
    from fpagent.biometrics import extraction
    from fpagent.records import fmr
    from fpagent.biometrics import matcher
    from fpagent.screening import prefilter  # noqa: PLC0415
    from fpagent.errors import NoUsableFingerprint, UserError  # noqa: PLC0415
    from fpagent.screening.prefilter_scan import scan, scan_reference  # noqa: PLC0415

    data = data_dir(args.data)
    sets = [s for s in REAL + SYNTHETIC if (data / s).is_dir()]
    if not sets:
        raise UserError(f"no fingerprint sets under {data}: pass --data DIR")
    rng = np.random.default_rng(args.seed)
    extraction.warm_up()

    # real prints: gallery = first impressions, probes = the rest
    gallery = prefilter.Gallery(capacity=max(args.gallery_size, 64))
    probes = []  # (set, probe descriptor, mate id)
    record_sizes = []
    for s, finger, imp, t in real_templates(data, sets):
        record_sizes.append(len(fmr.encode_iso(t)))
        mate = f"{s}/{finger}"
        if imp == "1":
            gallery.add(mate, t)
        else:
            probes.append((s, prefilter.descriptor(t), mate))
    n_real = len(gallery)

    # distractors
    from fpagent.drivers.synthetic.generator import finger_image  # noqa: PLC0415

    need = max(args.gallery_size - n_real, 0)
    bases = []
    k = 0
    n_bases = min(args.synthetic_bases, max(need, 0))
    while len(bases) < n_bases and k < n_bases * 2:
        img = finger_image(person=1000 + k // 10, finger=k % 10 + 1, impression=0, seed=args.seed)
        k += 1
        try:
            bases.append(extraction.extract(img).template)
        except NoUsableFingerprint:
            pass
        progress("synthetic distractor bases", len(bases), n_bases)
    t0 = time.perf_counter()
    for i in range(need):
        base = bases[i % len(bases)] if bases else None
        if base is None:
            break
        t = base if i < len(bases) else derive(base, rng)
        gallery.add_descriptor(f"distractor/{i}", prefilter.descriptor(t))
        if i % 2000 == 0 or i + 1 == need:
            progress("deriving distractors", i + 1, need)
    derive_s = time.perf_counter() - t0
    n = len(gallery)

    # hit rate
    pens = (0.01, 0.05, 0.10)
    hits = {s: {p: 0 for p in pens} for s in sets}
    totals = {s: 0 for s in sets}
    deepest = int(math.ceil(max(pens) * n))
    for j, (s, desc, mate) in enumerate(probes):
        ranked = [i for i, _ in gallery.screen_descriptor(desc, deepest)]
        pos = ranked.index(mate) if mate in ranked else None
        totals[s] += 1
        for p in pens:
            if pos is not None and pos < int(math.ceil(p * n)):
                hits[s][p] += 1
        if j % 20 == 0 or j + 1 == len(probes):
            progress("screening probes", j + 1, len(probes))

    # scan speed: the kernel over the whole gallery, one core, against the numpy reference
    gallery._refresh()
    pcs = [(np.asarray(d, np.float32) - gallery._mean) for _, d, _ in probes[:20]]
    c = np.float32(0.0)
    scan(gallery._desc, gallery._inv_norm, pcs[0], c, n)

    def entries_per_cpu_s(kernel, min_reps: int) -> float:
        cpu0, reps = time.process_time(), 0
        while time.process_time() - cpu0 < 1.0 or reps < min_reps:
            kernel(gallery._desc, gallery._inv_norm, pcs[reps % len(pcs)], c, n)
            reps += 1
        return reps * n / (time.process_time() - cpu0)

    rate = entries_per_cpu_s(scan, 3)
    ref_rate = entries_per_cpu_s(scan_reference, 2)

    rec_mean = float(np.mean(record_sizes)) if record_sizes else 0.0
    per_template = prefilter.DESCRIPTOR_BYTES + 4 + rec_mean + 24
    real_sets = [s for s in sets if s in REAL]

    def rate_of(ss, p):
        t = sum(totals[s] for s in ss)
        return sum(hits[s][p] for s in ss) / t if t else None

    result = {
        "benchmark": "prefilter",
        "gallery_size": n,
        "real_gallery_entries": n_real,
        "distractors": n - n_real,
        "synthetic_bases": len(bases),
        "probes": len(probes),
        "scan_entries_per_s": rate,
        "scan_entries_per_s_numpy_reference": ref_rate,
        "descriptor_bytes": prefilter.DESCRIPTOR_BYTES,
        "memory_bytes_per_template": per_template,
        "memory_mb_at_100k": per_template * 100_000 / 1e6,
        "hit_rate_real": {f"{int(p * 100)}%": rate_of(real_sets, p) for p in pens},
        "hit_rate": {s: {f"{int(p * 100)}%": hits[s][p] / totals[s] if totals[s] else None
                         for p in pens} for s in sets},
        "synthetic_sets": [s for s in sets if s in SYNTHETIC],
    }
    print(f"gallery {n:,} entries: {n_real} real (first impressions of {', '.join(sets)}), "
          f"{n - n_real:,} distractors derived from {len(bases)} extracted synthetic prints "
          f"(random rotation/shift/crop, 20% minutia dropout, jitter) in {derive_s:.1f} s")
    print(f"scan: {rate:,.0f} entries/s on one core (numpy reference {ref_rate:,.0f}/s, "
          f"{rate / ref_rate:.1f}x)")
    print(f"memory: {prefilter.DESCRIPTOR_BYTES} B descriptor + 4 B norm + {rec_mean:.0f} B ISO record "
          f"+ id = {per_template:.0f} B per template, {per_template * 100_000 / 1e6:.0f} MB at 100,000")
    for label, ss in [("real (DB1_B+DB3_B)", real_sets)] + [(s, [s]) for s in sets]:
        syn = " [SYNTHETIC]" if all(x in SYNTHETIC for x in ss) else ""
        t = sum(totals[x] for x in ss)
        print(f"hit rate {label}{syn}, {t} probes: " + ", ".join(
            f"{rate_of(ss, p) * 100:.1f}% at {int(p * 100)}% penetration" for p in pens))
    emit(result, args.json)
    return 0
