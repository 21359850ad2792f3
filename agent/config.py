"""One configuration object, loaded once from TOML and passed down explicitly.

Where it comes from, first match wins: the path given on the command line,
$FPAGENT_CONFIG, /etc/fpagent/agent.toml, else the embedded defaults (a
development set-up under ~/.local/state/fpagent with the emulated sensor).
Every key is checked: an unknown key, a wrong type or a bad value gives one
ConfigError that names the key and says what is wrong.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import pathlib
import re
import tomllib
import typing

from fpagent.errors import ConfigError

SYSTEM_CONFIG = pathlib.Path("/etc/fpagent/agent.toml")


def _default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return str(pathlib.Path(base) / "fpagent")


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return str(pathlib.Path(base) / "fpagent")


@dataclasses.dataclass
class DeviceConfig:
    ori: str = "XX0000000"  # 9-character Originating Agency Identifier
    device_id: str = "booking-01"  # unique within the agency; the certificate CN is "<ori>/<device_id>"
    agency_name: str = "Development County Jail"
    allow_placeholder: bool = False  # demo and test set-ups only: accept the placeholder ORI/DAI


@dataclasses.dataclass
class PathsConfig:
    state_dir: str = dataclasses.field(default_factory=_default_state_dir)
    cache_dir: str = dataclasses.field(default_factory=_default_cache_dir)
    keys_dir: str = ""  # default: <state_dir>/keys
    runtime_dir: str = ""  # live service status (tmpfs /run/fpagent on the appliance); default: <state_dir>/run

    def keys(self) -> pathlib.Path:
        return pathlib.Path(self.keys_dir or pathlib.Path(self.state_dir) / "keys")

    def database(self) -> pathlib.Path:
        return pathlib.Path(self.state_dir) / "agent.sqlite3"

    def runtime(self) -> pathlib.Path:
        """Where the running service publishes its live facts."""
        return pathlib.Path(self.runtime_dir or pathlib.Path(self.state_dir) / "run")


@dataclasses.dataclass
class SensorConfig:
    url: str = "emulated://?source=synthetic&seed=1"
    capture_timeout_s: float = 20.0


@dataclasses.dataclass
class QualityConfig:
    min_score: int = 25  # below this the officer is asked to capture again (NFIQ 2-like scale:
    # on FVC2002 it re-asks for 16% of DB1 (optical) and 51% of DB3 (capacitive) prints)
    max_attempts: int = 3  # captures per finger before accepting the best one


@dataclasses.dataclass
class BookingConfig:
    compression: str = "wsq"  # "wsq" (FBI usual, ~0.75 bpp) or "png" (lossless)
    wsq_bitrate: float = 0.75
    descriptive_fields: list = dataclasses.field(
        default_factory=lambda: ["name", "dob", "sex", "pob", "race", "height", "weight", "eyes", "hair"]
    )  # what the national booking profile requires of the person
    destination: str = "XX0000000"  # DAI: the state bureau / central ORI
    type_of_transaction: str = "CAR"
    recent_gallery_size: int = 2000  # bookings kept in the local "recent" gallery; 0 = off


@dataclasses.dataclass
class TransactionConfig:
    profile: str = "ebts-national"  # booking profile: a shipped name or an overlay file's absolute path


@dataclasses.dataclass
class JmsConfig:
    spool_dir: str = ""  # folder the jail management system drops booking records into ("" = off)
    listen: str = ""  # loopback endpoint for a JMS that pushes: "127.0.0.1:PORT" or "unix:/path" ("" = off)


@dataclasses.dataclass
class EnvelopeConfig:
    suite: str = "x25519"  # or "mlkem768-x25519" (post-quantum hybrid)
    central_public_key: str = ""  # default: <keys_dir>/central-hpke.pub
    central_verify_key: str = ""  # default: <keys_dir>/central-sign.pub (pinned)
    central_verify_key_next: str = ""  # central's next key, pinned too (default: <keys_dir>/central-sign.next.pub if present)
    device_signing_key: str = ""  # default: <keys_dir>/device-sign.key (0600)
    freshness_s: float = 600.0  # messages from central older than this are rejected


@dataclasses.dataclass
class StoreConfig:
    retention_days: float = 30.0  # acknowledged submissions are purged after this
    max_queue_mb: float = 2048.0  # refuse new bookings beyond this queue size
    min_free_mb: float = 200.0  # refuse new bookings below this free disk space


@dataclasses.dataclass
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: the demo starts a local broker on a free port
    root: str = "fpagent"
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive_s: int = 30
    inflight: int = 8
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 60.0
    ack_timeout_s: float = 30.0  # no signed ack by then: publish the submission again
    max_message_bytes: int = 65536  # bigger messages from central are refused
    answers_timeout_s: float = 3600.0  # accepted but an answer missing after this: ask again (0: never); [answers] may set it per question


@dataclasses.dataclass
class AnswersConfig:
    """How long each of central's answers may take, and how the officer is reminded."""

    criminal_history_timeout_s: float = 0.0  # no criminal-history answer after this: ask again (0: [mqtt] answers_timeout_s)
    immigration_timeout_s: float = 0.0  # no immigration answer after this: ask again (0: [mqtt] answers_timeout_s); "under review" is an answer
    ask_again_times: int = 5  # ask central again at most this many times per booking
    reannounce_s: float = 300.0  # an unacknowledged level-1 alert or open detainer is announced again this often (0: never)

    def timeout_for(self, check: str, fallback_s: float) -> float:
        """Seconds after the ack before a missing answer to `check` is asked for again (0: never)."""
        own = {"criminal-history": self.criminal_history_timeout_s,
               "immigration": self.immigration_timeout_s}.get(check, 0.0)
        return own or fallback_s


