"""tests/smoke_booking.py (the booking scripts/check-arm64 runs under qemu) works here too:
run on x86-64 with the suite, so a change to the booking API cannot break it unseen."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def test_the_smoke_booking_is_sealed_and_opened_as_central(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(HERE / "smoke_booking.py")], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sealed" in out.stdout and "opened as central, 2 fingers WSQ + minutiae" in out.stdout
