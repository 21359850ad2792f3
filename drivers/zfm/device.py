"""The ZFM/R30x/R503/AS608 driver over pyserial.

    zfm:///dev/ttyUSB0?baud=57600&address=0xFFFFFFFF&password=0&timeout=2
    zfm://loop://              (any pyserial URL works as the path)
    spy+zfm:///dev/ttyUSB0     (log every frame at debug level, no image bytes)

URL parameters: `baud` (9600 x N, default 57600), `address` (default
0xFFFFFFFF), `password` (default 0), `timeout` (seconds a single answer may
take, default 2), `retries` (of a whole exchange after a checksum or framing
error, default 3), `poll` (seconds between GenImg polls, default 0.1),
`prodinfo` (1: ask ReadProdInfo for the geometry, default 1), `width`/`height`
(force the image geometry when the module cannot say).

Every exchange has its own deadline, so a silent sensor gives CaptureTimeout
(or SensorNotFound when opening), never a hang. The input is flushed before
each command, answers are parsed by header and length (the power-on 0x55 and
stale bytes are skipped), checksums are always verified.
"""

from __future__ import annotations

import errno
import logging
import struct
import time

import numpy as np

from fpagent import hal
from fpagent.hal.driver import CaptureRequest, Sensor, SensorUrl
from fpagent.drivers.zfm import codec
from fpagent.drivers.zfm.ids import USB_IDS
from fpagent.drivers.zfm.spy import FrameSpy

log = logging.getLogger(__name__)

