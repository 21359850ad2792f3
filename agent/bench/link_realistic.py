"""`fpagent bench link --realistic`: ten-print bookings and a central that really screens them.

What is measured: the time to drain a backlog after an outage. With the
broker down, N bookings are built and queued as the appliance would: ten
prints through the real transaction builder (WSQ images and Type-9
minutiae; about 104 KiB with the shared real prints, see _ten_fingers),
sealed to central and enqueued in the
SQLite outbox, each inside the timed loop. Then the broker starts and the
clock runs until the last signed ack is committed by the link. Central is
the reference responder in another process with its real screen: it opens
each envelope, parses the ANSI/NIST-ITL transaction, decodes and extracts the
screened fingers in its image worker and matches them against a small
gallery. Nothing is precomputed but the finger images and their templates
(the appliance extracts them during capture, before a booking is queued).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import pathlib
import shutil
import tempfile
import threading
import time

import numpy as np

from fpagent.bench import link_rig, progress
from fpagent.bench.procfs import proc_cpu_s as _proc_cpu_s
from fpagent.bench.procfs import proc_rss_mb as _proc_rss_mb

SEED = 2026


def _central_child(work: str, port: int, ready, stop) -> None:
    from fpagent.central.responder import Central
    from fpagent.central.screening import Galleries, TransactionScreen, synthetic_entry
    from fpagent.central.store import CentralKeys
    work_p = pathlib.Path(work)
    pki = work_p / "pki"
    known = synthetic_entry("P1", {"sid": "BENCH-SID-1"}, person=1, seed=SEED)
    screen = TransactionScreen(Galleries(criminal=[known]))
    central = Central(host="127.0.0.1", port=port, root="fpagent",
                      keys=CentralKeys.load(work_p / "central-keys", work_p / "devices"),
                      db_path=work_p / "central.sqlite3", screen=screen,
                      tls=link_rig.central_tls(pki),
                      client_id="central-bench", immigration_delay_s=0.0)
    central.start()
    central.wait_connected(60)
    ready.set()
    stop.wait()
    central.stop()


# Where a booking's ten prints come from. Real prints first: the shared FVC2002
# DB1_B set (an optical 500 ppi reader, ridges across the whole 388 x 374 image,
# ten different fingers) seals to about 104 KiB, the size of a real ten-print
# booking. Without the shared data, the ten-print emulator's rolled impressions
# cropped to the rolled area (about 90 KiB: the emulated fingertip is smaller
# than a real one). Never a larger frame around a synthetic fingertip: WSQ
# compresses blank glass away, so such an envelope is light for its pixel count.
REAL_SET = "fvc2002_db1_b"
ROLLED_BLOCK = 16  # px: the crop to the rolled area moves in blocks of this size


def _real_prints() -> list | None:
    """Ten real prints (impression 1 of ten fingers), or None without the shared data."""
    env = os.environ.get("FPAGENT_FINGERPRINTS")
    root = pathlib.Path(env) if env else (
        pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fingerprints")
    files = sorted((root / REAL_SET).glob("*_1.png"))[:10]
    if len(files) < 10:
        return None
    from PIL import Image
    return [np.asarray(Image.open(f).convert("L"), dtype=np.uint8) for f in files]


def rolled_area(pixels: np.ndarray, block: int = ROLLED_BLOCK) -> np.ndarray:
    """The rolled impression cropped to where it has ridges, as a live-scanner segments it."""
    h, w = (pixels.shape[0] // block) * block, (pixels.shape[1] // block) * block
    cells = pixels[:h, :w].reshape(h // block, block, w // block, block).astype(np.float32)
    spread = cells.std(axis=(1, 3))
    ridged = spread > 3.0 * float(np.median(spread))  # the glass around is mostly flat
    rows, cols = np.flatnonzero(ridged.any(axis=1)), np.flatnonzero(ridged.any(axis=0))
    if not len(rows):
        return pixels
    return pixels[rows[0] * block:(rows[-1] + 1) * block, cols[0] * block:(cols[-1] + 1) * block]


def _ten_fingers(person: int):
    """Ten prints with their templates (what capture leaves for the booking), and their source."""
    from fpagent.biometrics.extraction import extract
    from fpagent.records.transaction import FingerCapture
    images, impression, source = _real_prints(), 0, f"real prints of {REAL_SET}"
    if images is None:
        from fpagent.drivers.tenprint import platen
        images = [rolled_area(platen.rolled(SEED, person, fgp)) for fgp in range(1, 11)]
        impression, source = 1, "emulated rolled impressions of drivers.tenprint"  # IMP 1: live-scan rolled
    fingers = []
    for fgp, pixels in enumerate(images, start=1):
        template = extract(pixels, ppi=500).template
        template.finger_position = fgp
        fingers.append(FingerCapture(fgp, pixels, 500, int(template.quality), template,
                                     impression_type=impression))
    return tuple(fingers), source


def run(bookings: int = 2000) -> dict:
    from fpagent.devtools.broker import LocalBroker, find_mosquitto
    from fpagent.errors import UserError
    from fpagent.link.connection import Link
    from fpagent.records.transaction import BookingRecord, build_transaction
    from fpagent.sealing import envelope
    from fpagent.storage.store import Store

    if find_mosquitto() is None:
        raise UserError("the link benchmark needs mosquitto: scripts/dev-setup")
    work = pathlib.Path(tempfile.mkdtemp(prefix="fpagent-bench-realistic-"))
    ctx = multiprocessing.get_context("spawn")
    stop_central, central_ready = ctx.Event(), ctx.Event()
    broker = child = link = store = None
    try:
        pki, hk, csk, dsk = link_rig.make_identities(work)
        broker = LocalBroker(work / "broker", pki).start()
        child = ctx.Process(target=_central_child, args=(str(work), broker.port, central_ready,
                                                         stop_central), daemon=True)
        child.start()
        if not central_ready.wait(300):
            raise UserError("the reference central responder did not start")
        cfg = link_rig.appliance_config(work, pki, broker.port)
        acked: dict[str, float] = {}
        done = threading.Condition()

        def on_ack(sid, ack):
            with done:
                acked[sid] = time.perf_counter()
                done.notify_all()

        store = Store(cfg.paths.database(), cfg)
        link = Link(cfg, store=store, central_verify_keys=csk.public_key(),
                    device_signing_key=dsk, on_ack=on_ack)
        link.start()
        if not link.wait_connected(30):
            raise UserError(f"link did not connect: {link.health()['last_error']}")
        fingers, prints_source = _ten_fingers(person=1)
        public = hk.public()

        def queue_one(n: int) -> tuple[str, int]:
            tcn = f"XX0000000-BENCH-{n:06d}"
            rec = BookingRecord(tcn=tcn, ori=cfg.device.ori, destination="XX0000001",
                                fingers=fingers, created_at=dt.datetime.now(dt.timezone.utc))
            sid = envelope.make_submission_id()
            env = envelope.seal(build_transaction(rec), device_id=cfg.device.device_id,
                                ori=cfg.device.ori, sequence=n, central_public_key=public,
                                device_signing_key=dsk, submission_id=sid)
            store.outbox.enqueue(sid, tcn, env, {"seq": n})
            return sid, len(env)

        # warm-up: one booking end to end (central's image worker, TLS, SQLite pages)
        sid, _ = queue_one(0)
        link.poke()
        with done:
            if not done.wait_for(lambda: sid in acked, 300):
                raise UserError("the warm-up booking was not acknowledged")

        broker.stop()  # the outage
        t0 = time.perf_counter()
        ids, sizes = [], []
        for n in range(1, bookings + 1):
            sid, size = queue_one(n)
            ids.append(sid)
            sizes.append(size)
            progress("queue (broker down)", n, bookings)
        queue_s = time.perf_counter() - t0
        cpu0, ccpu0 = time.process_time(), _proc_cpu_s(child.pid)
        broker.start()  # the link was never told: it reconnects on its own
        t1 = time.perf_counter()
        link.poke()
        deadline = time.monotonic() + max(600.0, bookings * 2.0)
        with done:
            while not all(i in acked for i in ids):
                if not done.wait(min(5.0, max(0.0, deadline - time.monotonic()))):
                    if time.monotonic() >= deadline:
                        raise UserError(f"only {sum(i in acked for i in ids)}/{bookings} acks "
                                        f"before the deadline")
                progress("drain", sum(i in acked for i in ids), bookings)
        drain_s = max(acked[i] for i in ids) - t1
        cpu, ccpu = time.process_time() - cpu0, _proc_cpu_s(child.pid) - ccpu0
        return {
            "mode": "realistic", "bookings": bookings, "prints": prints_source,
            "envelope_bytes": round(sum(sizes) / len(sizes)),
            "queue_s": round(queue_s, 1), "queue_per_s": round(bookings / queue_s, 1),
            "drain_s": round(drain_s, 1), "drain_per_s": round(bookings / drain_s, 2),
            "agent_cpu_s": round(cpu, 1), "central_cpu_s": round(ccpu, 1),
            "central_rss_mb": round(_proc_rss_mb(child.pid), 1),
            "agent_peak_rss_mb": round(_proc_rss_mb("self", "VmHWM"), 1),
            "republished": link.counters.get("republished", 0),
        }
    finally:
        if link:
            link.stop()
        if store:
            store.close()
        stop_central.set()
        try:
            if child is not None and child.pid is not None:
                child.join(20)
                if child.is_alive():
                    child.kill()
        finally:
            if broker:
                broker.stop()
            shutil.rmtree(work, ignore_errors=True)


def report(r: dict) -> None:
    print(f"link (realistic): backlog of {r['bookings']} ten-print bookings of "
          f"{r['envelope_bytes'] / 1024:.1f} KiB ({r['prints']}) queued while the broker "
          f"was down, central parsing and screening each")
    print(f"  queue (build + WSQ + seal + enqueue) {r['queue_per_s']:8.1f} bookings/s "
          f"({r['queue_s']:.0f} s)")
    print(f"  drain after the broker is back      {r['drain_s']:8.1f} s "
          f"({r['drain_per_s']:.2f} bookings/s)")
    print(f"  CPU during the drain: agent {r['agent_cpu_s']:.0f} s, central {r['central_cpu_s']:.0f} s"
          f" (without its image worker); central RSS {r['central_rss_mb']:.0f} MB")
