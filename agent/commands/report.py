"""`fpagent report [--since DATE] [--json]`: the program's figures for this jail's own bookings.

From the appliance's outbox (what was submitted, and central's ack) and inbox
(central's answers, and the release notices this jail sent): the same table
as `fpagent central report`. Answers already removed by the retention limit
are no longer counted.
"""

from __future__ import annotations

from fpagent import config as config_mod
from fpagent.booking import figures

_ALL = 10**9


def _rows(store, since: float) -> list:
    """Submissions queued since `since`, with the answers the inbox holds for them."""
    from fpagent.storage.releases import Releases
    subs = {}
    for item in store.outbox.list(limit=_ALL):
        if item.created < since:
            continue
        result = ("rejected" if item.rejected_at is not None
                  else "accepted" if item.acknowledged_at is not None else "pending")
        subs[item.submission_id] = figures.Submission(
            item.submission_id, item.created, result,
            reprint_of=str((item.meta or {}).get("reprint_of") or ""))
    for notice in Releases(store).all():
        sub = subs.get(notice["body"].get("submission_id"))
        if sub is not None:
            sub.releases[notice["message_id"]] = notice["received"]
    for note in store.inbox.list(kind="notification", limit=_ALL):
        sub = subs.get(note["body"].get("submission_id"))
        if sub is not None:
            sub.answers.append((note["received"], note["body"]))
    return list(subs.values())


def run(args) -> int:
    from fpagent.storage.store import Store
    since = figures.parse_since(args.since)
    cfg = config_mod.load(args.config)
    with Store(cfg.paths.database(), cfg, on_corrupt="raise") as store:
        rows = _rows(store, since)
    title = f"Appliance {cfg.device.ori}/{cfg.device.device_id}"
    print(figures.render(figures.figures(rows, since=since), title, args.json))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("report", help="the program's figures for this jail's bookings "
                            "(submissions, matches, determinations, rejects, times)",
                            description=__doc__)
    parser.add_argument("--since", metavar="DATE", help="from this date or time (UTC; default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.set_defaults(func=run)
