"""Central's fleet commands: what their arguments say, and the appliance's signed answer.

A `command` (fpagent.link.messages) names an `action` and carries `args`.
This module reads those args into plain values, one parser per action; each
returns a value or raises CommandArgsError, whose text goes back to central
in the refusal (never personal data: parsers name fields, not their content).
The appliance answers every command it handles with a signed `result` on its
own `result` topic (appliance -> central), built here too:

    {"kind": "result", "id", "issued_at", "ori", "device",        (the sender)
     "command_id": "<the command's id>", "action": "purge",
     "outcome": "applied" | "refused" | "held", "reason": "<code>", "detail": "..."}

"held" is only for one chunk of a chunked watch list: kept, waiting for the
others; the chunk that completes the list gets "applied" (or "refused").

This module is pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

from fpagent.errors import FpagentError
from fpagent.link import messages
from fpagent.screening.watchlist_changes import watchlist_digest  # noqa: F401 - the contract's digest

OUTCOMES = ("applied", "refused", "held")
# Why a command was applied or refused (the `reason` of a result).
RESULT_REASONS = {
    "done": "applied as asked",
    "chunk-held": "one chunk of a watch list kept until the others arrive",
    "bad-args": "the arguments are not what this action takes",
    "not-supported": "this appliance does not act on this action",
    "superseded": "something issued later is already applied",
    "bad-template": "a watch-list template does not decode",
    "digest-mismatch": "the chunks of a watch list do not add up to its digest",
    "not-acknowledged": "a booking central has not acknowledged cannot be purged",
    "invalid-config": "the changed configuration does not validate",
    "rolled-back": "the changed configuration did not come back healthy; the old one is restored",
    "not-saved": "a local write failed",
    "handler-error": "the appliance failed while applying it",
}
MAX_RESULT_DETAIL = 300


class CommandArgsError(FpagentError, ValueError):
    """A command's arguments that the appliance refuses (the text says which field and why)."""


def _need(cond: bool, detail: str) -> None:
    if not cond:
        raise CommandArgsError(detail)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _only(args, allowed: set, action: str) -> dict:
    _need(isinstance(args, dict), f"{action}: args must be an object")
    extra = sorted(str(k)[:32] for k in args if k not in allowed)
    _need(not extra, f"{action}: unknown args {extra[:5]}")
    return args


# ---------------------------------------------------------------- purge

MAX_PURGE_TCNS = 1000


@dataclasses.dataclass(frozen=True)
class PurgeArgs:
    """Bookings to purge: these TCNs, or every booking older than `older_than_days`."""

    tcns: tuple[str, ...] = ()
    older_than_days: float | None = None


def parse_purge(args) -> PurgeArgs:
    """{"tcns": [TCN, ...]} or {"older_than_days": N} (exactly one)."""
    args = _only(args, {"tcns", "older_than_days"}, "purge")
    _need(("tcns" in args) != ("older_than_days" in args),
          "purge: give exactly one of tcns or older_than_days")
    if "tcns" in args:
        tcns = args["tcns"]
        _need(isinstance(tcns, list) and 0 < len(tcns) <= MAX_PURGE_TCNS,
              f"purge: tcns must be a list of 1-{MAX_PURGE_TCNS} transaction numbers")
        _need(all(isinstance(t, str) and 0 < len(t) <= messages.MAX_TCN for t in tcns),
              f"purge: each TCN is text of 1-{messages.MAX_TCN} characters")
        return PurgeArgs(tcns=tuple(dict.fromkeys(tcns)))
    days = args["older_than_days"]
    _need(_is_number(days) and 0 < days <= 36500, "purge: older_than_days must be a number > 0")
    return PurgeArgs(older_than_days=float(days))


# ---------------------------------------------------------------- config-change

# What central may change remotely: how answers, logs, the link's timers and the
# quality gate behave, all read where they are used (so the running service
# takes them at once). Never where the broker is, which keys are pinned, or
# where data lives.
CONFIG_ALLOWED = {
    ("mqtt", "answers_timeout_s"), ("mqtt", "ack_timeout_s"),
    ("service", "log_level"), ("service", "status_interval_s"),
    ("quality", "min_score"), ("quality", "max_attempts"),
    ("booking", "recent_gallery_size"),
}


