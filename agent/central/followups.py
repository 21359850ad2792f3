"""Answers after the first: later versions of a determination, and release notices.

Central's answer to a question may change (under review, removable level 2,
a detainer lodged, lifted). Each later answer is one more notification row
for the same submission and check with the next `version`; the responder
sends it when due, like any other. A jail's release notice (a `release`
message signed by the device key) is verified, stored once per id, and
answered with a signed notification of check "release-notice"; the same
notice published again gets the same answer again.

Functions over central's SQLite connection (inside the caller's transaction).
"""

from __future__ import annotations

import json
import time
import uuid

from fpagent.errors import FpagentError
from fpagent.link import messages
from fpagent.sealing import envelope as envelope_mod

SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    release_id TEXT PRIMARY KEY, submission_id TEXT NOT NULL, ori TEXT NOT NULL,
    device TEXT NOT NULL, tcr TEXT NOT NULL, released_at TEXT NOT NULL, officer TEXT NOT NULL,
    received_at REAL NOT NULL, answer_id TEXT NOT NULL
);
"""


class ReleaseRefused(FpagentError, ValueError):
    """A release notice central does not take (not verified, not this device's booking...)."""


def next_version(db, submission_id: str, check: str) -> int:
    """One more than the highest version central stored for (submission, check)."""
    best = 0
    for (fields,) in db.execute("SELECT fields FROM notifications WHERE submission_id = ?",
                                (submission_id,)):
        body = json.loads(fields)
        if body.get("check") == check:
            best = max(best, messages.version_of(body))
    return best + 1


def immigration_update(db, submission_id: str, *, determination: str, level: int | None = None,
                       detainer: dict | None = None, instructions: str = "",
                       version: int | None = None, due_at: float | None = None) -> str:
    """Queue a later immigration answer for a stored submission; returns its message id.

    `version` defaults to the next one; an explicit lower one is how a test sends a stale answer."""
    row = db.execute("SELECT ori, device, tcn, central_tcn, result FROM submissions "
                     "WHERE submission_id = ?", (submission_id,)).fetchone()
    if row is None or row[4] != "accepted":
        raise LookupError(f"no accepted submission {submission_id!r}")
    ori, device, tcn, ctn, _ = row
    fields = messages.immigration_body(
        submission_id=submission_id, tcr=tcn or "", central_tcn=ctn or "",
        determination=determination, level=level, detainer=detainer, instructions=instructions,
        version=version or next_version(db, submission_id, "immigration"))
    nid = messages.new_id()
    db.execute("INSERT INTO notifications (id, submission_id, ori, device, kind, fields, due_at) "
               "VALUES (?, ?, ?, ?, 'notification', ?, ?)",
               (nid, submission_id, ori, device, json.dumps(fields, sort_keys=True),
                time.time() if due_at is None else due_at))
    return nid


def scripted(submission_id: str, tcr: str, central_tcn: str, steps, start: float) -> list:
    """(id, due_at, fields) of the later answers a known person's record scripts ("then")."""
    out = []
    for n, step in enumerate(steps, start=2):
        fields = messages.immigration_body(
            submission_id=submission_id, tcr=tcr, central_tcn=central_tcn,
            determination=step["determination"], level=step.get("level"),
            detainer=step.get("detainer"), instructions=step.get("instructions", ""), version=n)
        out.append((uuid.uuid5(uuid.NAMESPACE_URL, f"fpagent-imm:{submission_id}:v{n}").hex,
                    start + float(step.get("after_s", 0.0)), fields))
    return out


def verify_release(keys, topic: str, payload: bytes) -> dict:
    """The body of a release notice signed by the device the topic names; else ReleaseRefused."""
    parts = messages.split_topic(topic)
    if not parts or parts[3] != "release":
        raise ReleaseRefused("not a release topic")
    _, ori, device, _ = parts
    try:
        body = envelope_mod.verify_message(payload, keys.devices.keys_for(ori, device),
                                           max_size=messages.MAX_MESSAGE_BYTES)
        messages.validate_release(body)
    except (envelope_mod.EnvelopeError, messages.MessageError) as exc:
        raise ReleaseRefused(str(exc)[:200]) from None
    if body["ori"] != ori or body["device"] != device:
        raise ReleaseRefused(f"signed for {str(body['ori'])[:16]}/{str(body['device'])[:64]}")
    return body


def record_release(db, body: dict) -> str:
    """Store a verified release notice once; returns the id of central's answer to it.

    The answer is (re)queued each time the notice comes, so a lost answer is sent again."""
    sid = body["submission_id"]
    row = db.execute("SELECT ori, device, tcn, central_tcn FROM submissions "
                     "WHERE submission_id = ?", (sid,)).fetchone()
    if row is None or (row[0], row[1]) != (body["ori"], body["device"]):
        raise ReleaseRefused("names no submission of this device")
    answer_id = uuid.uuid5(uuid.NAMESPACE_URL, f"fpagent-release:{body['id']}").hex
    db.execute("INSERT OR IGNORE INTO releases (release_id, submission_id, ori, device, tcr, "
               "released_at, officer, received_at, answer_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (body["id"], sid, row[0], row[1], row[2] or "", body["released_at"],
                body["officer"], time.time(), answer_id))
    fields = messages.release_ack_body(submission_id=sid, tcr=row[2] or "",
                                       central_tcn=row[3] or "", release_id=body["id"],
                                       released_at=body["released_at"])
    db.execute("INSERT INTO notifications (id, submission_id, ori, device, kind, fields, due_at) "
               "VALUES (?, ?, ?, ?, 'notification', ?, ?) ON CONFLICT(id) DO UPDATE SET "
               "sent_at = NULL, claimed_until = NULL",
               (answer_id, sid, row[0], row[1], json.dumps(fields, sort_keys=True), time.time()))
    return answer_id


def releases(db, submission_id: str | None = None) -> list[dict]:
    """The release notices central has (all, or one booking's)."""
    sql = ("SELECT release_id, submission_id, ori, device, tcr, released_at, officer, "
           "received_at FROM releases")
    rows = db.execute(sql + (" WHERE submission_id = ?" if submission_id else "")
                      + " ORDER BY received_at", (submission_id,) if submission_id else ())
    keys = ("release_id", "submission_id", "ori", "device", "tcr", "released_at", "officer",
            "received_at")
    return [dict(zip(keys, r)) for r in rows]
