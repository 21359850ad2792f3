"""`fpagent sensor ...`: find, inspect, test and capture from a fingerprint sensor.

SENSOR is a sensor URL (`zfm:///dev/ttyUSB0?baud=57600`, `emulated://?seed=1`,
`libfprint://virtual_image` for a USB reader through libfprint,
`spy+zfm:///dev/ttyUSB0` with --debug for a frame log); it defaults to the
configured `[sensor] url`.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from fpagent import hal
from fpagent.errors import UserError

FINGER_HELP = "finger position code 0-10 (1 right thumb ... 10 left little; 0 unknown)"


def register(sub):
    parser = sub.add_parser(
        "sensor", help="find, inspect, test and capture from the fingerprint sensor",
        description="Work with the fingerprint sensor directly (a technician's tools). "
        "SENSOR is a URL such as zfm:///dev/ttyUSB0?baud=57600 or emulated://?seed=1; "
        "default: the configured [sensor] url.")
    parser.set_defaults(_parser=parser)
    s = parser.add_subparsers(dest="sensor_command", metavar="ACTION")

    p = s.add_parser("list", help="list serial ports (USB-serial bridges first) and USB readers",
                     description="List serial ports and the USB readers libfprint finds (with the "
                     "URL that opens each); with --probe, say what answers on each serial port.")
    p.add_argument("--probe", action="store_true",
                   help="try the EF01 handshake on each port (at --baud)")
    p.add_argument("--baud", type=int, default=57600, help="baud rate for --probe (default 57600)")
    p.set_defaults(func=cmd_list)

    p = s.add_parser("info", help="show what the sensor says about itself")
    p.add_argument("sensor", nargs="?", metavar="SENSOR", help="sensor URL")
    p.set_defaults(func=cmd_info)

    p = s.add_parser("capture", help="capture one fingerprint into a PNG file (500 ppi)")
    p.add_argument("sensor", nargs="?", metavar="SENSOR", help="sensor URL")
    p.add_argument("--out", required=True, metavar="FILE.png", help="where to write the image")
    p.add_argument("--finger", type=int, default=0, metavar="N", help=FINGER_HELP)
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for a finger (default: [sensor] capture_timeout_s)")
    p.set_defaults(func=cmd_capture)

    p = s.add_parser("test", help="technician's check: handshake, parameters, one capture, timing",
                     description="Prints one PASS/FAIL line per step; exit code 1 on any failure.")
    p.add_argument("sensor", nargs="?", metavar="SENSOR", help="sensor URL")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for a finger (default: [sensor] capture_timeout_s)")
    p.set_defaults(func=cmd_test)


def _config(args):
    from fpagent import config

    return config.load(args.config)


def _sensor_url(args) -> str:
    return args.sensor or _config(args).sensor.url


def _capture_timeout(args) -> float:
    return args.timeout if args.timeout is not None else _config(args).sensor.capture_timeout_s


class ProgressBar:
    """Upload progress on stderr: a bar on a terminal, a few lines otherwise."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._waiting_shown = False
        self._last_step = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "waiting" and not self._waiting_shown:
            self._waiting_shown = True
            self.stream.write("waiting for a finger on the sensor...\n")
        elif stage == "upload" and total:
            steps = 50 if self.tty else 4
            step = done * steps // total
            if step == self._last_step:
                return
            self._last_step = step
            filled = self.width * done // total
            bar = "#" * filled + "." * (self.width - filled)
            end = "\n" if done >= total or not self.tty else ""
            self.stream.write(f"\rreading image [{bar}] {done * 100 // total:3d}% "
                              f"{done}/{total} bytes{end}")
        self.stream.flush()


def write_png(path: str, pixels: np.ndarray, ppi: int = 500) -> None:
    """8-bit grey PNG with the resolution in its pHYs chunk, readable by its owner only
    (a fingerprint is personal data): created 0600, and an existing file made 0600 first."""
    from PIL import Image

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(pixels, mode="L").save(fh, format="PNG", dpi=(ppi, ppi))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc}") from exc


