"""Open a sensor from one URL-like string, in the manner of serial_for_url.

    zfm:///dev/ttyUSB0?baud=57600&address=0xFFFFFFFF&password=0
    spy+zfm:///dev/ttyUSB0        (frames and captures logged at debug level)
    emulated://?source=synthetic&seed=1&baud=57600
    synthetic://?seed=1            (in-process, no serial line at all)
    spy+synthetic://?seed=1        (each capture's request, outcome and timing logged)

Drivers are found through the entry-point group `fpagent.sensors` (name =
URL scheme, value = "package.module:SensorClass"), so this module names no
driver and a driver in a package of its own needs nothing here. Each is
imported only when used: a driver whose import fails is reported unavailable
with the reason and never breaks `import fpagent.hal`. USB id tables are the
drivers' `usb_ids` class attributes, so discovery and udev rules come from
the same data.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from fpagent.errors import FpagentError
from fpagent.hal.errors import SensorNotFound
from fpagent.hal.url import parse_sensor_url

ENTRY_POINT_GROUP = "fpagent.sensors"

# name -> Sensor class or "module:Class", added at run time (register_interface)
_RUNTIME: dict[str, object] = {}


def register(name: str, target) -> None:
    _RUNTIME[name.lower()] = target


def _targets() -> dict[str, object]:
    """Every known interface name -> entry point, class or "module:Class" (nothing imported)."""
    targets: dict[str, object] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        targets.setdefault(ep.name.lower(), ep)
    targets.update(_RUNTIME)
    return targets


def _load(target):
    if isinstance(target, importlib.metadata.EntryPoint):
        return target.load()
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    return target


class _Unavailable(FpagentError):
    """A registered driver that cannot be loaded; the message says why."""


def _driver_class(name: str, target):
    try:
        cls = _load(target)
    except Exception as exc:  # ImportError, a missing attribute, an error in the module
        raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc
    # duck-typed, so that this module stays below fpagent.hal.driver
    if not (isinstance(cls, type) and callable(getattr(cls, "from_url", None))
            and hasattr(cls, "usb_ids") and hasattr(cls, "supports_spy")):
        raise _Unavailable(f"{target!r} is not a fpagent.hal.driver.Sensor subclass")
    return cls


def available_interfaces() -> list[str]:
    """Names of the interfaces registered (installed drivers), without importing them."""
    return sorted(_targets())


def unavailable_interfaces() -> dict[str, str]:
    """Registered interfaces whose driver cannot be loaded -> why."""
    problems = {}
    for name, target in _targets().items():
        try:
            _driver_class(name, target)
        except _Unavailable as exc:
            problems[name] = str(exc)
    return problems


def open_sensor(url: str):
    """Open and return a `Sensor` for `url`; raises SensorNotFound."""
    parsed = parse_sensor_url(url)
    targets = _targets()
    target = targets.get(parsed.scheme)
    if target is None:
        raise SensorNotFound(
            f"unknown sensor interface {parsed.scheme!r}",
            f"Use one of: {', '.join(sorted(targets)) or 'none installed'}.",
        )
    try:
        cls = _driver_class(parsed.scheme, target)
    except _Unavailable as exc:
        raise SensorNotFound(
            f"sensor interface {parsed.scheme!r} is not available: {exc}",
            "Install the package this driver needs, or pick another interface.",
        ) from exc
    if parsed.spy and not cls.supports_spy:
        raise SensorNotFound(
            f"sensor interface {parsed.scheme!r} cannot be spied on",
            f"Drop the 'spy+' prefix: {parsed.scheme}://...",
        )
    sensor = cls.from_url(parsed)
    if parsed.spy:
        sensor.log_captures()
    return sensor


def usb_ids() -> dict:
    """Every loadable driver's USB id table ({interface: [UsbId]}), for discovery and udev rules."""
    tables = {}
    for name, target in _targets().items():
        try:
            cls = _driver_class(name, target)
        except _Unavailable:
            continue
        if cls.usb_ids:
            tables[name] = list(cls.usb_ids)
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
