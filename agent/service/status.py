"""The appliance's health facts, gathered in ONE place for every consumer.

`gather()` collects what a technician and a monitoring system need to know:
is the service running and its parts alive, is the sensor there, is the
link up, how deep is the queue and how old its oldest booking, how much
disk is left, is the database sound. Three things read those facts and
nothing else, so they can never disagree:

- the service's `STATUS=` line in `systemctl status` (`summary()`),
- `fpagent status` (human lines) and `fpagent status --json`,
- `scripts/healthcheck` (`evaluate()`: Nagios exit codes 0/1/2/3).

The running service writes its live part of the facts (sensor, link,
heartbeats) to `<runtime_dir>/status.json` (tmpfs on the appliance, so no
SD-card wear); a reader outside the service takes them from there and
calls the service down when that file is stale. No biometric data, no key
material and no personal data ever enters these facts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import time
from typing import TYPE_CHECKING

from fpagent.config import Config

if TYPE_CHECKING:  # imported when a reading needs it: `fpagent status` starts without SQLite
    from fpagent.storage.store import Store

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
SEVERITY_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}

STATUS_FILE = "status.json"


def status_file(cfg: Config) -> pathlib.Path:
    return cfg.paths.runtime() / STATUS_FILE


@dataclasses.dataclass
class Facts:
    """Everything `summary()`, `fpagent status` and the healthcheck look at."""

    checked_at: float
    device_id: str
    service: dict  # state, pid, started_at, updated_at, age_s, parts {name: {alive, age_s}}
    sensor: dict  # state: present | absent | unknown, model, port, detail
    link: dict  # state: connected | disconnected | unavailable | unknown, detail
    queue: dict  # depth, oldest_pending_age_s, counts {}, bytes, full, detail
    disk: dict  # path, free_mb, total_mb, min_free_mb
    database: dict  # ok: bool | None, detail
    config: dict  # source, ok, detail

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        health, problems = evaluate(self)
        data["health"] = {"code": health, "state": SEVERITY_NAMES[health], "problems": problems}
        data["summary"] = summary(self)
        return data


# -- gathering -------------------------------------------------------------

def gather(cfg: Config, *, live: dict | None = None, queue: tuple[dict, dict] | None = None,
           now: float | None = None, config_error: str | None = None) -> Facts:
    """Collect the facts. The running service passes its own `live` facts and the
    `queue` facts its outbox part read (queue, database); without them they
    are read from the status file and the database."""
    now = time.time() if now is None else now
    if live is None:
        service, live = read_live(cfg, now)
    else:
        service = dict(live.get("service", {}))
        service.setdefault("state", "running")
        service["age_s"] = 0.0
    sensor = dict(live.get("sensor") or {"state": "unknown", "detail": "service not running"})
    link = dict(live.get("link") or {"state": "unknown", "detail": "service not running"})
    queue_now, database = queue if queue is not None else queue_facts(cfg, None, now)
    return Facts(
        checked_at=now,
        device_id=cfg.device.device_id,
        service=service,
        sensor=sensor,
        link=link,
        queue=queue_now,
        disk=_disk_facts(cfg),
        database=database,
        config={"source": cfg.source, "ok": config_error is None, "detail": config_error or ""},
    )


def read_live(cfg: Config, now: float) -> tuple[dict, dict]:
    """(service facts judged for staleness, the whole live file) as the running service wrote it."""
    path = status_file(cfg)
    try:
        live = json.loads(path.read_text())
        updated = float(live.get("service", {}).get("updated_at", 0))
    except FileNotFoundError:
        return {"state": "not running", "detail": f"no {path}"}, {}
    except (OSError, ValueError) as exc:
        return {"state": "unknown", "detail": f"cannot read {path}: {exc}"}, {}
    service = dict(live.get("service", {}))
    service["age_s"] = round(max(0.0, now - updated), 1)
    stale_after = float(service.get("stale_after_s") or 60.0)
    if service.get("state") == "stopped":
        pass
    elif service["age_s"] > stale_after:
        service["state"] = "stale"
        service["detail"] = f"status not updated for {service['age_s']:.0f} s (service down or wedged)"
    elif not _pid_alive(service.get("pid")):
        service["state"] = "not running"
        service["detail"] = f"process {service.get('pid')} is gone"
    return service, live


def _pid_alive(pid) -> bool:
    if not pid:
        return True  # nothing to say
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OSError):
        return True
    return True


def _disk_facts(cfg: Config) -> dict:
    path = pathlib.Path(cfg.paths.state_dir)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return {"path": str(path), "free_mb": None, "total_mb": None,
                "min_free_mb": cfg.store.min_free_mb, "detail": str(exc)}
    return {
        "path": str(path),
        "free_mb": round(usage.free / 2**20, 1),
        "total_mb": round(usage.total / 2**20, 1),
        "min_free_mb": cfg.store.min_free_mb,
    }


def queue_facts(cfg: Config, store: Store | None, now: float) -> tuple[dict, dict]:
    """(queue, database) facts from the outbox: depth, age of the oldest booking,
    size against the quota, and whether the database reads. With `store` None
    the database at the configured path is opened for this one reading."""
    db_path = cfg.paths.database()
    queue = {"depth": None, "oldest_pending_age_s": None, "counts": {}, "bytes": None,
             "full": False, "max_mb": cfg.store.max_queue_mb, "detail": ""}
    database = {"ok": None, "path": str(db_path), "detail": ""}
    own_store = None
    if store is None:
        try:
            exists = db_path.exists()
        except PermissionError:
            database.update(ok=None, detail=f"{db_path.parent} is not readable by this user; "
                            "run as root or as the service user")
            queue["detail"] = "cannot read the queue"
            return queue, database
        if not exists:
            queue["detail"] = database["detail"] = "no database yet (the service creates it)"
            return queue, database
        from fpagent.storage.store import Store

        try:
            # the store's own check: a damaged file is moved aside (kept) and reported below
            own_store = store = Store(db_path, cfg)
        except Exception as exc:  # an unreadable/corrupt database is a fact, not a crash
            database.update(ok=False, detail=_short(exc))
            queue["detail"] = "database unreadable"
            return queue, database
    try:
        counts = store.outbox.counts()
        queue["counts"] = dict(counts)
        queue["depth"] = counts["pending"] + counts["sent"]  # sent but not yet acknowledged still waits
        age = store.outbox.oldest_pending_age(now)
        queue["oldest_pending_age_s"] = None if age is None else round(float(age), 1)
        queue["bytes"] = int(store.outbox.queued_bytes())
        if _queue_full(queue["bytes"], counts, cfg.store.max_queue_mb):
            queue["full"] = True
            queue["detail"] = f"queue is at its limit of {cfg.store.max_queue_mb:g} MB"
        database["ok"] = True
        if store.recovered_from:
            database["detail"] = f"a damaged database was moved aside to {store.recovered_from}; contact support"
    except Exception as exc:
        database.update(ok=False, detail=_short(exc))
        queue["detail"] = "cannot read the queue"
    finally:
        if own_store is not None:
            try:
                own_store.close()
            except Exception:
                pass
    return queue, database


def _queue_full(queued: int, counts: dict, max_mb: float) -> bool:
    """Full = the room left in the quota would not hold one more typical booking
    (the store refuses it with StorageFull)."""
    limit = max_mb * 2**20
    stored = sum(v for k, v in counts.items() if k in ("pending", "sent", "acknowledged", "rejected"))
    typical = queued / stored if stored else 0
    needed = min(max(typical, 256 * 1024), limit / 4)
    return limit - queued < needed


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


# -- reading the facts -----------------------------------------------------

def evaluate(facts: Facts, *, stale_pending_s: float = 3600.0) -> tuple[int, list[str]]:
    """Health in Nagios terms: (worst code, plain-words problems, worst first)."""
    found: list[tuple[int, str]] = []
    if not facts.config.get("ok", True):
        found.append((UNKNOWN, f"configuration: {facts.config.get('detail')}"))
    state = facts.service.get("state")
    if state in ("not running", "stale", "stopped"):
        found.append((CRITICAL, f"service {state}" + _detail(facts.service)))
    elif state == "unknown":
        found.append((UNKNOWN, "service state unknown" + _detail(facts.service)))
    elif state == "starting":
        found.append((WARNING, "service starting" + _detail(facts.service)))
    for name, part in (facts.service.get("parts") or {}).items():
        if not part.get("alive", True):
            found.append((CRITICAL, f"{name} part not responding for {part.get('age_s', '?')} s"))
    if facts.database.get("ok") is False:
        found.append((CRITICAL, "database: " + facts.database.get("detail", "check failed")))
    elif "moved aside" in (facts.database.get("detail") or ""):
        found.append((WARNING, "database: " + facts.database["detail"]))
    free, min_free = facts.disk.get("free_mb"), facts.disk.get("min_free_mb") or 0
    if free is None:
        found.append((UNKNOWN, "disk: " + facts.disk.get("detail", "cannot measure")))
    elif free < min_free:
        found.append((CRITICAL, f"disk: only {free:.0f} MB free (bookings refused below {min_free:.0f} MB)"))
    elif free < 2 * min_free:
        found.append((WARNING, f"disk: only {free:.0f} MB free"))
    if facts.queue.get("full"):
        found.append((CRITICAL, "queue full: new bookings are refused until the link sends them"))
    age = facts.queue.get("oldest_pending_age_s")
    if age is not None and age > stale_pending_s:
        found.append((WARNING, f"oldest queued booking waits for {human_age(age)}"))
    sensor_state = facts.sensor.get("state")
    if sensor_state == "absent" and state in ("running", "ready"):
        found.append((WARNING, "sensor absent" + _detail(facts.sensor)))
    link_state = facts.link.get("state")
    if link_state == "disconnected" and state in ("running", "ready"):
        found.append((WARNING, "link to central down" + _detail(facts.link)))
    elif link_state == "unavailable" and state in ("running", "ready"):
        found.append((WARNING, "link not started" + _detail(facts.link)))
    found.sort(key=lambda item: -_rank(item[0]))
    worst = max((code for code, _ in found), key=_rank, default=OK)
    return worst, [text for _, text in found]


def _rank(code: int) -> int:
    # CRITICAL > UNKNOWN > WARNING > OK for "worst"
    return {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}[code]


def _detail(part: dict) -> str:
    detail = part.get("detail")
    return f" ({detail})" if detail else ""


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def human_mb(mb: float | None) -> str:
    """Coarse on purpose: the status line should change when something happens, not per write."""
    if mb is None:
        return "?"
    if mb >= 10240:
        return f"{mb / 1024:.0f} GB"
    if mb >= 1024:
        return f"{mb / 1024:.1f} GB"
    return f"{mb:.0f} MB"


def summary(facts: Facts) -> str:
    """The one line systemd shows as the unit's status."""
    sensor = facts.sensor.get("state", "unknown")
    if sensor == "present":
        notes = [n for n in (facts.sensor.get("model"), facts.sensor.get("detail")) if n]
        if notes:
            sensor = f"present ({', '.join(notes)})"
    depth = facts.queue.get("depth")
    queue = "?" if depth is None else str(depth)
    if facts.queue.get("full"):
        queue += " FULL"
    age = facts.queue.get("oldest_pending_age_s")
    oldest = f", oldest {human_age(age)}" if age is not None and depth else ""
    disk = human_mb(facts.disk.get("free_mb")) + " free"
    text = f"sensor {sensor}; link {facts.link.get('state', 'unknown')}; queue {queue}{oldest}; disk {disk}"
    wedged = [n for n, p in (facts.service.get("parts") or {}).items() if not p.get("alive", True)]
    if wedged:
        text += "; NOT RESPONDING: " + ", ".join(wedged)
    return text


