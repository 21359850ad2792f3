"""The README's main job, end to end: `fpagent demo` books arrestees and shows what came back.

Real everything: mosquitto with TLS and the ACL, the emulated ZFM sensor over a
pty with synthetic fingerprints, extraction, the ANSI/NIST transaction, the
HPKE envelope, the link, the reference central matching its galleries.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from fpagent.devtools.broker import find_mosquitto

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.skipif(find_mosquitto() is None,
                                                   reason="mosquitto is not installed")]


def test_demo_runs_the_whole_loop_and_stops_what_it_started():
    env = {**os.environ}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba-cache"))
    run = subprocess.run([sys.executable, "-m", "fpagent", "demo", "--bookings", "3"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240, env=env)
    out = run.stdout
    assert run.returncode == 0, out[-2000:] + run.stderr[-2000:]
    # person 1 is known to the criminal gallery, 2 also removable level 1, 3 a U.S. citizen
    blocks = re.split(r"\n(?=booking DEMO-)", out)
    by_booking = {b.split()[1]: b for b in blocks if b.startswith("booking DEMO-")}
    assert set(by_booking) == {"DEMO-0001", "DEMO-0002", "DEMO-0003"}
    assert all("accepted by central, central TCN C" in b for b in by_booking.values())
    assert "CRIMINAL HISTORY: HIT" in by_booking["DEMO-0001"]
    assert "immigration: no record found" in by_booking["DEMO-0001"]
    assert "IMMIGRATION: REMOVABLE, OFFENCE LEVEL 1" in by_booking["DEMO-0002"]
    assert "#" * 72 in by_booking["DEMO-0002"]  # the level-1 banner
    assert "U.S. CITIZEN OR LAWFUL STATUS - NO ACTION" in by_booking["DEMO-0003"]
    assert "criminal history: no record found" in by_booking["DEMO-0003"]
    assert "0 messages refused" in out
    work = re.search(r"working in (\S+)", out).group(1)
    assert not pathlib.Path(work).exists()  # cleaned up
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert work not in cmdline.read_bytes().decode(errors="replace")  # broker stopped
        except OSError:
            pass


def test_demo_with_a_folder_of_real_images(fingerprints_dir):
    """--images: the emulated sensor serves real FVC images; central finds real matches."""
    env = {**os.environ}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba-cache"))
    run = subprocess.run([sys.executable, "-m", "fpagent", "demo", "--bookings", "2", "--images",
                          str(fingerprints_dir / "fvc2002_db1_b")], cwd=ROOT,
                         capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.count("accepted by central") == 2
    assert "HIT" in run.stdout or "REMOVABLE" in run.stdout or "CITIZEN" in run.stdout
    assert "subject=finger-group-" in run.stdout  # a match across impressions of a real finger


def test_demo_interrupted_stops_everything_it_started():
    import signal
    import time
    env = {**os.environ}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba-cache"))
    proc = subprocess.Popen([sys.executable, "-m", "fpagent", "demo", "--bookings", "2"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    work = None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "working in" in line:
            work = line.split("working in", 1)[1].split()[0]
        if "link up" in line:  # broker, central and link are all running now
            break
    assert work and "link up" in lines[-1], "".join(lines)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "stopped everything it started" in out
    assert not pathlib.Path(work).exists()
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert work not in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            pass
