"""`fpagent bench outbox`: what one ten-print booking costs from capture to durable queue.

Measured on this machine, capture excluded: ANSI/NIST transaction build
(fpagent.records.transaction, WSQ), WSQ compression alone (time and ratio),
envelope seal per suite, durable enqueue (synchronous=FULL commits per
second of sealed bookings), bytes on disk per booking, and CPU per complete
booking (build + seal + enqueue). Images: the shared FVC2002 images when
present, else the project's synthetic fingers. Templates: 40 random
minutiae per finger (extraction happens at capture time, excluded here).
Reference in the same process: a bare sqlite3 INSERT + COMMIT of the same
bytes with synchronous=FULL, so the store's own overhead shows as a ratio.
Targets: CPU per complete booking < 0.5 s; >= 20 sealed bookings/s enqueued.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sqlite3
import statistics
import subprocess
import tempfile

import numpy as np

from fpagent.bench import Stopwatch, add_json_flag, emit, progress

TARGET_CPU_S = 0.5
TARGET_BOOKINGS_PER_S = 20.0


def register(sub):
    p = sub.add_parser("outbox", help="transaction build, WSQ, seal and durable enqueue per booking")
    p.add_argument("--bookings", type=int, default=20, help="bookings per measurement (default 20)")
    p.add_argument("--dir", help="folder on the disk to measure (default: a temporary folder "
                   "inside the configured state_dir, the disk the queue really lives on)")
    add_json_flag(p)
    p.set_defaults(func=run)


def _images() -> tuple[list[np.ndarray], str]:
    root = pathlib.Path(os.environ.get("FPAGENT_FINGERPRINTS", "")) if os.environ.get(
        "FPAGENT_FINGERPRINTS") else pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fingerprints"
    files = sorted((root / "fvc2002_db1_b").glob("*_1.png"))[:10]
    if len(files) == 10:
        from PIL import Image
        return [np.asarray(Image.open(f).convert("L"), dtype=np.uint8) for f in files], \
            f"shared FVC2002 DB1_B images ({files[0].parent})"
    try:
        from fpagent.drivers.synthetic.generator import finger_image
        return [finger_image(1, f, 0) for f in range(1, 11)], "synthetic fingers (fpagent.drivers.synthetic)"
    except Exception:  # the generator is optional here: noise keeps the byte sizes realistic
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (288, 256), dtype=np.uint8) for _ in range(10)], \
            "random noise images (no shared images, no synthetic generator)"


def _template(px: np.ndarray, position: int, rng):
    from fpagent.biometrics.template import MINUTIA_DTYPE, Template

    m = np.zeros(40, dtype=MINUTIA_DTYPE)
    m["x"] = rng.uniform(0, px.shape[1] - 1, 40)
    m["y"] = rng.uniform(0, px.shape[0] - 1, 40)
    m["angle"] = rng.uniform(0, 2 * np.pi, 40)
    m["kind"] = rng.integers(1, 3, 40)
    m["quality"] = 70
    return Template(minutiae=m, width=px.shape[1], height=px.shape[0], ppi=500, quality=70,
                    finger_position=position, impression_type=0)


def _fs_type(path: pathlib.Path) -> str:
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def run(args) -> int:
    from fpagent import config as config_mod
    from fpagent.sealing import envelope
    from fpagent.sealing import keys
    from fpagent.records import transaction as tx
    from fpagent.records.images import compress_image
    from fpagent.storage.store import Store

    cfg = config_mod.load(args.config)
    n = max(1, int(args.bookings))
    images, source = _images()
    rng = np.random.default_rng(1)
    templates = [_template(px, i + 1, rng) for i, px in enumerate(images)]
    print(f"outbox benchmark: {n} ten-print bookings, images: {source}")

    def record(i: int):
        caps = tuple(tx.FingerCapture(position=j + 1, pixels=px, quality=70, template=templates[j])
                     for j, px in enumerate(images))
        return tx.BookingRecord(tcn=f"BENCH-{i:06d}", ori="XX0000000", destination="XX0000000",
                                fingers=caps, booking_number=f"B{i:06d}")

    # WSQ alone
    wsq_times, raw_bytes, wsq_bytes = [], 0, 0
    for px in images:
        with Stopwatch() as sw:
            _, data = compress_image(px, 500, "wsq")
        wsq_times.append(sw.cpu)
        raw_bytes += px.size
        wsq_bytes += len(data)
    wsq_s = sum(wsq_times)
    ratio = raw_bytes / max(wsq_bytes, 1)

    # transaction build
    tx.build_transaction(record(0))  # warm (imports, Pillow plugin)
    build_cpu, transactions = [], []
    for i in range(n):
        with Stopwatch() as sw:
            transactions.append(tx.build_transaction(record(i)))
        build_cpu.append(sw.cpu)
        progress("build", i + 1, n)
    tx_size = statistics.mean(len(t) for t in transactions)

    # seal per suite
    central = keys.generate_central_hpke_keys()
    dev = keys.generate_signing_key()
    seal_cpu = {}
    sealed = {}
    for suite in keys.SUITES:
        times, out = [], []
        for i, data in enumerate(transactions):
            with Stopwatch() as sw:
                out.append(envelope.seal(data, device_id="bench", ori="XX0000000", sequence=i,
                                         central_public_key=central.public(),
                                         device_signing_key=dev, suite=suite))
            times.append(sw.cpu)
        seal_cpu[suite], sealed[suite] = statistics.mean(times), out

    base = pathlib.Path(args.dir) if args.dir else pathlib.Path(cfg.paths.state_dir)
    base.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=base))
    try:
        fs = _fs_type(work)
        bench_cfg = config_mod.from_dict({"store": {"min_free_mb": 0.0}})
        # durable enqueue of sealed bookings (x25519)
        store = Store(work / "outbox.sqlite3", bench_cfg)
        size0 = store.bytes_on_disk()
        with Stopwatch() as enq:
            for i, env in enumerate(sealed["x25519"]):
                store.outbox.enqueue(envelope.inspect(env).submission_id, f"BENCH-{i:06d}", env,
                                     {"booking_number": f"B{i:06d}", "seq": i})
                progress("enqueue", i + 1, n)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        per_booking_disk = (store.bytes_on_disk() - size0) / n
        store.close()
        bookings_per_s = n / enq.wall

        # reference: bare sqlite3, same bytes, synchronous=FULL, one commit each
        ref = sqlite3.connect(work / "ref.sqlite3", isolation_level=None)
        ref.execute("PRAGMA journal_mode=WAL")
        ref.execute("PRAGMA synchronous=FULL")
        ref.execute("CREATE TABLE t (id TEXT PRIMARY KEY, b BLOB)")
        with Stopwatch() as refw:
            for i, env in enumerate(sealed["x25519"]):
                ref.execute("BEGIN IMMEDIATE")
                ref.execute("INSERT INTO t VALUES (?, ?)", (str(i), env))
                ref.execute("COMMIT")
        ref.close()
        ref_per_s = n / refw.wall

        # complete bookings: build + seal + durable enqueue, per suite
        complete = {}
        for suite in keys.SUITES:
            st = Store(work / f"complete-{suite}.sqlite3", bench_cfg)
            with Stopwatch() as sw:
                for i in range(n):
                    data = tx.build_transaction(record(i))
                    env = envelope.seal(data, device_id="bench", ori="XX0000000", sequence=i,
                                        central_public_key=central.public(),
                                        device_signing_key=dev, suite=suite)
                    st.outbox.enqueue(envelope.inspect(env).submission_id, f"C-{i:06d}", env,
                                      {"booking_number": f"B{i:06d}", "seq": i})
                    progress(f"complete ({suite})", i + 1, n)
            st.close()
            complete[suite] = (sw.cpu / n, n / sw.wall)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cpu_per_booking = complete["x25519"][0]
    ok_cpu = cpu_per_booking < TARGET_CPU_S
    ok_rate = bookings_per_s >= TARGET_BOOKINGS_PER_S
    print(f"transaction build (10 fingers, WSQ):  {statistics.mean(build_cpu) * 1000:8.1f} ms CPU "
          f"per booking, {tx_size / 1024:.0f} KiB")
    print(f"WSQ compression alone:               {wsq_s * 1000:8.1f} ms CPU per 10 fingers, "
          f"ratio {ratio:.1f}:1 ({raw_bytes / 1024:.0f} KiB -> {wsq_bytes / 1024:.0f} KiB)")
    for suite in keys.SUITES:
        print(f"seal {suite:16}                 {seal_cpu[suite] * 1000:8.2f} ms CPU per booking, "
              f"envelope {statistics.mean(len(e) for e in sealed[suite]) / 1024:.0f} KiB")
    print(f"durable enqueue (synchronous=FULL):  {bookings_per_s:8.1f} sealed bookings/s on {fs} "
          f"(bare sqlite3 reference {ref_per_s:.1f}/s, ratio {bookings_per_s / ref_per_s:.2f}) "
          f"[target >= {TARGET_BOOKINGS_PER_S:g}: {'ok' if ok_rate else 'MISSED'}]")
    print(f"bytes on disk per booking:           {per_booking_disk / 1024:8.1f} KiB")
    for suite in keys.SUITES:
        print(f"complete booking ({suite:16}): {complete[suite][0]:8.3f} s CPU, "
              f"{complete[suite][1]:.1f} bookings/s"
              + (f" [target < {TARGET_CPU_S} s: {'ok' if ok_cpu else 'MISSED'}]"
                 if suite == "x25519" else ""))
    emit({
        "bookings": n, "image_source": source, "filesystem": fs,
        "bookings_per_s": round(bookings_per_s, 2),
        "reference_sqlite_commits_per_s": round(ref_per_s, 2),
        "enqueue_vs_reference": round(bookings_per_s / ref_per_s, 3),
        "cpu_s_per_booking": round(cpu_per_booking, 4),
        "cpu_s_per_booking_hybrid": round(complete["mlkem768-x25519"][0], 4),
        "complete_bookings_per_s": round(complete["x25519"][1], 2),
        "transaction_build_ms": round(statistics.mean(build_cpu) * 1000, 2),
        "transaction_bytes": int(tx_size),
        "wsq_ms_per_10_fingers": round(wsq_s * 1000, 2),
        "wsq_ratio": round(ratio, 2),
        "seal_ms": {s: round(v * 1000, 3) for s, v in seal_cpu.items()},
        "bytes_on_disk_per_booking": int(per_booking_disk),
        "target_cpu_ok": ok_cpu, "target_rate_ok": ok_rate,
    }, args.json)
    return 0
