"""The hardware abstraction layer: the only seam between sensors and the agent.

Drivers implement one private hook (`Sensor._capture_internal`); the agent
only ever sees `FingerImage`, `SensorInfo`, the errors below and
`open_sensor(url)`. No I/O happens in this package itself.
"""

from fpagent.hal.errors import (
    SensorError,
    NoFinger,
    CaptureTimeout,
    LinkError,
    ChecksumError,
    FramingError,
    SensorNotFound,
    SensorBusy,
    SensorRejected,
)
from fpagent.hal.image import FingerImage, FingerPosition, ImpressionType
from fpagent.hal.sensor import Sensor, SensorInfo, Progress
from fpagent.hal.registry import (
    open_sensor,
    register_interface,
    available_interfaces,
    parse_sensor_url,
    SensorUrl,
    UsbId,
    FoundSensor,
    discover_sensors,
    candidate_ports,
)

__all__ = [
    "SensorError",
    "NoFinger",
    "CaptureTimeout",
    "LinkError",
    "ChecksumError",
    "FramingError",
    "SensorNotFound",
    "SensorBusy",
    "SensorRejected",
    "FingerImage",
    "FingerPosition",
    "ImpressionType",
    "Sensor",
    "SensorInfo",
    "Progress",
    "open_sensor",
    "register_interface",
    "available_interfaces",
    "parse_sensor_url",
    "SensorUrl",
    "UsbId",
    "FoundSensor",
    "discover_sensors",
    "candidate_ports",
]
