"""`fpagent central answer SUBMISSION ...`: a later answer from the reference central, by hand.

For tests, demos and integrators: queue the next version of a booking's
immigration answer (under review, removable with a level, a detainer lodged
or lifted) in central's SQLite file; the running `fpagent central run` sends
it within a moment, signed. `--version` sends a chosen (e.g. stale) version.
"""

from __future__ import annotations

import json
import pathlib

from fpagent.errors import UserError


def _answer(args) -> int:
    from fpagent.central import followups
    from fpagent.central.store import CentralStore
    from fpagent.link import messages
    if not pathlib.Path(args.db).exists():
        raise UserError(f"{args.db} does not exist")
    detainer = None
    if args.determination == "detainer-lodged":
        if bool(args.hold_until) == (args.notify_hours_before is not None):
            raise UserError("a detainer needs --hold-until TIME or --notify-hours-before N")
        detainer = (messages.detainer_fields("hold", hold_until=args.hold_until) if args.hold_until
                    else messages.detainer_fields("notify-before-release",
                                                  notify_hours_before=args.notify_hours_before))
    store = CentralStore(args.db)
    try:
        with store.transaction() as db:
            row = db.execute("SELECT submission_id FROM submissions WHERE submission_id = ? "
                             "OR tcn = ? ORDER BY received_at DESC LIMIT 1",
                             (args.booking, args.booking)).fetchone()
            if row is None:
                raise UserError(f"central has no submission or TCN {args.booking!r}")
            nid = followups.immigration_update(
                db, row[0], determination=args.determination, level=args.level,
                detainer=detainer, instructions=args.instructions, version=args.version)
    except (ValueError, LookupError) as exc:
        raise UserError(str(exc)) from None
    finally:
        store.close()
    print(json.dumps({"notification": nid, "submission_id": row[0]}, sort_keys=True))
    return 0


def add_answer_action(cmds) -> None:
    """`fpagent central answer` (registered by fpagent.commands.central)."""
    from fpagent.link import messages
    p = cmds.add_parser("answer", help="queue a later immigration answer for a booking "
                        "(the running central sends it)", description=__doc__)
    p.add_argument("booking", help="submission id or the booking's TCN")
    p.add_argument("--db", required=True, help="central's SQLite file")
    p.add_argument("--determination", required=True, choices=tuple(messages.DETERMINATIONS))
    p.add_argument("--level", type=int, choices=(1, 2, 3))
    p.add_argument("--hold-until", metavar="TIME", help="a hold detainer's limit (RFC 3339 UTC)")
    p.add_argument("--notify-hours-before", type=int, metavar="N",
                   help="a notify-before-release detainer's notice, in hours")
    p.add_argument("--instructions", default="", help="free text for the officer")
    p.add_argument("--version", type=int, help="default: the next version")
    p.set_defaults(func=_answer)
