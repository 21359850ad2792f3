"""The program's figures for a period: what was submitted and what central answered.

The same table for central (all appliances, from its SQLite file) and for a
jail (its own bookings, from the appliance's outbox and inbox): submissions,
criminal-history matches, immigration matches, determinations by level,
U.S. citizens and lawful status, rejects, and the median time from
submission to each answer. Pure: the callers read their stores and hand in
plain rows.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics

from fpagent.errors import UserError

CHECKS = ("criminal-history", "immigration")
REPRINT = "reprint"  # central rejected the prints instead of answering


@dataclasses.dataclass
class Submission:
    """One submission in the period, and the answers it has had so far."""

    submission_id: str
    submitted_at: float
    result: str  # accepted, rejected, or pending (no ack yet)
    answers: list = dataclasses.field(default_factory=list)  # (answered_at or None, body)


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


def _first_per_check(answers) -> dict:
    """The first answer to each question (a duplicate delivery is the same answer again)."""
    out = {}
    for answered_at, body in sorted(answers, key=lambda a: (a[0] is None, a[0] or 0.0)):
        check = body.get("check")
        if check in (*CHECKS, REPRINT) and check not in out:
            out[check] = (answered_at, body)
    return out


def figures(submissions: list[Submission], *, since: float = 0.0) -> dict:
    """The table's numbers for these submissions (callers pass those made since `since`)."""
    out = {"since": _rfc3339(since) if since else None, "submissions": len(submissions),
           "accepted": 0, "rejected": 0, "pending": 0, "reprints_requested": 0,
           "criminal_history": {"answered": 0, "hits": 0, "no_hits": 0},
           "immigration": {"answered": 0, "matches": 0, "no_match": 0, "under_review": 0,
                           "citizen_or_lawful": 0, "removable": 0,
                           "level_1": 0, "level_2": 0, "level_3": 0},
           "median_s": {}}
    delays = {check: [] for check in CHECKS}
    for sub in submissions:
        out[sub.result if sub.result in ("accepted", "rejected") else "pending"] += 1
        for check, (answered_at, body) in _first_per_check(sub.answers).items():
            if check == REPRINT:
                out["reprints_requested"] += 1
                continue
            if answered_at is not None:
                delays[check].append(max(0.0, answered_at - sub.submitted_at))
            if check == "criminal-history":
                crim = out["criminal_history"]
                crim["answered"] += 1
                crim["hits" if body.get("result") == "hit" else "no_hits"] += 1
                continue
            imm = out["immigration"]
            imm["answered"] += 1
            determination = body.get("determination")
            if determination == "no-match":
                imm["no_match"] += 1
                continue
            imm["matches"] += 1
            if determination == "under-review":
                imm["under_review"] += 1
            elif determination == "citizen-or-lawful-no-action":
                imm["citizen_or_lawful"] += 1
            elif determination == "removable":
                imm["removable"] += 1
                if body.get("level") in (1, 2, 3):
                    imm[f"level_{body['level']}"] += 1
    out["median_s"] = {check: round(statistics.median(d), 3) if d else None
                       for check, d in delays.items()}
    return out


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
    crim, imm = fig["criminal_history"], fig["immigration"]
    rows = [
        ("Submissions", fig["submissions"]),
        ("  accepted", fig["accepted"]),
        ("  rejected", fig["rejected"]),
        ("  not yet acknowledged", fig["pending"]),
        ("  prints rejected, reprint requested", fig["reprints_requested"]),
        ("Criminal-history answers", crim["answered"]),
        ("  matches (hits)", crim["hits"]),
        ("  no record", crim["no_hits"]),
        ("Immigration answers", imm["answered"]),
        ("  matches", imm["matches"]),
        ("    removable, level 1", imm["level_1"]),
        ("    removable, level 2", imm["level_2"]),
        ("    removable, level 3", imm["level_3"]),
        ("    U.S. citizen or lawful status", imm["citizen_or_lawful"]),
        ("    under review", imm["under_review"]),
        ("  no record", imm["no_match"]),
        ("Median time to the criminal-history answer", _duration(fig["median_s"]["criminal-history"])),
        ("Median time to the immigration answer", _duration(fig["median_s"]["immigration"])),
    ]
    head = f"{title}, since {fig['since']}" if fig["since"] else f"{title}, all recorded"
    return [head] + [f"{label:<46} {value:>10}" for label, value in rows]


def render(fig: dict, title: str, as_json: bool) -> str:
    """`--json`: one JSON object on one line; otherwise the table."""
    return json.dumps(fig, sort_keys=True) if as_json else "\n".join(table(fig, title))
