"""`fpagent bench search`: the appliance's 1:N search (prefilter, then matcher) end to end.

Gallery: the first impression of every finger of the real shared sets plus
distractors up to each --sizes entry, every one a full gallery entry (ISO
record, prefilter descriptor, prepared template), derived from extracted
synthetic prints as `fpagent bench prefilter` derives them. Probes: every
other impression of the real sets. Each probe runs `Gallery.search` as the
appliance does; reported per gallery size and penetration: p50/p95 latency
(wall and CPU, one core), candidates ranked, and the rank-1 identification
rate (the genuine mate ranked first). Template preparation time is measured
on the probes.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from fpagent.bench import add_json_flag, emit, progress
from fpagent.bench.prefilter import REAL, data_dir, derive, real_templates


def register(sub):
    p = sub.add_parser("search", help="1:N search latency and rank-1 rate (prefilter + matcher)",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--sizes", default="10000,100000", metavar="N,N",
                   help="gallery sizes incl. distractors (default 10000,100000)")
    p.add_argument("--penetration", default="0.01,0.05", metavar="P,P",
                   help="prefilter penetrations to run (default 0.01,0.05; the appliance uses "
                        "fpagent.screening.prefilter.DEFAULT_PENETRATION)")
    p.add_argument("--synthetic-bases", type=int, default=100, metavar="K")
    p.add_argument("--keep-edges", action=argparse.BooleanOptionalAction, default=True,
                   help="galleries keep each entry's matcher edges, as the appliance's do (1.6-2.2 "
                        "KB more per entry); --no-keep-edges rebuilds them for every candidate")
    p.add_argument("--data", metavar="DIR", default=None)
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=run)


def _pct(values, q):
    return float(np.quantile(values, q) * 1000) if len(values) else None


def _stage_medians(gallery, probes, count, search_cpu) -> dict:
    """Median CPU ms per search of each stage, timed in a second pass over the same probes:
    probe preparation, probe descriptor, the prefilter (scan of every descriptor and top-k),
    and the rest of the search (each candidate expanded to its matcher form and matched), the
    timed search less the first three."""
    from fpagent.biometrics import matcher  # noqa: PLC0415
    from fpagent.screening import prefilter  # noqa: PLC0415

    parts = {"probe_preparation": [], "probe_descriptor": [], "prefilter_scan_and_top_k": [],
             "candidates_expanded_and_matched": []}
    for (t, _), total in zip(probes, search_cpu):
        c0 = time.process_time()
        matcher.prepare(t)
        c1 = time.process_time()
        desc = prefilter.descriptor(t)
        c2 = time.process_time()
        gallery.screen_descriptor(desc, count)
        c3 = time.process_time()
        parts["probe_preparation"].append(c1 - c0)
        parts["probe_descriptor"].append(c2 - c1)
        parts["prefilter_scan_and_top_k"].append(c3 - c2)
        parts["candidates_expanded_and_matched"].append(max(total - (c3 - c0), 0.0))
    return {name: _pct(v, 0.5) for name, v in parts.items()}


def run(args) -> int:
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from fpagent.biometrics import extraction, matcher  # noqa: PLC0415
    from fpagent.drivers.synthetic.generator import finger_image  # noqa: PLC0415
    from fpagent.errors import NoUsableFingerprint, UserError  # noqa: PLC0415
    from fpagent.screening import prefilter  # noqa: PLC0415

    sizes = sorted(int(s) for s in args.sizes.split(","))
    pens = [float(p) for p in args.penetration.split(",")]
    data = data_dir(args.data)
    sets = [s for s in REAL if (data / s).is_dir()]
    if not sets:
        raise UserError(f"no real fingerprint sets under {data}: pass --data DIR")
    extraction.warm_up()
    matcher.warm_up()
    mates, probes = {}, []
    for s, finger, imp, t in real_templates(data, sets):
        if imp == "1":
            mates[f"{s}/{finger}"] = t
        else:
            probes.append((t, f"{s}/{finger}"))
    # preparation time (CPU, one core) over the probes, a few passes
    cpu0 = time.process_time()
    reps = 0
    while time.process_time() - cpu0 < 1.0 or reps < 2:
        for t, _ in probes:
            matcher.prepare(t)
        reps += 1
    prepare_ms = (time.process_time() - cpu0) / (reps * len(probes)) * 1000

    rng = np.random.default_rng(args.seed)
    bases, k = [], 0
    while len(bases) < args.synthetic_bases and k < args.synthetic_bases * 2:
        try:
            bases.append(extraction.extract(finger_image(person=1000 + k // 10, finger=k % 10 + 1,
                                                         impression=0, seed=args.seed)).template)
        except NoUsableFingerprint:
            pass
        k += 1
        progress("synthetic distractor bases", len(bases), args.synthetic_bases)
    gallery = prefilter.Gallery(capacity=max(sizes), keep_edges=args.keep_edges)
    for id, t in mates.items():
        gallery.add(id, t)
    runs = []
    built_s = 0.0
    for size in sizes:
        t0 = time.perf_counter()
        i = len(gallery) - len(mates)
        while len(gallery) < size:
            base = bases[i % len(bases)]
            gallery.add(f"distractor/{i}", base if i < len(bases) else derive(base, rng))
            i += 1
            if i % 5000 == 0 or len(gallery) == size:
                progress(f"gallery of {size:,}: adding distractors", len(gallery), size)
        built_s += time.perf_counter() - t0
        gallery.search(probes[0][0], top=1)  # mean and norms refreshed before timing
        for pen in pens:
            wall, cpu, rank1 = [], [], 0
            count = max(1, prefilter.MIN_CANDIDATES, min(prefilter.MAX_CANDIDATES, math.ceil(pen * size)))
            for j, (t, mate) in enumerate(probes):
                w0, c0 = time.perf_counter(), time.process_time()
                top = gallery.search(t, top=1, penetration=pen)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
                rank1 += bool(top) and top[0][0] == mate
                progress(f"gallery {size:,}, penetration {pen:.0%}: searching", j + 1, len(probes))
            stages = _stage_medians(gallery, probes, count, cpu)
            r = {"gallery_size": size, "penetration": pen, "candidates": count,
                 "p50_ms": _pct(wall, 0.5), "p95_ms": _pct(wall, 0.95),
                 "cpu_p50_ms": _pct(cpu, 0.5), "cpu_p95_ms": _pct(cpu, 0.95),
                 "rank1_rate": rank1 / len(probes), "probes": len(probes), "stages_cpu_p50_ms": stages}
            runs.append(r)
            print(f"gallery {size:,} ({len(mates)} real mates), penetration {pen:.0%} ({count} candidates "
                  f"ranked): latency p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms (CPU p50 "
                  f"{r['cpu_p50_ms']:.1f}, p95 {r['cpu_p95_ms']:.1f} ms);  rank-1 {r['rank1_rate']:.1%} "
                  f"of {len(probes)} probes")
            print("  where the CPU goes (median per search): " + ", ".join(
                f"{name.replace('_', ' ')} {ms:.2f} ms" for name, ms in stages.items()))
    print(f"template preparation: {prepare_ms:.3f} ms (CPU, one core, {len(probes)} probes x {reps});  "
          f"gallery memory {gallery.nbytes() / len(gallery):.0f} B per entry "
          f"({'edges kept' if args.keep_edges else 'edges rebuilt per candidate'});  "
          f"distractors from {len(bases)} synthetic bases, built in {built_s:.0f} s")
    emit({"benchmark": "search", "keep_edges": args.keep_edges, "runs": runs, "prepare_ms": prepare_ms, "real_mates": len(mates),
          "bytes_per_entry": gallery.nbytes() / len(gallery), "synthetic_bases": len(bases)}, args.json)
    return 0
