"""`fpagent queue`: look at the outbox (list, show one, counts, check) without secrets."""

from __future__ import annotations

import json
import time

from fpagent import config as config_mod
from fpagent.commands._common import open_existing_store
from fpagent.service.status import human_age


def register(sub):
    parser = sub.add_parser("queue", help="inspect the outbox of sealed bookings",
                            description="The outbox holds sealed bookings until central "
                            "acknowledges them. Nothing here shows or decrypts their content.")
    parser.set_defaults(_parser=parser)
    qs = parser.add_subparsers(dest="queue_command", metavar="ACTION")

    p = qs.add_parser("list", help="newest submissions first")
    p.add_argument("--state", choices=("pending", "sent", "acknowledged", "rejected", "purged"))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_list)

    p = qs.add_parser("show", help="one submission: its state and signed header (no content)")
    p.add_argument("submission_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = qs.add_parser("counts", help="submissions per state and the oldest unacknowledged age")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_counts)

    p = qs.add_parser("purge", help="delete envelope bytes central has acknowledged "
                      "(rows and audit entries stay)")
    p.add_argument("--acknowledged", action="store_true",
                   help="all acknowledged/rejected ones now, not only those past retention_days")
    p.add_argument("--operator", default="technician", help="who does it (for the audit log)")
    p.set_defaults(func=cmd_purge)

    p = qs.add_parser("check", help="full integrity check, audit chain and outbox consistency")
    p.set_defaults(func=cmd_check)


def cmd_list(args) -> int:
    store = open_existing_store(args, "no queue yet (nothing has been booked here)")
    if store is None:
        return 0
    with store:
        items = store.outbox.list(state=args.state, limit=args.limit)
    if args.json:
        for it in items:
            print(json.dumps(it.summary(), sort_keys=True))
        return 0
    if not items:
        print("outbox is empty" + (f" (state {args.state})" if args.state else ""))
        return 0
    print(f"{'submission id':36}  {'state':12}  {'created (UTC)':20}  {'tries':>5}  "
          f"{'size':>9}  tcn")
    for it in items:
        s = it.summary()
        print(f"{it.submission_id:36}  {it.state:12}  {s['created']:20}  {it.attempts:>5}  "
              f"{it.size:>9}  {it.tcn or '-'}")
    return 0


def cmd_show(args) -> int:
    from fpagent.sealing import envelope
    from fpagent.errors import UserError

    store = open_existing_store(args, "no queue yet (nothing has been booked here)")
    if store is None:
        return 1
    with store:
        item = store.outbox.get(args.submission_id, with_envelope=True)
    if item is None:
        raise UserError(f"no submission {args.submission_id} in the outbox; "
                        f"see `fpagent queue list`")
    out = item.summary()
    if item.envelope is not None:
        try:
            out["header"] = envelope.inspect(item.envelope).to_dict()
            out["envelope_bytes"] = envelope.envelope_sizes(item.envelope)
        except envelope.EnvelopeError as exc:
            out["header_error"] = str(exc)
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    for key in ("submission_id", "state", "tcn", "booking_number", "seq", "created",
                "attempts", "last_attempt", "next_attempt", "size", "central_tcn",
                "acknowledged_at", "rejected_at", "reason", "purged_at"):
        if out.get(key) is not None:
            print(f"{key:16} {out[key]}")
    if out.get("header"):
        print("signed header (content is encrypted to central; this appliance cannot read it):")
        for k, v in out["header"].items():
            print(f"  {k:16} {v}")
    if out.get("header_error"):
        print(f"envelope header unreadable: {out['header_error']}")
    return 0


def cmd_counts(args) -> int:
    store = open_existing_store(args, "no queue yet (nothing has been booked here)")
    if store is None:
        return 0
    with store:
        counts = store.outbox.counts()
        age = store.outbox.oldest_pending_age()
        queued = store.outbox.queued_bytes()
        inbox_new = store.inbox.count(unacknowledged=True)
    if args.json:
        print(json.dumps({"counts": counts, "oldest_unacknowledged_s": age,
                          "queued_bytes": queued, "unacknowledged_notifications": inbox_new,
                          "at": time.time()}, sort_keys=True))
        return 0
    for state in ("pending", "sent", "acknowledged", "rejected", "purged", "total"):
        print(f"{state:13} {counts[state]:>7}")
    print(f"oldest unacknowledged: {human_age(age)}")
    print(f"stored envelopes: " + (f"{queued / 1048576:.1f} MB" if queued >= 1048576
                                     else f"{queued / 1024:.0f} KiB"))
    if inbox_new:
        print(f"notifications not yet acknowledged by an officer: {inbox_new}")
    return 0


def cmd_check(args) -> int:
    from fpagent.storage.store import Store

    cfg = config_mod.load(args.config)
    path = cfg.paths.database()
    if not path.exists():
        print(f"no database yet at {path}")
        return 0
    with Store(path, cfg, check="full", on_corrupt="raise") as store:
        problems = store.check_consistency()
        if store.recovered_from:
            print(f"the database was corrupt and was moved aside to {store.recovered_from}")
    if problems:
        for p in problems:
            print(f"PROBLEM: {p}")
        return 1
    print(f"{path}: integrity ok, audit chain intact, outbox consistent")
    return 0


def cmd_purge(args) -> int:
    store = open_existing_store(args, "no queue yet (nothing has been booked here)")
    if store is None:
        return 0
    with store:
        before = store.outbox.queued_bytes()
        if args.acknowledged:
            n = store.outbox.purge_acknowledged(actor=args.operator)
        else:
            n = store.outbox.purge_expired(actor=args.operator)
        freed = before - store.outbox.queued_bytes()
    print(f"purged {n} acknowledged submissions ({freed / 1048576:.1f} MB of envelopes); "
          f"unacknowledged ones are never purged")
    return 0
