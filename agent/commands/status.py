"""`fpagent status`: the appliance's health for a person, or `--json` for a machine.

The same facts as the service's STATUS= line and scripts/healthcheck, from
one function (`fpagent.service.status.gather`).
"""

from __future__ import annotations

import json

from fpagent import config
from fpagent.service import status
from fpagent.errors import ConfigError


def register(sub):
    parser = sub.add_parser(
        "status", help="show the appliance's health (sensor, link, queue, disk)",
        description="Show what the running service reports plus the queue and disk facts. "
        "Exit code 0 unless --check is given.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="one JSON object for machines")
    group.add_argument("--check", action="store_true",
                       help="one line and a Nagios exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    parser.set_defaults(func=run)


def run(args) -> int:
    try:
        cfg = config.load(args.config)
    except ConfigError as exc:
        if args.check:
            print(f"FPAGENT UNKNOWN - configuration: {exc}")
            return status.UNKNOWN
        raise
    from fpagent.service.preflight import drop_to_state_owner

    drop_to_state_owner(cfg)  # never leave root-owned SQLite side files behind
    facts = status.gather(cfg)
    if args.check:
        code, line = status.nagios_line(facts)
        print(line)
        return code
    waiting = _answers_waiting(cfg)
    if args.json:
        print(json.dumps(facts.to_json() | {"answers_waiting": waiting}, sort_keys=True,
                         default=str))
    else:
        print(status.human_report(facts))
        if waiting:
            print("answers waiting for an officer (fpagent notifications bookings):")
            print("\n".join(f"  - {line}" for line in waiting))
    return 0


def _answers_waiting(cfg) -> list[str]:
    """Unacknowledged level-1 alerts and open detainer tasks, with their deadlines."""
    if not cfg.paths.database().exists():
        return []
    from fpagent.booking import answer_state, reminders
    from fpagent.storage.store import Store
    try:
        with Store(cfg.paths.database(), cfg) as store:
            items = store.inbox.list(kind="notification", limit=100000)
    except Exception as exc:  # noqa: BLE001 - the health report itself must still print
        return [f"cannot read the answers: {str(exc)[:200]}"]
    return reminders.attention_lines(answer_state.fold(items))
