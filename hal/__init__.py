"""The hardware abstraction layer: the only seam between sensors and the agent.

This package is the application's face of the HAL, in the manner of
libfprint's application header: open a sensor from a URL (`open_sensor`),
capture `FingerImage`s, read its `SensorInfo`, act on the errors (each has a
`hint` for the person at the desk), and find sensors (`usb_ids`,
`candidate_ports`, `discover_sensors`). `Sensor` is exported as the type
`open_sensor` returns.

Drivers build on the other face, `fpagent.hal.driver` (the base class with its
one private capture hook, URL parsing, USB id tables), and are found through
the `fpagent.sensors` entry-point group; the application never imports one.
No I/O happens in this package itself.
"""

from fpagent.hal.errors import (
    SensorError,
    NoFinger,
    CaptureTimeout,
    TransportError,
    ChecksumError,
    FramingError,
    SensorNotFound,
    SensorBusy,
    SensorRejected,
    ModeNotSupported,
)
from fpagent.hal.image import FingerImage, FingerPosition, ImpressionType
from fpagent.hal.info import CaptureMode, FoundSensor, Progress, SensorInfo, capture_mode, require_modes
from fpagent.hal.url import parse_sensor_url
from fpagent.hal.driver import Sensor
from fpagent.hal.registry import (
    open_sensor,
    available_interfaces,
    unavailable_interfaces,
    discover_sensors,
    usb_ids,
    candidate_ports,
)

__all__ = [
    "SensorError",
    "NoFinger",
    "CaptureTimeout",
    "TransportError",
    "ChecksumError",
    "FramingError",
    "SensorNotFound",
    "SensorBusy",
    "SensorRejected",
    "ModeNotSupported",
    "FingerImage",
    "FingerPosition",
    "ImpressionType",
    "Sensor",
    "SensorInfo",
    "CaptureMode",
    "capture_mode",
    "require_modes",
    "Progress",
    "FoundSensor",
    "open_sensor",
    "available_interfaces",
    "unavailable_interfaces",
    "discover_sensors",
    "parse_sensor_url",
    "usb_ids",
    "candidate_ports",
]
