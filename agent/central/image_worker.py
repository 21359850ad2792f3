"""Central decodes untrusted images and extracts minutiae in a separate, limited process.

An image inside a submission is hostile input handed to C code (the `wsq`
decoder, Pillow's codecs): one corrupt WSQ byte can make the decoder
segfault, and a crafted image can ask for gigabytes or minutes. So central
never decodes an image itself: `ImageWorker` keeps one child process
(`python -m fpagent.central.image_worker`) that decodes and extracts, with an
address-space limit (RLIMIT_AS), a CPU budget per image (RLIMIT_CPU, raised
before each job) and a wall-clock timeout enforced by central. When the child
dies, runs out of time or memory, `extract` raises `WorkerFailed` with the
reason and the next image starts a fresh child; central itself keeps running.
An image the decoder refuses also retires the child (a C decoder that
failed on crafted bytes may have corrupted its memory without crashing).

The child only ever receives bytes and returns plain numbers: its answer is
length-framed JSON and a raw minutiae array, never a pickle, so a decoder
exploited by an image cannot hand central an object to run.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

import numpy as np

from fpagent.errors import FpagentError
from fpagent.biometrics.template import MINUTIA_DTYPE, Template
from fpagent.records.transaction_format import TransactionError

log = logging.getLogger("fpagent.central")

_FRAME = struct.Struct(">I")
MAX_IMAGE_BYTES = 4 * 1024 * 1024  # a 500 ppi WSQ finger is 20-60 KiB; PNG a few hundred
MAX_ANSWER_BYTES = 1024 * 1024
MEMORY_MB = 1024  # the child peaks near 400 MB of address space with numba loaded
CPU_S_PER_IMAGE = 20.0
TIMEOUT_S = 60.0
START_TIMEOUT_S = 300.0  # the first start compiles the kernels when their cache is cold


class WorkerFailed(FpagentError):
    """The worker crashed, timed out or ran out of memory on an image; the text says which."""


class WorkerUnavailable(FpagentError, RuntimeError):
    """The worker process does not start: central's own trouble, not the submission's."""


# --------------------------------------------------------------------------- framing


def _write_frame(fh, payload: bytes) -> None:
    fh.write(_FRAME.pack(len(payload)) + payload)


def _read_exact_fd(fd: int, n: int, deadline: float) -> bytes:
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            raise TimeoutError
        chunk = os.read(fd, n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


def _read_frame_fd(fd: int, deadline: float, limit: int) -> bytes:
    (n,) = _FRAME.unpack(_read_exact_fd(fd, _FRAME.size, deadline))
    if n > limit:
        raise ValueError(f"frame of {n} bytes over the limit of {limit}")
    return _read_exact_fd(fd, n, deadline)


def _read_frame_stream(fh, limit: int) -> bytes | None:
    head = fh.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (n,) = _FRAME.unpack(head)
    if n > limit:
        return None
    data = fh.read(n)
    return data if len(data) == n else None


# --------------------------------------------------------------------------- parent side


def _signal_name(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class ImageWorker:
    """One child process that decodes and extracts; restarted after any failure. Thread-safe."""

    def __init__(self, *, memory_mb: int = MEMORY_MB, cpu_s: float = CPU_S_PER_IMAGE,
                 timeout_s: float = TIMEOUT_S, start_timeout_s: float = START_TIMEOUT_S):
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.failures = 0
        self.starts = 0

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fpagent.central.image_worker", str(int(self.memory_mb)),
             repr(float(self.cpu_s))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self.starts += 1
        try:
            ready = _read_frame_fd(proc.stdout.fileno(), time.monotonic() + self.start_timeout_s,
                                   1024)
        except (TimeoutError, EOFError, ValueError):
            self._kill(proc)
            raise WorkerUnavailable(f"the image worker did not start "
                                    f"({_signal_name(proc.returncode)})") from None
        if ready != b"ready":
            self._kill(proc)
            raise WorkerUnavailable("the image worker did not start")
        return proc

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for fh in (proc.stdin, proc.stdout):
            try:
                fh.close()
            except OSError:
                pass

    def extract(self, cga: str, data: bytes, ppi: int) -> Template:
        """Decode one Type-14 image and extract its template in the worker.

        Raises TransactionError when the image does not decode or holds no
        usable print (the worker survived), WorkerFailed when the worker did not.
        """
        if len(data) > MAX_IMAGE_BYTES:
            raise TransactionError(f"image of {len(data)} bytes is over {MAX_IMAGE_BYTES}")
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            try:
                _write_frame(proc.stdin, json.dumps({"cga": str(cga)[:16], "ppi": int(ppi)}).encode())
                _write_frame(proc.stdin, bytes(data))
                proc.stdin.flush()
                deadline = time.monotonic() + self.timeout_s
                head = json.loads(_read_frame_fd(proc.stdout.fileno(), deadline, 4096))
                if head.get("status") == "ok":
                    raw = _read_frame_fd(proc.stdout.fileno(), deadline, MAX_ANSWER_BYTES)
                    return _template_from(head, raw)
            except (BrokenPipeError, EOFError, TimeoutError, ValueError, OSError) as exc:
                timed_out = isinstance(exc, TimeoutError)
                self._kill(proc)
                self._proc = None
                self.failures += 1
                why = (f"timed out after {self.timeout_s:.0f} s" if timed_out
                       else f"died ({_signal_name(proc.returncode)})")
                raise WorkerFailed(f"image decoder worker {why}") from None
            if head.get("status") == "undecodable":
                # a decoder that failed on hostile bytes may have corrupted its own memory:
                # the next image gets a fresh process
                self._kill(proc)
                self._proc = None
        if head.get("status") == "limit":
            self.failures += 1
            raise WorkerFailed(f"image decoder worker hit its limit: {str(head.get('detail'))[:120]}")
        raise TransactionError(str(head.get("detail", "image not usable"))[:200])

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                try:
                    self._proc.stdin.close()  # the child exits on end of input
                    self._proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                self._kill(self._proc)
                self._proc = None


def _template_from(head: dict, raw: bytes) -> Template:
    """A Template from the worker's plain answer (checked: the worker read hostile bytes)."""
    if len(raw) % MINUTIA_DTYPE.itemsize:
        raise ValueError("minutiae bytes are not whole records")
    minutiae = np.frombuffer(raw, dtype=MINUTIA_DTYPE).copy()
    numbers = [head.get(k) for k in ("width", "height", "ppi", "quality")]
    if not all(type(v) is int and 0 <= v <= 0xFFFF for v in numbers):
        raise ValueError("worker answer has bad numbers")
    return Template(minutiae, width=numbers[0], height=numbers[1], ppi=numbers[2],
                    quality=numbers[3])


