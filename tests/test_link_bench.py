"""`fpagent bench link` runs and its last line holds the agreed keys (figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.mqtt_helpers import needs_mosquitto, ROOT_DIR


@needs_mosquitto
def test_bench_link_json_last_line():
    run = subprocess.run([sys.executable, "-m", "fpagent", "bench", "link", "--bookings", "20",
                          "--idle", "5", "--payload-kb", "4", "--json"], cwd=ROOT_DIR,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for key in ("bookings_per_s", "p50_ms", "p99_ms", "agent_rss_mb", "broker_rss_mb",
                "ratio_to_reference"):
        assert key in result
    assert result["bookings"] == 20 and result["bookings_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert "bookings/s" in run.stdout


@needs_mosquitto
def test_bench_link_realistic_drains_a_backlog_of_ten_prints():
    """The realistic mode runs end to end through the agency-isolated broker: real ten-print
    envelopes queued while the broker is down are all acknowledged once it is back."""
    run = subprocess.run([sys.executable, "-m", "fpagent", "bench", "link", "--realistic",
                          "--bookings", "3", "--json"], cwd=ROOT_DIR,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["mode"] == "realistic" and result["bookings"] == 3
    assert result["envelope_bytes"] > 60 * 1024  # ten WSQ prints, not a stand-in payload
    if result["prints"].startswith("real prints"):  # the shared set: a real booking's size
        assert 100 * 1024 <= result["envelope_bytes"] <= 110 * 1024
    assert result["drain_s"] > 0 and result["drain_per_s"] > 0
    assert "drain after the broker is back" in run.stdout


def test_rolled_area_keeps_the_print_and_drops_the_glass():
    """The emulated rolled impression is cropped to its ridges, not kept in a frame of glass."""
    import numpy as np

    from fpagent.bench.link_realistic import rolled_area
    from fpagent.drivers.tenprint import platen

    full = platen.rolled(2026, 1, 2)
    area = rolled_area(full)
    assert area.size < 0.5 * full.size
    assert min(area.shape) >= 250  # a whole fingertip, nail to nail
    dark = lambda px: int((px < 128).sum())  # noqa: E731 - ridge pixels
    assert dark(area) >= 0.97 * dark(full)
    assert np.array_equal(rolled_area(np.full((64, 64), 200, np.uint8)), np.full((64, 64), 200, np.uint8))
