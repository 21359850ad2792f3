"""The program's figures for a period: what was submitted and what central answered.

The same table for central (all appliances, from its SQLite file) and for a
jail (its own bookings, from the appliance's outbox and inbox): submissions,
criminal-history matches, immigration matches, the determinations that
stand now by kind and level (an answer that changed counts once, as its
latest version), U.S. citizens and lawful status, detainers lodged and
lifted, release notices, rejects and reprints, and the median time to each
answer. Pure: the callers read their stores and hand in plain rows.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics

from fpagent.errors import UserError

CHECKS = ("criminal-history", "immigration")
REPRINT = "reprint"  # central rejected the prints instead of answering
RELEASE = "release-notice"  # central's answer to the jail's release notice
# the medians: time from submission to the first answer of each question, to the
# immigration answer that stands now, to a reprint request; notice to central's answer
MEDIANS = ("criminal-history", "immigration", "immigration-current", "reprint", "release-notice")


@dataclasses.dataclass
class Submission:
    """One submission in the period, and the answers it has had so far."""

    submission_id: str
    submitted_at: float
    result: str  # accepted, rejected, or pending (no ack yet)
    answers: list = dataclasses.field(default_factory=list)  # (answered_at or None, body)
    reprint_of: str = ""  # the original booking's TCN when this reprints it
    releases: dict = dataclasses.field(default_factory=dict)  # release notice id -> sent at


def parse_since(text: str | None) -> float:
    """Seconds since the epoch of a --since DATE (YYYY-MM-DD or an ISO time, UTC); 0 for none."""
    if not text:
        return 0.0
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--since {text!r}: give a date (2026-11-01) or a time "
                        f"(2026-11-01T08:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _version(body: dict) -> int:
    version = body.get("version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


def _versions(answers) -> dict:
    """check -> [(answered_at, body)] one per version, lowest first; the same version
    delivered again is the same answer (its first delivery counts)."""
    out: dict = {}
    seen = set()
    for answered_at, body in sorted(answers, key=lambda a: (a[0] is None, a[0] or 0.0)):
        key = (body.get("check"), _version(body),
               body.get("release_id") if body.get("check") == RELEASE else None)
        if key not in seen:
            seen.add(key)
            out.setdefault(key[0], []).append((answered_at, body))
    for versions in out.values():
        versions.sort(key=lambda a: _version(a[1]))
    return out


def _empty(since: float) -> dict:
    return {"since": _rfc3339(since) if since else None, "submissions": 0,
            "accepted": 0, "rejected": 0, "pending": 0,
            "reprints_requested": 0, "reprints_submitted": 0,
            "criminal_history": {"answered": 0, "hits": 0, "no_hits": 0},
            "immigration": {"answered": 0, "matches": 0, "no_match": 0, "under_review": 0,
                            "citizen_or_lawful": 0, "removable": 0, "detainer_lodged": 0,
                            "detainer_lifted": 0, "level_1": 0, "level_2": 0, "level_3": 0,
                            "updated": 0},
            "detainers": {"lodged": 0, "lifted": 0, "open": 0},
            "release_notices": {"sent": 0, "acknowledged": 0},
            "median_s": {}}


_DETERMINATION_KEYS = {"no-match": "no_match", "under-review": "under_review",
                       "citizen-or-lawful-no-action": "citizen_or_lawful",
                       "removable": "removable", "detainer-lodged": "detainer_lodged",
                       "detainer-lifted": "detainer_lifted"}


def figures(submissions: list[Submission], *, since: float = 0.0) -> dict:
    """The table's numbers for these submissions (callers pass those made since `since`).

    Each question counts once per booking: the immigration figures are the
    determination that stands now (the highest version), not the first answer."""
    out = _empty(since)
    out["submissions"] = len(submissions)
    delays: dict = {name: [] for name in MEDIANS}

    def delay(name, answered_at, start):
        if answered_at is not None and start is not None:
            delays[name].append(max(0.0, answered_at - start))

    for sub in submissions:
        out[sub.result if sub.result in ("accepted", "rejected") else "pending"] += 1
        out["reprints_submitted"] += bool(sub.reprint_of)
        versions = _versions(sub.answers)
        if REPRINT in versions:
            out["reprints_requested"] += 1
            delay("reprint", versions[REPRINT][0][0], sub.submitted_at)
        if "criminal-history" in versions:
            answered_at, body = versions["criminal-history"][-1]
            crim = out["criminal_history"]
            crim["answered"] += 1
            crim["hits" if body.get("result") == "hit" else "no_hits"] += 1
            delay("criminal-history", versions["criminal-history"][0][0], sub.submitted_at)
        acknowledged = {body.get("release_id"): at for at, body in versions.get(RELEASE, ())}
        out["release_notices"]["sent"] += len(set(sub.releases) | set(acknowledged))
        out["release_notices"]["acknowledged"] += len(acknowledged)
        for rid, at in acknowledged.items():
            delay("release-notice", at, sub.releases.get(rid))
        if "immigration" in versions:
            _count_immigration(out, versions["immigration"], released=bool(acknowledged))
            delay("immigration", versions["immigration"][0][0], sub.submitted_at)
            delay("immigration-current", versions["immigration"][-1][0], sub.submitted_at)
    out["median_s"] = {name: round(statistics.median(d), 3) if d else None
                       for name, d in delays.items()}
    return out


def _count_immigration(out: dict, versions: list, *, released: bool) -> None:
    """One booking's immigration answers: the current one counted, detainers over its history."""
    imm, detainers = out["immigration"], out["detainers"]
    body = versions[-1][1]
    determination = body.get("determination")
    imm["answered"] += 1
    imm["updated"] += len(versions) > 1
    if determination in _DETERMINATION_KEYS:
        imm[_DETERMINATION_KEYS[determination]] += 1
    if determination != "no-match":
        imm["matches"] += 1
    if body.get("level") in (1, 2, 3):
        imm[f"level_{body['level']}"] += 1
    seen = {b.get("determination") for _, b in versions}
    detainers["lodged"] += "detainer-lodged" in seen
    detainers["lifted"] += "detainer-lifted" in seen
    detainers["open"] += determination == "detainer-lodged" and not released


