"""`fpagent run`: the appliance daemon (systemd Type=notify service)."""

from __future__ import annotations

from fpagent import config


def register(sub):
    parser = sub.add_parser(
        "run", help="run the appliance service (what systemd starts)",
        description="Run the booking agent as a service: checks the configuration, the "
        "database, the sensor and the fingerprint kernels, then tells systemd it is ready "
        "(sd_notify) and keeps the sensor, the outbox and the MQTT link going until SIGTERM.")
    parser.set_defaults(func=run)


def run(args) -> int:
    cfg = config.load(args.config)  # a ConfigError becomes one line and exit 78 in fpagent.cli
    # imported after the config is known good: cheap failures first
    from fpagent.service import daemon, preflight

    preflight.drop_to_state_owner(cfg)
    preflight.check_key_files(cfg)  # an unreadable key: one line and exit 78, before any logging
    return daemon.main(cfg)