# --------------------------------------------------------------------------- child side


def _limit(memory_mb: int) -> None:
    import resource
    limit = int(memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no image in a core file


def _cpu_budget(seconds: float) -> None:
    """Allow this much more CPU time from now (SIGXCPU kills the worker past it)."""
    import resource
    used = resource.getrusage(resource.RUSAGE_SELF)
    now = used.ru_utime + used.ru_stime
    resource.setrlimit(resource.RLIMIT_CPU, (int(now + seconds) + 1, resource.RLIM_INFINITY))


def _warm_up() -> None:
    """Load (or compile) the kernels before the first image, so its timeout is the image's."""
    from fpagent.biometrics.extraction import extract
    y, x = np.mgrid[0:200, 0:200]
    img = np.clip(128 + 90 * np.sin((x * 0.8 + y * 0.6) * 0.7), 0, 255).astype(np.uint8)
    try:
        extract(img, ppi=500)
    except Exception:  # noqa: BLE001 - a pattern without a print is fine: the kernels ran
        pass


def _serve(memory_mb: int, cpu_s: float) -> int:
    from fpagent.biometrics.extraction import extract
    from fpagent.records.images import decompress_image

    _limit(memory_mb)
    _warm_up()
    out = sys.stdout.buffer
    inp = sys.stdin.buffer
    sys.stdout = sys.stderr  # nothing but frames on the answer pipe
    _write_frame(out, b"ready")
    out.flush()
    while True:
        head = _read_frame_stream(inp, 4096)
        data = _read_frame_stream(inp, MAX_IMAGE_BYTES) if head is not None else None
        if data is None:
            return 0
        job = json.loads(head)
        _cpu_budget(cpu_s)
        try:
            try:
                pixels = decompress_image(job["cga"], data)
            except Exception as exc:  # noqa: BLE001
                answer = {"status": "undecodable", "detail": f"{type(exc).__name__}: {exc}"[:200]}
                _write_frame(out, json.dumps(answer).encode())
                out.flush()
                continue
            template = extract(pixels, ppi=int(job["ppi"]) or 500).template
            answer = {"status": "ok", "width": int(template.width),
                      "height": int(template.height), "ppi": int(template.ppi),
                      "quality": int(template.quality)}
            minutiae = np.ascontiguousarray(template.minutiae, dtype=MINUTIA_DTYPE).tobytes()
        except MemoryError:
            answer, minutiae = {"status": "limit", "detail": "out of memory"}, b""
        except Exception as exc:  # noqa: BLE001 - any decode/extract error: not usable
            answer, minutiae = {"status": "unusable",
                                "detail": f"{type(exc).__name__}: {exc}"[:200]}, b""
        _write_frame(out, json.dumps(answer).encode())
        if answer["status"] == "ok":
            _write_frame(out, minutiae)
        out.flush()


if __name__ == "__main__":
    raise SystemExit(_serve(int(sys.argv[1]), float(sys.argv[2])))
