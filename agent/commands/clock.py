"""`fpagent clock`: is the clock known to be right, and confirming it by hand.

Bookings wait until the clock is synchronised (fpagent.service.clock). Without
a time server, an operator reads the time off a trusted clock and confirms it.
"""

from __future__ import annotations

import datetime

from fpagent import config
from fpagent.errors import UserError
from fpagent.service import clock


def register(sub):
    parser = sub.add_parser("clock", help="show or confirm that the clock is right",
                            description="Bookings wait until the clock is known to be "
                            "synchronised by a time server or confirmed by an operator.")
    parser.set_defaults(_parser=parser)
    cs = parser.add_subparsers(dest="clock_command", metavar="ACTION")
    p = cs.add_parser("status", help="is the clock known to be synchronised?")
    p.set_defaults(func=cmd_status)
    p = cs.add_parser("confirm", help="confirm the time read off a trusted clock (audited)")
    p.add_argument("--utc", required=True, metavar="YYYY-MM-DDTHH:MM",
                   help="the UTC time shown by a trusted clock now")
    p.add_argument("--by", default="operator", help="who confirms (for the audit log)")
    p.set_defaults(func=cmd_confirm)


def cmd_status(args) -> int:
    cfg = config.load(args.config)
    state = clock.check(cfg)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"clock: {now} UTC, {state.detail}")
    return 0 if state.synchronised else 1


def cmd_confirm(args) -> int:
    from fpagent.storage.store import Store

    cfg = config.load(args.config)
    try:
        given = datetime.datetime.fromisoformat(args.utc.rstrip("Z"))
    except ValueError:
        raise UserError(f"--utc {args.utc!r} is not a time like 2026-11-28T06:30") from None
    given = given.replace(tzinfo=datetime.timezone.utc)
    with Store(cfg.paths.database(), cfg) as store:
        try:
            skew = clock.confirm(cfg, store, given, by=str(args.by)[:64])
        except ValueError as exc:
            raise UserError(str(exc)) from None
    print(f"clock confirmed (differs from the time given by {skew:+.0f} s); bookings may start")
    return 0
