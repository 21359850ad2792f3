"""Central's `purge` command: delete what the appliance still holds of some bookings.

What goes, per booking: the sealed envelope and the booking's details in the
outbox row (the row stays as a tombstone: state "purged", its id and TCN, so
a redelivered answer is still recognised), central's answers about it in the
inbox (matched by TCR or submission id), its templates in the local "recent"
gallery, and its JMS spool files (done/NAME.json and NAME.result.json). The
audit log is never touched: each purge is one more audit entry.

Never purged: a booking central has not acknowledged (pending or sent). By
TCN, naming one refuses the whole command (nothing is deleted, the result
says how many); by age, such bookings are kept and counted in the result.
Central can ask again once it has acknowledged them. So a purge can never
lose a booking that has not reached central.
"""

from __future__ import annotations

import json
import pathlib
import time

from fpagent.booking import spool as spool_mod
from fpagent.screening.galleries import RECENT, GalleryStore
from fpagent.storage.outbox import UNACKNOWLEDGED

ACTOR = "central"  # the audit trail names who asked for it


def _bookings(store, tcns, older_than_s, now) -> list[tuple[str, str, str]]:
    """(submission_id, tcn, state) of the bookings the command names."""
    with store.transaction():
        if tcns:
            marks = ",".join("?" * len(tcns))
            rows = store.conn.execute(
                f"SELECT submission_id, tcn, state FROM outbox WHERE tcn IN ({marks})",
                list(tcns)).fetchall()
        else:
            rows = store.conn.execute(
                "SELECT submission_id, tcn, state FROM outbox WHERE created <= ?",
                (now - older_than_s,)).fetchall()
    return [(r[0], r[1] or "", r[2]) for r in rows]


def purge_bookings(store, cfg, *, tcns=(), older_than_days: float | None = None,
                   message_id: str = "", now: float | None = None) -> dict:
    """Purge the bookings named by TCN or by age; returns the command's result (see module doc).

    Runs inside the caller's transaction (the link's, which records the command).
    """
    now = time.time() if now is None else now
    older_than_s = None if older_than_days is None else older_than_days * 86400.0
    rows = _bookings(store, tuple(tcns), older_than_s, now)
    open_rows = [r for r in rows if r[2] in UNACKNOWLEDGED]
    if tcns and open_rows:
        return {"outcome": "refused", "reason": "not-acknowledged",
                "detail": f"{len(open_rows)} of the named bookings are not acknowledged by "
                          f"central yet; nothing purged"}
    closed = [r for r in rows if r[2] not in UNACKNOWLEDGED and r[2] != "purged"]
    purged_ids = {r[0] for r in closed}
    purged_tcns = {r[1] for r in closed if r[1]}
    for sid, _, _ in closed:
        store.outbox.purge(sid, reason="central purge", actor=ACTOR, now=now)
        store.conn.execute("UPDATE outbox SET meta = NULL, booking_number = NULL, ack = NULL "
                           "WHERE submission_id = ?", (sid,))
    answers = _purge_answers(store, purged_ids, purged_tcns)
    recent = _purge_recent(cfg, purged_tcns)
    spooled = _purge_spool(cfg, purged_tcns)
    found = set(t for _, t, _ in rows)
    unknown = [t for t in tcns if t not in found]
    store.audit.append(ACTOR, "bookings-purged", {
        "message_id": message_id, "bookings": len(closed), "answers": answers,
        "recent_templates": recent, "spool_files": spooled, "kept_unacknowledged": len(open_rows),
        "unknown_tcns": len(unknown)}, now=now)
    detail = (f"{len(closed)} bookings purged ({answers} answers, {recent} templates, "
              f"{spooled} spool files)")
    if open_rows:
        detail += f"; {len(open_rows)} kept: not acknowledged by central yet"
    if unknown:
        detail += f"; {len(unknown)} TCNs not held here"
    return {"outcome": "applied", "reason": "done", "detail": detail}


def _purge_answers(store, submission_ids: set, tcns: set) -> int:
    """Delete the inbox notifications about these bookings (bodies are sealed: read each)."""
    if not submission_ids:
        return 0
    gone = 0
    for item in store.inbox.list(kind="notification", limit=1_000_000):
        body = item["body"]
        if body.get("submission_id") in submission_ids or body.get("tcr") in tcns:
            store.conn.execute("DELETE FROM inbox WHERE message_id = ?", (item["message_id"],))
            gone += 1
    return gone


def _purge_recent(cfg, tcns: set) -> int:
    """Remove the bookings' templates ("<TCN>/<finger>") from the "recent" gallery."""
    if not tcns:
        return 0
    from fpagent.screening.prefilter import Gallery

    galleries = GalleryStore.from_config(cfg)
    if RECENT not in galleries.names():
        return 0
    gallery = Gallery.from_bytes(galleries.load(RECENT))
    doomed = [gid for gid in gallery.ids() if gid.rsplit("/", 1)[0] in tcns]
    for gid in doomed:
        gallery.remove(gid)
    if doomed:
        galleries.save(RECENT, gallery.to_bytes())
    return len(doomed)


def _purge_spool(cfg, tcns: set) -> int:
    """Delete the JMS spool's done/NAME.json and NAME.result.json of these bookings."""
    if not tcns or not cfg.jms.spool_dir:
        return 0
    spool = pathlib.Path(cfg.jms.spool_dir)
    gone = 0
    for result in spool.glob("*.result.json"):
        try:
            doc = json.loads(result.read_bytes()[:65536])
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or doc.get("tcn") not in tcns:
            continue
        name = result.name[:-len(".result.json")]
        for path in (spool / spool_mod.DONE / f"{name}.json", result):
            try:
                path.unlink()
                gone += 1
            except FileNotFoundError:
                pass
    return gone
