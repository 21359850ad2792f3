"""`fpagent notifications list|show ID|ack ID`: central's answers, for the officer."""

from __future__ import annotations

import getpass
import json

from fpagent import config as config_mod
from fpagent.booking import answers as view
from fpagent.errors import UserError


def _store(args):
    from fpagent.storage.store import Store
    cfg = config_mod.load(args.config)
    return Store(cfg.paths.database(), cfg)


def _find(store, ident: str) -> dict:
    item = store.inbox.get(ident)
    if item:
        return item
    matches = [m for m in store.inbox.list(limit=100000) if m["message_id"].startswith(ident)]
    if not matches:
        raise UserError(f"no notification {ident!r}; `fpagent notifications list` shows them")
    if len(matches) > 1:
        raise UserError(f"{ident!r} matches {len(matches)} notifications; give more characters")
    return matches[0]


def _list(args) -> int:
    with _store(args) as store:
        items = store.inbox.list(kind="notification", unacknowledged=not args.all, limit=args.limit)
        if args.json:
            print(json.dumps(items, sort_keys=True, indent=1))
            return 0
        if not items:
            print("no unacknowledged notifications" if not args.all else "no notifications")
            return 0
        for item in items:
            for line in view.banner(item["body"]) if view.severity(item["body"]) == "critical" else []:
                print(line)
            print(view.summary_line(item))
    return 0


def _show(args) -> int:
    with _store(args) as store:
        item = _find(store, args.id)
        print(json.dumps(item, sort_keys=True, indent=1) if args.json else view.render(item))
    return 0


def _ack(args) -> int:
    operator = args.operator or getpass.getuser()
    with _store(args) as store:
        item = _find(store, args.id)
        if store.inbox.acknowledge(item["message_id"], operator):
            print(f"acknowledged {item['message_id'][:12]} ({view.headline(item['body'])}) by {operator}")
        else:
            print(f"{item['message_id'][:12]} was already acknowledged")
    return 0


def register(sub) -> None:
    parser = sub.add_parser("notifications", help="central's answers: hits, no-hits, immigration "
                            "determinations", description=__doc__)
    parser.set_defaults(_parser=parser)
    cmds = parser.add_subparsers(dest="notifications_cmd", metavar="ACTION")
    p = cmds.add_parser("list", help="unacknowledged notifications (newest first)")
    p.add_argument("--all", action="store_true", help="include acknowledged ones")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)
    p = cmds.add_parser("show", help="one notification in full")
    p.add_argument("id", help="notification id (or its first characters)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)
    p = cmds.add_parser("ack", help="mark a notification as read by an officer (audited)")
    p.add_argument("id")
    p.add_argument("--operator", help="who read it (default: the login name)")
    p.set_defaults(func=_ack)
