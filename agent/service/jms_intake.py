"""The service's JMS intake: the spool folder watched, and a loopback endpoint for a JMS that pushes.

`SpoolPart` files each booking record a JMS renames into `[jms] spool_dir`
(fpagent.booking.spool: ready/ or rejected/, a result file either way).
`[jms] listen` (127.0.0.1:PORT or unix:/path) adds an HTTP endpoint:
`POST /booking-records` with one record as the body writes it into the
spool exactly as a JMS would (temporary name, rename) and files it at once,
answering with the same result JSON (200 accepted, 422 rejected, 413/400
for a body that is not a record). Only loopback: the JMS runs on the jail's
side of the appliance's own network, never the world.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import pathlib
import socketserver
import threading
import uuid

from fpagent.booking import intake, spool
from fpagent.records.booking_record import BookingRecordError
from fpagent.service.journal import log_event
from fpagent.service.parts import Part


class SpoolPart(Part):
    """Files new booking records every `period` seconds; serves the endpoint when configured."""

    name = "jms"

    def __init__(self, cfg, period: float = 2.0):
        super().__init__(period)
        self.cfg = cfg
        self.spool_dir = pathlib.Path(cfg.jms.spool_dir)
        self.spool_dir.mkdir(mode=0o770, parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the spool part and the endpoint file records one at a time
        self.counts = {"accepted": 0, "rejected": 0}
        self.server = None
        if cfg.jms.listen:
            self.server = make_server(cfg.jms.listen, self.push)
            threading.Thread(target=self.server.serve_forever, name="fpagent-jms-endpoint",
                             daemon=True).start()

    def step(self) -> None:
        with self._lock:
            filed = spool.accept_new(self.spool_dir, self.cfg)
        for one in filed:
            self.counts[one.status] += 1
            log_event(logging.INFO, "booking record filed", record=one.name, status=one.status)

    def push(self, body: bytes) -> tuple[int, dict]:
        """One record pushed over the endpoint: spooled, filed, answered."""
        try:
            intake.parse_record(body)
        except BookingRecordError as exc:
            return 400 if len(body) <= intake.MAX_RECORD_BYTES else 413, {
                "schema": "fpagent-booking-result/1", "status": "rejected", "findings": [str(exc)]}
        name = f"pushed-{uuid.uuid4().hex[:12]}"
        with self._lock:
            spool.write_durably(self.spool_dir / f"{name}.json", body)
            filed = spool.file_one(self.spool_dir, self.spool_dir / f"{name}.json", self.cfg,
                                   _profile(self.cfg))
        self.counts[filed.status] += 1
        log_event(logging.INFO, "booking record filed", record=name, status=filed.status, via="endpoint")
        return (200 if filed.status == "accepted" else 422), filed.result

    def facts(self) -> dict:
        return {"jms_accepted": self.counts["accepted"], "jms_rejected": self.counts["rejected"]}

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            if isinstance(self.server, _UnixServer):
                try:
                    os.unlink(self.server.server_address)
                except OSError:
                    pass


def _profile(cfg):
    from fpagent.records.profile import load_profile
    return load_profile(cfg.transaction.profile)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "fpagent-jms/1"
    timeout = 10  # a client that stalls mid-request is dropped

    def _answer(self, code: int, doc: dict) -> None:
        body = (json.dumps(doc, sort_keys=True) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 - http.server's name
        if self.path.rstrip("/") != "/booking-records":
            return self._answer(404, {"status": "error", "findings": ["POST to /booking-records"]})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._answer(411, {"status": "error", "findings": ["Content-Length is required"]})
        if not 0 < length <= intake.MAX_RECORD_BYTES:
            return self._answer(413, {"status": "rejected",
                                      "findings": [f"a booking record is 1-{intake.MAX_RECORD_BYTES} bytes"]})
        code, doc = self.server.push(self.rfile.read(length))
        self._answer(code, doc)

    def log_message(self, format, *args):  # noqa: A002 - records' names and people stay out of logs
        pass


class _TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("local", 0)  # http.server wants a (host, port) client address


def make_server(listen: str, push):
    """The endpoint's server on 127.0.0.1:PORT or a UNIX socket (mode 0660)."""
    if listen.startswith("unix:"):
        path = listen[5:]
        if os.path.exists(path):
            os.unlink(path)
        server = _UnixServer(path, _Handler)
        os.chmod(path, 0o660)
    else:
        host, _, port = listen.rpartition(":")
        if host != "127.0.0.1":
            raise ValueError("the JMS endpoint listens on loopback only")
        server = _TcpServer((host, int(port)), _Handler)
    server.timeout = 10
    server.push = push
    return server