@dataclasses.dataclass
class NotificationsConfig:
    hook: str = ""  # command run for each new notification (JSON on stdin)
    hook_timeout_s: float = 15.0  # a hook still running after this is killed (logged)


@dataclasses.dataclass
class ServiceConfig:
    watchdog: bool = True
    status_interval_s: float = 30.0
    log_level: str = "info"
    part_timeout_s: float = 60.0  # a part (capture, outbox, link) silent this long stops the watchdog pings
    sensor_poll_s: float = 2.0  # how often an absent sensor is looked for again
    stop_grace_s: float = 60.0  # on SIGTERM, wait this long for a booking in progress to be enqueued
    clock_check: str = "flag"  # bookings wait for a synchronised clock: "flag", "timedatectl" or "off"
    clock_sync_flag: str = "/run/systemd/timesync/synchronized"  # systemd-timesyncd's flag file


@dataclasses.dataclass
class Config:
    device: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)
    paths: PathsConfig = dataclasses.field(default_factory=PathsConfig)
    sensor: SensorConfig = dataclasses.field(default_factory=SensorConfig)
    quality: QualityConfig = dataclasses.field(default_factory=QualityConfig)
    booking: BookingConfig = dataclasses.field(default_factory=BookingConfig)
    transaction: TransactionConfig = dataclasses.field(default_factory=TransactionConfig)
    jms: JmsConfig = dataclasses.field(default_factory=JmsConfig)
    envelope: EnvelopeConfig = dataclasses.field(default_factory=EnvelopeConfig)
    store: StoreConfig = dataclasses.field(default_factory=StoreConfig)
    mqtt: MqttConfig = dataclasses.field(default_factory=MqttConfig)
    notifications: NotificationsConfig = dataclasses.field(default_factory=NotificationsConfig)
    answers: AnswersConfig = dataclasses.field(default_factory=AnswersConfig)
    service: ServiceConfig = dataclasses.field(default_factory=ServiceConfig)
    source: str = "<defaults>"  # where it was loaded from, for messages

    def key_path(self, configured: str, default_name: str) -> pathlib.Path:
        return pathlib.Path(configured) if configured else self.paths.keys() / default_name


_CHOICES = {
    ("booking", "compression"): ("wsq", "png"),
    ("envelope", "suite"): ("x25519", "mlkem768-x25519"),
    ("service", "log_level"): ("debug", "info", "warning", "error"),
    ("service", "clock_check"): ("flag", "timedatectl", "off"),
}


def _check_value(section: str, key: str, value, annotation: str):
    name = f"[{section}] {key}"
    kind = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list}[annotation]
    if isinstance(value, bool) and annotation in ("int", "float"):
        raise ConfigError(f"{name} must be a number, not true/false")
    if not isinstance(value, kind):
        want = {"str": "a string", "int": "a whole number", "float": "a number",
                "bool": "true or false", "list": "a list"}[annotation]
        raise ConfigError(f"{name} must be {want}, got {type(value).__name__} {value!r}")
    if annotation == "float":
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    if annotation in ("int", "float") and value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    choices = _CHOICES.get((section, key))
    if choices and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    if section == "paths" and value and not os.path.isabs(value):
        raise ConfigError(f"{name} must be an absolute path (the service runs from /), got {value!r}")
    if (section, key) == ("jms", "spool_dir") and value and not os.path.isabs(value):
        raise ConfigError(f"{name} must be an absolute path, got {value!r}")
    if (section, key) == ("jms", "listen") and value and not re.fullmatch(r"unix:/.+|127\.0\.0\.1:\d{1,5}", value):
        raise ConfigError(f"{name} must be 127.0.0.1:PORT or unix:/absolute/path (loopback only), got {value!r}")
    if (section, key) == ("device", "ori") and not _ORI.fullmatch(value):
        raise ConfigError(f"{name} must be the 9-character agency ORI (letters and digits), "
                          f"got {value!r}")
    pattern = _TOPIC_SAFE.get((section, key))
    if pattern and not pattern[0].fullmatch(value):
        raise ConfigError(f"{name} is part of every MQTT topic: {pattern[1]}; got {value!r}")
    return value


