"""The unit files, sysusers/tmpfiles snippets and the generated udev rule."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "systemd"
UNITS = ["fpagent.service", "fpagent-identity.service"]
FPAGENT_BIN = pathlib.Path(sys.executable).parent / "fpagent"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def unit_copy(tmp_path: pathlib.Path, name: str) -> pathlib.Path:
    """The unit with ExecStart pointing at this checkout's fpagent (verify checks it exists)."""
    target = tmp_path / name
    for unit in UNITS:  # copied together so that Requires= resolves
        text = (SYSTEMD / unit).read_text().replace("/opt/fpagent/venv/bin/fpagent", str(FPAGENT_BIN))
        (tmp_path / unit).write_text(text)
    return target


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify(tmp_path, name):
    path = unit_copy(tmp_path, name)
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in (proc.stderr + proc.stdout).splitlines()
                if name in line or "fpagent" in line]
    assert proc.returncode == 0 and not problems, proc.stderr + proc.stdout


def security_score(path: pathlib.Path) -> float:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr
    return float(match.group(1))


@needs_analyze
def test_service_unit_security_score(tmp_path):
    score = security_score(unit_copy(tmp_path, "fpagent.service"))
    print(f"\nsystemd-analyze security --offline=true fpagent.service: {score}")
    assert score <= 2.5
    identity = security_score(unit_copy(tmp_path, "fpagent-identity.service"))
    print(f"systemd-analyze security --offline=true fpagent-identity.service: {identity}")
    assert identity <= 2.5


def settings(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_service_unit_shape():
    s = settings("fpagent.service")
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"]
    assert int(s["WatchdogSec"][0]) > 0 and "StartLimitBurst" in s and "StartLimitIntervalSec" in s
    for target in ("network-online.target", "time-sync.target"):
        assert any(target in v for v in s["After"]) and any(target in v for v in s["Wants"])
    assert s["Requires"] == ["fpagent-identity.service"]
    assert s["ProtectSystem"] == ["strict"] and s["DevicePolicy"] == ["closed"]
    allowed = " ".join(s["DeviceAllow"])
    for cls in ("char-ttyUSB", "char-ttyACM", "char-ttyAMA", "char-ttyS"):
        assert cls in allowed
    assert s["CapabilityBoundingSet"] == [""] and s["NoNewPrivileges"] == ["yes"]
    assert "@system-service" in s["SystemCallFilter"]
    assert s["User"] == ["fpagent"]
    # the JIT needs W+X memory: no MemoryDenyWriteExecute, and the unit says why
    assert "MemoryDenyWriteExecute" not in s
    text = (SYSTEMD / "fpagent.service").read_text()
    assert re.search(r"#.*MemoryDenyWriteExecute.*\n(#.*\n)*#.*(JIT|Numba|LLVM)", text) or \
        re.search(r"#.*(Numba|JIT).*\n(#.*\n)*.*MemoryDenyWriteExecute", text)
    # NUMBA_CACHE_DIR under the writable cache directory
    assert any(v == "NUMBA_CACHE_DIR=/var/cache/fpagent/numba" for v in s["Environment"])
    assert "/var/cache/fpagent" in s["ReadWritePaths"][0] and "/var/lib/fpagent" in s["ReadWritePaths"][0]


def test_udev_rule_is_the_generated_one():
    from fpagent.service import maintenance as appliance
    from fpagent.drivers.zfm.ids import USB_IDS

    committed = (SYSTEMD / "udev" / "99-fpsensor.rules").read_text()
    assert committed == appliance.udev_rules(), "regenerate: fpagent udev-rules -o systemd/udev/99-fpsensor.rules"
    for usb in USB_IDS:
        assert f'ATTRS{{idVendor}}=="{usb.vid:04x}", ATTRS{{idProduct}}=="{usb.pid:04x}"' in committed
    rules = [line for line in committed.splitlines() if line and not line.startswith("#")]
    assert len(rules) == len(USB_IDS) and all('SYMLINK+="fpsensor"' in r for r in rules)


def test_udev_rules_render_from_any_table():
    from fpagent.service.maintenance import render_udev_rules
    from fpagent.hal.driver import UsbId

    text = render_udev_rules({"x": [UsbId(0xABCD, 0x0001, "a test bridge")]})
    assert 'ATTRS{idVendor}=="abcd", ATTRS{idProduct}=="0001"' in text and "a test bridge" in text


@pytest.mark.skipif(shutil.which("udevadm") is None, reason="udevadm is not installed")
def test_udev_rule_syntax(tmp_path):
    proc = subprocess.run(["udevadm", "verify", str(SYSTEMD / "udev" / "99-fpsensor.rules")],
                          capture_output=True, text=True)
    if "Unknown command" in proc.stderr or "unknown" in proc.stderr.lower() and proc.returncode:
        pytest.skip("this udevadm has no verify command (systemd < 254)")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
                    reason="systemd-sysusers/tmpfiles not installed")
