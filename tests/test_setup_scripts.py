"""The set-up scripts' repairs and their shared helpers (scripts/lib/setup.sh).

What a fresh aarch64 machine needs (Debian packages, the wsq build) is run
for real by scripts/check-arm64; here, on any machine: an unfinished venv is
made again, and a slow step says what it does and shows its output only when
it fails.
"""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from test_install_tree import install, source_copy  # noqa: F401 (fixture)

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_install_makes_an_unfinished_venv_again(tmp_path, source_copy):  # noqa: F811
    root = tmp_path / "root"
    venv = root / "opt/fpagent/venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to("/nonexistent/python3")  # a first run stopped half-way
    proc = install(source_copy, "--destdir", str(root), "--no-deps")
    assert proc.returncode == 0, proc.stderr
    assert "removing the unfinished /opt/fpagent/venv" in proc.stdout
    check = subprocess.run([str(venv / "bin/python"), "-c", "import fpagent"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def helper(snippet: str) -> subprocess.CompletedProcess:
    script = f'say() {{ echo "t: $*"; }}; die() {{ echo "t: $1" >&2; exit 1; }}; . "{ROOT}/scripts/lib/setup.sh"; {snippet}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


def test_a_slow_step_says_what_it_does_and_keeps_quiet_until_it_fails():
    ok = helper('slowly "counting" bash -c "echo noisy output"')
    assert ok.returncode == 0
    assert "t: counting ..." in ok.stdout and "done in" in ok.stdout and "noisy output" not in ok.stdout
    bad = helper('slowly "breaking" bash -c "echo the reason; exit 3"')
    assert bad.returncode == 1
    assert "the reason" in bad.stderr and "failed: breaking" in bad.stderr


def test_a_compiler_and_headers_are_asked_for_only_when_missing():
    proc = helper("PATH=/nonexistent; build_packages")
    assert proc.stdout.split() == ["gcc", "python3-dev"]  # no gcc, and no python3 to find Python.h with
