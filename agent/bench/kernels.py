"""`fpagent bench kernels`: first-compile time and cached start of the numba kernels.

Each figure comes from a fresh Python process (what the service does at
boot): import fpagent.biometrics.extraction, run `warm_up()` and extract one print.
First with an empty NUMBA_CACHE_DIR (cold: every kernel compiles), then
again with the cache that run left behind (cached: the kernels are loaded
from disk). The issue's target: cached start (import to first extraction
ready) under 2 s.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

from fpagent.bench import add_json_flag, emit, progress

_CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
from fpagent.biometrics import extraction
t_import = time.perf_counter()
extraction.warm_up()
t_ready = time.perf_counter()
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:288, 0:256]
img = (128 + 70 * np.sin((xx * 0.8 + yy * 0.6) * 2 * np.pi / 9)
       * np.exp(-((xx - 128) ** 2 + (yy - 144) ** 2) / 2 / 90 ** 2)).astype(np.uint8)
try:
    extraction.extract(img)
except Exception:
    pass  # a synthetic pattern may be refused; the kernels ran either way
t_first = time.perf_counter()
print(json.dumps({"import_s": t_import - t0, "warm_up_s": t_ready - t_import,
                  "ready_s": t_ready - t0, "first_extract_s": t_first - t_ready}))
"""


def _run_child(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"kernel start-up child failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(repeats: int = 1) -> dict:
    """Cold (empty cache) and cached start-up figures, each from fresh processes."""
    with tempfile.TemporaryDirectory(prefix="fpagent-numba-") as cache:
        progress("kernels", 0, 1 + repeats)
        cold = _run_child(cache)
        cached = []
        for k in range(repeats):
            progress("kernels", 1 + k, 1 + repeats)
            cached.append(_run_child(cache))
        progress("kernels", 1 + repeats, 1 + repeats)
        files = sum(1 for p in pathlib.Path(cache).rglob("*") if p.is_file())
    best = min(cached, key=lambda r: r["ready_s"])
    return {"cold": cold, "cached": best, "cache_files": files}


def run(args) -> int:
    r = measure(args.repeats)
    cold, cached = r["cold"], r["cached"]
    print(f"cold start (empty numba cache): import {cold['import_s']:.2f} s + compile/warm-up "
          f"{cold['warm_up_s']:.2f} s = ready in {cold['ready_s']:.2f} s")
    print(f"cached start:                   import {cached['import_s']:.2f} s + load/warm-up "
          f"{cached['warm_up_s']:.2f} s = ready in {cached['ready_s']:.2f} s "
          f"(target < 2 s: {'met' if cached['ready_s'] < 2 else 'NOT met'})")
    print(f"first extraction after ready: {cached['first_extract_s'] * 1000:.0f} ms; "
          f"cache files written: {r['cache_files']}")
    emit({"benchmark": "kernels", "cold_ready_s": cold["ready_s"],
          "cold_warm_up_s": cold["warm_up_s"], "cached_ready_s": cached["ready_s"],
          "cached_warm_up_s": cached["warm_up_s"], "import_s": cached["import_s"],
          "first_extract_ms": cached["first_extract_s"] * 1000, "cache_files": r["cache_files"]},
         args.json)
    return 0


def register(sub):
    p = sub.add_parser("kernels", help="numba first-compile time and cached start time",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--repeats", type=int, default=2, help="cached runs (the best is reported)")
    add_json_flag(p)
    p.set_defaults(func=run)
