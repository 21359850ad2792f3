"""`fpagent`: one console command whose subcommands explain themselves.

Subcommands live in `agent/commands/<name>.py`, each with
`register(subparsers)` that adds its parser and sets `func(args) -> int`.
Errors a person can act on (UserError, hal.SensorError) print one line and
exit non-zero; a traceback is shown only with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import fpagent
import fpagent.commands
from fpagent import hal
from fpagent.commands import exit_code_for
from fpagent.errors import FpagentError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fpagent",
        description="Fingerprint booking appliance: capture, check, extract, screen, "
        "seal and send bookings to the central identification system.",
    )
    parser.add_argument("--version", action="version", version=f"fpagent {fpagent.__version__}")
    parser.add_argument("--config", metavar="FILE", help="configuration file (TOML); "
                        "default: $FPAGENT_CONFIG, /etc/fpagent/agent.toml, else built-in defaults")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(fpagent.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"fpagent.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        # a group without a subcommand: show that group's help
        (getattr(args, "_parser", None) or parser).print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FpagentError, hal.SensorError) as exc:
        if args.debug:
            raise
        prefix = "sensor: " if isinstance(exc, hal.SensorError) else ""
        print(f"fpagent: {prefix}{exc}", file=sys.stderr)
        return exit_code_for(exc)

if __name__ == "__main__":
    sys.exit(main())
