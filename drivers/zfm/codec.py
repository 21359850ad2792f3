"""The "EF01" packet codec of ZhianTec/Synochip modules (R30x, R503, AS608).

Pure functions over bytes, no I/O, so they can be fuzzed alone. A packet on
the wire (all multi-byte fields big-endian):

    EF 01 | address (4) | PID (1) | LENGTH (2) | payload (LENGTH-2) | checksum (2)

LENGTH counts the payload plus the two checksum bytes; the checksum is the
16-bit sum of PID, both LENGTH bytes and every payload byte (header and
address are not summed). See ../shared/specs/sensor-zfm-protocol.md, sec. 2.

`PacketReader` is the streaming decoder the driver and the emulator both use:
feed it whatever the serial line gave, take packets out. It skips anything
that is not a header (the power-on 0x55 byte, line noise, the tail of an
answer to an earlier command), and raises only this module's own errors.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from fpagent import hal

HEADER = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
HEADER_SIZE = 9  # EF 01, address (4), PID, LENGTH (2)
OVERHEAD = HEADER_SIZE + 2  # + checksum: bytes per packet besides the payload
MAX_PAYLOAD = 256  # the vendor maximum ("packet size" code 3)
POWER_ON_BYTE = 0x55  # sent once, unsolicited, when the module has booted

# Packet identifiers (PID).
PID_COMMAND = 0x01
PID_DATA = 0x02  # data packet, more follow
PID_ACK = 0x07
PID_END = 0x08  # last data packet
PIDS = {PID_COMMAND: "CMD", PID_DATA: "DATA", PID_ACK: "ACK", PID_END: "END"}

# Instruction codes the driver and the emulator use (sec. 3 of the spec).
GEN_IMG = 0x01
IMG2TZ = 0x02
UP_IMAGE = 0x0A
SET_SYS_PARA = 0x0E
READ_SYS_PARA = 0x0F
SET_PWD = 0x12
VFY_PWD = 0x13
TEMPLATE_NUM = 0x1D
READ_PROD_INFO = 0x3C
HANDSHAKE = 0x40
GET_ECHO = 0x53

INSTRUCTIONS = {
    0x01: "GenImg", 0x02: "Img2Tz", 0x03: "Match", 0x04: "Search", 0x05: "RegModel",
    0x06: "Store", 0x07: "LoadChar", 0x08: "UpChar", 0x09: "DownChar", 0x0A: "UpImage",
    0x0B: "DownImage", 0x0C: "DeletChar", 0x0D: "Empty", 0x0E: "SetSysPara",
    0x0F: "ReadSysPara", 0x12: "SetPwd", 0x13: "VfyPwd", 0x14: "GetRandomCode",
    0x15: "SetAdder", 0x16: "ReadInfPage", 0x18: "WriteNotepad", 0x19: "ReadNotepad",
    0x1B: "HighSpeedSearch", 0x1D: "TempleteNum", 0x1F: "ReadIndexTable",
    0x3C: "ReadProdInfo", 0x3D: "SoftRst", 0x40: "HandShake", 0x53: "GetEcho",
}

# Confirmation codes (first payload byte of an acknowledge), sec. 4 of the spec.
OK = 0x00
ERR_RECEIVE = 0x01
NO_FINGER = 0x02
IMAGE_FAIL = 0x03
UP_IMAGE_FAIL = 0x0F
WRONG_PASSWORD = 0x13
PASSWORD_FIRST = 0x21
UNSUPPORTED = 0xFC

CONFIRMATIONS = {
    0x00: "OK",
    0x01: "error receiving packet",
    0x02: "no finger on the sensor",
    0x03: "image capture failed",
    0x06: "image too disordered",
    0x07: "too few features / image too small",
    0x08: "finger doesn't match",
    0x09: "no match found",
    0x0A: "merge failed",
    0x0B: "page id out of range",
    0x0C: "template read error",
    0x0D: "template upload error",
    0x0E: "cannot receive the following data packets",
    0x0F: "image upload error",
    0x10: "delete failed",
    0x11: "clear library failed",
    0x13: "wrong password",
    0x15: "no valid primary image",
    0x18: "flash write error",
    0x19: "undefined error",
    0x1A: "invalid register number",
    0x1B: "register configuration error",
    0x1C: "wrong notepad page",
    0x1D: "port operation failed",
    0x1F: "library full",
    0x20: "address code wrong",
    0x21: "password must be verified first",
    0x22: "template empty",
    0x24: "library empty",
    0x26: "timeout",
    0x27: "fingerprint already exists",
    0x29: "sensor hardware error",
    0xFC: "unsupported command",
    0xFD: "hardware error",
    0xFE: "command execution failure",
}

# "packet size" parameter code -> data payload bytes.
PACKET_SIZES = {0: 32, 1: 64, 2: 128, 3: 256}


def confirmation_message(code: int) -> str:
    return CONFIRMATIONS.get(code, f"unknown confirmation code 0x{code:02X}")


class CodecChecksumError(hal.ChecksumError):
    """A complete packet arrived whose checksum does not match its contents."""


class CodecFramingError(hal.FramingError):
    """Bytes that cannot be a packet: impossible length or unknown packet type."""


@dataclasses.dataclass(frozen=True)
class Packet:
    """One decoded packet. `repr` shows sizes, never payload bytes (images)."""

    address: int
    pid: int
    payload: bytes

    @property
    def code(self) -> int | None:
        """Instruction code (command) or confirmation code (ack)."""
        if self.pid in (PID_COMMAND, PID_ACK) and self.payload:
            return self.payload[0]
        return None

    @property
    def wire_size(self) -> int:
        return OVERHEAD + len(self.payload)

    def describe(self) -> str:
        """One log-safe line: type, code, length; no payload bytes."""
        kind = PIDS.get(self.pid, f"PID 0x{self.pid:02X}")
        if self.pid == PID_COMMAND and self.payload:
            name = INSTRUCTIONS.get(self.payload[0], "?")
            return f"{kind} 0x{self.payload[0]:02X} {name} len={len(self.payload)}"
        if self.pid == PID_ACK and self.payload:
            return (f"{kind} 0x{self.payload[0]:02X} {confirmation_message(self.payload[0])}"
                    f" len={len(self.payload)}")
        return f"{kind} len={len(self.payload)}"

    def __repr__(self) -> str:
        return f"Packet({self.describe()}, address=0x{self.address:08X})"


def checksum(pid: int, payload: bytes) -> int:
    """16-bit sum of PID, the two LENGTH bytes and the payload."""
    length = len(payload) + 2
    return (pid + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


def encode(address: int, pid: int, payload: bytes) -> bytes:
    """One packet as bytes on the wire."""
    if pid not in PIDS:
        raise ValueError(f"unknown packet type 0x{pid:02X}")
    if not 1 <= len(payload) <= MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes (must be 1..{MAX_PAYLOAD})")
    if not 0 <= address <= 0xFFFFFFFF:
        raise ValueError("address must fit in 32 bits")
    payload = bytes(payload)
    return (HEADER + struct.pack(">IBH", address, pid, len(payload) + 2) + payload
            + struct.pack(">H", checksum(pid, payload)))


def command(instruction: int, params: bytes = b"", address: int = DEFAULT_ADDRESS) -> bytes:
    return encode(address, PID_COMMAND, bytes([instruction]) + bytes(params))


def ack(code: int, values: bytes = b"", address: int = DEFAULT_ADDRESS) -> bytes:
    return encode(address, PID_ACK, bytes([code]) + bytes(values))


def data_packets(data: bytes, packet_size: int, address: int = DEFAULT_ADDRESS) -> list[bytes]:
    """Split `data` into data packets of `packet_size`: PID 0x02..., last one 0x08."""
    if packet_size not in PACKET_SIZES.values():
        raise ValueError(f"packet size {packet_size} (must be one of 32, 64, 128, 256)")
    chunks = [data[i:i + packet_size] for i in range(0, len(data), packet_size)]
    return [encode(address, PID_END if i == len(chunks) - 1 else PID_DATA, chunk)
            for i, chunk in enumerate(chunks)]


class PacketReader:
    """Streaming decoder: `feed(bytes)`, then `next_packet()` until it returns None.

    Anything before a header is skipped and counted in `skipped`. A candidate
    frame with an unknown PID or an impossible LENGTH raises
    CodecFramingError, a complete frame whose checksum is wrong raises
    CodecChecksumError; in both cases the reader has already moved one byte
    past that header, so calling `next_packet()` again resynchronises on the
    next header in the stream (a real frame may follow a false one).
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self._buf = bytearray()
        self.max_payload = max_payload
        self.skipped = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        self.skipped += len(self._buf)
        self._buf.clear()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def bytes_needed(self) -> int:
        """How many more bytes would complete the frame being read (>= 1)."""
        buf = self._buf
        start = buf.find(HEADER)
        if start < 0:
            return HEADER_SIZE + 3
        have = len(buf) - start
        if have < HEADER_SIZE:
            return HEADER_SIZE + 3 - have
        length = (buf[start + 7] << 8) | buf[start + 8]
        return max(1, HEADER_SIZE + length - have)

    def next_packet(self) -> Packet | None:
        buf = self._buf
        start = buf.find(HEADER)
        if start < 0:
            # keep a trailing EF: it may be the first half of a header
            keep = 1 if buf.endswith(HEADER[:1]) else 0
            self.skipped += len(buf) - keep
            del buf[:len(buf) - keep]
            return None
        if start:
            self.skipped += start
            del buf[:start]
        if len(buf) < HEADER_SIZE:
            return None
        address, pid, length = struct.unpack_from(">IBH", buf, 2)
        if pid not in PIDS:
            self._skip_false_header()
            raise CodecFramingError(f"unknown packet type 0x{pid:02X}")
        if not 3 <= length <= self.max_payload + 2:
            self._skip_false_header()
            raise CodecFramingError(f"impossible packet length {length}")
        end = HEADER_SIZE + length
        if len(buf) < end:
            return None
        payload = bytes(buf[HEADER_SIZE:end - 2])
        received = (buf[end - 2] << 8) | buf[end - 1]
        expected = checksum(pid, payload)
        if received != expected:
            self._skip_false_header()
            raise CodecChecksumError(
                f"checksum 0x{received:04X} on a {PIDS[pid]} packet, expected 0x{expected:04X}")
        del buf[:end]
        return Packet(address, pid, payload)

    def _skip_false_header(self) -> None:
        self.skipped += 1
        del self._buf[:1]


