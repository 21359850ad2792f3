"""scripts/install into a temporary root (DESTDIR): the tree, the modes, and a
second run that changes nothing.

The package is installed into the staged venv without its dependencies
(--no-deps) to keep this test fast; the full install is the same pip call
without that flag.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "agent", "hal", "drivers", "systemd", "scripts", "docs"]


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> pathlib.Path:
    """A still copy of the checkout (others may be editing the work tree meanwhile)."""
    dst = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dst / name)
    return dst


def install(src: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"  # the system python3, not the dev venv
    return subprocess.run(["bash", str(src / "scripts" / "install"), *args], capture_output=True, text=True,
                          env=env, timeout=600)


def snapshot(root: pathlib.Path) -> dict:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                        hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_install_into_a_temporary_root_twice(tmp_path, source_copy):
    root = tmp_path / "root"
    first = install(source_copy, "--destdir", str(root), "--no-deps")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "staged into" in first.stdout

    # the tree
    venv_fpagent = root / "opt/fpagent/venv/bin/fpagent"
    assert venv_fpagent.is_file() and os.access(venv_fpagent, os.X_OK)
    assert os.readlink(root / "usr/local/bin/fpagent") == "/opt/fpagent/venv/bin/fpagent"
    for unit in ("fpagent.service", "fpagent-identity.service"):
        text = (root / "etc/systemd/system" / unit).read_text()
        assert "ExecStart=/opt/fpagent/venv/bin/fpagent" in text
        assert mode(root / "etc/systemd/system" / unit) == 0o644
    assert (root / "usr/lib/sysusers.d/fpagent.conf").is_file()
    assert (root / "usr/lib/tmpfiles.d/fpagent.conf").is_file()
    assert (root / "etc/udev/rules.d/99-fpsensor.rules").read_text() == \
        (ROOT / "systemd/udev/99-fpsensor.rules").read_text()
    for script in ("healthcheck", "provision", "diag-bundle", "rotate-keys", "factory-reset"):
        assert mode(root / "opt/fpagent/scripts" / script) == 0o755
    assert (root / "opt/fpagent/scripts/lib/common.sh").is_file()

    # modes: configuration readable by root and the service group only, state private
    assert mode(root / "etc/fpagent") == 0o750
    assert mode(root / "etc/fpagent/agent.toml") == 0o640
    for private in ("var/lib/fpagent", "var/lib/fpagent/keys", "var/cache/fpagent", "var/cache/fpagent/numba"):
        assert mode(root / private) == 0o700, private

    # the configuration it wrote is valid and points at the appliance's directories
    from fpagent import config
    cfg = config.load(root / "etc/fpagent/agent.toml")
    assert cfg.paths.state_dir == "/var/lib/fpagent" and cfg.paths.runtime_dir == "/run/fpagent"
    assert cfg.sensor.url == "zfm:///dev/fpsensor"

    # the identity, as fpagent-identity.service creates it at first start (paths moved into the root)
    staged = tmp_path / "staged.toml"
    staged.write_text((root / "etc/fpagent/agent.toml").read_text()
                      .replace('"/var/', f'"{root}/var/').replace('"/run/', f'"{root}/run/'))
    ident = subprocess.run([sys.executable, "-m", "fpagent", "--config", str(staged), "identity", "--ensure"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ident.returncode == 0, ident.stderr
    keys = root / "var/lib/fpagent/keys"
    assert mode(keys) == 0o700
    private = sorted(p.name for p in keys.iterdir() if p.suffix == ".key")
    assert private == ["device-sign.key", "device-tls.key"]
    for name in private:
        assert mode(keys / name) == 0o600, name

    # a second run changes nothing: no file rewritten, no mode changed, keys untouched
    before = snapshot(root)
    second = install(source_copy, "--destdir", str(root), "--no-deps")
    assert second.returncode == 0, second.stderr
    assert "wrote" not in second.stdout and "installing fpagent" not in second.stdout, second.stdout
    assert snapshot(root) == before


def test_install_help_and_bad_options(source_copy):
    proc = install(source_copy, "--help")
    assert proc.returncode == 0 and "Usage: sudo scripts/install" in proc.stdout and "--destdir" in proc.stdout
    proc = install(source_copy, "--frobnicate")
    assert proc.returncode == 2 and "unknown option --frobnicate" in proc.stderr
    proc = install(source_copy, "--prefix", "relative/dir", "--destdir", "/nonexistent-never")
    assert proc.returncode == 2 and "absolute" in proc.stderr


@pytest.mark.slow
def test_install_with_another_prefix(tmp_path, source_copy):
    """--prefix moves the venv, the scripts and every unit's ExecStart. The venv
    itself is stood in (a python and the source stamp), so pip does not run again
    here; the real venv install is covered by the test above."""
    root = tmp_path / "root"
    venv = root / "srv/fp/venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").write_text("#!/bin/sh\nexit 1\n")
    (venv / "bin/python").chmod(0o755)
    stamp = subprocess.run(
        "find pyproject.toml agent hal drivers -type f -name '*.py' -o -name pyproject.toml "
        "| LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1",
        shell=True, cwd=source_copy, capture_output=True, text=True).stdout.strip()
    (venv / ".fpagent-source").write_text(f"{stamp} no_deps=1\n")
    proc = install(source_copy, "--destdir", str(root), "--prefix", "/srv/fp", "--no-deps")
    assert proc.returncode == 0, proc.stderr
    assert "installing fpagent" not in proc.stdout
    for unit in ("fpagent.service", "fpagent-identity.service"):
        text = (root / "etc/systemd/system" / unit).read_text()
        assert "ExecStart=/srv/fp/venv/bin/fpagent" in text and "/opt/fpagent" not in text.replace(
            "file:///opt/fpagent", "")
    assert os.readlink(root / "usr/local/bin/fpagent") == "/srv/fp/venv/bin/fpagent"
    assert (root / "srv/fp/scripts/healthcheck").is_file()
