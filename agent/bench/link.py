"""`fpagent bench link`: bookings per second through a local broker, TLS end to end.

What is timed: a sealed submission enqueued in the SQLite outbox -> published
by the link (QoS 1, TLS with client certificates) -> the reference central
responder (another process: verify, decrypt, store, sign) -> the signed ack
verified and committed by the link. Two runs: one booking at a time on an
idle link (latency p50/p99) and a burst of N (throughput, latency under load).
The reference run, in the same process and against the same broker, is a
bare paho QoS 1 round trip of the same payload size (publish, echo back, no
store and no crypto): the ratio says what the store, the crypto and the
protocol cost over the transport itself. CPU and memory of the agent (this
process) and of the broker come from /proc.

Targets: >= 50 bookings/s, p99 enqueue->ack < 250 ms idle, agent RSS < 200 MB.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import shutil
import statistics
import tempfile
import threading
import time

from fpagent.bench import add_json_flag, emit, link_rig, progress

from fpagent.bench.procfs import proc_cpu_s as _proc_cpu_s  # noqa: E402
from fpagent.bench.procfs import proc_rss_mb as _proc_rss_mb  # noqa: E402


def _percentile(values, q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def bench_screen(opened):
    """The bench measures the link, not matching: central takes the TCN from the payload."""
    from fpagent.central.screening import Screening
    tcn = opened.plaintext[:64].split(b"\n", 1)[0].decode()
    return Screening(tcn=tcn)


def _central_child(work: str, port: int, ready, stop) -> None:
    from fpagent.central.responder import Central
    from fpagent.central.store import CentralKeys
    work_p = pathlib.Path(work)
    pki = work_p / "pki"
    central = Central(host="127.0.0.1", port=port, root="fpagent",
                      keys=CentralKeys.load(work_p / "central-keys", work_p / "devices"),
                      db_path=work_p / "central.sqlite3", screen=bench_screen,
                      tls=link_rig.central_tls(pki),
                      client_id="central-bench", immigration_delay_s=0.0)
    central.start()
    central.wait_connected(15)
    ready.set()
    stop.wait()
    central.stop()


def _reference_roundtrip(port: int, pki: pathlib.Path, size: int, count: int) -> float:
    """Bare QoS 1 publish -> echo -> receive over the same TLS broker: round trips per second."""
    from fpagent.link import client as client_mod

    def client(cn, cid):
        return client_mod.make_client(cid, tls={"ca_file": str(pki / "ca.crt"),
                                                "cert_file": str(pki / f"{cn}.crt"),
                                                "key_file": str(pki / f"{cn}.key")},
                                      max_inflight=8)

    got = threading.Semaphore(0)
    echo = client("central/worker-2", "ref-echo")
    app = client("XX0000000/booking-01", "ref-app")
    base = "fpagent/v1/XX0000000/booking-01/"
    echo.on_message = lambda c, u, m: c.publish(base + "ack", b"x" * 200, qos=1)
    app.on_message = lambda c, u, m: got.release()
    for c in (echo, app):
        client_mod.connect(c, "127.0.0.1", port, keepalive=60, clean_start=True)
        c.loop_start()
    echo.subscribe(base + "submission", qos=1)
    app.subscribe(base + "ack", qos=1)
    time.sleep(0.3)
    payload = os.urandom(size)
    t0 = time.perf_counter()
    window = 8
    sent = 0
    received = 0
    while received < count:
        while sent < count and sent - received < window:
            app.publish(base + "submission", payload, qos=1)
            sent += 1
        if not got.acquire(timeout=10):
            break
        received += 1
    rate = received / (time.perf_counter() - t0)
    for c in (echo, app):
        c.loop_stop()
        c.disconnect()
    return rate


def run(bookings: int = 300, payload_kb: int = 32, idle_samples: int = 40) -> dict:
    from fpagent.sealing import envelope
    from fpagent.devtools.broker import LocalBroker, find_mosquitto
    from fpagent.errors import UserError
    from fpagent.link.connection import Link
    from fpagent.storage.store import Store

    if find_mosquitto() is None:
        raise UserError("the link benchmark needs mosquitto: scripts/dev-setup")
    work = pathlib.Path(tempfile.mkdtemp(prefix="fpagent-bench-link-"))
    ctx = multiprocessing.get_context("spawn")
    stop_central = ctx.Event()
    central_ready = ctx.Event()
    broker = child = link = None
    try:
        pki, hk, csk, dsk = link_rig.make_identities(work, extra_clients=("central/worker-2",))
        broker = LocalBroker(work / "broker", pki).start()
        child = ctx.Process(target=_central_child, args=(str(work), broker.port, central_ready,
                                                         stop_central), daemon=True)
        child.start()
        if not central_ready.wait(30):
            raise UserError("the reference central responder did not start")
        cfg = link_rig.appliance_config(work, pki, broker.port)
        acked: dict[str, float] = {}
        done = threading.Condition()

        def on_ack(sid, ack):
            with done:
                acked[sid] = time.perf_counter()
                done.notify_all()

        store = Store(cfg.paths.database(), cfg)  # one per process, shared with the link
        link = Link(cfg, store=store, central_verify_keys=csk.public_key(),
                    device_signing_key=dsk, on_ack=on_ack)
        link.start()
        if not link.wait_connected(15):
            raise UserError(f"link did not connect: {link.health()['last_error']}")
        public = hk.public()
        padding = os.urandom(payload_kb * 1024)
        seq = [0]

        def sealed():
            seq[0] += 1
            tcn = f"BENCH{seq[0]:010d}"
            sid = envelope.make_submission_id()
            env = envelope.seal(tcn.encode() + b"\n" + padding, device_id="booking-01",
                                ori=cfg.device.ori, sequence=seq[0], central_public_key=public,
                                device_signing_key=dsk, submission_id=sid)
            return sid, tcn, env

        def wait_all(ids, timeout=120.0):
            deadline = time.monotonic() + timeout
            with done:
                while not all(i in acked for i in ids):
                    if not done.wait(max(0.0, deadline - time.monotonic())):
                        raise UserError(f"only {sum(i in acked for i in ids)}/{len(ids)} acks "
                                        f"within {timeout:.0f} s")

        # warm-up (TLS session, SQLite pages, code paths)
        for _ in range(5):
            sid, tcn, env = sealed()
            store.outbox.enqueue(sid, tcn, env, {})
            link.poke()
            wait_all([sid])

        # 1. idle link: one at a time
        idle = []
        for i in range(idle_samples):
            sid, tcn, env = sealed()
            t0 = time.perf_counter()
            store.outbox.enqueue(sid, tcn, env, {})
            link.poke()
            wait_all([sid])
            idle.append((acked[sid] - t0) * 1000)
            progress("idle link", i + 1, idle_samples)

        # 2. burst: N sealed beforehand, enqueued as fast as the store takes them
        batch = [sealed() for _ in range(bookings)]
        cpu0, bcpu0 = time.process_time(), _proc_cpu_s(broker.pid)
        enq_at = {}
        t0, enqueue_cpu0 = time.perf_counter(), time.thread_time()
        for k, (sid, tcn, env) in enumerate(batch):
            store.outbox.enqueue(sid, tcn, env, {})
            enq_at[sid] = time.perf_counter()
            link.poke()
        enqueue_s, enqueue_cpu = time.perf_counter() - t0, time.thread_time() - enqueue_cpu0
        wait_all([b[0] for b in batch], timeout=max(120.0, bookings / 5))
        wall = time.perf_counter() - t0
        cpu, bcpu = time.process_time() - cpu0, _proc_cpu_s(broker.pid) - bcpu0
        loaded = [(acked[s] - enq_at[s]) * 1000 for s in enq_at]
        progress("burst", bookings, bookings)

        republished = link.counters.get("republished", 0)
        link.stop()  # the reference run uses the same topics: nobody else may listen
        stop_central.set()
        child.join(10)
        child = None
        ref_rate = _reference_roundtrip(broker.port, pki, len(batch[0][2]), max(100, bookings))
        rate = bookings / wall
        store.close()
        return {
            "bookings": bookings, "payload_kb": payload_kb,
            "envelope_bytes": len(batch[0][2]),
            "bookings_per_s": round(rate, 1),
            "enqueue_per_s": round(bookings / enqueue_s, 1),
            "enqueue_cpu_ms": round(1000 * enqueue_cpu / bookings, 3),  # this thread only
            "agent_cpu_ms_per_booking": round(1000 * cpu / bookings, 2),
            "p50_ms": round(statistics.median(idle), 2),
            "p99_ms": round(_percentile(idle, 0.99), 2),
            "loaded_p50_ms": round(statistics.median(loaded), 1),
            "loaded_p99_ms": round(_percentile(loaded, 0.99), 1),
            "agent_cpu_s": round(cpu, 2), "agent_cpu_pct": round(100 * cpu / wall, 1),
            "agent_rss_mb": round(_proc_rss_mb("self"), 1),
            "agent_peak_rss_mb": round(_proc_rss_mb("self", "VmHWM"), 1),
            "broker_cpu_s": round(bcpu, 2), "broker_cpu_pct": round(100 * bcpu / wall, 1),
            "broker_rss_mb": round(_proc_rss_mb(broker.pid), 1),
            "reference_roundtrips_per_s": round(ref_rate, 1),
            "ratio_to_reference": round(rate / ref_rate, 3) if ref_rate else None,
            "republished": republished,
            "targets_met": bool(rate >= 50 and _percentile(idle, 0.99) < 250
                                and _proc_rss_mb("self") < 200),
        }
    finally:  # each step on its own, so one failing never leaves a broker behind
        if link:
            link.stop()
        stop_central.set()
        try:
            if child is not None and child.pid is not None:
                child.join(10)
                if child.is_alive():
                    child.kill()
        finally:
            if broker:
                broker.stop()
            shutil.rmtree(work, ignore_errors=True)


def _main(args) -> int:
    if args.realistic:
        from fpagent.bench import link_realistic
        r = link_realistic.run(bookings=args.bookings if args.bookings_given else 2000)
        link_realistic.report(r)
        emit(r, args.json)
        return 0
    r = run(bookings=args.bookings, payload_kb=args.payload_kb, idle_samples=args.idle)
    print(f"link: {r['bookings']} bookings of {r['envelope_bytes'] / 1024:.0f} KiB sealed, TLS, "
          f"QoS 1, signed acks, reference central in another process")
    print(f"  throughput        {r['bookings_per_s']:8.1f} bookings/s   (target >= 50)")
    print(f"  of which enqueue  {r['enqueue_per_s']:8.1f} /s alone (one fsynced commit + audit "
          f"entry per booking; the bound when the burst latency stays low)")
    print(f"  CPU per booking   enqueue {r['enqueue_cpu_ms']:.2f} ms, whole agent "
          f"{r['agent_cpu_ms_per_booking']:.2f} ms (the rest of enqueue's time is the disk "
          f"and the store's lock; docs/architecture.md: what a queued booking costs)")
    print(f"  enqueue->ack idle p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms   (target p99 < 250)")
    print(f"  enqueue->ack burst p50 {r['loaded_p50_ms']:.0f} ms  p99 {r['loaded_p99_ms']:.0f} ms")
    print(f"  agent             CPU {r['agent_cpu_pct']:.0f}% of one core, RSS {r['agent_rss_mb']:.0f} MB "
          f"(peak {r['agent_peak_rss_mb']:.0f} MB; target < 200)")
    print(f"  broker            CPU {r['broker_cpu_pct']:.0f}% of one core, RSS {r['broker_rss_mb']:.1f} MB")
    print(f"  reference (bare QoS 1 round trip, same broker/size): "
          f"{r['reference_roundtrips_per_s']:.0f}/s; ratio {r['ratio_to_reference']}")
    print(f"  targets met: {'yes' if r['targets_met'] else 'NO'}")
    emit(r, args.json)
    return 0


def register(sub) -> None:
    p = sub.add_parser("link", help="bookings/s and enqueue->ack latency through a local TLS broker",
                       description=__doc__)
    p.add_argument("--bookings", type=int, default=None,
                   help="burst size (default 300; with --realistic the backlog, default 2000)")
    p.add_argument("--realistic", action="store_true",
                   help="ten-print WSQ bookings sealed in the timed loop, a central that parses "
                        "and screens them; time to drain a backlog queued while the broker was down")
    p.add_argument("--payload-kb", type=int, default=32, help="plaintext size per booking (default 32)")
    p.add_argument("--idle", type=int, default=40, help="idle-link latency samples (default 40)")
    add_json_flag(p)
    p.set_defaults(func=_with_defaults)


def _with_defaults(args) -> int:
    args.bookings_given = args.bookings is not None
    if args.bookings is None:
        args.bookings = 300
    return _main(args)