def test_sysusers_and_tmpfiles_in_a_temporary_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "group").write_text("root:x:0:\ndialout:x:20:\n")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    proc = subprocess.run(["systemd-sysusers", f"--root={root}", str(SYSTEMD / "sysusers.d" / "fpagent.conf")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    passwd = (root / "etc" / "passwd").read_text()
    entry = [line for line in passwd.splitlines() if line.startswith("fpagent:")]
    assert entry and entry[0].endswith(":/usr/sbin/nologin")
    uid = int(entry[0].split(":")[2])
    assert uid < 1000  # a system user
    assert "fpagent" in [line for line in (root / "etc" / "group").read_text().splitlines()
                         if line.startswith("dialout:")][0]
    proc = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create",
                           str(SYSTEMD / "tmpfiles.d" / "fpagent.conf")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    for path, mode in (("var/lib/fpagent", 0o700), ("var/lib/fpagent/keys", 0o700),
                       ("var/cache/fpagent/numba", 0o700), ("etc/fpagent", 0o750)):
        st = (root / path).stat()
        assert st.st_mode & 0o777 == mode, path
    assert (root / "var/lib/fpagent").stat().st_uid == uid


# PR_SET_MDWE (Linux 6.3+) is what MemoryDenyWriteExecute=yes sets up for a unit.
_MDWE = """
import ctypes, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(99)  # this kernel cannot deny W+X memory
"""
_RUN_FPAGENT = "import runpy; sys.argv = sys.argv[1:]; runpy.run_module('agent', run_name='__main__', alter_sys=True)"
_JIT_ONE_FUNCTION = "import numba\nf = numba.njit(lambda x: x + 1)\nf(1)\n"


def under_mdwe(code: str, *argv: str, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", _MDWE + code, *argv], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    if proc.returncode == 99:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    return proc


def test_why_the_service_unit_has_no_memory_deny_write_execute(tmp_path):
    """The identity unit sets MemoryDenyWriteExecute=yes and works under it; the
    service unit cannot, because the Numba JIT needs W+X memory: both shown for real."""
    import os

    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path}/state"\n')
    ident = under_mdwe(_RUN_FPAGENT, "agent", "--config", str(cfg), "identity", "--ensure")
    assert ident.returncode == 0, ident.stderr
    assert (tmp_path / "state/keys/device-sign.key").exists()
    assert "MemoryDenyWriteExecute=yes" in (SYSTEMD / "fpagent-identity.service").read_text()

    jit = under_mdwe(_JIT_ONE_FUNCTION, env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    assert jit.returncode != 0 and "executable memory" in jit.stderr, jit.stderr[-500:]
    plain = subprocess.run([sys.executable, "-c", _JIT_ONE_FUNCTION], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
    assert plain.returncode == 0, plain.stderr[-500:]  # the same code without the restriction
