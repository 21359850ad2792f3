"""The README's main job, end to end: `fpagent demo` books arrestees and shows what came back.

Real everything: mosquitto with TLS and the ACL, the emulated ZFM sensor over a
pty with synthetic fingerprints, extraction, the ANSI/NIST transaction, the
HPKE envelope, the link, the reference central matching its galleries.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from fpagent.devtools.broker import find_mosquitto

ROOT = pathlib.Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.skipif(find_mosquitto() is None,
                                                   reason="mosquitto is not installed")]


def _report(argv: list) -> dict:
    """The real CLI's `--json` answer: one JSON object on the last line."""
    run = subprocess.run([sys.executable, "-m", "fpagent", *argv, "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


# What the demo books with --bookings 3 and its follow-ups (fpagent.central.people): persons
# 1 (criminal record), 2 (criminal record, removable level 1), 3 (U.S. citizen), then 6
# (under review -> removable level 2 -> detainer lodged; released) and 7 (prints rejected for
# fingers 3 and 7, then its reprint, known nowhere).
BOOKED = {"submissions": 6, "accepted": 6, "rejected": 0, "pending": 0,
          "reprints_requested": 1, "reprints_submitted": 1,
          "criminal_history": {"answered": 5, "hits": 2, "no_hits": 3},
          "immigration": {"answered": 5, "matches": 3, "no_match": 2, "under_review": 0,
                          "citizen_or_lawful": 1, "removable": 1, "detainer_lodged": 1,
                          "detainer_lifted": 0, "level_1": 1, "level_2": 1, "level_3": 0,
                          "updated": 1},
          "detainers": {"lodged": 1, "lifted": 0, "open": 0},
          "release_notices": {"sent": 1, "acknowledged": 1}}


def test_demo_runs_the_whole_loop_and_its_figures_add_up(tmp_path):
    env = {**os.environ}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba-cache"))
    run = subprocess.run([sys.executable, "-m", "fpagent", "demo", "--bookings", "3", "--keep"],
                         cwd=ROOT, capture_output=True, text=True, timeout=420, env=env)
    out = run.stdout
    work = pathlib.Path(re.search(r"working in (\S+)", out).group(1))
    try:
        assert run.returncode == 0, out[-3000:] + run.stderr[-2000:]
        first, _, later = out.partition("After the first answers")
        # person 1 is known to the criminal gallery, 2 also removable level 1, 3 a U.S. citizen
        blocks = re.split(r"\n(?=booking DEMO-)", first)
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

        # the follow-ups: a reprint of only the rejected fingers, linked by central
        assert "PRINTS REJECTED: REPRINT FINGERS 3, 7" in later
        assert re.search(r"reprint of TCN \S+\) fingers \+\+ sealed", later)  # two fingers
        assert "central linked it to submission" in later
        # the determination that changes, the detainer task with its deadline, the release
        history = re.findall(r"immigration\s+v(\d)\s+(\w+)\s+(.+)", later)
        assert [(v, standing) for v, standing, _ in history] == [
            ("1", "superseded"), ("2", "superseded"), ("3", "current")]
        assert "UNDER REVIEW" in history[0][2] and "REMOVABLE, OFFENCE LEVEL 2" in history[1][2]
        assert "DETAINER LODGED" in history[2][2]
        assert "task   detainer: notify central 48 h before any release  [OPEN]" in later
        assert "release notice received by central" in later
        assert "[closed (release-acknowledged)]" in later
        assert "the program's figures" in later

        # the report after the demo adds up with what it booked: central's and the jail's
        (work / "agent.toml").write_text(f'[paths]\nstate_dir = "{work / "appliance"}"\n')
        central = _report(["central", "report", "--db", str(work / "central" / "central.sqlite3")])
        jail = _report(["--config", str(work / "agent.toml"), "report"])
        for fig in (central, jail):
            assert {k: fig[k] for k in BOOKED} == BOOKED
            med = fig["median_s"]
            assert 0 <= med["criminal-history"] <= med["immigration"] \
                <= med["immigration-current"] < 300
            assert med["reprint"] is not None and med["release-notice"] is not None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert "stopped everything it started" in out
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert str(work) not in cmdline.read_bytes().decode(errors="replace")  # broker stopped
        except OSError:
            pass


def test_demo_without_follow_ups_books_only_the_usual_people():
    """--no-follow-ups: the short run, and the temporary folder removed at the end."""
    env = {**os.environ}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba-cache"))
    run = subprocess.run([sys.executable, "-m", "fpagent", "demo", "--bookings", "1",
                          "--no-follow-ups"], cwd=ROOT, capture_output=True, text=True,
                         timeout=240, env=env)
    out = run.stdout
    assert run.returncode == 0, out[-2000:] + run.stderr[-2000:]
    assert "CRIMINAL HISTORY: HIT" in out and "After the first answers" not in out
    assert "DEMO-0002" not in out and "1 bookings, 1 accepted acks" in out
    assert not pathlib.Path(re.search(r"working in (\S+)", out).group(1)).exists()


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
    # as at a terminal: a suite started in the background (`scripts/test &` in a script without
    # job control) passes an ignored SIGINT on to its children, and Python then never raises
    # KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "fpagent", "demo", "--bookings", "2"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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