def cmd_list(args) -> int:
    ports = hal.candidate_ports()
    if not ports:
        print("no serial ports found (is the USB-serial adapter plugged in?)")
    for port in ports:
        ids = f"{port['vid']:04x}:{port['pid']:04x}" if port["vid"] is not None else "-"
        line = f"{port['device']:<20} {ids:<10} {port['interface'] or '-':<6} {port['description']}"
        if args.probe:
            line += "  -> " + _probe(port["device"], args.baud)
        print(line)
    found, failed = hal.discover_sensors()
    for sensor in found:
        print(f"{sensor.url:<31} {sensor.interface:<6} {sensor.description}")
    for interface, reason in sorted({**hal.unavailable_interfaces(), **failed}.items()):
        print(f"{interface} sensors: unavailable ({reason})")
    return 0 if ports or any(sensor.usable for sensor in found) else 1


def _probe(device: str, baud: int) -> str:
    try:
        with hal.open_sensor(f"zfm://{device}?baud={baud}&timeout=0.5&retries=0") as sensor:
            info = sensor.info()
            return f"{info.model} {info.image_width}x{info.image_height} answers"
    except hal.SensorBusy:
        return "busy (opened by another program)"
    except hal.SensorError as exc:
        return f"no EF01 sensor ({exc.args[0]})"


def cmd_info(args) -> int:
    url = _sensor_url(args)
    with hal.open_sensor(url) as sensor:
        info = sensor.info()
    print(f"{'url':<15} {url}")
    print(f"{'interface':<15} {info.interface}")
    print(f"{'model':<15} {info.model}")
    if info.serial_number:
        print(f"{'serial':<15} {info.serial_number}")
    if info.firmware:
        print(f"{'hardware':<15} {info.firmware}")
    print(f"{'image':<15} {info.image_width}x{info.image_height} at {info.ppi} ppi")
    print(f"{'modes':<15} {', '.join(m.value for m in info.modes)}")
    if info.port:
        print(f"{'port':<15} {info.port} at {info.baud} baud")
    for key, value in sorted(info.extra.items()):
        print(f"{key:<15} {value}")
    return 0


def cmd_capture(args) -> int:
    if not 0 <= args.finger <= 10:
        raise UserError(f"--finger {args.finger}: must be 0-10")
    url = _sensor_url(args)
    timeout = _capture_timeout(args)
    with hal.open_sensor(url) as sensor:
        started = time.perf_counter()
        image = sensor.capture(timeout=timeout, progress=ProgressBar(),
                               finger_position=args.finger)
        elapsed = time.perf_counter() - started
    write_png(args.out, image.pixels, image.ppi)
    print(f"wrote {args.out}: {image.width}x{image.height} at {image.ppi} ppi, "
          f"{image.finger_position.label}, captured in {elapsed:.2f} s")
    return 0


def cmd_test(args) -> int:
    url = _sensor_url(args)
    timeout = _capture_timeout(args)
    failures = 0

    def report(ok: bool, step: str, detail: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {step:<11} {detail}", flush=True)

    started = time.perf_counter()
    try:
        sensor = hal.open_sensor(url)
    except hal.SensorError as exc:
        report(False, "handshake", str(exc))
        return 1
    with sensor:
        report(True, "handshake", f"{url} answered in {time.perf_counter() - started:.2f} s")
        info = sensor.info()
        ok = info.image_width > 0 and info.image_height > 0
        report(ok, "parameters", f"{info.model}, {info.image_width}x{info.image_height}, "
               + ", ".join(f"{k}={v}" for k, v in sorted(info.extra.items())))
        print(f"      place a finger on the sensor (waiting up to {timeout:.0f} s)", flush=True)
        try:
            started = time.perf_counter()
            image = sensor.capture(timeout=timeout, progress=ProgressBar())
            elapsed = time.perf_counter() - started
        except hal.SensorError as exc:
            report(False, "capture", str(exc))
            return 1
        spread = int(image.pixels.max()) - int(image.pixels.min())
        report(spread >= 32, "capture", f"{image.width}x{image.height} in {elapsed:.2f} s, "
               f"grey range {image.pixels.min()}..{image.pixels.max()}"
               + ("" if spread >= 32 else " (blank image: clean the glass, check the module)"))
        upload = getattr(sensor, "last_upload", None)
        if upload:
            wire = upload["wire_bytes"] * 10 / info.baud
            ratio = upload["seconds"] / wire
            report(ratio <= 1.5, "timing",
                   f"upload {upload['seconds']:.2f} s for {upload['wire_bytes']} bytes "
                   f"(wire time at {info.baud} baud {wire:.2f} s, ratio {ratio:.2f})")
    return 1 if failures else 0