def decode(frame: bytes) -> Packet:
    """Decode exactly one packet (no leading or trailing bytes allowed)."""
    reader = PacketReader()
    reader.feed(frame)
    packet = reader.next_packet()
    if packet is None or reader.buffered or reader.skipped:
        raise CodecFramingError("not exactly one complete packet")
    return packet


def unpack_nibbles(data: bytes, width: int, height: int):
    """4-bit image bytes (high nibble = left pixel) -> uint8 HxW array, v*17."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size * 2 != width * height:
        raise CodecFramingError(
            f"{raw.size} image bytes do not make a {width}x{height} image")
    pixels = np.empty(raw.size * 2, dtype=np.uint8)
    pixels[0::2] = raw >> 4
    pixels[1::2] = raw & 0x0F
    pixels *= 17
    return pixels.reshape(height, width)


def pack_nibbles(pixels) -> bytes:
    """uint8 HxW -> 4-bit bytes as the module sends them (keeps the top 4 bits)."""
    px = np.asarray(pixels, dtype=np.uint8)
    if px.ndim != 2 or px.shape[1] % 2:
        raise ValueError("need a 2-D image with an even width")
    flat = (px >> 4).reshape(-1)
    return ((flat[0::2] << 4) | flat[1::2]).astype(np.uint8).tobytes()
