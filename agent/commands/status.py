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
    if args.json:
        print(json.dumps(facts.to_json(), sort_keys=True, default=str))
    else:
        print(status.human_report(facts))
    return 0
