"""`fpagent config check [FILE]` and `fpagent config show`: validate and display the one configuration."""

from __future__ import annotations

from fpagent import config


def register(sub):
    parser = sub.add_parser("config", help="check or show the configuration",
                            description="Check a configuration file, or show the one in effect.")
    parser.set_defaults(_parser=parser)
    group = parser.add_subparsers(dest="config_command", metavar="ACTION")
    check = group.add_parser(
        "check", help="validate a configuration file (exit 0 when good, 78 with one message when not)")
    check.add_argument("file", nargs="?", metavar="FILE",
                       help="file to check (default: the one fpagent would use)")
    check.add_argument("--files", action="store_true",
                       help="also check that the key and TLS files it names are readable")
    check.set_defaults(func=cmd_check)
    show = group.add_parser("show", help="print the configuration in effect as TOML, secrets redacted")
    show.set_defaults(func=cmd_show)


def cmd_check(args) -> int:
    cfg = config.load(args.file or args.config)
    problems = []
    if args.files:
        from fpagent.service.preflight import check_key_files

        problems = check_key_files(cfg)  # raises ConfigError for an unreadable key
    print(f"configuration OK: {cfg.source}")
    for text in problems:
        print(f"note: {text}")
    return 0


def cmd_show(args) -> int:
    cfg = config.load(args.config)
    print(f"# configuration in effect, from {cfg.source}; secrets redacted")
    print(config.to_toml(config.redacted(cfg)))
    return 0
