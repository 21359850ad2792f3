"""Start and stop a local mosquitto on a free loopback port (demo, bench, tests).

The configuration written here is the one shipped in `systemd/mosquitto/`
(TLS listener, client certificates required and checked against the CA's
revocation list, certificate CN as the user name and the client id, an ACL
confining each appliance to its own agency's and device's topics), with the port and file
paths filled in. Not used on an appliance: there the broker is the agency's.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

from fpagent.devtools.ca import CENTRAL_WORKERS
from fpagent.errors import UserError

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    for name in MOSQUITTO_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
        if os.path.isabs(name) and os.access(name, os.X_OK):
            return name
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def acl_text(root: str = "fpagent", central_cns=CENTRAL_WORKERS) -> str:
    """The broker ACL: each appliance (user = its certificate CN "<ORI>/<device>") only under
    its own agency and device; each central worker (one identity per worker) everything."""
    central = "\n".join(f"""user {cn}
topic read {root}/v1/+/+/submission
topic read {root}/v1/+/+/status
topic read {root}/v1/+/+/result
topic read {root}/v1/+/+/release
topic write {root}/v1/+/+/ack
topic write {root}/v1/+/+/notification
topic write {root}/v1/+/+/command
""" for cn in central_cns)
    return f"""# fpagent broker ACL. The user name is the client certificate's CN
# (use_identity_as_username), and the client id is the user name
# (use_username_as_clientid). An appliance's CN is "<ORI>/<device id>", so
# %u below fills both the agency and the device segment of the topic: an
# appliance may only publish its own submissions, status, release notices and
# command results
# and only read its own acks, notifications and commands, and a device id
# reused by another agency is another identity.

# The reference central responder: one identity per worker (CN "central/worker-<n>").
{central}
# Every appliance: %u is its certificate CN, i.e. "<ORI>/<device id>".
pattern write {root}/v1/%u/submission
pattern write {root}/v1/%u/status
pattern write {root}/v1/%u/result
pattern write {root}/v1/%u/release
pattern read {root}/v1/%u/ack
pattern read {root}/v1/%u/notification
pattern read {root}/v1/%u/command
"""


def conf_text(*, port: int, pki: pathlib.Path, acl_file: pathlib.Path,
              persistence_dir: pathlib.Path, log_file: pathlib.Path | None = None,
              autosave_s: int = 1) -> str:
    lines = [
        "# fpagent development broker (written by fpagent.devtools.broker)",
        "per_listener_settings false",
        "persistence true",
        f"persistence_location {persistence_dir}/",
        f"autosave_interval {autosave_s}",
        "max_queued_messages 100000",
        "max_inflight_messages 64",
        "set_tcp_nodelay true",
        "message_size_limit 16777216",
        f"acl_file {acl_file}",
        "allow_anonymous false",
        f"listener {port} 127.0.0.1",
        f"cafile {pki / 'ca.crt'}",
        f"certfile {pki / 'broker.crt'}",
        f"keyfile {pki / 'broker.key'}",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "tls_version tlsv1.2",
    ]
    if (pki / "ca.crl").exists():
        lines.append(f"crlfile {pki / 'ca.crl'}")
    if os.geteuid() == 0:
        lines.insert(1, "user root")  # run as root in containers/CI; keys are 0600 root
    if log_file:
        lines += [f"log_dest file {log_file}", "log_type error", "log_type warning",
                  "log_type notice", "log_type subscribe", "connection_messages true"]
    else:
        lines += ["log_dest none"]
    return "\n".join(lines) + "\n"


class LocalBroker:
    """A mosquitto child process on 127.0.0.1:<free port>, with TLS and the ACL."""

    def __init__(self, workdir, pki, *, root: str = "fpagent", port: int = 0,
                 central_cns=CENTRAL_WORKERS, autosave_s: int = 1):
        self.autosave_s = autosave_s
        self.workdir = pathlib.Path(workdir)
        self.pki = pathlib.Path(pki)
        self.root = root
        self.port = port or free_port()
        self.central_cns = tuple(central_cns)
        self.proc: subprocess.Popen | None = None
        self.exe = find_mosquitto()
        self.conf = self.workdir / "mosquitto.conf"
        self.log = self.workdir / "mosquitto.log"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        acl = self.workdir / "acl"
        acl.write_text(acl_text(self.root, self.central_cns))
        persist = self.workdir / "persist"
        persist.mkdir(exist_ok=True)
        self.conf.write_text(conf_text(port=self.port, pki=self.pki, acl_file=acl,
                                       persistence_dir=persist, log_file=self.log,
                                       autosave_s=self.autosave_s))

    def start(self, timeout: float = 10.0) -> "LocalBroker":
        if not self.exe:
            raise UserError("mosquitto is not installed; run scripts/dev-setup "
                            "(or apt-get install mosquitto)")
        self.write_config()
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise UserError(f"mosquitto exited at start: {err.strip()} {log.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise UserError(f"mosquitto did not open port {self.port} within {timeout:.0f} s")

    def stop(self, kill: bool = False) -> None:
        """Stop the broker (SIGTERM lets it save its persistence file; kill=True for SIGKILL)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
