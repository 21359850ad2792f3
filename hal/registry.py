"""Open a sensor from one URL-like string, in the manner of serial_for_url.

    zfm:///dev/ttyUSB0?baud=57600&address=0xFFFFFFFF&password=0
    spy+zfm:///dev/ttyUSB0        (hexdump-free frame log at debug level)
    emulated://?source=synthetic&seed=1&baud=57600
    synthetic://?seed=1            (in-process, no serial line at all)
    libfprint://virtual_image      (USB readers through libfprint 2)

Interfaces are imported lazily by module path, so a missing optional
dependency disables one interface with a clear error and never breaks
`import hal`. Drivers declare their USB ids as data (`UsbId`) so that
discovery and the udev rules come from the same table.
"""

from __future__ import annotations

import dataclasses
import importlib
import urllib.parse

from fpagent.hal.errors import SensorError, SensorNotFound


@dataclasses.dataclass(frozen=True)
class UsbId:
    vid: int
    pid: int
    description: str


@dataclasses.dataclass(frozen=True)
class FoundSensor:
    """A sensor a driver found attached, with the URL that opens it."""

    interface: str
    url: str
    description: str
    usable: bool = True  # False: found, but this driver cannot capture from it


@dataclasses.dataclass(frozen=True)
class SensorUrl:
    scheme: str  # interface name, without a "spy+" prefix
    path: str  # e.g. /dev/ttyUSB0; may be empty
    params: dict  # query parameters, last value wins
    spy: bool = False
    raw: str = ""

    def get_int(self, key: str, default: int) -> int:
        value = self.params.get(key)
        if value is None or value == "":
            return default
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError(f"sensor URL parameter {key}={value!r} is not a number") from None

    def get_float(self, key: str, default: float) -> float:
        value = self.params.get(key)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"sensor URL parameter {key}={value!r} is not a number") from None


# name -> "module:Class". Drivers add themselves here (one line per family).
_INTERFACES: dict[str, str] = {
    "zfm": "fpagent.drivers.zfm.device:ZfmSensor",
    "emulated": "fpagent.drivers.zfm.emulator:EmulatedZfmSensor",
    "synthetic": "fpagent.drivers.synthetic.sensor:SyntheticSensor",
    "libfprint": "fpagent.drivers.libfprint.sensor:LibfprintSensor",
}

# name -> list of UsbId, filled from each driver's id table on demand.
_USB_TABLES: dict[str, str] = {
    "zfm": "fpagent.drivers.zfm.ids:USB_IDS",
}


def register_interface(name: str, target: str, usb_ids: str | None = None) -> None:
    """Add an interface: `target` is "package.module:ClassName"."""
    _INTERFACES[name] = target
    if usb_ids:
        _USB_TABLES[name] = usb_ids


def available_interfaces() -> list[str]:
    return sorted(_INTERFACES)


def parse_sensor_url(url: str) -> SensorUrl:
    if "://" not in url:
        # a bare device path means the default UART family
        url = "zfm://" + url
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    spy = False
    if scheme.startswith("spy+"):
        spy, scheme = True, scheme[4:]
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return SensorUrl(scheme=scheme, path=path, params=params, spy=spy, raw=url)


def _load(target: str):
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def open_sensor(url: str):
    """Open and return a `hal.Sensor` for `url`; raises SensorNotFound."""
    parsed = parse_sensor_url(url)
    target = _INTERFACES.get(parsed.scheme)
    if target is None:
        raise SensorNotFound(
            f"unknown sensor interface {parsed.scheme!r}",
            f"Use one of: {', '.join(available_interfaces())}.",
        )
    try:
        cls = _load(target)
    except ImportError as exc:
        raise SensorNotFound(
            f"sensor interface {parsed.scheme!r} is not available: {exc}",
            "Install the package this driver needs, or pick another interface.",
        ) from exc
    return cls.from_url(parsed)


def discover_sensors() -> tuple[list[FoundSensor], dict[str, str]]:
    """Sensors the drivers find attached, and the families that cannot look (name -> why)."""
    found: list[FoundSensor] = []
    unavailable: dict[str, str] = {}
    for name, target in sorted(_INTERFACES.items()):
        try:
            found.extend(_load(target).discover())
        except (ImportError, SensorError) as exc:
            unavailable[name] = str(exc)
    return found, unavailable


def usb_ids() -> dict[str, list[UsbId]]:
    """Every driver's USB id table, for discovery and udev rule generation."""
    tables = {}
    for name, target in _USB_TABLES.items():
        try:
            tables[name] = list(_load(target))
        except ImportError:
            continue
    return tables


def candidate_ports() -> list[dict]:
    """USB-serial ports whose VID:PID a driver knows, plus other serial ports.

    Each entry: {"device", "vid", "pid", "description", "interface" (or None)}.
    """
    from serial.tools import list_ports  # pyserial; imported here: hal stays I/O-free

    known = {(u.vid, u.pid): (name, u) for name, ids in usb_ids().items() for u in ids}
    found = []
    for port in list_ports.comports():
        match = known.get((port.vid, port.pid)) if port.vid is not None else None
        found.append(
            {
                "device": port.device,
                "vid": port.vid,
                "pid": port.pid,
                "description": match[1].description if match else (port.description or ""),
                "interface": match[0] if match else None,
            }
        )
    found.sort(key=lambda p: (p["interface"] is None, p["device"]))
    return found
