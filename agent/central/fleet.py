"""Central's side of the fleet commands: issue them, and keep what each appliance answered.

Every command central signs and publishes is recorded (id, addressee,
action, a summary of its args without templates or keys); every `result` an
appliance sends back (signed with its device key, on its own `result`
topic) is verified with the keys registered for the topic's (ORI, device),
checked against the contract and stored once per result id. `fpagent central
commands` lists them: each command with the results that name it.
"""

from __future__ import annotations

import json
import time

from fpagent.errors import FpagentError
from fpagent.link import fleet_commands, messages
from fpagent.sealing import envelope as envelope_mod

SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_commands (
    id TEXT PRIMARY KEY, ori TEXT NOT NULL, device TEXT NOT NULL, action TEXT NOT NULL,
    summary TEXT NOT NULL, issued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_results (
    id TEXT PRIMARY KEY, command_id TEXT NOT NULL, ori TEXT NOT NULL, device TEXT NOT NULL,
    action TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_results_command ON fleet_results (command_id);
"""


class ResultRefused(FpagentError, ValueError):
    """A `result` payload central does not store (unsigned, another device's, malformed)."""


def args_summary(action: str, args: dict) -> dict:
    """What central keeps of a command's args: counts for watch lists, no key material."""
    if action in ("watchlist.replace", "watchlist.update"):
        out = {k: len(v) for k, v in args.items() if isinstance(v, list)}
        out.update({k: args[k] for k in ("list_id", "chunk", "chunks") if k in args})
        return out
    if action == "key-rotation":
        return {k: args.get(k) for k in ("not_before", "not_after")}
    return args


def record_command(db, body: dict, *, now: float | None = None) -> None:
    db.execute("INSERT OR IGNORE INTO fleet_commands (id, ori, device, action, summary, issued_at) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               (body["id"], body["ori"], body["device"], body["action"],
                json.dumps(args_summary(body["action"], body.get("args", {})), sort_keys=True),
                time.time() if now is None else now))


def sign_command(fields: dict, signing_key, *, ori: str, device: str) -> tuple[dict, bytes]:
    """(body, wire bytes) of one signed command to one appliance."""
    body = messages.message("command", fields, ori=ori, device=device)
    messages.validate_body("command", body)
    return body, messages.sign(body, signing_key)


def verify_result(topic: str, payload: bytes, registry) -> dict:
    """The verified body of a `result` on an appliance's topic; raises ResultRefused."""
    parts = messages.split_topic(topic)
    if not parts or parts[3] != "result":
        raise ResultRefused("not a result topic")
    _, ori, device, _ = parts
    try:
        body = envelope_mod.verify_message(payload, registry.keys_for(ori, device),
                                           max_size=messages.MAX_MESSAGE_BYTES)
    except envelope_mod.EnvelopeError as exc:
        raise ResultRefused(str(exc)[:200]) from None
    if body.get("ori") != ori or body.get("device") != device:
        raise ResultRefused("signed for another appliance than the topic's")
    try:
        fleet_commands.validate_result(body)
    except messages.MessageError as exc:
        raise ResultRefused(exc.detail) from None
    if not isinstance(body.get("id"), str) or not 0 < len(body["id"]) <= 64:
        raise ResultRefused("result needs an id")
    return body


def record_result(db, body: dict, *, now: float | None = None) -> bool:
    """Store a verified result once (by its id); False when it was already stored."""
    cur = db.execute(
        "INSERT OR IGNORE INTO fleet_results (id, command_id, ori, device, action, outcome, "
        "reason, detail, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (body["id"], body["command_id"], body["ori"], body["device"], body["action"],
         body["outcome"], body["reason"], body.get("detail", ""),
         time.time() if now is None else now))
    return cur.rowcount == 1


def summary(conn, *, limit: int = 200) -> list[dict]:
    """The newest commands first, each with its results (oldest first)."""
    out = []
    for cid, ori, device, action, summ, issued in conn.execute(
            "SELECT id, ori, device, action, summary, issued_at FROM fleet_commands "
            "ORDER BY issued_at DESC LIMIT ?", (limit,)).fetchall():
        results = [{"outcome": o, "reason": r, "detail": d, "received_at": t}
                   for o, r, d, t in conn.execute(
                       "SELECT outcome, reason, detail, received_at FROM fleet_results "
                       "WHERE command_id = ? ORDER BY received_at", (cid,))]
        out.append({"id": cid, "ori": ori, "device": device, "action": action,
                    "args": json.loads(summ), "issued_at": issued, "results": results})
    return out
