"""One booking, sealed and opened as central opens it: a smoke run for slow
machines (scripts/check-arm64 runs it under qemu), so no capture deadline
shorter than ten minutes. Two fingers are printed from the synthetic sensor,
the other eight are marked unable to print.

    .venv/bin/python tests/smoke_booking.py
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import time

from fpagent import config as config_mod
from fpagent import hal
from fpagent.booking import runner, submit
from fpagent.booking import session as B
from fpagent.commands.demo import demo_booking_data
from fpagent.records import transaction as T
from fpagent.sealing import envelope, keys
from fpagent.storage.store import Store


def main() -> int:
    started = time.monotonic()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="fpagent-smoke-"))
    keys.create_device_keys(tmp / "keys")
    central_hpke, _ = keys.create_central_keys(tmp / "keys")
    cfg = config_mod.from_dict({
        "device": {"ori": "CA0190000", "device_id": "smoke"},
        "paths": {"state_dir": str(tmp / "state"), "keys_dir": str(tmp / "keys")},
        "sensor": {"url": "synthetic://?seed=11&person=7", "capture_timeout_s": 600.0},
        "booking": {"destination": "CA0000001"},
    })
    device = keys.load_device_keys(cfg)
    # the made-up person data the demo books with: what the national booking profile requires
    session = B.new_session(cfg, B.BookingInfo("BK-SMOKE-1", "CA0190000", "officer-1", **demo_booking_data(0)))
    for position in range(3, 11):
        session.handle(B.MarkMissing("UP", position))
    with hal.open_sensor(cfg.sensor.url) as sensor:
        runner.run_booking(session, sensor, timeout=600.0)
    store = Store(cfg.paths.database(), cfg)
    try:
        sid = submit.complete_booking(session, cfg, store, device)
        item = store.outbox.get(sid, with_envelope=True)
    finally:
        store.close()
    opened = envelope.verify_and_open(item.envelope, central_private_key=central_hpke,
                                      device_verify_keys=[device.signing_key.public_key()])
    parsed = T.parse_transaction(opened.plaintext)
    T.validate(parsed)
    printed = [f for f in parsed.fingers if not f.missing]
    assert opened.header.submission_id == sid and parsed.tcn == item.tcn
    assert [f.position for f in printed] == [1, 2] and all(f.cga == "WSQ20" for f in printed)
    assert all(f.minutiae_count and f.minutiae_count > 5 for f in printed)
    print(f"booking {parsed.tcn}: sealed ({len(item.envelope)} bytes), opened as central, "
          f"{len(printed)} fingers WSQ + minutiae, in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
