"""Fixtures shared by the whole suite.

The real fingerprint images live in ../shared/data/fingerprints (never copied
into the project). Tests that need them skip with a clear reason when that
folder is absent (a user's machine); in CI it is always there.
"""

from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_FINGERPRINTS = pathlib.Path(
    os.environ.get("FPAGENT_FINGERPRINTS", ROOT.parent / "shared" / "data" / "fingerprints")
)
REAL_SETS = ("fvc2002_db1_b", "fvc2002_db3_b")
SYNTHETIC_SETS = ("fvc2002_db4_b",)


def pytest_addoption(parser):
    # opt-in hardware run: the sensor contract suite against a real sensor
    parser.addoption("--sensor", metavar="URL", default=None,
                     help="also run the sensor contract tests on this sensor, "
                     "e.g. zfm:///dev/ttyUSB0?baud=57600 (needs a finger on it)")


@pytest.fixture(scope="session")
def fingerprints_dir() -> pathlib.Path:
    if not (SHARED_FINGERPRINTS / "INDEX.tsv").exists():
        pytest.skip(f"shared fingerprint images not found at {SHARED_FINGERPRINTS}")
    return SHARED_FINGERPRINTS


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory, monkeypatch):
    """Never touch the developer's ~/.local/state or /etc/fpagent from a test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("FPAGENT_CONFIG", raising=False)