def parse_config_change(args) -> dict[tuple[str, str], object]:
    """{"set": {"section.key": value, ...}}: the allow-listed keys to change.

    Only the allow-list is checked here; the values are validated with the
    whole file by fpagent.config (the same strict parser as the local file).
    """
    args = _only(args, {"set"}, "config-change")
    changes = args.get("set")
    _need(isinstance(changes, dict) and 0 < len(changes) <= len(CONFIG_ALLOWED),
          "config-change: set must be an object of 1 or more section.key values")
    out = {}
    for name, value in changes.items():
        section, _, key = str(name).partition(".")
        _need((section, key) in CONFIG_ALLOWED,
              f"config-change: {str(name)[:64]!r} is not a key central may change")
        _need(isinstance(value, (str, int, float, bool)) and not (
            isinstance(value, str) and len(value) > 256), f"config-change: {name} must be a scalar")
        out[(section, key)] = value
    return out


# ---------------------------------------------------------------- key-rotation

@dataclasses.dataclass(frozen=True)
class KeyRotationArgs:
    """Central's next signing key: accepted beside the current one from `not_before`,
    alone after `not_after` (seconds since the epoch)."""

    public_key_pem: bytes
    not_before: float
    not_after: float


MAX_OVERLAP_S = 90 * 86400.0


def parse_key_rotation(args) -> KeyRotationArgs:
    """{"public_key_pem": PEM, "not_before": RFC 3339, "not_after": RFC 3339}."""
    args = _only(args, {"public_key_pem", "not_before", "not_after"}, "key-rotation")
    pem = args.get("public_key_pem")
    _need(isinstance(pem, str) and 0 < len(pem) <= 1024
          and pem.startswith("-----BEGIN PUBLIC KEY-----"),
          "key-rotation: public_key_pem must be a PEM public key")
    try:
        start = messages.parse_rfc3339(args.get("not_before"))
        end = messages.parse_rfc3339(args.get("not_after"))
    except messages.MessageError:
        raise CommandArgsError("key-rotation: not_before and not_after must be RFC 3339 UTC "
                               "times") from None
    _need(start < end <= start + MAX_OVERLAP_S,
          "key-rotation: not_after must follow not_before by at most 90 days")
    return KeyRotationArgs(pem.encode("ascii", "replace"), start, end)


# ---------------------------------------------------------------- watch lists

_LIST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_CHUNKS = 1000


def _entries(value, action: str) -> list:
    try:
        messages.validate_watchlist_args({"entries": value})
    except messages.MessageError as exc:
        raise CommandArgsError(f"{action}: {exc.detail}") from None
    return list(value)


@dataclasses.dataclass(frozen=True)
class WatchlistReplace:
    """A whole watch list (`chunks` == 1, no list id) or one chunk of one."""

    entries: list
    list_id: str = ""
    chunk: int = 0
    chunks: int = 1
    digest: str = ""


def parse_watchlist_replace(args) -> WatchlistReplace:
    """{"entries": [...]} or, for a list larger than one message, also
    {"list_id", "chunk" (0-based), "chunks", "digest" (of the whole, watchlist_digest)}."""
    args = _only(args, {"entries", "list_id", "chunk", "chunks", "digest"}, "watchlist.replace")
    entries = _entries(args.get("entries"), "watchlist.replace")
    if not ({"list_id", "chunk", "chunks", "digest"} & set(args)):
        return WatchlistReplace(entries)
    list_id, chunk, chunks, digest = (args.get(k) for k in ("list_id", "chunk", "chunks", "digest"))
    _need(isinstance(list_id, str) and bool(_LIST_ID.fullmatch(list_id)),
          "watchlist.replace: list_id must be 1-64 letters, digits, '_' or '-'")
    _need(_is_int(chunks) and 1 <= chunks <= MAX_CHUNKS,
          f"watchlist.replace: chunks must be 1-{MAX_CHUNKS}")
    _need(_is_int(chunk) and 0 <= chunk < chunks, "watchlist.replace: chunk must be 0 to chunks-1")
    _need(isinstance(digest, str) and bool(_DIGEST.fullmatch(digest)),
          "watchlist.replace: digest must be 64 lowercase hex digits (SHA-256)")
    return WatchlistReplace(entries, list_id, chunk, chunks, digest)


