"""`fpagent audit`: check the hash chain of the audit log, list recent entries."""

from __future__ import annotations

import json

from fpagent.commands._common import open_existing_store


def register(sub):
    parser = sub.add_parser("audit", help="verify or list the tamper-evident audit log")
    parser.set_defaults(_parser=parser)
    s = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    p = s.add_parser("verify", help="walk the hash chain; exit 1 if anything was altered")
    p.set_defaults(func=cmd_verify)
    p = s.add_parser("list", help="newest entries first")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--action", help="only this action, e.g. booking.enqueued")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_list)


def cmd_verify(args) -> int:
    store = open_existing_store(args, "no audit log yet")
    if store is None:
        return 0
    with store:
        ok, bad, message = store.audit.verify()
        n, head = store.audit.head()
    print(message)
    if ok:
        print(f"head: entry {n} {head}")
        return 0
    print(f"first bad entry: {bad}. Keep this database file as evidence and report it.")
    return 1


def cmd_list(args) -> int:
    store = open_existing_store(args, "no audit log yet")
    if store is None:
        return 0
    with store:
        entries = store.audit.list(limit=args.limit, action=args.action)
    for e in entries:
        if args.json:
            print(json.dumps({"seq": e.seq, "ts": e.ts, "actor": e.actor, "action": e.action,
                              "detail": e.detail, "hash": e.hash}, sort_keys=True))
        else:
            detail = " ".join(f"{k}={v}" for k, v in sorted(e.detail.items()))
            print(f"{e.seq:>6}  {e.ts}  {e.actor:12}  {e.action:26}  {detail}")
    if not entries and not args.json:
        print("no entries")
    return 0
