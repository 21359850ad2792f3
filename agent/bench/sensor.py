"""`fpagent bench sensor`: image upload over a real pty from the emulator paced at the baud rate.

Per rate: bytes on the wire (UpImage, its ack and every data packet),
theoretical wire time (10 bits a byte), measured upload time, their ratio
(target <= 1.05: the driver adds no stalls of its own) and host CPU time of
the driver per capture (target < 10% of the wire time). The emulator runs in
its own thread; CPU is measured with time.thread_time() on the driver's
thread only, and the synthetic print is prepared before the clock starts.
"""

from __future__ import annotations

import time

import numpy as np

from fpagent.bench import add_json_flag, emit, progress

RATES = (57600, 115200)
RATIO_TARGET = 1.05
CPU_TARGET = 0.10


def register(sub):
    parser = sub.add_parser("sensor", help="ZFM image upload: wire time vs measured, host CPU",
                            description=__doc__.split("\n\n")[1])
    parser.add_argument("--captures", type=int, default=1, metavar="N",
                        help="captures per baud rate (default 1; one takes ~7 s at 57600)")
    parser.add_argument("--rates", default=",".join(map(str, RATES)),
                        help="comma-separated baud rates (default 57600,115200)")
    parser.add_argument("--reference", action="store_true",
                        help="also time a byte-at-a-time reader (as pyfingerprint reads) on the "
                        "same line, for the host CPU comparison (one more upload per rate)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def reference_upload_cpu(sensor) -> float:
    """Driver-thread CPU of one UpImage read one byte per read() call (the naive way).

    Uses the same port, codec and emulator; only the read pattern differs.
    """
    from fpagent.drivers.zfm import codec

    port = sensor._port  # bench only: the reference reads the very same line
    port.reset_input_buffer()
    cpu0 = time.thread_time()
    port.write(codec.command(codec.UP_IMAGE, address=sensor.address))
    reader = codec.PacketReader()
    deadline = time.monotonic() + sensor.timeout + 2 * sensor.wire_time(41000)
    while time.monotonic() < deadline:
        byte = port.read(1)
        if not byte:
            continue
        reader.feed(byte)
        packet = reader.next_packet()
        if packet is not None and packet.pid == codec.PID_END:
            return time.thread_time() - cpu0
    raise RuntimeError("reference upload did not finish")


def measure_rate(baud: int, captures: int, seed: int = 1, reference: bool = False) -> dict:
    """Capture `captures` images at `baud` (paced emulator) and return the figures."""
    from fpagent import hal
    from fpagent.drivers.zfm.emulator import ZfmEmulator

    uploads, cpus, wire_bytes = [], [], 0
    with ZfmEmulator(seed=seed, baud=baud, pace=True) as emulator:
        with hal.open_sensor(f"zfm://{emulator.port_path}?baud={baud}") as sensor:
            for i in range(captures):
                emulator.set_finger(1 + i % 10)  # out of band, off the clock
                label = f"{baud} baud, capture {i + 1}/{captures}"
                cpu0 = time.thread_time()
                image = sensor.capture(
                    timeout=10, progress=lambda stage, done, total: (
                        progress(label, done, total) if stage == "upload" else None))
                cpus.append(time.thread_time() - cpu0)
                if not np.array_equal(image.pixels, emulator.last_image):
                    raise RuntimeError("the driver decoded a different image than the emulator sent")
                uploads.append(sensor.last_upload["seconds"])
                wire_bytes = sensor.last_upload["wire_bytes"]
            reference_cpu = reference_upload_cpu(sensor) if reference else None
    wire_s = wire_bytes * 10 / baud
    upload_s = float(np.median(uploads))
    result = dict(baud=baud, wire_bytes=wire_bytes, wire_s=round(wire_s, 4),
                  upload_s=round(upload_s, 4), ratio=round(upload_s / wire_s, 4),
                  cpu_s=round(float(np.median(cpus)), 4), captures=captures)
    if reference_cpu is not None:
        result["reference_cpu_s"] = round(reference_cpu, 4)
    return result


def run(args) -> int:
    rates = [int(r) for r in str(args.rates).split(",") if r.strip()]
    captures = max(1, args.captures)
    results = []
    for baud in rates:
        r = measure_rate(baud, captures, reference=args.reference)
        results.append(r)
        cpu_share = r["cpu_s"] / r["wire_s"]
        ok = r["ratio"] <= RATIO_TARGET and cpu_share < CPU_TARGET
        print(f"{baud:>6} baud: {r['wire_bytes']} bytes on the wire, wire time {r['wire_s']:.3f} s, "
              f"upload {r['upload_s']:.3f} s, ratio {r['ratio']:.3f} (target <= {RATIO_TARGET}), "
              f"host CPU {r['cpu_s'] * 1000:.1f} ms per capture = {cpu_share:.1%} of wire time "
              f"(target < {CPU_TARGET:.0%})  {'OK' if ok else 'MISSED'}", flush=True)
        if "reference_cpu_s" in r:
            print(f"{baud:>6} baud: reference byte-at-a-time reader: host CPU "
                  f"{r['reference_cpu_s'] * 1000:.1f} ms per upload "
                  f"({r['reference_cpu_s'] / max(r['cpu_s'], 1e-9):.1f}x ours)", flush=True)
    all_ok = all(r["ratio"] <= RATIO_TARGET and r["cpu_s"] / r["wire_s"] < CPU_TARGET
                 for r in results)
    emit({"rates": results, "targets_met": all_ok}, args.json)
    return 0