DEFAULT_BAUD = 57600
POLL_SLICE_S = 0.05  # longest a single read blocks; deadlines are checked between reads
DEFAULT_GEOMETRY = (256, 288)  # ZFM-20 / R30x
# image bytes (4 bits per pixel) -> (width, height) of the modules we know
KNOWN_GEOMETRIES = {256 * 288 // 2: (256, 288), 192 * 192 // 2: (192, 192)}
MAX_IMAGE_BYTES = 512 * 512 // 2


def open_port(path: str, baud: int):
    """Open a serial port (or any pyserial URL) exclusively, mapping errors to hal's."""
    import serial

    if not path:
        raise hal.SensorNotFound("no serial port given", "Put the port in the URL, e.g. zfm:///dev/ttyUSB0.")
    try:
        return serial.serial_for_url(path, baudrate=baud, timeout=POLL_SLICE_S,
                                     write_timeout=2.0, exclusive=True)
    except serial.SerialException as exc:
        code = getattr(exc, "errno", None)
        text = str(exc)
        if code in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
            raise hal.SensorBusy(f"{path} is in use by another program") from exc
        if code == errno.EACCES:
            raise hal.SensorNotFound(
                f"no permission to open {path}",
                "Add the service user to the dialout group or install the udev rules.") from exc
        raise hal.SensorNotFound(f"cannot open {path}: {text}") from exc
    except ValueError as exc:  # bad URL or parameter for pyserial
        raise hal.SensorNotFound(f"cannot open {path}: {exc}") from exc


class ZfmSensor(Sensor):
    """One open EF01 module. Opening does the handshake and reads its parameters."""

    interface = "zfm"
    usb_ids = tuple(USB_IDS)

    def __init__(self, port, *, port_name: str = "", baud: int = DEFAULT_BAUD,
                 address: int = codec.DEFAULT_ADDRESS, password: int = 0,
                 timeout: float = 2.0, retries: int = 3, poll_interval: float = 0.1,
                 prodinfo: bool = True, geometry: tuple[int, int] | None = None,
                 spy: bool = False, url: str = ""):
        super().__init__(url)
        self._port = port
        self.port_name = port_name or getattr(port, "port", "") or ""
        self.baud = baud
        self.address = address
        self.password = password
        self.timeout = timeout
        self.retries = retries
        self.poll_interval = poll_interval
        self._ask_prodinfo = prodinfo
        self._forced_geometry = geometry
        self._reader = codec.PacketReader()
        self._spy = FrameSpy(self.port_name) if spy else None
        self.params: dict = {}
        self.product: dict = {}
        self.packet_size = 128
        self.last_upload: dict = {}
        try:
            self._connect()
        except BaseException:
            self.close()  # closes the port; a sensor that never opened is not left "unclosed"
            raise

    # -- construction ---------------------------------------------------
    @staticmethod
    def options_from_url(parsed: SensorUrl) -> dict:
        baud = parsed.get_int("baud", DEFAULT_BAUD)
        if baud % 9600 or not 9600 <= baud <= 115200:
            raise hal.SensorNotFound(
                f"baud {baud} is not supported",
                "ZFM modules run at 9600 x N baud, N = 1..12 (57600 is the factory default).")
        width, height = parsed.get_int("width", 0), parsed.get_int("height", 0)
        return dict(
            baud=baud,
            address=parsed.get_int("address", codec.DEFAULT_ADDRESS),
            password=parsed.get_int("password", 0),
            timeout=parsed.get_float("timeout", 2.0),
            retries=parsed.get_int("retries", 3),
            poll_interval=parsed.get_float("poll", 0.1),
            prodinfo=bool(parsed.get_int("prodinfo", 1)),
            geometry=(width, height) if width and height else None,
            spy=parsed.spy,
            url=parsed.raw,
        )

    @classmethod
    def from_url(cls, parsed: SensorUrl) -> "ZfmSensor":
        options = cls.options_from_url(parsed)
        port = open_port(parsed.path, options["baud"])
        return cls(port, port_name=parsed.path, **options)

    def _connect(self) -> None:
        """Handshake and parameters; a module that cannot do them is not found."""
        try:
            self._handshake_and_parameters()
        except hal.CaptureTimeout as exc:
            raise hal.SensorNotFound(
                f"no answer from {self.port_name} at {self.baud} baud, address 0x{self.address:08X}",
                "Check the cable (TX/RX crossed?), power, baud rate and module address; on a "
                "Raspberry Pi make sure no serial console runs on that UART.") from exc
        except hal.TransportError as exc:
            raise hal.SensorNotFound(
                f"garbled answers from {self.port_name}: {exc.args[0]}",
                "The baud rate is probably wrong, or the cable is bad.") from exc

    def _handshake_and_parameters(self) -> None:
        """VfyPwd (also our handshake), ReadSysPara, optionally ReadProdInfo."""
        ack = self._command(codec.VFY_PWD, struct.pack(">I", self.password))
        if ack.code == codec.WRONG_PASSWORD:
            raise hal.SensorNotFound(
                f"the sensor on {self.port_name} refused the password",
                "Put the module's password in the URL (password=...).")
        self._check(ack, "VfyPwd")
        ack = self._command(codec.READ_SYS_PARA, answer_size=17)
        if ack.code == codec.OK:
            (status, system_id, capacity, security, address, size_code,
             baud_n) = struct.unpack(">HHHHIHH", ack.payload[1:17])
            self.params = dict(status=status, system_id=system_id, capacity=capacity,
                               security_level=security, address=address,
                               packet_size_code=size_code, baud_n=baud_n)
            self.packet_size = codec.PACKET_SIZES.get(size_code, 128)
        else:  # R308 has no ReadSysPara: keep the factory packet size
            log.info("ReadSysPara not supported (0x%02X); assuming 128-byte packets",
                     ack.code or 0)
        if self._ask_prodinfo:
            self._read_prodinfo()

    def _read_prodinfo(self) -> None:
        try:
            ack = self._command(codec.READ_PROD_INFO, timeout=min(self.timeout, 0.5), retries=1,
                                answer_size=47)
        except (hal.CaptureTimeout, hal.TransportError):
            return  # older modules answer not at all or garbled: geometry from the bytes
        if ack.code != codec.OK:
            return
        p = ack.payload[1:]
        text = lambda b: b.split(b"\0")[0].decode("ascii", "replace").strip()  # noqa: E731
        width, height, template_size, db_size = struct.unpack(">HHHH", p[38:46])
        self.product = dict(model=text(p[0:16]), batch=text(p[16:20]), serial=text(p[20:28]),
                            hardware=f"{p[28]}.{p[29]}", sensor=text(p[30:38]), width=width,
                            height=height, template_size=template_size, database_size=db_size)

    # -- hal hooks --------------------------------------------------------
    def _info_internal(self) -> hal.SensorInfo:
        width, height = self._expected_geometry()
        return hal.SensorInfo(
            interface=self.interface,
            model=self.product.get("model") or "ZFM / R30x (EF01 protocol)",
            serial_number=self.product.get("serial", ""),
            firmware=self.product.get("hardware", ""),
            image_width=width,
            image_height=height,
            ppi=500,
            port=self.port_name,
            baud=self.baud,
            extra=dict(packet_size=self.packet_size, address=f"0x{self.address:08X}",
                       **{k: v for k, v in self.params.items() if k != "address"},
                       **({"sensor": self.product["sensor"]} if self.product else {})),
        )

    def _capture(self, request: CaptureRequest) -> hal.FingerImage:
        self._wait_for_finger(request.deadline, request.progress)
        pixels = self._upload_image(request.progress)
        request.progress("done", 1, 1)
        return hal.FingerImage(pixels=pixels, ppi=500, sensor_id=self.info().sensor_id)

    def _close_internal(self) -> None:
        self._port.close()

    # -- capture steps -----------------------------------------------------
    def _wait_for_finger(self, deadline: float, progress: hal.Progress) -> None:
        """Poll GenImg until the module has an image; NoFinger at `deadline`."""
        polls = 0
        while True:
            ack = self._command(codec.GEN_IMG)
            if ack.code == codec.OK:
                return
            if ack.code not in (codec.NO_FINGER, codec.IMAGE_FAIL):
                self._check(ack, "GenImg")
            polls += 1
            progress("waiting", polls, 0)
            if time.monotonic() + self.poll_interval >= deadline:
                raise hal.NoFinger(f"no finger on the sensor after {polls} polls")
            time.sleep(self.poll_interval)

    def _expected_geometry(self) -> tuple[int, int]:
        if self._forced_geometry:
            return self._forced_geometry
        if self.product.get("width") and self.product.get("height"):
            return self.product["width"], self.product["height"]
        return DEFAULT_GEOMETRY

    def _geometry_for(self, nbytes: int) -> tuple[int, int]:
        """Geometry from the bytes actually received (never hard-coded)."""
        width, height = self._expected_geometry()
        if width * height == 2 * nbytes:
            return width, height
        if nbytes in KNOWN_GEOMETRIES:
            return KNOWN_GEOMETRIES[nbytes]
        raise hal.FramingError(
            f"received {nbytes} image bytes, which is no known sensor geometry",
            "Give the geometry in the URL (width=...&height=...) or check the cable.")

    def wire_time(self, nbytes: int) -> float:
        return nbytes * 10.0 / self.baud

    def _upload_image(self, progress: hal.Progress) -> np.ndarray:
        """UpImage with bounded retries of the whole upload on wire errors."""
        width, height = self._expected_geometry()
        total = width * height // 2
        packets = -(-total // self.packet_size)
        wire_bytes = 2 * codec.OVERHEAD + 2 + packets * codec.OVERHEAD + total
        budget = self.timeout + 1.5 * self.wire_time(wire_bytes)
        last_error: hal.TransportError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                log.warning("image upload failed (%s); retry %d of %d",
                            last_error, attempt, self.retries)
                self._drain_line(time.monotonic() + budget)
            try:
                return self._upload_once(progress, total, time.monotonic() + budget)
            except hal.TransportError as exc:
                last_error = exc
        raise last_error

    def _upload_once(self, progress: hal.Progress, total: int, deadline: float) -> np.ndarray:
        started = time.perf_counter()
        ack = self._exchange_once(codec.UP_IMAGE, b"", time.monotonic() + self.timeout)
        self._check(ack, "UpImage")
        chunks = []
        received = 0
        progress("upload", 0, total)
        while True:
            packet = self._read_packet(min(deadline, time.monotonic() + self.timeout))
            if packet.pid not in (codec.PID_DATA, codec.PID_END):
                raise hal.FramingError(f"unexpected {packet.describe()} during the image upload")
            size = len(packet.payload)
            if size > self.packet_size or (packet.pid == codec.PID_DATA and size != self.packet_size):
                raise hal.FramingError(
                    f"data packet of {size} bytes (packet size is {self.packet_size})")
            chunks.append(packet.payload)
            received += size
            if received > MAX_IMAGE_BYTES:
                raise hal.FramingError(f"image upload longer than {MAX_IMAGE_BYTES} bytes")
            progress("upload", received, max(total, received))
            if packet.pid == codec.PID_END:
                break
        width, height = self._geometry_for(received)
        pixels = codec.unpack_nibbles(b"".join(chunks), width, height)
        self.last_upload = dict(
            image_bytes=received, packets=len(chunks),
            wire_bytes=2 * codec.OVERHEAD + 2 + len(chunks) * codec.OVERHEAD + received,
            seconds=time.perf_counter() - started)
        return pixels

    # -- exchanges ----------------------------------------------------------
    def _command(self, instruction: int, params: bytes = b"", *, timeout: float | None = None,
                 retries: int | None = None, answer_size: int = 0) -> codec.Packet:
        """Send one command and return its acknowledge, retrying on wire errors.

        `answer_size`: payload bytes an OK answer must have; a shorter one is
        a stale answer to an earlier command (a framing error, retried).
        """
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        last_error: hal.SensorError | None = None
        timeouts = 0
        for attempt in range(retries + 1):
            if attempt:
                log.info("%s: %s; retry %d of %d", codec.INSTRUCTIONS.get(instruction, "?"),
                         last_error, attempt, retries)
                self._drain_line(time.monotonic() + timeout)
            try:
                ack = self._exchange_once(instruction, params, time.monotonic() + timeout)
            except hal.TransportError as exc:
                last_error = exc
                continue
            except hal.CaptureTimeout as exc:
                # a command hit by noise is ignored by the module: ask once
                # more, but a silent sensor must not cost retries x timeout
                timeouts += 1
                if timeouts > 1 or attempt == retries:
                    raise
                last_error = exc
                continue
            if ack.code == codec.OK and len(ack.payload) < answer_size:
                last_error = hal.FramingError(
                    f"{len(ack.payload)}-byte answer to {codec.INSTRUCTIONS.get(instruction, '?')}, "
                    f"expected {answer_size}")
                continue
            return ack
        raise last_error

    def _exchange_once(self, instruction: int, params: bytes, deadline: float) -> codec.Packet:
        self._send(instruction, params)
        ack = self._read_packet(deadline)
        if ack.pid != codec.PID_ACK or not ack.payload:
            raise hal.FramingError(f"expected an acknowledge, got {ack.describe()}")
        if ack.code == codec.ERR_RECEIVE:  # our command arrived garbled: worth a retry
            raise hal.TransportError("the sensor received a garbled command (0x01)")
        return ack

    def _send(self, instruction: int, params: bytes) -> None:
        import serial

        frame = codec.command(instruction, params, self.address)
        try:
            self._port.reset_input_buffer()  # stale answers, the power-on 0x55
            self._reader.clear()
            self._port.write(frame)
        except (serial.SerialException, OSError) as exc:
            raise hal.SensorNotFound(f"{self.port_name} went away: {exc}",
                                     "Check that the sensor is still plugged in.") from exc
        if self._spy:
            self._spy.sent(codec.decode(frame))

    def _read_packet(self, deadline: float) -> codec.Packet:
        """Next packet from the line; CaptureTimeout at `deadline` (monotonic)."""
        import serial

        port, reader = self._port, self._reader
        while True:
            packet = reader.next_packet()  # codec errors are hal.TransportError subclasses
            if packet is not None:
                if self._spy:
                    self._spy.received(packet)
                if packet.address != self.address:
                    raise hal.FramingError(
                        f"answer from address 0x{packet.address:08X}, expected 0x{self.address:08X}")
                return packet
            if time.monotonic() >= deadline:
                if reader.buffered:  # a frame began, then silence: bytes were lost
                    raise hal.FramingError(
                        f"incomplete packet from {self.port_name} ({reader.buffered} bytes, "
                        "then nothing)")
                raise hal.CaptureTimeout(
                    f"the sensor on {self.port_name} did not answer in time")
            try:
                want = max(reader.bytes_needed(), port.in_waiting)
                data = port.read(want)
            except (serial.SerialException, OSError) as exc:
                raise hal.SensorNotFound(f"{self.port_name} went away: {exc}",
                                         "Check that the sensor is still plugged in.") from exc
            if data:
                reader.feed(data)

    def _drain_line(self, deadline: float) -> None:
        """Discard input until the line has been quiet a moment (after a wire error)."""
        quiet = max(0.05, self.wire_time(64))
        last_data = time.monotonic()
        while time.monotonic() < deadline:
            if self._port.in_waiting:
                self._port.reset_input_buffer()
                last_data = time.monotonic()
            elif time.monotonic() - last_data >= quiet:
                break
            time.sleep(quiet / 5)
        self._reader.clear()

    @staticmethod
    def _check(ack: codec.Packet, what: str) -> None:
        code = ack.code
        if code == codec.OK:
            return
        message = f"{what}: the sensor answered 0x{code:02X} ({codec.confirmation_message(code)})"
        if code == codec.PASSWORD_FIRST:
            raise hal.SensorRejected(message, "The module has a password; put it in the URL.")
        raise hal.SensorRejected(message)
