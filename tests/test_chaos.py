"""Chaos: 1,000 bookings through a real broker while everything that can fail, fails.

During the run the connection is cut mid-publish and stalled (a TCP proxy
between agent and broker), the agent process is killed -9 and restarted, the
broker is restarted, one of two central instances sharing the subscription
is killed -9, and finally the broker itself is killed -9 (what it held since
its last autosave is lost: the link's ack timeout and missing-answers check
recover it). Afterwards: every booking acknowledged exactly
once centrally (one record each), every notification stored exactly once
locally, nothing lost. Payloads are small sealed test payloads enqueued
straight into the outbox (not ten-print captures) so the test stays fast.
"""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from fpagent.devtools.broker import LocalBroker
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    Pki, TcpProxy, appliance_config, enqueue_bookings, needs_mosquitto, wait_for)

pytestmark = [needs_mosquitto, pytest.mark.slow]
ROOT = pathlib.Path(__file__).resolve().parent.parent
TOTAL = 1000
BATCH = 100


def _child(role, pki_root, tmp, port, **extra):
    cmd = [sys.executable, "-m", "tests.mqtt_helpers", role, "--pki", str(pki_root),
           "--tmp", str(tmp), "--port", str(port)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc


def _kill(proc, sig=signal.SIGKILL):
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=15)


def test_thousand_bookings_survive_broker_restart_cuts_kills_and_a_dead_central(tmp_path):
    pki_root = tmp_path / "pki"
    pki = Pki(pki_root)
    broker = LocalBroker(tmp_path / "broker", pki.certs).start()
    proxy = TcpProxy(broker.port)
    cfg = appliance_config(tmp_path, pki, proxy.port)
    db = tmp_path / "central.sqlite3"
    procs = {}
    events = []
    try:
        procs["central-a"] = _child("central", pki_root, tmp_path, broker.port, db=db, name="central-a",
                                    worker=1)
        procs["central-b"] = _child("central", pki_root, tmp_path, broker.port, db=db, name="central-b",
                                    worker=2)
        procs["agent"] = _child("link", pki_root, tmp_path, proxy.port, ack_timeout=3.0,
                                answers_timeout=3.0)
        store = Store(cfg.paths.database(), cfg)
        acked = lambda: store.outbox.counts()["acknowledged"]  # noqa: E731

        enqueued = []
        plan = [  # (when this many are acknowledged, do this)
            (150, "cut the connection mid-publish"),
            (300, "stall the link for 2 s"),
            (450, "kill -9 the agent and restart it"),
            (600, "restart the broker"),
            (750, "kill -9 central-a"),
            (880, "kill -9 the broker and start it again"),
        ]
        next_batch = 0
        while plan or len(enqueued) < TOTAL:
            if len(enqueued) < TOTAL and len(enqueued) - acked() < 2 * BATCH:
                enqueued += enqueue_bookings(cfg, pki, BATCH, start=next_batch,
                                             criminal=(next_batch // BATCH) % 2 == 0)
                next_batch += BATCH
            if plan and acked() >= plan[0][0]:
                _, what = plan.pop(0)
                events.append((what, acked()))
                if what.startswith("cut"):
                    proxy.cut()
                elif what.startswith("stall"):
                    proxy.stalled.set()
                    time.sleep(2.0)
                    proxy.stalled.clear()
                elif what.startswith("kill -9 the agent"):
                    _kill(procs["agent"])
                    procs["agent"] = _child("link", pki_root, tmp_path, proxy.port, ack_timeout=3.0,
                                answers_timeout=3.0)
                elif what.startswith("restart the broker"):
                    broker.restart()
                elif what.startswith("kill -9 central-a"):
                    _kill(procs["central-a"])
                elif what.startswith("kill -9 the broker"):
                    broker.stop(kill=True)  # what it held since its last autosave is gone
                    broker.start()
            time.sleep(0.05)
            assert procs["agent"].poll() is None, procs["agent"].stderr.read()

        wait_for(lambda: acked() == TOTAL, 90, interval=0.2, what="every booking acknowledged")
        wait_for(lambda: store.inbox.count() == 2 * TOTAL, 60, interval=0.2,
                 what="every notification stored")
        time.sleep(0.5)  # let late duplicates arrive, so "exactly once" is tested, not assumed

        # --- the appliance: all acknowledged, each notification once
        counts = store.outbox.counts()
        assert counts["acknowledged"] == TOTAL and counts["pending"] == counts["sent"] == 0
        inbox = store.inbox.list(limit=10 * TOTAL)
        assert len(inbox) == 2 * TOTAL
        pairs = {(m["body"]["submission_id"], m["body"]["check"]) for m in inbox}
        assert len(pairs) == 2 * TOTAL  # one criminal + one immigration per booking
        assert {p[0] for p in pairs} == set(enqueued)
        # --- central: one record per booking, none extra
        with sqlite3.connect(db) as cdb:
            rows = dict(cdb.execute("SELECT submission_id, deliveries FROM submissions"))
            ack_ids = dict(cdb.execute("SELECT submission_id, ack_id FROM submissions"))
            n_notes = cdb.execute("SELECT COUNT(*) FROM notifications").fetchone()[0]
        assert set(rows) == set(enqueued) and len(rows) == TOTAL
        assert n_notes == 2 * TOTAL
        # one ack per booking: the ack the appliance kept is the one central recorded
        kept = {sid: store.outbox.get(sid).ack["id"] for sid in enqueued}
        assert kept == ack_ids
        redelivered = sum(v - 1 for v in rows.values())
        replayed = store.counters.get("link.rejected.replayed")
        asked_again = len(store.audit.list(action="answers-requested-again", limit=10 * TOTAL))
        print(f"\nchaos: {TOTAL} bookings; events: "
              + "; ".join(f"{w} at {n} acked" for w, n in events)
              + f"\nchaos: central records {len(rows)} (exactly once), deliveries received "
              f"{sum(rows.values())} ({redelivered} duplicates absorbed); notifications central "
              f"{n_notes}, stored locally {len(inbox)} (exactly once), duplicate notifications "
              f"dropped locally {replayed}; outbox acknowledged {counts['acknowledged']}, "
              f"pending {counts['pending'] + counts['sent']}; answers asked for again "
              f"{asked_again}; proxy cuts {proxy.cuts}")
        assert events and len(events) == 6
        store.close()
    finally:  # never leave a process behind, whatever failed
        for p in procs.values():
            if p.poll() is None:
                p.kill()
            p.wait(timeout=15)
        proxy.close()
        broker.stop()
