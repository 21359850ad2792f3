"""Bookings wait for a known-good clock: a time server's flag, or an operator's confirmation."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time

import pytest

from fpagent import config
from fpagent.errors import UserError
from fpagent.service import clock, daemon, sdnotify, status
from fpagent.storage.store import Store


def _cfg(tmp_path, **service):
    return config.from_dict({
        "paths": {"state_dir": str(tmp_path / "state"), "cache_dir": str(tmp_path / "cache")},
        "service": {"clock_check": "flag", "clock_sync_flag": str(tmp_path / "synchronized"),
                    **service}})


def _running_service(cfg):
    svc = daemon.Service(cfg, notifier=sdnotify.Notifier(None), warmups=[], parts=[],
                         store=Store(cfg.paths.database(), cfg))
    svc.state = "running"
    return svc


def test_no_booking_until_the_time_server_says_synchronised(tmp_path):
    cfg = _cfg(tmp_path)
    svc = _running_service(cfg)
    try:
        with pytest.raises(UserError, match="NOT SYNCHRONISED"):
            with svc.booking():
                pass
        facts = status.gather(cfg, live={}, queue=({}, {}))
        assert "clock NOT SYNCHRONISED" in status.summary(facts)
        assert "clock:     NOT SYNCHRONISED" in status.human_report(facts)
        (tmp_path / "synchronized").touch()  # what systemd-timesyncd does after a real sync
        with svc.booking():
            pass
        assert "NOT SYNCHRONISED" not in status.summary(status.gather(cfg, live={}, queue=({}, {})))
    finally:
        svc.store.close()


def test_an_operator_confirmation_is_audited_and_lets_bookings_start(tmp_path):
    cfg = _cfg(tmp_path)
    svc = _running_service(cfg)
    try:
        wrong = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=3)
        with pytest.raises(ValueError, match="differs"):
            clock.confirm(cfg, svc.store, wrong)
        assert not clock.check(cfg).synchronised
        clock.confirm(cfg, svc.store, datetime.datetime.now(datetime.timezone.utc), by="sgt-k")
        assert clock.check(cfg).synchronised and "operator" in clock.check(cfg).detail
        with svc.booking():
            pass
        actions = [tuple(r) for r in svc.store.conn.execute("SELECT actor, action FROM audit")]
        assert ("sgt-k", "clock.confirmed") in actions
    finally:
        svc.store.close()


def test_clock_commands(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\ncache_dir = "{tmp_path / "c"}"\n'
                    f'[service]\nclock_sync_flag = "{tmp_path / "synchronized"}"\n')
    run = [sys.executable, "-m", "fpagent.cli", "--config", str(path), "clock"]
    got = subprocess.run(run + ["status"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 1 and "NOT SYNCHRONISED" in got.stdout
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    got = subprocess.run(run + ["confirm", "--utc", now], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    got = subprocess.run(run + ["status"], capture_output=True, text=True, timeout=60)
    assert got.returncode == 0 and "confirmed by an operator" in got.stdout