def _rfc3339(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def table(fig: dict, title: str) -> list[str]:
    """The figures as lines a person reads."""
    crim, imm, med = fig["criminal_history"], fig["immigration"], fig["median_s"]
    det, rel = fig["detainers"], fig["release_notices"]
    rows = [
        ("Submissions", fig["submissions"]),
        ("  accepted", fig["accepted"]),
        ("  rejected", fig["rejected"]),
        ("  not yet acknowledged", fig["pending"]),
        ("  prints rejected, reprint requested", fig["reprints_requested"]),
        ("  reprints (TCR = an earlier booking)", fig["reprints_submitted"]),
        ("Criminal-history answers", crim["answered"]),
        ("  matches (hits)", crim["hits"]),
        ("  no record", crim["no_hits"]),
        ("Immigration answers (current determination)", imm["answered"]),
        ("  matches", imm["matches"]),
        ("    removable", imm["removable"]),
        ("    detainer lodged", imm["detainer_lodged"]),
        ("    detainer lifted", imm["detainer_lifted"]),
        ("    U.S. citizen or lawful status", imm["citizen_or_lawful"]),
        ("    under review", imm["under_review"]),
        ("  no record", imm["no_match"]),
        ("  offence level 1", imm["level_1"]),
        ("  offence level 2", imm["level_2"]),
        ("  offence level 3", imm["level_3"]),
        ("  determination changed after the first answer", imm["updated"]),
        ("Detainers lodged", det["lodged"]),
        ("  lifted", det["lifted"]),
        ("  open (no release notice acknowledged)", det["open"]),
        ("Release notices", rel["sent"]),
        ("  acknowledged by central", rel["acknowledged"]),
        ("Median time to the criminal-history answer", _duration(med["criminal-history"])),
        ("Median time to the first immigration answer", _duration(med["immigration"])),
        ("Median time to the current determination", _duration(med["immigration-current"])),
        ("Median time to a reprint request", _duration(med["reprint"])),
        ("Median time to central's answer to a release", _duration(med["release-notice"])),
    ]
    head = f"{title}, since {fig['since']}" if fig["since"] else f"{title}, all recorded"
    return [head] + [f"{label:<48} {value:>10}" for label, value in rows]


def render(fig: dict, title: str, as_json: bool) -> str:
    """`--json`: one JSON object on one line; otherwise the table."""
    return json.dumps(fig, sort_keys=True) if as_json else "\n".join(table(fig, title))