def human_report(facts: Facts) -> str:
    """What `fpagent status` prints for a person."""
    code, problems = evaluate(facts)
    lines = [
        f"health:    {SEVERITY_NAMES[code]}",
        f"device:    {facts.device_id}",
        f"service:   {facts.service.get('state', 'unknown')}" + _detail(facts.service),
        f"sensor:    {facts.sensor.get('state', 'unknown')}"
        + (f" {facts.sensor.get('model')}" if facts.sensor.get("model") else "")
        + (f" on {facts.sensor.get('port')}" if facts.sensor.get("port") else "")
        + _detail(facts.sensor),
        f"link:      {facts.link.get('state', 'unknown')}" + _detail(facts.link),
        "queue:     " + ("unknown" if facts.queue.get("depth") is None else
                         f"{facts.queue['depth']} waiting, oldest {human_age(facts.queue.get('oldest_pending_age_s'))}")
        + (" (FULL)" if facts.queue.get("full") else "") + _detail(facts.queue),
        "disk:      " + ("unknown" if facts.disk.get("free_mb") is None else
                         f"{facts.disk['free_mb']:.0f} MB free of {facts.disk['total_mb']:.0f} MB at {facts.disk['path']}"),
        "database:  " + {True: "ok", False: "FAILED", None: "not checked"}[facts.database.get("ok")]
        + _detail(facts.database),
        f"config:    {facts.config.get('source')}",
    ]
    for name, part in (facts.service.get("parts") or {}).items():
        lines.append(f"  part {name}: {'alive' if part.get('alive', True) else 'NOT RESPONDING'}"
                     f" (last heartbeat {part.get('age_s', '?')} s ago)")
    if problems:
        lines.append("problems:")
        lines.extend(f"  - {p}" for p in problems)
    return "\n".join(lines)


def nagios_line(facts: Facts) -> tuple[int, str]:
    """One line and exit code in the Nagios plugin convention."""
    code, problems = evaluate(facts)
    depth = facts.queue.get("depth")
    age = facts.queue.get("oldest_pending_age_s")
    perf = []
    if depth is not None:
        perf.append(f"queue={depth}")
    if age is not None:
        perf.append(f"oldest_s={age:.0f}")
    if facts.disk.get("free_mb") is not None:
        perf.append(f"disk_free_mb={facts.disk['free_mb']:.0f}")
    text = "; ".join(problems) if problems else summary(facts)
    line = f"FPAGENT {SEVERITY_NAMES[code]} - {text}"
    if perf:
        line += " | " + " ".join(perf)
    return code, line
