"""The technician's scripts: shellcheck, --help, clear failures, and what each does
to real files (real keys, a real SQLite outbox, a real tarball)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tarfile
import time

import pytest

from test_service_notify import NotifySocket, make_config, sealed, start_service, stop_service

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
MINE = ["install", "healthcheck", "provision", "diag-bundle", "rotate-keys", "factory-reset"]


def script(name, *args, input=None, timeout=120):
    env = {**os.environ, "FPAGENT_AS_ROOT": "1"}  # no fpagent user on a build machine
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run([str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True,
                          env=env, input=input, timeout=timeout, cwd=ROOT)


def write_config(tmp_path: pathlib.Path, **extra) -> pathlib.Path:
    path = tmp_path / "agent.toml"
    lines = [f'[paths]\nstate_dir = "{tmp_path}/state"\ncache_dir = "{tmp_path}/cache"\n',
             '[sensor]\nurl = "zfm:///dev/fpsensor-absent-in-tests"\n']
    for section, text in extra.items():
        lines.append(f"[{section}]\n{text}\n")
    path.write_text("".join(lines))
    return path


def test_shellcheck():
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is missing (scripts/dev-setup installs it)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    paths = [str(SCRIPTS / name) for name in MINE] + [str(SCRIPTS / "lib" / "common.sh")]
    proc = subprocess.run(["shellcheck", "-x", *paths], capture_output=True, text=True, cwd=SCRIPTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", MINE)
def test_help_and_unknown_option(name):
    proc = script(name, "--help")
    assert proc.returncode == 0 and "Usage:" in proc.stdout, proc.stderr
    bad = script(name, "--no-such-option")
    assert bad.returncode != 0
    assert "no-such-option" in (bad.stderr + bad.stdout)
    assert "Traceback" not in bad.stderr


# -- healthcheck ----------------------------------------------------------------

def test_healthcheck_exit_codes(tmp_path):
    cfg_path = write_config(tmp_path)
    proc = script("healthcheck", "--config", cfg_path)
    assert proc.returncode == 2 and proc.stdout.startswith("FPAGENT CRITICAL - service not running"), proc.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[nosuch]\n")
    proc = script("healthcheck", "--config", bad)
    assert proc.returncode == 3 and proc.stdout.startswith("FPAGENT UNKNOWN - configuration"), proc.stdout

    # with the service running (in this process; the script reads its status file)
    cfg = make_config(tmp_path)
    cable = tmp_path / "cable"
    cable.touch()
    cfg_file = tmp_path / "live.toml"
    cfg_file.write_text(f'[paths]\nstate_dir = "{cfg.paths.state_dir}"\ncache_dir = "{cfg.paths.cache_dir}"\n')
    notify = NotifySocket()
    svc, thread = start_service(cfg, notify)
    try:
        notify.wait_for("READY")
        time.sleep(0.2)
        proc = script("healthcheck", "--config", cfg_file)
        assert proc.returncode == 0, proc.stdout
        assert proc.stdout.startswith("FPAGENT OK - sensor present") and "| queue=0" in proc.stdout
        cable.unlink()
        notify.wait_for("STATUS", lambda v: v.startswith("sensor absent"), after=time.monotonic())
        time.sleep(0.1)
        proc = script("healthcheck", "--config", cfg_file)
        assert proc.returncode == 1 and "WARNING - sensor absent" in proc.stdout, proc.stdout
        as_json = script("healthcheck", "--config", cfg_file, "--json")
        data = json.loads(as_json.stdout)
        assert data["health"]["state"] == "WARNING" and data["sensor"]["state"] == "absent"
    finally:
        stop_service(svc, thread)
        notify.close()
    proc = script("healthcheck", "--config", cfg_file)
    assert proc.returncode == 2 and "service stopped" in proc.stdout


# -- provisioning and keys -------------------------------------------------------------

@pytest.fixture
def central_keys(tmp_path):
    from fpagent.sealing import keys

    directory = tmp_path / "central"
    keys.create_central_keys(directory)
    return directory


def test_provision_end_to_end(tmp_path, central_keys):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from fpagent.devtools.ca import make_dev_pki

    cfg_path = write_config(tmp_path)
    # without the destination agency, provisioning with an ORI is refused (not guessable)
    proc = script("provision", "--config", cfg_path, "--ori", "NY0123400")
    assert proc.returncode != 0 and "--destination" in proc.stderr and "Traceback" not in proc.stderr
    args = ["--config", cfg_path, "--device-id", "booking-07", "--ori", "NY0123400", "--destination", "NY0000001",
            "--central-hpke", central_keys / "central-hpke.pub",
            "--central-verify", central_keys / "central-sign.pub", "--broker", "central.example.org:8883"]
    # a broker off this machine needs TLS with the agency CA's certificate
    no_ca = script("provision", *args)
    assert no_ca.returncode == 78 and "tls" in no_ca.stderr and "Traceback" not in no_ca.stderr
    args += ["--ca", make_dev_pki(tmp_path / "agency-ca", clients=()) / "ca.crt"]
    proc = script("provision", *args)
    assert proc.returncode == 0, proc.stderr
    from fpagent import config
    from fpagent.sealing import keys
    cfg = config.load(cfg_path)
    assert (cfg.device.device_id, cfg.device.ori) == ("booking-07", "NY0123400")
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls) == ("central.example.org", 8883, True)
    assert cfg.booking.destination == "NY0000001"
    keys_dir = cfg.paths.keys()
    assert (keys_dir / "central-sign.pub").read_bytes() == (central_keys / "central-sign.pub").read_bytes()
    assert (keys_dir / "central-hpke.pub").read_bytes() == (central_keys / "central-hpke.pub").read_bytes()
    loaded = keys.load_device_keys(cfg)  # everything the service needs to seal and verify
    assert f"device key id: {loaded.device_key_id}" in proc.stdout
    csr = x509.load_pem_x509_csr((keys_dir / "device-tls.csr").read_bytes())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "NY0123400/booking-07"
    assert csr.is_signature_valid
    if shutil.which("openssl"):  # what the agency's CA will run on it
        check = subprocess.run(["openssl", "req", "-in", str(keys_dir / "device-tls.csr"), "-noout",
                                "-verify", "-subject"], capture_output=True, text=True)
        assert check.returncode == 0 and "CN = NY0123400/booking-07" in check.stdout + check.stderr
    for private in ("device-sign.key", "device-tls.key"):
        assert (keys_dir / private).stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in proc.stdout + proc.stderr
    # again: the device keeps its identity
    again = script("provision", *args)
    assert again.returncode == 0 and f"device key id: {loaded.device_key_id}" in again.stdout


def test_provision_refuses_bad_input_clearly(tmp_path, central_keys):
    cfg_path = write_config(tmp_path)
    proc = script("provision", "--config", cfg_path, "--ori", "short")
    assert proc.returncode == 78 and "[device] ori" in proc.stderr and "Traceback" not in proc.stderr
    proc = script("provision", "--config", cfg_path, "--central-verify", tmp_path / "missing.pub")
    assert proc.returncode == 2 and "missing.pub does not exist" in proc.stderr
    # the HPKE key set given where the Ed25519 key belongs: refused before pinning
    proc = script("provision", "--config", cfg_path, "--central-verify", central_keys / "central-hpke.pub")
    assert proc.returncode != 0 and "not a PEM public key" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "state" / "keys" / "central-sign.pub").exists()
    proc = script("provision", "--config", cfg_path, "--broker", "no-port")
    assert proc.returncode == 2 and "HOST:PORT" in proc.stderr


def test_rotate_keys(tmp_path):
    from fpagent import config
    from fpagent.sealing import keys
    cfg_path = write_config(tmp_path)
    assert script("provision", "--config", cfg_path, "--device-id", "booking-09").returncode == 0
    cfg = config.load(cfg_path)
    old = keys.key_id(keys.load_signing_key(cfg.paths.keys() / "device-sign.key"))
    refused = script("rotate-keys", "--config", cfg_path, input="")
    assert refused.returncode != 0 and "--yes" in refused.stderr
    assert keys.key_id(keys.load_signing_key(cfg.paths.keys() / "device-sign.key")) == old
    proc = script("rotate-keys", "--config", cfg_path, "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["old_device_key_id"] == old and result["device_key_id"] != old
    retired = pathlib.Path(result["retired_to"])
    assert (retired / "device-sign.key").stat().st_mode & 0o777 == 0o600
    assert keys.key_id(keys.load_signing_key(retired / "device-sign.key")) == old


# -- diagnostics -------------------------------------------------------------------------

def test_diag_bundle_holds_no_biometric_data_or_secrets(tmp_path):
    from fpagent import config
    from fpagent.storage.store import Store

    cfg_path = write_config(tmp_path)
    assert script("provision", "--config", cfg_path, "--device-id", "booking-11").returncode == 0
    cfg = config.load(cfg_path)
    marker = b"FINGERPRINT-MINUTIAE-MARKER-7731"
    store = Store(cfg.paths.database(), cfg)
    sid, env = sealed(os.urandom(512) + marker)
    store.outbox.enqueue(sid, "TCN-DIAG-1", env, {"seq": 1})
    store.close()
    state = pathlib.Path(cfg.paths.state_dir)
    (state / "last-capture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + marker)
    (state / "galleries").mkdir()
    (state / "galleries" / "BOOKING-2024-0042.sealed").write_bytes(b"sealed")
    key_body = "".join((cfg.paths.keys() / "device-sign.key").read_text().strip().splitlines()[1:-1])
    tls_body = "".join((cfg.paths.keys() / "device-tls.key").read_text().strip().splitlines()[1:-1])

    out = tmp_path / "bundle.tar.gz"
    proc = script("diag-bundle", "--config", cfg_path, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert set(members) == {"versions.txt", "config.toml", "status.json", "status.txt", "journal.txt",
                            "sensor-test.json", "serial-ports.json", "files.txt"}
    everything = b"\n".join(members.values())
    for forbidden in (marker, b"\x89PNG", b"SQLite format 3", b"PRIVATE KEY", key_body.encode(),
                      tls_body.encode(), b"TCN-DIAG-1", b"BOOKING-2024-0042"):
        assert forbidden not in everything, forbidden[:20]
    status = json.loads(members["status.json"])
    assert status["queue"]["depth"] == 1 and status["device_id"] == "booking-11"
    sensor = json.loads(members["sensor-test.json"])
    assert sensor["state"] == "absent" and sensor["error"]
    import tomllib
    assert tomllib.loads(members["config.toml"].decode())["device"]["device_id"] == "booking-11"
    assert b"fpagent " in members["versions.txt"] and b"numba " in members["versions.txt"]
    assert b"galleries/ (1 files)" in members["files.txt"] and b"agent.sqlite3" in members["files.txt"]


# -- factory reset ----------------------------------------------------------------------------

def test_factory_reset(tmp_path):
    from fpagent import config
    from fpagent.storage.store import Store

    cfg_path = write_config(tmp_path)
    assert script("provision", "--config", cfg_path, "--device-id", "booking-12").returncode == 0
    cfg = config.load(cfg_path)
    store = Store(cfg.paths.database(), cfg)
    sid, env = sealed(b"a booking")
    store.outbox.enqueue(sid, "TCN1", env, {"seq": 1})
    store.close()

    proc = script("factory-reset", "--config", cfg_path, input="")
    assert proc.returncode != 0 and "--yes" in proc.stderr
    assert cfg.paths.database().exists() and (cfg.paths.keys() / "device-sign.key").exists()

    # refuses while the service runs (its live status names a living process: this one)
    run_dir = pathlib.Path(cfg.paths.state_dir) / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "status.json").write_text(json.dumps(
        {"service": {"state": "running", "pid": os.getpid(), "updated_at": time.time()}}))
    proc = script("factory-reset", "--config", cfg_path, "--yes")
    assert proc.returncode != 0 and "stop it first" in proc.stderr
    (run_dir / "status.json").unlink()

    galleries = pathlib.Path(cfg.paths.state_dir) / "galleries"
    galleries.mkdir()
    (galleries / "watchlist.sealed").write_bytes(b"sealed gallery")
    stranger = pathlib.Path(cfg.paths.state_dir) / "not-ours.txt"
    stranger.write_text("someone else's file")
    proc = script("factory-reset", "--config", cfg_path, "--yes")
    assert proc.returncode == 0, proc.stderr
    assert not cfg.paths.database().exists() and not cfg.paths.keys().exists() and not galleries.exists()
    assert [p.name for p in pathlib.Path(cfg.paths.state_dir).iterdir()] == ["not-ours.txt"]
    assert f"left in place (not the agent's): {stranger}" in proc.stdout
    assert cfg_path.exists()  # the configuration stays


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership hand-over happens only when run as root")
def test_provision_as_root_keeps_the_service_users_access(tmp_path, central_keys):
    """Provisioning runs as root; the service (another user) must still read config and keys."""
    service_uid, service_gid = 54321, 54321
    cfg_path = write_config(tmp_path)
    os.chown(cfg_path, 0, service_gid)
    cfg_path.chmod(0o640)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, service_uid, service_gid)
    proc = script("provision", "--config", cfg_path, "--device-id", "booking-13",
                  "--central-verify", central_keys / "central-sign.pub")
    assert proc.returncode == 0, proc.stderr
    st = cfg_path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, service_gid, 0o640)
    keys_dir = state / "keys"
    for path in [keys_dir, *keys_dir.iterdir()]:
        assert path.stat().st_uid == service_uid, path
    assert (keys_dir / "device-sign.key").stat().st_mode & 0o777 == 0o600
