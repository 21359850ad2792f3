"""USB fingerprint readers through libfprint 2 (PyGObject), as a transport.

    libfprint://<driver>[/<device-id>]?ppi=500&width=W&height=H
    libfprint://virtual_image                  (libfprint's own test device)
    libfprint://uru4000/1-2.3?ppi=512

`<driver>` is libfprint's driver id (`fprintd`'s "driver" column, e.g.
`uru4000`, `aes2501`, `virtual_image`); `<device-id>` picks one of several
readers of that driver (as `fpagent sensor list` prints it; default: the only
one). Only image devices can be used: readers that match on the chip never
hand out an image.

Resolution: libfprint's `Image.get_ppmm()` when the driver reports it; a
driver that reports 0 (`virtual_image` does) gets the `ppi=` parameter,
default 500, and `resolution_source` in the sensor info says which it was.
`width`/`height` declare the image size a reader gives (libfprint does not
say before the first capture); without them the size comes with each image.

libfprint's synchronous calls iterate GLib's default main context, so every
libfprint call of this process runs on one worker thread of its own: the
caller's thread (the service's main loop) only waits on a future, and at the
deadline cancels the capture through a `Gio.Cancellable`.

Importing this module raises ImportError with the reason when PyGObject or
libfprint's typelib is missing, so the registry reports the family
unavailable and every other driver keeps working.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
import urllib.parse

from fpagent import hal
from fpagent.hal.driver import SensorUrl

DEFAULT_PPI = 500
MM_PER_INCH = 25.4
# after a cancel, how long libfprint may take to give the device back
CANCEL_GRACE_S = 5.0


def _load_fprint():
    """FPrint, GLib and Gio through PyGObject, or ImportError saying what is missing."""
    try:
        import gi
    except ImportError as exc:
        raise ImportError(
            "PyGObject (the Python module 'gi') is not installed: run scripts/install on the "
            "appliance, scripts/dev-setup in a checkout") from exc
    try:
        gi.require_version("FPrint", "2.0")
        from gi.repository import FPrint, Gio, GLib
    except (ValueError, ImportError) as exc:
        raise ImportError(
            f"libfprint 2 is not installed ({exc}): apt-get install libfprint-2-2 "
            "gir1.2-fprint-2.0") from exc
    return FPrint, Gio, GLib


FPrint, Gio, GLib = _load_fprint()

# One thread owns every libfprint call of the process (see the module doc).
_worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="libfprint")


def run_on_libfprint_thread(fn, *args):
    """Run `fn(*args)` on the libfprint thread and wait for its result."""
    return _worker.submit(fn, *args).result()


# -- pure parts ---------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Target:
    """Which reader a `libfprint://` URL names, and what to assume about it."""

    driver: str
    device_id: str = ""
    ppi: int = DEFAULT_PPI
    width: int = 0
    height: int = 0

    @property
    def url(self) -> str:
        path = self.driver + (("/" + urllib.parse.quote(self.device_id, safe="")) if self.device_id else "")
        return f"libfprint://{path}"


URL_PARAMETERS = ("ppi", "width", "height")


def target_from_url(parsed: SensorUrl) -> Target:
    """The reader a parsed `libfprint://` URL names; ValueError on a bad one."""
    unknown = sorted(set(parsed.params) - set(URL_PARAMETERS))
    if unknown:
        raise ValueError(f"libfprint sensor: unknown URL parameter(s) {', '.join(unknown)}; "
                         f"use {', '.join(URL_PARAMETERS)}")
    driver, _, device_id = parsed.path.strip("/").partition("/")
    if not driver:
        raise ValueError("libfprint sensor: the URL names no driver, e.g. libfprint://virtual_image "
                         "(`fpagent sensor list` shows the readers found)")
    ppi = parsed.get_int("ppi", DEFAULT_PPI)
    if not 100 <= ppi <= 2000:
        raise ValueError(f"libfprint sensor: ppi={ppi} is implausible (100..2000)")
    width, height = parsed.get_int("width", 0), parsed.get_int("height", 0)
    if (width or height) and not (16 <= width <= 5000 and 16 <= height <= 5000):
        raise ValueError(f"libfprint sensor: image size {width}x{height} out of range; "
                         "give both width and height (16..5000)")
    return Target(driver=driver, device_id=urllib.parse.unquote(device_id), ppi=ppi,
                  width=width, height=height)


def ppi_from_ppmm(ppmm: float, fallback: int) -> tuple[int, str]:
    """(ppi, where it came from): the reader's own figure, else `fallback` (the URL's)."""
    if ppmm and ppmm > 0:
        return round(ppmm * MM_PER_INCH), "reader"
    return fallback, "url"


# Retry conditions: the finger was there but the impression is unusable; the
# booking asks the officer again (NoFinger), with what to do differently.
RETRY_HINTS = {
    "TOO_SHORT": "Keep the finger on the reader longer (on a swipe reader: swipe the whole "
                 "finger, slowly and evenly).",
    "CENTER_FINGER": "Centre the finger on the reader and press again.",
    "REMOVE_FINGER": "Lift the finger off the reader, then place it again.",
    "GENERAL": "Lift the finger, wipe the reader and the finger, then place it again.",
}


def hal_error(error, *, what: str) -> hal.SensorError:
    """The HAL error for a libfprint `GLib.Error` raised while doing `what`."""
    message = f"{what}: {error.message}"
    if error.matches(FPrint.DeviceRetry.quark(), error.code):
        name = FPrint.DeviceRetry(error.code).value_nick.upper().replace("-", "_")
        return hal.NoFinger(message, RETRY_HINTS.get(name, RETRY_HINTS["GENERAL"]))
    if error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED):
        return hal.NoFinger(f"{what}: no finger before the deadline")
    if error.matches(FPrint.DeviceError.quark(), error.code):
        code = FPrint.DeviceError(error.code)
        if code in (FPrint.DeviceError.BUSY, FPrint.DeviceError.ALREADY_OPEN):
            return hal.SensorBusy(message)
        if code == FPrint.DeviceError.REMOVED:
            return hal.SensorNotFound(message, "The reader was unplugged; plug it in again.")
        if code == FPrint.DeviceError.PROTO:
            return hal.TransportError(message, "The reader's answers were garbled; replug it and retry.")
        if code == FPrint.DeviceError.TOO_HOT:
            return hal.SensorRejected(message, "The reader is too hot; let it cool for a few "
                                      "minutes, then retry.")
        if code == FPrint.DeviceError.NOT_SUPPORTED:
            return hal.SensorRejected(message, "This reader cannot capture images; use another one.")
        return hal.SensorRejected(message)
    if "permission" in error.message.lower() or "access denied" in error.message.lower():
        return hal.SensorNotFound(message, "Give the service user access to the USB reader "
                                  "(the plugdev group or a udev rule).")
    return hal.SensorError(message, "Replug the reader and retry; if it persists, check "
                           "`journalctl` for libfprint's messages.")


# -- discovery ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FoundReader:
    driver: str
    device_id: str
    name: str
    scan_type: str  # "press" or "swipe"
    gives_images: bool

    @property
    def url(self) -> str:
        return Target(self.driver, self.device_id).url


def _describe(device) -> FoundReader:
    return FoundReader(
        driver=device.get_driver(),
        device_id=device.get_device_id() or "",
        name=device.get_name() or device.get_driver(),
        scan_type=device.get_scan_type().value_nick,
        gives_images=isinstance(device, FPrint.ImageDevice),
    )


def _enumerate() -> tuple[object, list]:
    context = FPrint.Context()
    return context, list(context.get_devices())


def list_readers() -> list[FoundReader]:
    """Every reader libfprint finds (image devices and match-on-chip ones)."""
    def scan():
        try:
            _context, devices = _enumerate()
        except GLib.Error as exc:
            raise hal_error(exc, what="listing libfprint readers") from None
        return [_describe(d) for d in devices]

    return run_on_libfprint_thread(scan)


# -- one open reader --------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RawCapture:
    """One image as libfprint hands it: 8-bit grey, row-major, no padding."""

    data: bytes
    width: int
    height: int
    ppmm: float


class LibfprintDevice:
    """One open libfprint image device; every call runs on the libfprint thread."""

    def __init__(self, target: Target):
        self.target = target
        self.reader: FoundReader | None = None
        self._context = None
        self._device = None
        run_on_libfprint_thread(self._open)

    def _open(self) -> None:
        context, devices = _enumerate()
        same_driver = [d for d in devices if d.get_driver() == self.target.driver]
        if self.target.device_id:
            same_driver = [d for d in same_driver if d.get_device_id() == self.target.device_id]
        if not same_driver:
            found = ", ".join(_describe(d).url for d in devices) or "none"
            raise hal.SensorNotFound(
                f"no libfprint reader {self.target.url} (found: {found})",
                "Check that the reader is plugged in and the URL names its driver "
                "(`fpagent sensor list`).")
        if len(same_driver) > 1:
            raise hal.SensorNotFound(
                f"{len(same_driver)} readers with driver {self.target.driver!r}",
                "Name one in the URL: " + ", ".join(_describe(d).url for d in same_driver) + ".")
        device = same_driver[0]
        if not isinstance(device, FPrint.ImageDevice):
            raise hal.SensorNotFound(
                f"{self.target.url} matches fingerprints on the chip and gives no images",
                "Use a reader that libfprint drives as an image device (docs/sensors.md).")
        try:
            device.open_sync(None)
        except GLib.Error as exc:
            raise hal_error(exc, what=f"opening {self.target.url}") from None
        self._context, self._device = context, device
        self.reader = _describe(device)

    def capture(self, deadline: float, on_waiting=None) -> RawCapture:
        """The next image before `deadline` (time.monotonic()), or a HAL error.

        `on_waiting()` is called once, on the caller's thread, when the reader
        is ready for a finger (libfprint's finger status says "needed").
        """
        cancellable = Gio.Cancellable()
        finger_needed = threading.Event()
        future = _worker.submit(self._capture_sync, cancellable, finger_needed)
        waiting_told = False
        while True:
            try:
                return future.result(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
            except concurrent.futures.TimeoutError:
                pass
            if not waiting_told and finger_needed.is_set() and on_waiting is not None:
                waiting_told = True
                on_waiting()
            if time.monotonic() >= deadline:
                cancellable.cancel()
                break
        try:
            return future.result(timeout=CANCEL_GRACE_S)  # the image may have won the race
        except concurrent.futures.TimeoutError:
            raise hal.CaptureTimeout(
                f"{self.target.url} did not stop within {CANCEL_GRACE_S:.0f} s of the deadline",
                "The reader stopped answering; replug it, then retry.") from None

    def _capture_sync(self, cancellable, finger_needed: threading.Event) -> RawCapture:
        device = self._device

        def status_changed(*_):
            if device.get_finger_status() & FPrint.FingerStatusFlags.NEEDED:
                finger_needed.set()

        handler = device.connect("notify::finger-status", status_changed)
        try:
            image = device.capture_sync(True, cancellable)
        except GLib.Error as exc:
            raise hal_error(exc, what=f"capture on {self.target.url}") from None
        finally:
            device.disconnect(handler)
        return RawCapture(data=bytes(image.get_data()), width=image.get_width(),
                          height=image.get_height(), ppmm=float(image.get_ppmm()))

    def close(self) -> None:
        if self._device is None:
            return
        device, self._device = self._device, None

        def close_sync():
            try:
                device.close_sync(None)
            except GLib.Error:
                pass  # closing a reader that went away: nothing left to release
            self._context = None

        run_on_libfprint_thread(close_sync)
