"""A real mosquitto on loopback for the link, central, chaos and security tests.

`broker` starts `mosquitto -c <tmp conf>` on a free 127.0.0.1 port with the
project's TLS listener and ACL (fpagent.devtools.broker, same as systemd/mosquitto),
and stops it. Tests skip with a clear reason only when mosquitto is not
installed (scripts/dev-setup installs it). Nothing here is mocked: real TLS
client certificates, real envelopes and signatures, real SQLite files.
"""

from __future__ import annotations

import json
import pathlib
import socket
import threading
import time

import pytest

from fpagent import config as config_mod
from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.central.responder import Central
from fpagent.central.screening import ScreenRejected, Screening
from fpagent.central.registry import register_device_key
from fpagent.central.store import CentralKeys
from fpagent.devtools.broker import LocalBroker, find_mosquitto
from fpagent.devtools.ca import CENTRAL_WORKERS, central_cn, device_cn, make_dev_pki
from fpagent.link.connection import Link
from fpagent.storage.store import Store

ORI = "XX0000000"
ROOT_DIR = pathlib.Path(__file__).resolve().parent.parent
DEVICES = ("booking-01", "booking-02")

needs_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None,
    reason="mosquitto is not installed (scripts/dev-setup or apt-get install mosquitto)")


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Pki:
    """Certificates (dev CA) and keys: central's, and one signing key per device."""

    def __init__(self, root: pathlib.Path):
        """Create everything under `root`, or load it when it is already there (child processes)."""
        self.root = root = pathlib.Path(root)
        self.certs = make_dev_pki(root / "certs", clients=(
            *(device_cn(ORI, d) for d in DEVICES), *CENTRAL_WORKERS, "intruder"))
        self.central_dir = root / "central-keys"
        if not (self.central_dir / keys.CENTRAL_SIGNING_KEY).exists():
            keys.create_central_keys(self.central_dir)
        self.hpke = keys.load_hpke_private(self.central_dir / keys.CENTRAL_HPKE_PRIVATE)
        self.central_signing = keys.load_signing_key(self.central_dir / keys.CENTRAL_SIGNING_KEY)
        self.devices_dir = root / "devices"
        self.devices_dir.mkdir(exist_ok=True)
        self.device_signing = {}
        for d in DEVICES:
            kdir = root / "device-keys" / d
            if not (kdir / keys.DEVICE_SIGNING_KEY).exists():
                keys.create_device_keys(kdir)
            self.device_signing[d] = keys.load_signing_key(kdir / keys.DEVICE_SIGNING_KEY)
            register_device_key(self.devices_dir, ORI, d, self.device_signing[d].public_key())

    def central_keys(self) -> CentralKeys:
        return CentralKeys.load(self.central_dir, self.devices_dir)

    def tls(self, name: str) -> dict:
        """TLS files of a device id of ORI, "central", or any certificate CN.

        "central" is the identity of hand-made test clients that act as central
        (worker 4); responder instances (make_central) use workers 1-3, so the
        two never take each other's client id."""
        cn = device_cn(ORI, name) if name in DEVICES else central_cn(4) if name == "central" else name
        return {"ca_file": str(self.certs / "ca.crt"), "cert_file": str(self.certs / f"{cn}.crt"),
                "key_file": str(self.certs / f"{cn}.key")}


def appliance_config(tmp: pathlib.Path, pki: Pki, port: int, device: str = "booking-01",
                     **mqtt_overrides) -> config_mod.Config:
    tls = pki.tls(device)
    mqtt = {"host": "127.0.0.1", "port": port, "tls": True, "ca_file": tls["ca_file"],
            "cert_file": tls["cert_file"], "key_file": tls["key_file"], "keepalive_s": 5,
            "inflight": 8, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0, "ack_timeout_s": 5.0}
    mqtt.update(mqtt_overrides)
    return config_mod.from_dict({
        "device": {"ori": ORI, "device_id": device, "allow_placeholder": True},  # test agency
        "paths": {"state_dir": str(tmp / f"state-{device}")},
        "store": {"min_free_mb": 1.0},
        "mqtt": mqtt,
        "service": {"status_interval_s": 30.0},
    })


def make_link(cfg, pki: Pki, **kw) -> Link:
    device = cfg.device.device_id
    return Link(cfg, store_factory=lambda: Store(cfg.paths.database(), cfg),
                central_verify_keys=pki.central_signing.public_key(),
                device_signing_key=pki.device_signing[device], **kw)


