"""Sensor URLs: one string chooses the driver and configures it, as pyserial's URLs do.

    zfm:///dev/ttyUSB0?baud=57600      driver "zfm", path /dev/ttyUSB0, one parameter
    spy+synthetic://?seed=1            any driver, with its captures logged at debug level
    /dev/ttyUSB0                       a bare device path means the default UART family

Each driver documents its own parameters at the top of its module.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

DEFAULT_INTERFACE = "zfm"


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


def parse_sensor_url(url: str) -> SensorUrl:
    if "://" not in url:
        url = f"{DEFAULT_INTERFACE}://" + url
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    spy = False
    if scheme.startswith("spy+"):
        spy, scheme = True, scheme[4:]
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return SensorUrl(scheme=scheme, path=path, params=params, spy=spy, raw=url)
