"""Frame log for `spy+zfm://...` and `spy+emulated://...`, in the manner of pyserial's spy://.

A technician sniffing a misbehaving sensor sees one debug line per frame:
direction, packet type, instruction or confirmation code, payload length.
Never payload bytes: data packets carry fingerprint images.

    fpagent --debug sensor info 'spy+zfm:///dev/ttyUSB0'
"""

from __future__ import annotations

import logging

from fpagent.drivers.zfm.codec import Packet

log = logging.getLogger("fpagent.drivers.zfm.spy")


class FrameSpy:
    """Logs frames exchanged with one port (`->` host to sensor, `<-` back)."""

    def __init__(self, port_name: str):
        self.port_name = port_name
        self.frames = 0

    def sent(self, packet: Packet) -> None:
        self._log("->", packet)

    def received(self, packet: Packet) -> None:
        self._log("<-", packet)

    def note(self, message: str) -> None:
        log.debug("%s %s", self.port_name, message)

    def _log(self, direction: str, packet: Packet) -> None:
        self.frames += 1
        log.debug("%s %s %s", self.port_name, direction, packet.describe())
