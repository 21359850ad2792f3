"""`fpagent.service.status`: one gathering of facts, read three ways (STATUS=, fpagent status,
healthcheck). Real SQLite outboxes and real status files; each fault gives the
code a monitoring system expects and words a technician understands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from fpagent import config
from fpagent.service import status
from fpagent.storage.store import Store
from test_service_notify import sealed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_cfg(tmp_path, **store) -> config.Config:
    return config.from_dict({
        "paths": {"state_dir": str(tmp_path / "state"), "cache_dir": str(tmp_path / "cache")},
        "store": {"min_free_mb": 1.0, **store},
    })


def write_live(cfg, *, state="running", pid=None, age_s=0.0, sensor="present", link="connected",
               parts=None):
    run = cfg.paths.runtime()
    run.mkdir(parents=True, exist_ok=True)
    live = {"service": {"state": state, "pid": pid or os.getpid(), "updated_at": time.time() - age_s,
                        "stale_after_s": 30, "parts": parts or {"capture": {"alive": True, "age_s": 0.1}}},
            "sensor": {"state": sensor, "model": "R307"}, "link": {"state": link}}
    status.status_file(cfg).write_text(json.dumps(live))


def test_all_well_is_ok(tmp_path):
    cfg = make_cfg(tmp_path)
    write_live(cfg)
    facts = status.gather(cfg)
    assert status.evaluate(facts) == (status.OK, [])
    assert status.summary(facts).startswith("sensor present (R307); link connected; queue ?")
    code, line = status.nagios_line(facts)
    assert code == 0 and line.startswith("FPAGENT OK - sensor present")


@pytest.mark.parametrize("live, code, words", [
    ({"state": "running", "age_s": 600}, status.CRITICAL, "service stale"),
    ({"state": "running", "pid": 2 ** 22 + 12345}, status.CRITICAL, "service not running"),
    ({"state": "stopped"}, status.CRITICAL, "service stopped"),
    ({"sensor": "absent"}, status.WARNING, "sensor absent"),
    ({"link": "disconnected"}, status.WARNING, "link to central down"),
    ({"parts": {"link": {"alive": False, "age_s": 93.0}}}, status.CRITICAL, "link part not responding for 93.0 s"),
])
def test_faults_in_the_live_facts(tmp_path, live, code, words):
    cfg = make_cfg(tmp_path)
    write_live(cfg, **live)
    got, problems = status.evaluate(status.gather(cfg))
    assert got == code and any(words in p for p in problems), problems


def test_an_old_booking_and_a_full_queue(tmp_path):
    cfg = make_cfg(tmp_path, max_queue_mb=0.01)
    write_live(cfg)
    store = Store(cfg.paths.database(), cfg)
    sid, env = sealed(os.urandom(3000))
    store.outbox.enqueue(sid, "TCN1", env, {"seq": 1}, now=time.time() - 2 * 3600)
    store.close()
    facts = status.gather(cfg)
    assert facts.queue["depth"] == 1 and facts.queue["oldest_pending_age_s"] >= 7199
    code, problems = status.evaluate(facts)
    assert code == status.WARNING and "oldest queued booking waits for 2.0 h" in problems[0]
    store = Store(cfg.paths.database(), cfg)
    for i in range(2):
        sid, env = sealed(os.urandom(3000), seq=2 + i)
        store.outbox.enqueue(sid, f"TCN{i + 2}", env, {"seq": 2 + i})
    store.close()
    facts = status.gather(cfg)
    code, problems = status.evaluate(facts)
    assert code == status.CRITICAL and problems[0].startswith("queue full")
    assert "queue 3 FULL, oldest 2.0 h" in status.summary(facts)


def test_disk_below_the_floor_is_critical(tmp_path):
    cfg = make_cfg(tmp_path, min_free_mb=1e12)  # more than any disk has
    write_live(cfg)
    code, problems = status.evaluate(status.gather(cfg))
    assert code == status.CRITICAL and problems[0].startswith("disk: only")


def test_a_damaged_database_is_reported_not_hidden(tmp_path):
    cfg = make_cfg(tmp_path)
    write_live(cfg)
    db = cfg.paths.database()
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a database " * 200)
    facts = status.gather(cfg)  # the store moves the damaged file aside, keeps it
    code, problems = status.evaluate(facts)
    assert code == status.WARNING and "moved aside" in problems[0]
    assert list(db.parent.glob("agent.sqlite3.corrupt-*"))


def test_fpagent_status_json_and_check(tmp_path):
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(f'[paths]\nstate_dir = "{tmp_path}/state"\n')
    cfg = config.load(cfg_file)
    write_live(cfg, sensor="absent")
    run = [sys.executable, "-m", "agent", "--config", str(cfg_file), "status"]
    human = subprocess.run(run, capture_output=True, text=True, cwd=ROOT)
    assert human.returncode == 0 and "health:    WARNING" in human.stdout and "sensor:    absent" in human.stdout
    as_json = subprocess.run(run + ["--json"], capture_output=True, text=True, cwd=ROOT)
    data = json.loads(as_json.stdout)
    assert data["health"]["code"] == 1 and data["summary"].startswith("sensor absent")
    check = subprocess.run(run + ["--check"], capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 1 and check.stdout.startswith("FPAGENT WARNING - sensor absent")
