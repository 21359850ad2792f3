"""The appliance as it runs in a jail: `fpagent run` (the daemon) and `fpagent book`
(the officer's booking, its own process) over one state directory, a real
mosquitto with TLS client certificates, and the reference central responder
screening the real transaction against a gallery that knows this person.

Nothing is mocked: real processes, real SQLite file, real envelopes and
signatures, real extraction and matching of synthetic prints.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from fpagent import config as config_mod
from fpagent.sealing import keys
from fpagent.central.screening import Galleries, TransactionScreen, synthetic_entry
from fpagent.storage.store import Store
from tests.mqtt_helpers import appliance_config, broker, make_central, needs_mosquitto, pki, wait_for  # noqa: F401

SEED, PERSON = 11, 4
SENSOR = f"synthetic://?seed={SEED}&person={PERSON}"


def _fpagent(cfg_path, *args, **kw):
    return subprocess.run([sys.executable, "-m", "agent", "--config", str(cfg_path), *args],
                          capture_output=True, text=True, timeout=240, **kw)


@needs_mosquitto
@pytest.mark.slow
def test_daemon_sends_a_booking_from_another_process_and_stores_central_answers(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port)
    cfg.sensor.url = SENSOR
    keys_dir = cfg.paths.keys()
    keys_dir.mkdir(parents=True, mode=0o700)
    for name in (keys.CENTRAL_VERIFY_KEY, keys.CENTRAL_HPKE_PUBLIC):
        shutil.copy(pki.central_dir / name, keys_dir / name)
    keys.save_private_key(keys_dir / keys.DEVICE_SIGNING_KEY, pki.device_signing["booking-01"])
    cfg_path = tmp_path / "agent.toml"
    cfg_path.write_text(config_mod.to_toml(cfg))

    known = synthetic_entry("P4", {"sid": "SID-0004", "history": "burglary (2019)"},
                            person=PERSON, seed=SEED)
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3",
                           screen=TransactionScreen(Galleries(criminal=[known])),
                           immigration_delay_s=0.2).start()
    daemon = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(cfg_path), "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "NOTIFY_SOCKET": ""})
    try:
        booked = _fpagent(cfg_path, "book", "--booking-number", "2026-0099", "--operator", "off7",
                          "--name", "DOE,JOHN", "--dob", "1980-01-02", "--sex", "M",
                          "--yes", "--json", "--sensor", SENSOR)
        assert booked.returncode == 0, booked.stderr
        result = json.loads(booked.stdout.strip().splitlines()[-1])
        sid, tcn = result["submission_id"], result["tcn"]

        def answered():
            with Store(cfg.paths.database(), cfg) as store:
                item = store.outbox.get(sid)
                kinds = [n for n in store.inbox.list() if n.get("kind") == "notification"]
                return item.state == "acknowledged" and len(kinds) >= 2 and kinds
        notes = wait_for(answered, timeout=120, what="ack and both notifications")
        assert daemon.poll() is None, daemon.stderr.read()

        listed = _fpagent(cfg_path, "notifications", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        text = listed.stdout
        assert tcn in text
        assert "SID-0004" in text  # the criminal-history hit names the known record
        assert len(notes) == 2
        assert central.counters["acks_sent"] >= 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            out, err = daemon.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            out, err = daemon.communicate()
        central.stop()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
