"""The watch list central pushes to the appliance (`command` watchlist.replace).

Applying one is screening's job, not the link's: the link verifies and records
the command and hands it to `WatchlistCommands`, wired in by the service. The
slow part (decoding every ISO/IEC 19794-2 template, building the prefilter
gallery, encrypting it) runs before the link's inbox transaction; inside it
only the last checks, one atomic file write and the audit entries remain, so
recording the command and replacing the list are all or nothing. A list issued
before the one applied is refused (a redelivery out of order never goes back).
The audit trail holds counts and reasons only, never biometric data.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import functools
import logging

from fpagent.errors import FpagentError
from fpagent.screening.galleries import WATCHLIST, GalleryStore

log = logging.getLogger("fpagent.screening")

ACTION = "watchlist.replace"
AUDIT_ACTOR = "link"  # the audit trail names the channel the list came by, as it always has


class WatchlistError(FpagentError, ValueError):
    """A watch list that must not be applied (a bad template, a duplicate entry)."""


def build_watchlist(entries, gallery=None) -> "object":
    """An fpagent.screening.prefilter.Gallery from watchlist.replace entries ({subject_id,
    finger_position, template_iso_b64}), ids "<subject_id>/<finger position>".
    All or nothing: any undecodable entry raises WatchlistError naming its index
    (never its content). Given `gallery`, the entries are added to it (an
    entry for a subject and finger already there replaces it)."""
    import base64
    import binascii

    from fpagent.records import fmr
    from fpagent.screening.prefilter import Gallery

    adding = gallery is not None
    gallery = gallery if adding else Gallery(capacity=max(len(entries), 1))
    seen: set = set()
    for n, e in enumerate(entries):
        gid = f"{e['subject_id']}/{int(e['finger_position'])}"
        if gid in seen or (gid in gallery and not adding):
            raise WatchlistError(f"entry {n}: a second template for the same subject and finger")
        seen.add(gid)
        try:
            record = base64.b64decode(e["template_iso_b64"], validate=True)
        except (binascii.Error, ValueError):
            raise WatchlistError(f"entry {n}: template_iso_b64 is not base64") from None
        try:
            if fmr.detect_format(record) != "iso":
                raise fmr.FmrError("not an ISO/IEC 19794-2 record")
            views = fmr.decode(record)
        except fmr.FmrError as exc:
            raise WatchlistError(f"entry {n}: {exc}") from None
        if len(views) != 1:
            raise WatchlistError(f"entry {n}: {len(views)} finger views; one per entry")
        try:
            gallery.add(gid, views[0])
        except Exception as exc:  # noqa: BLE001 - whatever the prefilter objects to
            raise WatchlistError(f"entry {n}: template not usable ({type(exc).__name__})") from None
    return gallery


@dataclasses.dataclass(frozen=True)
class PreparedWatchlist:
    """A watch list ready to be written (`sealed`), or why it cannot be (`why`, `detail`)."""

    sealed: bytes | None = None
    entries: int = 0
    subjects: int = 0
    why: str = ""
    detail: str = ""


def prepare_watchlist(entries, galleries: GalleryStore) -> PreparedWatchlist:
    """Decode, build and encrypt: everything that may take time, before any transaction."""
    try:
        gallery = build_watchlist(entries)
    except WatchlistError as exc:
        return PreparedWatchlist(why="bad-template", detail=str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. the prefilter missing: refuse, don't crash
        return PreparedWatchlist(why="not-built", detail=f"{type(exc).__name__}: {exc}")
    try:
        sealed = galleries.seal(WATCHLIST, gallery.to_bytes())
    except Exception as exc:  # noqa: BLE001 - the local key unreadable...
        return PreparedWatchlist(why="not-saved", detail=f"{type(exc).__name__}: {exc}")
    return PreparedWatchlist(sealed=sealed, entries=len(gallery),
                             subjects=len({e["subject_id"] for e in entries}))


class WatchlistCommands:
    """The service's handler of central's commands (fpagent.link.inbound.CommandHandler).

    Called with each verified, new command outside any transaction; returns the
    step the link runs inside the transaction that records the command.
    `counters`: watchlist_replaced, commands_failed.
    """

    def __init__(self, galleries: GalleryStore):
        self.galleries = galleries
        self.counters: collections.Counter = collections.Counter()

    @classmethod
    def from_config(cls, config) -> "WatchlistCommands":
        return cls(GalleryStore.from_config(config))

    def __call__(self, msg):
        if msg.body.get("action") != ACTION:
            return None
        prepared = prepare_watchlist(msg.body.get("args", {}).get("entries", []), self.galleries)
        return functools.partial(self.apply, msg, prepared)

    def apply(self, msg, prepared: PreparedWatchlist, store, issued_at: float | None = None) -> dict:
        """Replace the local "watchlist" gallery, or audit why not (inside the link's transaction);
        returns the command's result. `issued_at`: of the whole list (default: this message's).

        The file is written atomically, so a redelivery after a failed commit
        just writes it again.
        """
        issued_at = msg.issued_at if issued_at is None else issued_at
        if superseded(store, issued_at):
            return self.refuse(store, msg, "superseded", "a newer watch list is already applied")
        if prepared.sealed is None:
            return self.refuse(store, msg, prepared.why, prepared.detail)
        try:
            self.galleries.write_sealed(WATCHLIST, prepared.sealed)
        except Exception as exc:  # noqa: BLE001 - disk full...
            return self.refuse(store, msg, "not-saved", f"{type(exc).__name__}: {exc}")
        self.counters["watchlist_replaced"] += 1
        store.audit.append(AUDIT_ACTOR, "watchlist-replaced", {
            "message_id": msg.id, "issued_at": _rfc3339(issued_at),
            "entries": prepared.entries, "subjects": prepared.subjects})
        return {"outcome": "applied", "reason": "done",
                "detail": f"watch list of {prepared.entries} templates"}

    def refuse(self, store, msg, why: str, detail: str) -> dict:
        self.counters["commands_failed"] += 1
        store.counters.incr(f"link.command_failed.{why}")
        log.warning("command %s (%s) not applied: %s", msg.id[:8], msg.body.get("action"),
                    detail[:200])
        store.audit.append(AUDIT_ACTOR, "command-failed", {
            "message_id": msg.id, "action": msg.body.get("action"), "why": why,
            "detail": detail[:200]})
        reason = {"bad-template": "bad-template", "superseded": "superseded",
                  "not-saved": "not-saved", "digest-mismatch": "digest-mismatch",
                  "bad-args": "bad-args"}.get(why, "handler-error")
        return {"outcome": "refused", "reason": reason, "detail": detail[:200]}


# Audit actions that change the watch list; a command issued before the newest is refused.
CHANGED_ACTIONS = ("watchlist-replaced", "watchlist-updated")


def superseded(store, issued_at: float) -> bool:
    """A watch-list change issued before the one last applied (a late redelivery)."""
    for action in CHANGED_ACTIONS:
        last = store.audit.list(limit=1, action=action)
        if last and _issued_after(last[0].detail.get("issued_at"), issued_at):
            return True
    return False


def _rfc3339(ts: float) -> str:
    """The contract's RFC 3339 UTC form of a time (milliseconds, "Z")."""
    moment = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _issued_after(applied_issued_at, issued_at: float) -> bool:
    """The applied list was issued after this one (an unreadable time counts as not).

    The audit entry keeps the command's RFC 3339 UTC time ("...Z") as central sent it.
    """
    if not isinstance(applied_issued_at, str) or not applied_issued_at.endswith("Z"):
        return False
    try:
        applied = datetime.datetime.fromisoformat(applied_issued_at[:-1] + "+00:00")
    except ValueError:
        return False
    return applied.timestamp() > issued_at
