"""`fpagent config check [FILE]` and `fpagent config show`: validate and display the one configuration."""

from __future__ import annotations

import dataclasses
import re

from fpagent import config

# key names whose values are secrets wherever they appear (shown as "***")
SECRET_KEY = re.compile(r"pass(word|phrase)?|secret|token|psk|private", re.IGNORECASE)


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
        from fpagent.service.daemon import check_key_files

        problems = check_key_files(cfg)  # raises ConfigError for an unreadable key
    print(f"configuration OK: {cfg.source}")
    for text in problems:
        print(f"note: {text}")
    return 0


def redacted(cfg: config.Config) -> config.Config:
    """A copy with every secret-looking value replaced by ***."""
    copy = config.from_dict({}, source=cfg.source)
    for f in dataclasses.fields(cfg):
        if f.name == "source":
            continue
        section = dataclasses.replace(getattr(cfg, f.name))
        for key in dataclasses.asdict(section):
            if SECRET_KEY.search(key) and getattr(section, key):
                setattr(section, key, "***")
        setattr(copy, f.name, section)
    return copy


def cmd_show(args) -> int:
    cfg = config.load(args.config)
    print(f"# configuration in effect, from {cfg.source}; secrets redacted")
    print(config.to_toml(redacted(cfg)))
    return 0
