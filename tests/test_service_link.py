"""The service's link part over the REAL link (fpagent.link.connection) and a real mosquitto
with TLS on loopback: STATUS says connected, then disconnected when the broker
goes away, and the watchdog goes on (a link that is down is degraded, not wedged)."""

from __future__ import annotations

import shutil
import threading
import time

from fpagent.sealing import keys
from fpagent.service import sdnotify
from fpagent.service import daemon as service_mod
from fpagent.service import parts as parts_mod
from fpagent.storage.store import Store
from mqtt_helpers import appliance_config, broker, needs_mosquitto, pki  # noqa: F401 (fixtures)
from test_service_notify import NotifySocket


@needs_mosquitto
def test_status_follows_the_real_link(tmp_path, pki, broker):  # noqa: F811
    cfg = appliance_config(tmp_path, pki, broker.port)
    cfg.sensor.url = f"zfm://{tmp_path}/no-sensor"
    keys_dir = cfg.paths.keys()
    keys_dir.mkdir(parents=True, mode=0o700)
    shutil.copy(pki.central_dir / keys.CENTRAL_VERIFY_KEY, keys_dir / keys.CENTRAL_VERIFY_KEY)
    keys.save_private_key(keys_dir / keys.DEVICE_SIGNING_KEY, pki.device_signing["booking-01"])

    notify = NotifySocket()
    store = Store(cfg.paths.database(), cfg)
    link_part = parts_mod.LinkPart(cfg, store, period=0.05)
    svc = service_mod.Service(
        cfg, notifier=sdnotify.Notifier(notify.address), warmups=[], store=store,
        parts=[parts_mod.CapturePart(cfg.sensor.url, period=0.05),
               parts_mod.OutboxPart(cfg, store, period=0.05), link_part],
        part_timeout_s=5.0, tick_s=0.05)
    svc.watchdog_s = 0.05
    link_part.open(status_extra=svc._link_status_extra)  # the real fpagent.link.connection.build_link
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    try:
        notify.wait_for("READY")
        notify.wait_for("STATUS", lambda v: "link connected" in v, timeout=20)
        stopped_at = time.monotonic()
        broker.stop()
        notify.wait_for("STATUS", lambda v: "link disconnected" in v, timeout=20, after=stopped_at)
        notify.wait_for("WATCHDOG", timeout=2, after=time.monotonic() + 0.3)
        assert "NOT RESPONDING" not in notify.fields("STATUS")[-1][1]
    finally:
        svc.stop_event.set()
        thread.join(20)
        notify.close()
    assert not thread.is_alive()
    assert notify.fields("STOPPING")