# The contract's patterns (docs/asyncapi.yaml): no '/', '+', '#' or control characters
# can reach a topic name, so an id cannot address or subscribe to another appliance.
_ORI = re.compile(r"[A-Za-z0-9]{9}", re.ASCII)
_TOPIC_SAFE = {
    ("device", "device_id"): (re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII),
                              "1-64 letters, digits, '.', '_' or '-'"),
    ("mqtt", "root"): (re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII),
                       "1-64 letters, digits, '_' or '-'"),
}
_LOOPBACK = {"localhost", "::1", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for a broker on this machine (the only place plaintext MQTT is allowed)."""
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_whole(cfg: "Config") -> None:
    """Rules between keys: TLS with a CA for any broker off this machine."""
    mq = cfg.mqtt
    if not is_loopback(mq.host):
        if not mq.tls:
            raise ConfigError(f"{cfg.source}: [mqtt] tls = false is allowed only to a broker on "
                              f"this machine (127.0.0.1, ::1, localhost), not {mq.host!r}")
        if not mq.ca_file:
            raise ConfigError(f"{cfg.source}: [mqtt] tls to {mq.host!r} needs ca_file (the CA "
                              f"that signed the broker's certificate)")


PLACEHOLDER_ORI = "XX0000000"


def placeholder_problems(cfg: Config) -> list[str]:
    """What `fpagent config check` and `fpagent run` refuse: the placeholder agency
    identifiers, unless `[device] allow_placeholder = true` (demo and tests)."""
    if cfg.device.allow_placeholder:
        return []
    out = []
    for name, value in (("[device] ori", cfg.device.ori), ("[booking] destination", cfg.booking.destination)):
        if value.upper() == PLACEHOLDER_ORI:
            out.append(f"{name} is the placeholder {PLACEHOLDER_ORI}: run scripts/provision "
                       f"(fpagent provision --ori ... --destination ...) to set the agency identifiers")
    return out


def from_dict(data: dict, source: str = "<dict>") -> Config:
    cfg = Config(source=source)
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(
                f"{source}: unknown section [{section}]; known: {', '.join(sections)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        target = getattr(cfg, section)
        hints = typing.get_type_hints(type(target))
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(
                    f"{source}: unknown key [{section}] {key}; known: {', '.join(hints)}"
                )
            annotation = getattr(hints[key], "__name__", str(hints[key]))
            try:
                value = _check_value(section, key, value, annotation)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            setattr(target, key, value)
    check_whole(cfg)
    return cfg


def load(path: str | os.PathLike | None = None) -> Config:
    """Load the configuration; see the module docstring for the search order."""
    if path is None:
        env = os.environ.get("FPAGENT_CONFIG")
        if env:
            path = env
        elif SYSTEM_CONFIG.exists():
            path = SYSTEM_CONFIG
        else:
            return Config()
    path = pathlib.Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist; create it or pass --config") from None
    except PermissionError:
        raise ConfigError(f"configuration file {path} is not readable by this user; check its owner and mode") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration path {path} is a directory, not a file") from None
    except OSError as exc:  # a socket, a dead device... anything but a readable file
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(data, source=str(path))


# key names whose values are secrets wherever they appear (shown as "***")
SECRET_KEY = re.compile(r"pass(word|phrase)?|secret|token|psk|private", re.IGNORECASE)


def redacted(cfg: Config) -> Config:
    """A copy with every secret-looking value replaced by ***, for showing and for support bundles."""
    copy = Config(source=cfg.source)
    for f in dataclasses.fields(cfg):
        if f.name == "source":
            continue
        section = dataclasses.replace(getattr(cfg, f.name))
        for key in dataclasses.asdict(section):
            if SECRET_KEY.search(key) and getattr(section, key):
                setattr(section, key, "***")
        setattr(copy, f.name, section)
    return copy


def to_toml(cfg: Config) -> str:
    """Render a configuration as TOML (for `fpagent config show` and the installer)."""
    lines = []
    for f in dataclasses.fields(cfg):
        if f.name == "source":
            continue
        lines.append(f"[{f.name}]")
        for key, value in dataclasses.asdict(getattr(cfg, f.name)).items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = repr(value)
            elif isinstance(value, list):
                text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
            else:
                text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"{key} = {text}")
        lines.append("")
    return "\n".join(lines)
