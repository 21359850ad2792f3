"""The service's warm-ups compile every kernel a booking uses, with the types it uses.

A kernel left out (or warmed with other argument types) compiles during the
first booking instead: half a minute on a Pi's first start, with the officer
waiting. Run in a fresh interpreter, so kernels compiled by other tests in
this process cannot hide a gap.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

PROBE = r"""
import importlib, json, sys
import numpy as np
from numba.core.registry import CPUDispatcher

from fpagent.service.daemon import DEFAULT_WARMUPS


def kernels():
    found = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("fpagent") or module is None:
            continue
        for attr, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.__module__ == name:
                found[f"{name}.{attr}"] = [str(s) for s in value.signatures]
    return found


for target in DEFAULT_WARMUPS:
    module, _, attr = target.partition(":")
    getattr(importlib.import_module(module), attr)()
after_warm_up = kernels()

# one booking's work on two prints of one finger: the quality gate and
# extraction, the duplicate-finger check, and screening against a local gallery
from fpagent.booking import local_screening, runner
from fpagent.drivers.synthetic.generator import finger_image
from fpagent.screening import prefilter

first = runner.assess(finger_image(3, 1, 0, seed=1))
second = runner.assess(finger_image(3, 1, 1, seed=1))
other = runner.assess(finger_image(4, 2, 0, seed=1))
assert first.template is not None and second.template is not None and other.template is not None
from fpagent.biometrics import matcher
matcher.compare(first.template, second.template)
gallery = prefilter.Gallery()
gallery.add("a/1", first.template)
gallery.add("b/2", other.template)
screen = local_screening.screen_with_galleries({"recent": prefilter.Gallery.from_bytes(gallery.to_bytes())})
screen(second.template)
after_booking = kernels()

print(json.dumps({"warm": after_warm_up, "booking": after_booking}))
"""


def test_a_booking_after_the_service_warm_ups_compiles_nothing_new(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}  # a first start: nothing cached
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    warm, booking = seen["warm"], seen["booking"]
    assert booking, "no kernels found at all: the probe looks in the wrong place"
    late = {name: sorted(set(sigs) - set(warm.get(name, []))) for name, sigs in booking.items()}
    late = {name: sigs for name, sigs in late.items() if sigs}
    assert not late, f"compiled during the booking, not before READY: {late}"

