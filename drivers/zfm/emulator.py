"""A ZFM module emulator on the far side of a real pseudo-terminal.

    emulated://?source=synthetic&seed=1&person=0&baud=57600&pace=1
    emulated://?source=/path/to/images&faults=flip:1,nofinger:3
    spy+emulated://?...        (frame log of the driver side at debug level)

The emulator answers the EF01 protocol (VfyPwd, ReadSysPara, ReadProdInfo,
GenImg, UpImage, Img2Tz, HandShake, GetEcho, SetSysPara, TempleteNum) on the
master side of `os.openpty()`; the real `ZfmSensor` opens the slave path with
pyserial, so tests and demos drive the very code that runs on the appliance.

Images come from the project's synthetic generator (`source=synthetic`, the
default: person `person`, the finger being captured, one impression after
another), from a folder of image files (served in name order, cycling) or
from one image file (served at every capture).
Either way they are fitted to the module's 256x288 (centre crop at 500 ppi,
scaled up only when smaller) and quantised to 16 grey levels as the module
does. `last_image` is what the driver must decode, pixel for pixel.

URL parameters besides the driver's (baud, address, password, timeout, ...):
`source`, `seed`, `person`, `pace` (1: bytes take their wire time at `baud`,
10 bits a byte; default 0: as fast as the pty goes), `packet_size` (32, 64,
128 or 256; default 128), `fault_seed` (where faults strike), `prodinfo` (0: answer ReadProdInfo as an old R30x
does, "unsupported"), `module_password`/`module_address` (what the emulated
module has, default: what the driver uses), and `faults`, a comma list of
`name:value` (see `Faults`).
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import logging
import os
import pathlib
import random
import select
import struct
import threading
import time
import tty

import numpy as np

from fpagent import hal
from fpagent.hal.driver import CaptureRequest, SensorUrl
from fpagent.drivers.zfm import codec
from fpagent.drivers.zfm.device import ZfmSensor, open_port

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 256, 288
IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".pgm", ".wsq"}
PACE_SLICE_S = 0.004  # the emulator writes this much wire time at once


@dataclasses.dataclass
class Faults:
    """Faults the emulator injects on request (all off by default).

    flip:N      flip one bit in each of the next N image uploads
    drop:N      drop one byte from each of the next N image uploads
    dup:N       duplicate one byte in each of the next N image uploads
    stall:S     pause S seconds in the middle of the next image upload
    delay:S     wait S seconds before every answer
    late:S      wait S seconds before the first answer only (it arrives late)
    silent:N    answer the first N commands, then nothing at all (0: mute)
    nofinger:N  "no finger" for the first N GenImg polls (-1: never a finger)
    poweron:1   send the power-on 0x55 byte just before the first answer
    garbage:N   N bytes of line noise before every answer
    at:I        strike flip/drop/dup at byte I of the upload (negative: from
                the end) instead of at a random byte
    """

    flip: int = 0
    drop: int = 0
    dup: int = 0
    stall: float = 0.0
    delay: float = 0.0
    late: float = 0.0
    silent: int = -1
    nofinger: int = 0
    poweron: int = 0
    garbage: int = 0
    at: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> "Faults":
        faults = cls()
        if not text:
            return faults
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for item in text.split(","):
            name, _, value = item.strip().partition(":")
            if name not in types:
                raise ValueError(f"unknown fault {name!r} (known: {', '.join(types)})")
            try:
                setattr(faults, name, float(value or 1) if types[name] in (float, "float")
                        else int(value or "1", 0))
            except ValueError:
                raise ValueError(f"fault {name} needs a number, got {value!r}") from None
        return faults


# -- image sources -------------------------------------------------------------

def fit_to_module(image: np.ndarray) -> np.ndarray:
    """Any grey image -> 256x288 uint8 as the module has it (16 grey levels, v*17)."""
    from PIL import Image

    px = np.asarray(image)
    if px.ndim == 3:
        px = np.asarray(Image.fromarray(px).convert("L"))
    px = px.astype(np.uint8, copy=False)
    h, w = px.shape
    if w < WIDTH or h < HEIGHT:  # scale up just enough to cover the window
        scale = max(WIDTH / w, HEIGHT / h)
        size = (max(WIDTH, round(w * scale)), max(HEIGHT, round(h * scale)))
        px = np.asarray(Image.fromarray(px).resize(size, Image.LANCZOS))
        h, w = px.shape
    top, left = (h - HEIGHT) // 2, (w - WIDTH) // 2
    px = px[top:top + HEIGHT, left:left + WIDTH]
    return ((px >> 4) * 17).astype(np.uint8)


def ring_pattern(seed: int, person: int, finger: int, impression: int) -> np.ndarray:
    """Concentric ridges (9 px period) when the synthetic generator is missing."""
    rng = np.random.default_rng([seed, person, finger])
    cy, cx = rng.uniform(110, 180), rng.uniform(90, 160)
    cy += impression * 3
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    r = np.hypot(y - cy, (x - cx) * 1.2)
    return (150 + 90 * np.cos(2 * np.pi * r / 9.0)).clip(0, 255).astype(np.uint8)


class SyntheticSource:
    """Person `person`'s fingers from the project's generator, one impression after another."""

    def __init__(self, seed: int = 0, person: int = 0):
        self.seed, self.person = seed, person
        self._impressions = collections.Counter()

    def next_image(self, finger: int) -> np.ndarray:
        impression = self._impressions[finger]
        self._impressions[finger] += 1
        try:
            from fpagent.drivers.synthetic.generator import finger_image
        except ImportError:  # generator not installed: a plain test pattern
            return ring_pattern(self.seed, self.person, finger, impression)
        return finger_image(self.person, finger, impression, seed=self.seed)


class FolderSource:
    """Image files of a folder, in name order, cycling (or one image file, always)."""

    def __init__(self, folder: str):
        self.folder = pathlib.Path(folder)
        if self.folder.is_file() and self.folder.suffix.lower() in IMAGE_SUFFIXES:
            self.files = [self.folder]
        elif not self.folder.is_dir():
            raise hal.SensorNotFound(f"emulator image folder {folder} does not exist",
                                     "Use source=synthetic, an existing folder of images or one image file.")
        else:
            self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise hal.SensorNotFound(f"no images in {folder}",
                                     "Put PNG/TIFF/BMP/JPEG/WSQ files there, or use source=synthetic.")
        self._next = 0

    def next_image(self, finger: int) -> np.ndarray:
        from PIL import Image

        path = self.files[self._next % len(self.files)]
        self._next += 1
        if path.suffix.lower() == ".wsq":
            import wsq  # noqa: F401  (registers the WSQ plugin with Pillow)
        with Image.open(path) as img:
            return np.asarray(img.convert("L"))


# -- the emulated module ---------------------------------------------------------

class ZfmEmulator:
    """One emulated module on a pty; `port_path` is what the driver opens."""

    def __init__(self, source: str = "synthetic", *, seed: int = 0, person: int = 0,
                 baud: int = 57600, pace: bool = False, packet_size: int = 128,
                 address: int = codec.DEFAULT_ADDRESS, password: int = 0,
                 prodinfo: bool = True, faults: Faults | None = None,
                 fault_seed: int | None = None):
        if packet_size not in codec.PACKET_SIZES.values():
            raise ValueError(f"packet_size {packet_size} (must be 32, 64, 128 or 256)")
        self.source = (SyntheticSource(seed, person) if source in ("", "synthetic")
                       else FolderSource(source))
        self.seed, self.baud, self.pace = seed, baud, pace
        self.packet_size, self.address, self.password = packet_size, address, password
        self.prodinfo = prodinfo
        self.faults = faults or Faults()
        self.finger = 0
        self.image_buffer: np.ndarray | None = None  # what GenImg put there
        self.last_image: np.ndarray | None = None  # what the last UpImage sent
        self.uploads = 0
        self.commands: list[int] = []  # instruction codes received, in order
        self.answered = 0
        self._verified = password == 0
        self._rng = random.Random(seed if fault_seed is None else fault_seed)
        self._reader = codec.PacketReader()
        self._line_free_at = 0.0
        self._power_on_pending = bool(self.faults.poweron)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: np.ndarray | None = None  # prepared by set_finger()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        os.set_blocking(self.master_fd, False)
        self.port_path = os.ttyname(self.slave_fd)

    @classmethod
    def from_params(cls, params: dict, parsed: SensorUrl) -> "ZfmEmulator":
        address = parsed.get_int("address", codec.DEFAULT_ADDRESS)
        password = parsed.get_int("password", 0)
        return cls(
            params.get("source", "synthetic"),
            seed=parsed.get_int("seed", 0),
            person=parsed.get_int("person", 0),
            baud=parsed.get_int("baud", 57600),
            pace=bool(parsed.get_int("pace", 0)),
            packet_size=parsed.get_int("packet_size", 128),
            address=parsed.get_int("module_address", address),
            password=parsed.get_int("module_password", password),
            prodinfo=bool(parsed.get_int("prodinfo", 1)),
            faults=Faults.parse(params.get("faults")),
            fault_seed=parsed.get_int("fault_seed", parsed.get_int("seed", 0)),
        )

    # -- life cycle ---------------------------------------------------------
    def start(self) -> "ZfmEmulator":
        self._thread = threading.Thread(target=self._run, name="zfm-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self.master_fd, self.slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master_fd = self.slave_fd = -1

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def set_finger(self, finger: int) -> None:
        """Out of band: which finger the officer is capturing (FGP 0-10).

        The image is prepared here, outside the protocol, so that generating
        a synthetic print never delays an answer beyond the driver's deadline.
        """
        image = fit_to_module(self.source.next_image(int(finger)))
        with self._lock:
            self.finger = int(finger)
            self._pending = image

    def _take_image(self) -> np.ndarray:
        with self._lock:
            image, self._pending = self._pending, None
        return image if image is not None else fit_to_module(self.source.next_image(self.finger))

    # -- the loop -----------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.master_fd], [], [], 0.05)
                if not ready:
                    continue
                try:
                    data = os.read(self.master_fd, 4096)
                except BlockingIOError:
                    continue
                except OSError as exc:  # EIO: no one has the slave open
                    if exc.errno == errno.EIO:
                        time.sleep(0.01)
                        continue
                    raise
                arrived = time.monotonic()
                self._reader.feed(data)
                while not self._stop.is_set():
                    try:
                        packet = self._reader.next_packet()
                    except codec.CodecChecksumError:
                        self._answer(codec.ack(codec.ERR_RECEIVE, address=self.address))
                        continue
                    except codec.CodecFramingError:
                        continue
                    if packet is None:
                        break
                    # the command took its wire time to arrive on a real line
                    self._line_free_at = max(self._line_free_at, arrived) + (
                        packet.wire_size * 10 / self.baud if self.pace else 0)
                    self._handle(packet)
        except BaseException as exc:  # surfaced to tests through .error
            if not self._stop.is_set():
                log.exception("emulator stopped")
                self.error = exc

    def _handle(self, packet: codec.Packet) -> None:
        if packet.address != self.address or packet.pid != codec.PID_COMMAND:
            return  # a real module ignores packets not meant for it
        code, params = packet.payload[0], packet.payload[1:]
        self.commands.append(code)
        if 0 <= self.faults.silent <= self.answered:
            return
        self.answered += 1
        reply = lambda c, values=b"": self._answer(  # noqa: E731
            codec.ack(c, values, address=self.address))
        if code == codec.VFY_PWD:
            ok = len(params) == 4 and struct.unpack(">I", params)[0] == self.password
            self._verified = self._verified or ok
            return reply(codec.OK if ok else codec.WRONG_PASSWORD)
        if not self._verified:
            return reply(codec.PASSWORD_FIRST)
        if code == codec.READ_SYS_PARA:
            size_code = {v: k for k, v in codec.PACKET_SIZES.items()}[self.packet_size]
            return reply(codec.OK, struct.pack(">HHHHIHH", 0, 0x0009, 1000, 3, self.address,
                                               size_code, self.baud // 9600))
        if code == codec.READ_PROD_INFO:
            if not self.prodinfo:
                return reply(codec.UNSUPPORTED)
            return reply(codec.OK, b"".join([
                b"ZFM-EMULATOR".ljust(16, b"\0"), b"EMU1", f"{self.seed:08d}"[-8:].encode(),
                bytes([1, 0]), b"EMUOPT".ljust(8, b"\0"),
                struct.pack(">HHHH", WIDTH, HEIGHT, 512, 1000)]))
        if code == codec.GEN_IMG:
            if self.faults.nofinger:
                if self.faults.nofinger > 0:
                    self.faults.nofinger -= 1
                return reply(codec.NO_FINGER)
            self.image_buffer = self._take_image()
            return reply(codec.OK)
        if code == codec.UP_IMAGE:
            if self.image_buffer is None:
                return reply(codec.UP_IMAGE_FAIL)
            return self._upload(self.image_buffer)
        if code == codec.IMG2TZ:  # consumes the image buffer, as the real module does
            self.image_buffer = np.zeros((HEIGHT, WIDTH), np.uint8)
            return reply(codec.OK)
        if code in (codec.HANDSHAKE, codec.SET_SYS_PARA):
            return reply(codec.OK)
        if code == codec.GET_ECHO:
            return reply(0x55)
        if code == codec.TEMPLATE_NUM:
            return reply(codec.OK, b"\x00\x00")
        return reply(codec.UNSUPPORTED)

    def _upload(self, image: np.ndarray) -> None:
        head = codec.ack(codec.OK, address=self.address)
        body = bytearray(b"".join(codec.data_packets(
            codec.pack_nibbles(image), self.packet_size, self.address)))
        faults = self.faults
        for name in ("flip", "drop", "dup"):
            if getattr(faults, name) > 0:
                setattr(faults, name, getattr(faults, name) - 1)
                at = (self._rng.randrange(len(body)) if faults.at is None
                      else faults.at % len(body))
                if name == "flip":
                    body[at] ^= 1 << self._rng.randrange(8)
                elif name == "drop":
                    del body[at]
                else:
                    body.insert(at, body[at])
        self.last_image = image.copy()
        self.uploads += 1
        if faults.stall > 0:
            stall, faults.stall = faults.stall, 0.0
            half = len(body) // 2
            self._answer(head + bytes(body[:half]))
            self._sleep(stall)
            self._line_free_at = max(self._line_free_at, time.monotonic())
            self._write(bytes(body[half:]))
        else:
            self._answer(head + bytes(body))

    # -- the line -----------------------------------------------------------
    def _answer(self, frames: bytes) -> None:
        prefix = b""
        if self._power_on_pending:
            self._power_on_pending = False
            prefix += bytes([codec.POWER_ON_BYTE])
        if self.faults.garbage:
            # line noise, any byte: a false header in it costs the driver a
            # checksum error and a rescan, or at worst one retry
            prefix += self._rng.randbytes(self.faults.garbage)
        wait, self.faults.late = self.faults.delay + self.faults.late, 0.0
        if wait:
            self._sleep(wait)
            self._line_free_at = max(self._line_free_at, time.monotonic())
        self._write(prefix + frames)

    def _write(self, data: bytes) -> None:
        """Write `data`, paced at the baud rate by total elapsed time (no drift)."""
        if not self.pace:
            self._write_all(data)
            return
        byte_s = 10.0 / self.baud
        start = max(time.monotonic(), self._line_free_at)
        chunk = max(1, int(PACE_SLICE_S / byte_s))
        for i in range(0, len(data), chunk):
            piece = data[i:i + chunk]
            # a byte reaches the host when its stop bit is through
            self._sleep_until(start + (i + len(piece)) * byte_s)
            self._write_all(piece)
        self._line_free_at = start + len(data) * byte_s

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                n = os.write(self.master_fd, view)
                view = view[n:]
            except BlockingIOError:  # the host is not reading: wait, stay stoppable
                select.select([], [self.master_fd], [], 0.05)

    def _sleep_until(self, when: float) -> None:
        while not self._stop.is_set():
            left = when - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def _sleep(self, seconds: float) -> None:
        self._sleep_until(time.monotonic() + seconds)


class EmulatedZfmSensor(ZfmSensor):
    """The real ZfmSensor driver talking to a ZfmEmulator over a pty."""

    interface = "emulated"
    usb_ids = ()  # a pseudo-terminal, not a USB device

    def __init__(self, port, *, emulator: ZfmEmulator, **options):
        self.emulator = emulator
        super().__init__(port, **options)

    @classmethod
    def from_url(cls, parsed: SensorUrl) -> "EmulatedZfmSensor":
        options = cls.options_from_url(parsed)
        try:
            emulator = ZfmEmulator.from_params(parsed.params, parsed)
        except ValueError as exc:
            raise hal.SensorNotFound(f"bad emulator URL {parsed.raw!r}: {exc}") from exc
        emulator.start()
        try:
            port = open_port(emulator.port_path, options["baud"])
            return cls(port, emulator=emulator, port_name=emulator.port_path, **options)
        except BaseException:
            emulator.stop()
            raise

    def _capture(self, request: CaptureRequest) -> hal.FingerImage:
        # the finger being presented is known out of band: tell the module
        self.emulator.set_finger(int(request.finger_position))
        return super()._capture(request)

    @property
    def last_image(self) -> np.ndarray | None:
        """The image the emulator served last (what the driver must have decoded)."""
        return self.emulator.last_image

    def _close_internal(self) -> None:
        try:
            super()._close_internal()
        finally:
            self.emulator.stop()