def json_screen(opened) -> Screening:
    """Screen for small synthetic test payloads (JSON, not a ten-print transaction).

    The link and chaos tests move thousands of bookings; a full transaction
    and matching would only slow them down. Central's real screen (parse +
    match) is exercised by the central and demo tests.
    """
    try:
        doc = json.loads(opened.plaintext)
    except ValueError:
        raise ScreenRejected("malformed-transaction", "test payload is not JSON") from None
    return Screening(tcn=doc["tcn"], criminal_hit=bool(doc.get("criminal")),
                     criminal_record={"sid": "SID-TEST"} if doc.get("criminal") else None,
                     determination=doc.get("determination", "no-match"), level=doc.get("level"),
                     reprint=(("unusable-prints", tuple(doc["unusable"]))
                              if "unusable" in doc else None),
                     tcr=doc.get("tcr", ""))


def seal_test_booking(pki: Pki, device: str, n: int, *, submission_id: str | None = None,
                      **fields) -> tuple[str, str, bytes]:
    tcn = f"TEST{device[-2:]}{n:08d}"
    sid = submission_id or envelope.make_submission_id()
    payload = json.dumps({"tcn": tcn, **fields}).encode()
    env = envelope.seal(payload, device_id=device, ori=ORI, sequence=n,
                        central_public_key=pki.hpke.public(),
                        device_signing_key=pki.device_signing[device], submission_id=sid)
    return sid, tcn, env


def enqueue_bookings(cfg, pki: Pki, count: int, start: int = 0, **fields) -> list[str]:
    device = cfg.device.device_id
    ids = []
    with Store(cfg.paths.database(), cfg) as store:
        for n in range(start, start + count):
            sid, tcn, env = seal_test_booking(pki, device, n, **fields)
            store.outbox.enqueue(sid, tcn, env, {"seq": n})
            ids.append(sid)
    return ids


def make_central(pki: Pki, port: int, db_path, *, worker: int = 1, **kw) -> Central:
    """A central responder instance; each `worker` (1-4) has its own certificate identity."""
    kw.setdefault("screen", json_screen)
    kw.setdefault("immigration_delay_s", 0.2)
    return Central(host="127.0.0.1", port=port, root="fpagent", keys=pki.central_keys(),
                   db_path=db_path, tls=pki.tls(central_cn(worker)), **kw)


class TcpProxy:
    """A loopback TCP proxy the chaos test uses to cut or stall the link mid-publish."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.bytes_forwarded = 0
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.stalled.is_set() and not self._stop.is_set():
                    time.sleep(0.02)  # hold the bytes: a stalled link, not a closed one
                dst.sendall(data)
                self.bytes_forwarded += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        """Drop every connection now (RST-like), wherever the bytes were."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.cuts += 1

    def close(self) -> None:
        self._stop.set()
        self.stalled.clear()
        self.listener.close()
        self.cut()


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path, pki):
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (scripts/dev-setup or apt-get install mosquitto)")
    b = LocalBroker(tmp_path / "broker", pki.certs).start()
    yield b
    b.stop()


# --------------------------------------------------------------------------- child processes
# The chaos test kills the agent and a central instance with SIGKILL, so they
# run as real processes: `python -m tests.mqtt_helpers link|central ...`.


def _child_main(argv=None) -> int:
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("link", "central"))
    parser.add_argument("--pki", required=True)
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default="")
    parser.add_argument("--name", default="")
    parser.add_argument("--worker", type=int, default=1)
    parser.add_argument("--ack-timeout", type=float, default=3.0)
    parser.add_argument("--answers-timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    pki_ = Pki(pathlib.Path(args.pki))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    if args.role == "link":
        cfg = appliance_config(pathlib.Path(args.tmp), pki_, args.port,
                               ack_timeout_s=args.ack_timeout, keepalive_s=2,
                               answers_timeout_s=args.answers_timeout)
        worker = make_link(cfg, pki_).start()
    else:
        worker = make_central(pki_, args.port, args.db, worker=args.worker,
                              client_id=args.name).start()
    print("ready", flush=True)
    while not stop.wait(0.2):
        if getattr(worker, "error", None):
            print(f"died: {worker.error!r}", file=sys.stderr, flush=True)
            return 1
    worker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main())
