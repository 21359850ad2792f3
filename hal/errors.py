"""Errors a caller can act on: each says what happened and what to do next.

The booking session retries `NoFinger`/`CaptureTimeout` by asking the officer
again, retries `TransportError` a bounded number of times, and turns
`SensorNotFound`/`SensorBusy` into a technician message. They share
fpagent's error base, the one thing of ours the HAL imports.
"""

from fpagent.errors import FpagentError


class SensorError(FpagentError):
    """Base class. `hint` is one sentence for the person at the desk."""

    hint = "Check the sensor and try again."

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.args[0]} ({self.hint})" if self.args else self.hint


class NoFinger(SensorError):
    """The sensor answered but saw no finger before the deadline."""

    hint = "Place the finger flat on the glass and hold it still."


class CaptureTimeout(SensorError):
    """An exchange with the sensor did not finish within its deadline."""

    hint = "The sensor stopped answering; check its cable and power, then retry."


class TransportError(SensorError):
    """Bytes between host and sensor were wrong (checksum, framing, unexpected packet).

    A fault of the serial/USB transport to the sensor, not of the MQTT link.
    """

    hint = "Data from the sensor was corrupted; check the cable and baud rate, then retry."


class ChecksumError(TransportError):
    """A packet arrived whose checksum does not match its contents."""


class FramingError(TransportError):
    """A packet was malformed: bad header, impossible length, wrong packet type."""


class SensorNotFound(SensorError):
    """Nothing answers at that address (wrong port, unplugged, wrong password)."""

    hint = "Check that the sensor is plugged in and the URL (port, baud, address, password) is right."


class SensorBusy(SensorError):
    """The device is opened by another process."""

    hint = "Another program holds the sensor; stop it (is the fpagent service running?)."


class SensorRejected(SensorError):
    """The sensor refused a command with a confirmation code we cannot retry."""

    hint = "The sensor reported an internal error; power-cycle it and retry."


class ModeNotSupported(SensorError):
    """The sensor was asked for a capture mode it did not declare (a slap from a single-finger module)."""

    hint = "Use a sensor that can capture this (see docs/sensors.md)."
