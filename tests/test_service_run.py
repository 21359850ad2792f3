"""`fpagent run` as a real process: bad configurations fail with one clear line
(never a traceback); a good one gets READY over a real notify socket, pings the
watchdog, stops cleanly on SIGTERM, and logs no secrets."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import pytest

from test_service_notify import NotifySocket

ROOT = pathlib.Path(__file__).resolve().parent.parent
FPAGENT = [sys.executable, "-m", "agent"]


def run_fpagent(args, *, env=None, timeout=60):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NOTIFY_SOCKET", None)
    return subprocess.run(FPAGENT + args, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_clear_error(proc, fragment):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("text, fragment", [
    ("[device]\nserial = 'x'\n", "unknown key [device] serial"),
    ("[sensors]\nurl = 'zfm:///dev/fpsensor'\n", "unknown section [sensors]"),
    ("[mqtt]\nport = 'eighty'\n", "[mqtt] port must be a whole number"),
    ("[service]\nwatchdog = 'yes'\n", "[service] watchdog must be true or false"),
    ("[store]\nmax_queue_mb = -1\n", "[store] max_queue_mb must not be negative"),
    ("[device\nori = 1\n", "not valid TOML"),
    ("[paths]\nstate_dir = 'var/lib/fpagent'\n", "[paths] state_dir must be an absolute path"),
])
def test_bad_configuration_gives_one_clear_error(tmp_path, text, fragment):
    bad = tmp_path / "agent.toml"
    bad.write_text(text)
    proc = run_fpagent(["--config", str(bad), "run"])
    assert proc.returncode == 78  # EX_CONFIG: systemd's restart limit stops retrying
    assert_one_clear_error(proc, fragment)


def test_config_check_reports_the_same_error(tmp_path):
    bad = tmp_path / "agent.toml"
    bad.write_text("[device]\nserial = 'x'\n")
    check = run_fpagent(["config", "check", str(bad)])
    assert check.returncode == 78
    assert_one_clear_error(check, "unknown key [device] serial")


def test_missing_configuration_file(tmp_path):
    proc = run_fpagent(["--config", str(tmp_path / "nope.toml"), "run"])
    assert proc.returncode == 78
    assert_one_clear_error(proc, "does not exist")


def unreadable_file(tmp_path: pathlib.Path, name: str) -> pathlib.Path:
    """A path this user cannot read. Root reads every mode-000 file, so for root
    it is a link to a write-only sysfs attribute (open for reading: EACCES)."""
    path = tmp_path / name
    if os.geteuid() != 0:
        path.write_text("[device]\n")
        path.chmod(0o000)
        return path
    for candidate in sorted(pathlib.Path("/sys/bus").glob("*/uevent")):
        try:
            candidate.open("rb").close()
        except PermissionError:
            path.symlink_to(candidate)
            return path
        except OSError:
            continue
    pytest.skip("no file unreadable by root found here")


def test_unreadable_configuration_file(tmp_path):
    bad = unreadable_file(tmp_path, "agent.toml")
    proc = run_fpagent(["--config", str(bad), "run"])
    assert proc.returncode == 78
    assert_one_clear_error(proc, "not readable by this user")


def test_unreadable_key_file(tmp_path):
    key = unreadable_file(tmp_path, "device-sign.key")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path}/state"\ncache_dir = "{tmp_path}/cache"\n'
                   f'[envelope]\ndevice_signing_key = "{key}"\n')
    proc = run_fpagent(["--config", str(cfg), "run"])
    assert proc.returncode == 78
    line = assert_one_clear_error(proc, "[envelope] device_signing_key")
    assert "not readable by user" in line


def test_configuration_that_cannot_be_opened_at_all(tmp_path):
    import socket as socket_mod

    path = tmp_path / "agent.toml"
    sock = socket_mod.socket(socket_mod.AF_UNIX)
    sock.bind(str(path))  # open() on a socket fails with ENXIO, not EACCES
    try:
        proc = run_fpagent(["--config", str(path), "run"])
    finally:
        sock.close()
    assert proc.returncode == 78
    assert_one_clear_error(proc, str(path))


def test_key_path_that_is_missing_or_a_directory(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path}/state"\n'
                   f'[envelope]\ncentral_public_key = "{tmp_path}/nothing.pub"\n')
    proc = run_fpagent(["--config", str(cfg), "run"])
    assert proc.returncode == 78
    assert_one_clear_error(proc, "[envelope] central_public_key")
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path}/state"\n'
                   f'[envelope]\ncentral_verify_key = "{tmp_path}"\n')
    proc = run_fpagent(["--config", str(cfg), "config", "check", "--files"])
    assert proc.returncode == 78
    assert_one_clear_error(proc, "is a directory")


def test_config_check_and_show(tmp_path):
    good = tmp_path / "agent.toml"
    good.write_text('[device]\nori = "NY0123400"\ndevice_id = "booking-07"\n[mqtt]\nport = 8883\n')
    proc = run_fpagent(["config", "check", str(good)])
    assert proc.returncode == 0 and "configuration OK" in proc.stdout
    shown = run_fpagent(["--config", str(good), "config", "show"])
    assert shown.returncode == 0
    import tomllib
    data = tomllib.loads(shown.stdout)
    assert data["device"]["device_id"] == "booking-07" and data["mqtt"]["port"] == 8883


def test_redaction_hides_secret_looking_keys():
    import dataclasses

    from fpagent import config

    @dataclasses.dataclass
    class WithSecret(config.MqttConfig):
        password: str = "hunter2"

    cfg = config.Config()
    cfg.mqtt = WithSecret()
    shown = config.redacted(cfg)
    assert shown.mqtt.password == "***" and shown.mqtt.host == cfg.mqtt.host
    assert cfg.mqtt.password == "hunter2"  # the original is untouched


@pytest.mark.slow
def test_real_process_ready_watchdog_and_sigterm(tmp_path):
    """The real daemon with the real kernels (Numba cache of the checkout)."""
    state = tmp_path / "state"
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{state}"\ncache_dir = "{tmp_path}/cache"\n'
                   f'[sensor]\nurl = "zfm:///dev/fpsensor-not-plugged"\n'
                   f'[service]\nstatus_interval_s = 1\n')
    ident = run_fpagent(["--config", str(cfg), "identity", "--ensure", "--json"])
    assert ident.returncode == 0, ident.stderr
    key_text = (state / "keys" / "device-sign.key").read_text()
    key_body = "".join(key_text.strip().splitlines()[1:-1])
    notify = NotifySocket()
    env = {**os.environ, "NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "1000000",
           "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba-cache"))}
    proc = subprocess.Popen(FPAGENT + ["--config", str(cfg), "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready_at, ready = notify.wait_for("READY", timeout=240)
        assert notify.wait_for("STATUS", lambda v: v.startswith("sensor absent"))
        notify.wait_for("WATCHDOG", after=ready_at + 0.6, timeout=5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        notify.close()
    assert proc.returncode == 0, err
    assert notify.fields("STOPPING")
    # READY came only after every kernel module reported ready
    assert err.index("kernels ready module=extraction") < err.index(" ready device=")
    assert "Traceback" not in err
    assert key_body not in err and "PRIVATE KEY" not in err


def test_missing_tls_certificate_degrades_instead_of_failing(tmp_path):
    """After rotate-keys the old certificate is retired; the service must still run."""
    from fpagent import config
    from fpagent.service.preflight import check_key_files

    cfg = config.from_dict({"paths": {"state_dir": str(tmp_path / "state")},
                            "mqtt": {"tls": True, "cert_file": str(tmp_path / "device-tls.crt")}})
    warnings = check_key_files(cfg)
    assert any("[mqtt] cert_file" in w and "link stays down" in w for w in warnings)
