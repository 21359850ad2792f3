"""`fpagent notifications [bookings|list|show ID|ack ID]`: central's answers, for the officer.

Answers evolve (a later version supersedes an earlier one for the same
question): `bookings` (the default) shows each booking's current state, its open detainer
task with its deadline, and its history; the banners follow the current
answers only. `ack TCN --by NAME` acknowledges a whole booking (audited with
who and when), which stops the service's reminders for it.
"""

from __future__ import annotations

import getpass
import json

from fpagent import config as config_mod
from fpagent.booking import answer_state, reminders
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


def _all_bookings(store) -> list:
    return answer_state.fold(store.inbox.list(kind="notification", limit=100000))


def _list(args) -> int:
    with _store(args) as store:
        items = store.inbox.list(kind="notification", unacknowledged=not args.all, limit=args.limit)
        standing = {a.message_id: a.standing for b in _all_bookings(store) for a in b.history}
        if args.json:
            print(json.dumps(items, sort_keys=True, indent=1))
            return 0
        if not items:
            print("no unacknowledged notifications" if not args.all else "no notifications")
            return 0
        for item in items:
            now = standing.get(item["message_id"], "current")
            # an answer that is no longer current (superseded, or stale on arrival) raises no banner
            for line in (view.banner(item["body"]) if now == "current"
                         and view.severity(item["body"]) == "critical" else []):
                print(line)
            print(view.summary_line(item) + ("" if now == "current" else f"   [{now}]"))
    return 0


def _bookings(args) -> int:
    with _store(args) as store:
        bookings = _all_bookings(store)
    if not args.all:
        waiting = {b.submission_id for b, _, _ in answer_state.attention(bookings)}
        bookings = [b for b in bookings if b.submission_id in waiting]
    bookings = bookings[:args.limit]
    if args.json:
        print(json.dumps([_booking_json(b) for b in bookings], sort_keys=True, indent=1))
        return 0
    if not bookings:
        print("no booking waits for an officer" if not args.all else "no answers from central")
        return 0
    for booking in bookings:
        print("\n".join(view.booking_lines(booking, history=not args.brief)))
        print()
    return 0


def _booking_json(booking) -> dict:
    return {"submission_id": booking.submission_id, "tcr": booking.tcr,
            "current": {c: {"message_id": a.message_id, "version": a.version,
                            "headline": view.headline(a.body), "severity": view.severity(a.body),
                            "acknowledged_at": a.acknowledged_at,
                            "acknowledged_by": a.acknowledged_by}
                        for c, a in booking.current.items()},
            "tasks": [{"request": t.request, "deadline": t.deadline_text(),
                       "hold_until": t.hold_until, "notify_hours_before": t.notify_hours_before,
                       "open": t.open, "closed_by": t.closed_by} for t in booking.tasks],
            "history": [{"message_id": a.message_id, "received": a.received, "check": a.check,
                         "version": a.version, "standing": a.standing,
                         "headline": view.headline(a.body)} for a in booking.history]}


def _show(args) -> int:
    with _store(args) as store:
        item = _find(store, args.id)
        print(json.dumps(item, sort_keys=True, indent=1) if args.json else view.render(item))
    return 0


def _ack_booking(store, booking, operator: str, cfg_hook) -> int:
    """Acknowledge every unacknowledged answer of a booking; audited with who and when."""
    done = [a.message_id for a in booking.history if a.acknowledged_at is None
            and store.inbox.acknowledge(a.message_id, operator)]
    store.audit.append(operator, "booking.acknowledged", {
        "submission_id": booking.submission_id, "tcr": booking.tcr, "notifications": len(done)})
    after = answer_state.find(_all_bookings(store), booking.submission_id)
    if cfg_hook.hook:  # the jail's system hears of the acknowledgement too
        from fpagent.link.hook import NotificationHook
        NotificationHook(cfg_hook.hook, cfg_hook.hook_timeout_s).run_one(reminders.event(
            after, [], after.open_tasks(), "acknowledged") | {"by": operator})
    print(f"acknowledged booking TCN {booking.tcr} ({len(done)} answer(s)) by {operator}")
    for task in after.open_tasks():
        print(f"still open: detainer task, {task.deadline_text()}")
    return 0


def _ack(args) -> int:
    operator = args.operator or getpass.getuser()
    cfg = config_mod.load(args.config)
    with _store(args) as store:
        booking = answer_state.find(_all_bookings(store), args.id)
        if booking is not None and (args.id == booking.tcr or args.id == booking.submission_id):
            return _ack_booking(store, booking, operator, cfg.notifications)
        item = _find(store, args.id)
        if store.inbox.acknowledge(item["message_id"], operator):
            print(f"acknowledged {item['message_id'][:12]} ({view.headline(item['body'])}) by {operator}")
        else:
            print(f"{item['message_id'][:12]} was already acknowledged")
    return 0


def register(sub) -> None:
    parser = sub.add_parser("notifications", help="central's answers: hits, no-hits, immigration "
                            "determinations", description=__doc__)
    # without an action: the bookings that wait for an officer, with their current state
    parser.set_defaults(_parser=parser, func=_bookings, all=False, brief=False, limit=100,
                        json=False)
    cmds = parser.add_subparsers(dest="notifications_cmd", metavar="ACTION")
    p = cmds.add_parser("bookings", help="each booking's current answers, open tasks with their "
                        "deadlines, and history (those waiting for an officer unless --all)")
    p.add_argument("--all", action="store_true", help="every booking with answers")
    p.add_argument("--brief", action="store_true", help="without the history")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_bookings)
    p = cmds.add_parser("list", help="unacknowledged notifications (newest first)")
    p.add_argument("--all", action="store_true", help="include acknowledged ones")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)
    p = cmds.add_parser("show", help="one notification in full")
    p.add_argument("id", help="notification id (or its first characters)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)
    p = cmds.add_parser("ack", help="mark a notification, or a whole booking (its TCN), as read "
                        "by an officer (audited)")
    p.add_argument("id", help="notification id (or its first characters), or a booking's TCN "
                   "or submission id")
    p.add_argument("--operator", "--by", dest="operator",
                   help="who read it (default: the login name)")
    p.set_defaults(func=_ack)
