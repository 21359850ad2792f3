"""Central's `config-change` command: a few allow-listed keys of the local file, changed safely.

Only keys of fpagent.link.fleet_commands.CONFIG_ALLOWED (answers and link
timers, log level, quality thresholds, retention): never the broker, the keys
or the paths. The change is validated exactly like the local file: the file's
own TOML with the new values goes through fpagent.config.from_dict (the same
strict parser), then:

1. the new file is written atomically (temporary file, fsync, rename; 0600),
   the old bytes kept;
2. health: the written file is read back with fpagent.config.load and must
   give the validated values, and the running service takes them (the live
   configuration object is updated in place and the log level re-applied);
3. if either fails, the old file is restored the same atomic way and the live
   values put back: the result is "rolled-back".

A service started without a configuration file (the embedded defaults)
refuses every change: there is no file to keep it in.
"""

from __future__ import annotations

import logging
import pathlib
import tomllib

from fpagent import config as config_mod
from fpagent.errors import ConfigError
from fpagent.sealing.keys import write_file_atomic

log = logging.getLogger("fpagent.service")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text) + '"'


def dump_toml(data: dict) -> str:
    """The file's own tables (sections of scalars and lists), as TOML."""
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _refused(reason: str, detail: str) -> dict:
    return {"outcome": "refused", "reason": reason, "detail": detail[:200]}


class ConfigChanger:
    """Applies a validated change to the file `cfg.source` and to the live `cfg`.

    `health(cfg)`: extra check of the running service after the change (raise
    or return False to roll back); the default re-applies the log level.
    """

    def __init__(self, cfg, health=None):
        self.cfg = cfg
        self.health = health or _apply_log_level

    def apply(self, store, changes: dict, *, message_id: str = "") -> dict:
        path = pathlib.Path(self.cfg.source)
        if not path.is_file():
            return _refused("not-supported", "this appliance runs without a configuration file")
        try:
            old_bytes = path.read_bytes()
            data = tomllib.loads(old_bytes.decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            return _refused("invalid-config", f"the current file does not read ({type(exc).__name__})")
        for (section, key), value in changes.items():
            data.setdefault(section, {})[key] = value
        try:
            new_cfg = config_mod.from_dict(data, source=str(path))
        except ConfigError as exc:
            return _refused("invalid-config", str(exc).replace(str(path), "config")[:200])
        old_values = {sk: getattr(getattr(self.cfg, sk[0]), sk[1]) for sk in changes}
        try:
            write_file_atomic(path, dump_toml(data).encode("utf-8"), mode=0o600, overwrite=True)
        except OSError as exc:
            return _refused("not-saved", f"{type(exc).__name__}")
        problem = self._healthy(path, new_cfg, changes)
        if problem:
            write_file_atomic(path, old_bytes, mode=0o600, overwrite=True)
            for (section, key), value in old_values.items():
                setattr(getattr(self.cfg, section), key, value)
            self._safe_health()
            log.warning("config-change %s rolled back: %s", message_id[:8], problem)
            store.audit.append("central", "config-rolled-back", {
                "message_id": message_id, "keys": sorted(f"{s}.{k}" for s, k in changes),
                "why": problem[:200]})
            return _refused("rolled-back", problem)
        store.audit.append("central", "config-changed", {
            "message_id": message_id,
            "changes": {f"{s}.{k}": {"from": old_values[(s, k)], "to": v}
                        for (s, k), v in changes.items()}})
        return {"outcome": "applied", "reason": "done",
                "detail": "changed " + ", ".join(sorted(f"{s}.{k}" for s, k in changes))}

    def _healthy(self, path, new_cfg, changes: dict) -> str:
        """'' when the written file reads back as validated and the service takes it."""
        try:
            reread = config_mod.load(path)
        except ConfigError as exc:
            return f"the written file does not load: {str(exc)[:150]}"
        for section, key in changes:
            if getattr(getattr(reread, section), key) != getattr(getattr(new_cfg, section), key):
                return f"{section}.{key} does not read back as written"
        for section, key in changes:
            setattr(getattr(self.cfg, section), key, getattr(getattr(new_cfg, section), key))
        try:
            if self.health(self.cfg) is False:
                return "the service did not accept the new values"
        except Exception as exc:  # noqa: BLE001 - any failure to take the change: roll back
            return f"the service did not accept the new values ({type(exc).__name__}: {exc})"[:200]
        return ""

    def _safe_health(self) -> None:
        try:
            self.health(self.cfg)
        except Exception:  # noqa: BLE001 - restoring: log, keep going
            log.exception("re-applying the old configuration failed")


def _apply_log_level(cfg) -> None:
    logging.getLogger().setLevel(cfg.service.log_level.upper())  # as journal.setup_logging does
