"""Helpers shared by the subcommands (no `register`: not a command itself)."""

from __future__ import annotations

from fpagent import config as config_mod


def open_existing_store(args, missing_message: str):
    """The configured database, or None (after saying so) when nothing was booked yet.

    CLI commands never move a damaged database aside; only the daemon does.
    """
    from fpagent.storage.store import Store

    cfg = config_mod.load(args.config)
    path = cfg.paths.database()
    if not path.exists():
        print(f"{missing_message}: {path} does not exist")
        return None
    return Store(path, cfg, on_corrupt="raise")
