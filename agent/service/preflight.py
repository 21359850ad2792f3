"""What `fpagent run` checks and prepares before it starts anything.

The key files the configuration names must be readable, the state, cache
and runtime directories must exist with the right modes, and a service
started as root runs as the owner of its state directory. Each failure is
one message that says what to do.
"""

from __future__ import annotations

import os
import pathlib
import sys

from fpagent.config import Config
from fpagent.errors import ConfigError, StartupError
from fpagent.sealing import keys


# [envelope] keys: the file each one defaults to under keys_dir when left empty
_ENVELOPE_KEY_FILES = {"device_signing_key": keys.DEVICE_SIGNING_KEY,
                       "central_public_key": keys.CENTRAL_HPKE_PUBLIC,
                       "central_verify_key": keys.CENTRAL_VERIFY_KEY}


def check_key_files(cfg: Config) -> list[str]:
    """Key and TLS files the configuration names explicitly must be readable.

    Raises ConfigError naming the key; returns warnings for default key
    paths that do not exist yet (an appliance not provisioned).
    """
    explicit = [
        ("envelope", "central_public_key"), ("envelope", "central_verify_key"),
        ("envelope", "device_signing_key"),
    ]
    if cfg.mqtt.tls:
        explicit += [("mqtt", "ca_file"), ("mqtt", "cert_file"), ("mqtt", "key_file")]
    warnings = []
    for section, key in explicit:
        value = getattr(getattr(cfg, section), key)
        if not value:
            continue  # TLS without ca_file uses the system's CAs; no client cert is allowed too
        if section == "mqtt" and not os.path.lexists(value):
            # e.g. after rotate-keys, until the new certificate is installed: the
            # service runs with the link down rather than not at all
            warnings.append(f"[mqtt] {key}: {value} is missing; the link stays down until it is "
                            "installed (scripts/provision --cert)")
            continue
        _readable(cfg, f"[{section}] {key}", pathlib.Path(value))
    for key, name in _ENVELOPE_KEY_FILES.items():
        if not getattr(cfg.envelope, key):
            path = cfg.key_path("", name)
            if not path.exists():
                warnings.append(f"{path} is missing (appliance not provisioned: run scripts/provision)")
            else:
                _readable(cfg, f"[envelope] {key} (default {path})", path)
    return warnings


def _readable(cfg: Config, name: str, path: pathlib.Path) -> None:
    if not path.exists():
        raise ConfigError(f"{cfg.source}: {name}: {path} does not exist; "
                          "run scripts/provision or correct the path")
    if path.is_dir():
        raise ConfigError(f"{cfg.source}: {name}: {path} is a directory, not a key file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise ConfigError(f"{cfg.source}: {name}: {path} is not readable by user "
                          f"{_user()}; fix its owner (chown) or mode") from None
    except OSError as exc:
        raise ConfigError(f"{cfg.source}: {name}: cannot read {path}: {exc.strerror}") from None


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (a container's)
        return str(os.geteuid())


def prepare_directories(cfg: Config) -> dict[str, pathlib.Path]:
    """State (0700), cache/numba and runtime directories; points Numba at its cache.

    $NUMBA_CACHE_DIR set by the unit (or a developer) wins; otherwise it is
    <cache_dir>/numba. Numba reads it at import, so this runs before any
    kernel module is imported (and reloads Numba's config if one already was).
    """
    state = pathlib.Path(cfg.paths.state_dir)
    cache = pathlib.Path(cfg.paths.cache_dir)
    runtime = cfg.paths.runtime()
    made = {}
    for name, path, mode in (("state", state, 0o700), ("cache", cache, 0o700),
                             ("runtime", runtime, 0o700), ("numba", cache / "numba", 0o700)):
        try:
            path.mkdir(parents=True, exist_ok=True, mode=mode)
            if path.stat().st_uid == os.geteuid() and name == "state":
                path.chmod(mode)
        except PermissionError:
            raise StartupError(f"cannot create or use the {name} directory {path} as user {_user()}; "
                               "run scripts/install (it creates it with the right owner)") from None
        except OSError as exc:
            raise StartupError(f"cannot create the {name} directory {path}: {exc.strerror}") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise StartupError(f"the {name} directory {path} is not writable by user {_user()}; "
                               "fix its owner (scripts/install does)")
        made[name] = path
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache / "numba"))
    if "numba" in sys.modules:  # imported early by some other module: re-read the environment
        try:
            from numba.core import config as numba_config
            numba_config.reload_config()
        except Exception:  # pragma: no cover - best effort
            pass
    return made


def drop_to_state_owner(cfg: Config) -> bool:
    """Run as the owner of the state directory when started as root.

    Files the service creates (database, WAL, keys) must belong to the
    service user, or the unit cannot open them later. True if it dropped.
    """
    if os.geteuid() != 0:
        return False
    try:
        st = os.stat(cfg.paths.state_dir)
    except OSError:
        return False
    if st.st_uid == 0:
        return False
    import pwd
    try:
        entry = pwd.getpwuid(st.st_uid)
        os.initgroups(entry.pw_name, st.st_gid)
    except (KeyError, OSError):
        pass
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)
    return True