@dataclasses.dataclass(frozen=True)
class WatchlistUpdate:
    """Entries to add (replacing the same subject and finger) and ids to remove:
    (subject_id, finger_position) or (subject_id, None) for all of a subject's fingers."""

    add: list
    remove: tuple[tuple[str, int | None], ...]


def parse_watchlist_update(args) -> WatchlistUpdate:
    """{"add": [entries], "remove": [{"subject_id", "finger_position"?}]} (either may be empty)."""
    args = _only(args, {"add", "remove"}, "watchlist.update")
    add = _entries(args.get("add", []), "watchlist.update")
    remove = args.get("remove", [])
    _need(isinstance(remove, list) and len(remove) <= messages.MAX_WATCHLIST_ENTRIES,
          "watchlist.update: remove must be a list")
    _need(bool(add) or bool(remove), "watchlist.update: nothing to add or remove")
    out = []
    for r in remove:
        _need(isinstance(r, dict) and set(r) <= {"subject_id", "finger_position"},
              "watchlist.update: each removal is {subject_id, finger_position?}")
        sid, fp = r.get("subject_id"), r.get("finger_position")
        _need(isinstance(sid, str) and 0 < len(sid) <= 64 and "/" not in sid,
              "watchlist.update: subject_id must be 1-64 characters, no '/'")
        _need(fp is None or (_is_int(fp) and 0 <= fp <= 10),
              "watchlist.update: finger_position must be 0-10")
        out.append((sid, fp))
    return WatchlistUpdate(add, tuple(out))


def watchlist_chunks(entries, *, max_bytes: int = messages.MAX_MESSAGE_BYTES,
                     list_id: str | None = None) -> list[dict]:
    """The `command` fields of a watch list cut into chunks that each fit in `max_bytes`
    once signed (central side). One chunk when it fits: still chunked, so the
    digest is checked."""
    entries = list(entries)
    digest = watchlist_digest(entries)
    list_id = list_id or messages.new_id()
    budget = max_bytes - 2048  # the header, signature and chunk fields
    groups, current, size = [], [], 0
    for e in entries:
        n = len(json.dumps(e, separators=(",", ":"))) + 1
        if current and size + n > budget:
            groups.append(current)
            current, size = [], 0
        current.append(e)
        size += n
    groups.append(current)
    return [{"action": "watchlist.replace",
             "args": {"entries": g, "list_id": list_id, "chunk": i, "chunks": len(groups),
                      "digest": digest}} for i, g in enumerate(groups)]


# ---------------------------------------------------------------- results

def result_fields(command_id: str, action: str, outcome: str, reason: str,
                  detail: str = "") -> dict:
    """The fields of a `result` message (the appliance's answer to one command)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if reason not in RESULT_REASONS:
        raise ValueError(f"unknown result reason {reason!r}")
    return {"command_id": str(command_id)[:64], "action": str(action)[:32], "outcome": outcome,
            "reason": reason,
            "detail": messages.printable(str(detail or RESULT_REASONS[reason]))[:MAX_RESULT_DETAIL]}


def validate_result(body) -> dict:
    """Shape of a verified `result` body (central side); raises messages.MessageError."""
    def need(cond, detail):
        if not cond:
            raise messages.MessageError("malformed", detail)

    need(isinstance(body, dict) and body.get("kind") == "result", "not a result")
    need(isinstance(body.get("command_id"), str) and 0 < len(body["command_id"]) <= 64,
         "result needs command_id")
    need(isinstance(body.get("action"), str) and len(body["action"]) <= 32, "result needs action")
    need(body.get("outcome") in OUTCOMES, f"outcome must be one of {OUTCOMES}")
    need(body.get("reason") in RESULT_REASONS, "unknown result reason")
    need(isinstance(body.get("detail", ""), str) and len(body.get("detail", "")) <= MAX_RESULT_DETAIL,
         "detail must be short text")
    return body
