"""Payloads on the MQTT link (contract v1; documented in docs/asyncapi.yaml).

Central -> appliance (`ack`, `notification`, `command`) are signed messages
of fpagent.sealing.envelope.sign_message, whose body is one flat JSON object:

    {"v": 1, "key_id": "<16 hex>", "sig": "<base64 Ed25519>",
     "body": {"kind": "ack", "id": "<32 hex>", "issued_at": "2026-11-28T06:30:00.123Z",
              "ori": "XX0000000", "device": "booking-01", ...fields of that kind...}}

The signature (by the central key pinned on the appliance) covers v, key_id
and body. `ori`/`device` name the addressee, so a message for one appliance
cannot be replayed to another. The appliance's retained `status` has the
same shape, signed by the device key. `submission` payloads are the binary
envelopes of fpagent.sealing.envelope (HPKE + Ed25519), not JSON.

Versioning: `v` is the signed-message version and the topic carries `v1`; a
receiver rejects a `v` it does not know (reason `unsupported-version`); new
optional body fields may be added within v1, anything else is v2.

This module is pure: build, sign, parse and validate; no I/O.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import uuid

from fpagent.errors import FpagentError
from fpagent.link import strict_json
from fpagent.sealing import envelope as envelope_mod
from fpagent.sealing import keys as keys_mod

VERSION = 1
LEAVES = ("submission", "status", "release", "ack", "notification", "command", "result")
CENTRAL_KINDS = ("ack", "notification", "command")
MAX_MESSAGE_BYTES = 64 * 1024  # central messages are small; anything bigger is refused

# Why an appliance refused a message from central (counted and audited).
REJECT_REASONS = {
    "oversized": "larger than the size limit",
    "malformed": "not a JSON object of the expected shape",
    "unsupported-version": "payload version this appliance does not know",
    "unknown-key": "signed by a key that is not the pinned central key",
    "bad-signature": "signature does not verify",
    "stale": "issued outside the freshness window",
    "replayed": "an id already seen",
    "wrong-addressee": "addressed to another appliance, or on another appliance's topic",
    "wrong-topic": "kind does not match the topic it came on",
}

# Why central refused a submission (in a rejected `ack`).
ACK_REASONS = {
    "bad-signature": "the envelope's device signature does not verify",
    "unknown-device": "the device is not registered with central",
    "device-mismatch": "the signed ORI or device id differs from the topic's, or the Type-1 ORI from the envelope's",
    "decrypt-failed": "the envelope cannot be decrypted with central's key",
    "malformed-envelope": "not an envelope of a known version",
    "malformed-transaction": "the ANSI/NIST-ITL transaction cannot be parsed",
    "oversized": "larger than central accepts",
}

ACK_RESULTS = ("accepted", "rejected")
CHECKS = ("criminal-history", "immigration")  # the two answers every accepted booking gets
RESULTS = ("hit", "no-hit")
# Instead of those answers central may reject the prints: "reprint" names the
# reason and the finger positions to take again (or the whole booking).
REPRINT_CHECK = "reprint"
REPRINT_REASONS = {
    "unusable-prints": "the prints cannot be used for a search (quality)",
    "missing-prints": "prints central needs are missing",
    "sequence-error": "fingers captured in the wrong order or hand",
}
# Immigration status determinations. A record match alone is not a finding of
# removability: U.S. citizens and lawful residents appear in immigration records.
DETERMINATIONS = {
    "no-match": "no immigration record found",
    "citizen-or-lawful-no-action": "U.S. citizen or lawful status: no action",
    "under-review": "record found, status under review: no action until a determination",
    "removable": "status determination: removable",
    "detainer-lodged": "detainer lodged: hold, or notify central before release (see detainer)",
    "detainer-lifted": "detainer lifted: no immigration hold",
}
# Answers evolve: every notification carries an integer `version` per (booking, check);
# a higher version supersedes a lower one, an equal or lower one arriving later is
# kept for the record but changes nothing. A message without one is version 1.
MAX_VERSION = 2 ** 31 - 1
# What a lodged detainer asks of the jail, and the time limit that goes with it.
DETAINER_REQUESTS = {
    "hold": "hold the person until hold_until (at most)",
    "notify-before-release": "tell central notify_hours_before hours before any release",
}
MAX_NOTIFY_HOURS = 720
# The jail tells central a person with a detainer is (to be) released: a `release`
# message signed by the device key; central answers with a notification of this
# check, which closes the booking's detainer task on the appliance.
RELEASE_CHECK = "release-notice"
COMMAND_ACTIONS = ("watchlist-update", "config-change", "purge", "key-rotation",
                   "watchlist.replace", "watchlist.update")
# Each command's arguments are read by fpagent.link.command_args; the appliance
# answers every command with a signed `result` (fpagent.link.command_results).
# watchlist.replace: args {"entries": [{subject_id, finger_position, template_iso_b64}]}; the
# appliance replaces its whole "watchlist" gallery with these. The message size limit
# ([mqtt] max_message_bytes, 64 KiB: ~100 templates) bounds it first; this bounds it too.
MAX_WATCHLIST_ENTRIES = 5000
MAX_TEMPLATE_B64 = 8192  # an ISO 19794-2 record of ~100 minutiae is ~600 bytes


class MessageError(FpagentError, ValueError):
    """A payload that must be refused; `reason` is a key of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str = "", verified_body: dict | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        # set only for "stale": the signature verified, the body is central's (but old)
        self.verified_body = verified_body


def new_id() -> str:
    return uuid.uuid4().hex


def now_rfc3339(now: float | None = None) -> str:
    moment = (datetime.datetime.now(datetime.timezone.utc) if now is None
              else datetime.datetime.fromtimestamp(now, datetime.timezone.utc))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_RFC3339_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (the contract's Rfc3339Utc pattern)."""
    if not isinstance(text, str) or not _RFC3339_UTC.fullmatch(text):
        raise MessageError("malformed", "issued_at must be an RFC 3339 UTC time ending in Z")
    try:
        return datetime.datetime.fromisoformat(text[:-1] + "+00:00").timestamp()
    except (ValueError, OverflowError):
        raise MessageError("malformed", "issued_at is not an RFC 3339 time") from None


def sign(body: dict, private_key) -> bytes:
    """The wire bytes of a signed message (fpagent.sealing.envelope.sign_message)."""
    return envelope_mod.sign_message(body, private_key)


def message(kind: str, fields: dict, *, ori: str, device: str, msg_id: str | None = None,
            issued_at: float | None = None) -> dict:
    """A message body: the common header fields plus the fields of its kind."""
    return {"kind": kind, "id": msg_id or new_id(), "issued_at": now_rfc3339(issued_at),
            "ori": ori, "device": device, **fields}


# ---------------------------------------------------------------- builders (central side)

def ack_body(*, submission_id: str, tcn: str, accepted: bool, central_tcn: str = "",
             reason: str = "", detail: str = "") -> dict:
    body = {"submission_id": submission_id, "tcn": tcn,
            "result": "accepted" if accepted else "rejected"}
    if accepted:
        body["central_tcn"] = central_tcn
    else:
        if reason not in ACK_REASONS:
            raise ValueError(f"unknown ack reason {reason!r}")
        body["reason"] = reason
        body["detail"] = detail or ACK_REASONS[reason]
    return body


def criminal_body(*, submission_id: str, tcr: str, hit: bool, central_tcn: str,
                  record: dict | None = None, instructions: str = "", version: int = 1) -> dict:
    body = {"submission_id": submission_id, "tcr": tcr, "central_tcn": central_tcn,
            "check": "criminal-history", "result": "hit" if hit else "no-hit",
            "instructions": instructions, "version": _checked_version(version)}
    if hit:
        body["record"] = record or {}
    return body


def immigration_body(*, submission_id: str, tcr: str, central_tcn: str, determination: str,
                     level: int | None = None, record: dict | None = None,
                     instructions: str = "", version: int = 1,
                     detainer: dict | None = None) -> dict:
    """`detainer` (with "detainer-lodged" only): detainer_fields(...)."""
    if determination not in DETERMINATIONS:
        raise ValueError(f"unknown determination {determination!r}")
    if not _level_fits(determination, level):
        raise ValueError("a level 1-3 goes with 'removable' (and may with a detainer), "
                         "never with another determination")
    if (determination == "detainer-lodged") != (detainer is not None):
        raise ValueError("a detainer goes with (and only with) 'detainer-lodged'")
    body = {"submission_id": submission_id, "tcr": tcr, "central_tcn": central_tcn,
            "check": "immigration",
            "result": "no-hit" if determination == "no-match" else "hit",
            "determination": determination, "level": level,
            "instructions": instructions or DETERMINATIONS[determination],
            "version": _checked_version(version)}
    if detainer is not None:
        _validate_detainer(detainer)
        body["detainer"] = dict(detainer)
    if record:
        body["record"] = record
    return body


def detainer_fields(request: str, *, hold_until: str | None = None,
                    notify_hours_before: int | None = None) -> dict:
    """What a lodged detainer asks: "hold" until `hold_until` (RFC 3339 UTC), or
    "notify-before-release" at least `notify_hours_before` hours before a release."""
    detainer = {"request": request, "hold_until": hold_until,
                "notify_hours_before": notify_hours_before}
    _validate_detainer(detainer)
    return detainer


def _checked_version(version) -> int:
    if not _is_int(version) or not 1 <= version <= MAX_VERSION:
        raise ValueError(f"version must be an integer 1-{MAX_VERSION}")
    return version


def _level_fits(determination: str, level) -> bool:
    if determination == "removable":
        return _is_int(level) and level in (1, 2, 3)
    if determination.startswith("detainer-"):
        return level is None or (_is_int(level) and level in (1, 2, 3))
    return level is None


def version_of(body: dict) -> int:
    """The answer's version for its (booking, check); messages from before versions are 1."""
    version = body.get("version", 1)
    return version if _is_int(version) and version >= 1 else 1


def reprint_body(*, submission_id: str, tcr: str, central_tcn: str, reason: str,
                 fingers: list[int] | None = None, instructions: str = "") -> dict:
    """Central rejects the prints: take `fingers` again, or the whole booking when None."""
    if reason not in REPRINT_REASONS:
        raise ValueError(f"unknown reprint reason {reason!r}")
    positions = sorted(set(fingers or []))
    if any(p not in range(1, 11) for p in positions):
        raise ValueError("finger positions are 1-10")
    return {"submission_id": submission_id, "tcr": tcr, "central_tcn": central_tcn,
            "check": REPRINT_CHECK, "result": "rejected", "reason": reason,
            "fingers": positions, "whole_booking": not positions,
            "instructions": instructions or REPRINT_REASONS[reason], "version": 1}


def release_ack_body(*, submission_id: str, tcr: str, release_id: str, released_at: str,
                     central_tcn: str = "", version: int = 1) -> dict:
    """Central has the jail's release notice `release_id` for this booking."""
    return {"submission_id": submission_id, "tcr": tcr, "central_tcn": central_tcn,
            "check": RELEASE_CHECK, "result": "received", "release_id": release_id,
            "released_at": released_at, "version": _checked_version(version),
            "instructions": "central has the release notice"}


# ---------------------------------------------------------------- appliance -> central

def release_body(*, submission_id: str, tcr: str, released_at: str, officer: str) -> dict:
    """The fields of a `release` notice: this booking's person is released at `released_at`.

    `officer` is who sent it (a login name; the audit log has the same)."""
    parse_rfc3339(released_at)
    return {"submission_id": submission_id, "tcr": tcr, "released_at": released_at,
            "officer": officer}


def validate_release(body: dict) -> None:
    """Shape of a release notice (central's side, after the device signature verified)."""
    _require(isinstance(body, dict) and body.get("kind") == "release", "not a release notice")
    _require(_is_str(body.get("id"), 64), "id must be a short string")
    _require(_is_str(body.get("submission_id"), 64), "release needs submission_id")
    _require(_is_text(body.get("tcr"), MAX_TCN), "release needs tcr (short text)")
    _require(_is_str(body.get("officer"), 64), "release needs officer (short text)")
    parse_rfc3339(body.get("released_at"))
    parse_rfc3339(body.get("issued_at"))


# ---------------------------------------------------------------- validation (appliance side)

@dataclasses.dataclass(frozen=True)
class Message:
    """A verified message from central."""

    kind: str
    id: str
    issued_at: float
    ori: str
    device: str
    body: dict  # the signed body: header fields and the fields of its kind
    raw: dict  # the whole wire object (v, key_id, body, sig)


def _require(cond: bool, detail: str) -> None:
    if not cond:
        raise MessageError("malformed", detail)


def _is_str(v, maxlen=256) -> bool:
    return isinstance(v, str) and 0 < len(v) <= maxlen


def _is_text(v, maxlen: int) -> bool:
    """A string, possibly empty, of at most `maxlen` characters."""
    return isinstance(v, str) and len(v) <= maxlen


def _is_int(v) -> bool:
    """An integer and not a bool (JSON true must not pass as 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


MAX_TCN = 64  # EBTS transaction numbers are short
MAX_DETAIL = 512  # an ack's free-text detail (central sends up to 300 characters)
MAX_INSTRUCTIONS = 2000  # free text for the officer
MAX_RECORD_FIELDS = 64
MAX_RECORD_TEXT = 1024


def _validate_record(record) -> None:
    """What central knows about a hit: a small flat object of scalars."""
    _require(isinstance(record, dict) and len(record) <= MAX_RECORD_FIELDS,
             f"record must be an object of at most {MAX_RECORD_FIELDS} fields")
    for key, value in record.items():
        _require(_is_str(key, 64), "record keys must be short strings")
        _require(value is None or isinstance(value, (bool, int, float))
                 or _is_text(value, MAX_RECORD_TEXT),
                 f"record values must be numbers or text of at most {MAX_RECORD_TEXT} characters")


def _validate_detainer(detainer) -> None:
    """A detainer: what is requested and its time limit (hold_until, or notify_hours_before)."""
    _require(isinstance(detainer, dict)
             and set(detainer) == {"request", "hold_until", "notify_hours_before"},
             "detainer must be an object of request, hold_until, notify_hours_before")
    _require(detainer["request"] in DETAINER_REQUESTS,
             f"detainer request must be one of {tuple(DETAINER_REQUESTS)}")
    until, hours = detainer["hold_until"], detainer["notify_hours_before"]
    if detainer["request"] == "hold":
        parse_rfc3339(until)
        _require(hours is None, "a hold has no notify_hours_before")
    else:
        _require(_is_int(hours) and 0 <= hours <= MAX_NOTIFY_HOURS,
                 f"notify_hours_before must be an integer 0-{MAX_NOTIFY_HOURS}")
        _require(until is None, "a notify-before-release detainer has no hold_until")


def validate_body(kind: str, body: dict) -> None:
    """Shape checks of a message body by kind; raises MessageError('malformed', ...).

    Exact types (a JSON true is not the level 1) and bounded text, because these
    fields reach the outbox, the audit log, the officer's screen and the hook.
    """
    _require(isinstance(body, dict), "body must be an object")
    if kind == "ack":
        _require(_is_str(body.get("submission_id"), 64), "ack needs submission_id")
        _require(_is_text(body.get("tcn"), MAX_TCN), "ack needs tcn (short text)")
        _require(body.get("result") in ACK_RESULTS, "ack result must be accepted or rejected")
        if body["result"] == "accepted":
            _require(_is_str(body.get("central_tcn"), MAX_TCN), "accepted ack needs central_tcn")
        else:
            _require(body.get("reason") in ACK_REASONS,
                     "rejected ack needs a reason of the contract's list")
        _require(_is_text(body.get("detail", ""), MAX_DETAIL),
                 f"detail must be text of at most {MAX_DETAIL} characters")
    elif kind == "notification":
        _require(_is_str(body.get("submission_id"), 64), "notification needs submission_id")
        _require(_is_text(body.get("tcr"), MAX_TCN), "notification needs tcr (short text)")
        _require(_is_text(body.get("central_tcn", ""), MAX_TCN), "central_tcn must be short text")
        _require(body.get("check") in (*CHECKS, REPRINT_CHECK, RELEASE_CHECK),
                 f"check must be one of {(*CHECKS, REPRINT_CHECK, RELEASE_CHECK)}")
        if body["check"] == RELEASE_CHECK:
            _require(body.get("result") == "received", "a release notice's answer is received")
            _require(_is_str(body.get("release_id"), 64), "release_id must be a short string")
            parse_rfc3339(body.get("released_at"))
        elif body["check"] == REPRINT_CHECK:
            _require(body.get("result") == "rejected", "a reprint request's result is rejected")
            _require(body.get("reason") in REPRINT_REASONS, "unknown reprint reason")
            fingers = body.get("fingers")
            _require(isinstance(fingers, list) and len(fingers) <= 10
                     and all(_is_int(p) and 1 <= p <= 10 for p in fingers),
                     "fingers must be a list of finger positions 1-10")
            _require(body.get("whole_booking") is (not fingers),
                     "whole_booking is true exactly when no finger is named")
        else:
            _require(body.get("result") in RESULTS, "result must be hit or no-hit")
        _require(_is_text(body.get("instructions", ""), MAX_INSTRUCTIONS),
                 f"instructions must be text of at most {MAX_INSTRUCTIONS} characters")
        if body.get("record") is not None:
            _validate_record(body["record"])
        version = body.get("version", 1)
        _require(_is_int(version) and 1 <= version <= MAX_VERSION,
                 f"version must be an integer 1-{MAX_VERSION}")
        if body["check"] == "immigration":
            _require(body.get("determination") in DETERMINATIONS, "unknown determination")
            _require(_level_fits(body["determination"], body.get("level")),
                     "a level 1-3 goes with 'removable' (and may with a detainer), "
                     "never with another determination")
            lodged = body["determination"] == "detainer-lodged"
            _require(lodged == ("detainer" in body),
                     "a detainer goes with (and only with) 'detainer-lodged'")
            if lodged:
                _validate_detainer(body["detainer"])
    elif kind == "command":
        _require(body.get("action") in COMMAND_ACTIONS, f"action must be one of {COMMAND_ACTIONS}")
        _require(isinstance(body.get("args", {}), dict), "args must be an object")
        if body["action"] == "watchlist.replace":
            validate_watchlist_args(body.get("args", {}))


# C0 and C1 control characters (ESC starts ANSI sequences), DEL, and the
# Unicode bidirectional overrides that reorder what a terminal shows.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text) -> str:
    """Text from central made safe for a terminal or a hook: control characters shown as \\xNN.

    Tabs and newlines stay (instructions may have lines); everything that
    could move the cursor, recolour or retitle a terminal is escaped.
    """
    text = str(text)
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)


def printable_body(value):
    """A copy of a notification body with every string made printable (keys too)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k): printable_body(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable_body(v) for v in value]
    return value


def validate_watchlist_args(args: dict) -> None:
    """Shape of watchlist.replace args (the templates themselves are decoded by the link)."""
    entries = args.get("entries")
    _require(isinstance(entries, list), "watchlist.replace needs args.entries (a list)")
    _require(len(entries) <= MAX_WATCHLIST_ENTRIES,
             f"watch list of {len(entries)} entries > {MAX_WATCHLIST_ENTRIES}")
    for e in entries:
        _require(isinstance(e, dict), "each watch-list entry is an object")
        _require(_is_str(e.get("subject_id"), 64) and "/" not in e["subject_id"],
                 "each watch-list entry needs a subject_id (up to 64 characters, no '/')")
        fp = e.get("finger_position")
        _require(isinstance(fp, int) and not isinstance(fp, bool) and 0 <= fp <= 10,
                 "finger_position must be 0-10")
        _require(_is_str(e.get("template_iso_b64"), MAX_TEMPLATE_B64),
                 "template_iso_b64 must be base64 text of an ISO 19794-2 record")


def watchlist_entry(subject_id: str, finger_position: int, template) -> dict:
    """One watch-list entry; `template` is an fpagent.biometrics.template.Template or ISO record bytes."""
    import base64
    if not isinstance(template, (bytes, bytearray)):
        from fpagent.records import fmr
        template = fmr.encode_iso(template)
    return {"subject_id": str(subject_id), "finger_position": int(finger_position),
            "template_iso_b64": base64.b64encode(bytes(template)).decode("ascii")}


def watchlist_command(entries: list) -> dict:
    """The fields of a `command` that replaces the appliance's watch list."""
    fields = {"action": "watchlist.replace", "args": {"entries": list(entries)}}
    validate_watchlist_args(fields["args"])
    return fields


def parse_and_verify(payload: bytes, *, verify_keys, ori: str, device: str,
                     topic_kind: str | None = None, now: float, freshness_s: float,
                     max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Check a message from central; raise MessageError with the reason on any fault.

    Size first (cheap), then shape and key, then the signature, and only then
    freshness, addressee and body, so nothing unsigned is ever looked at
    further. Replay (seen ids) is checked by the caller against the durable inbox.
    `verify_keys`: the pinned central key (a list during a key rotation).
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise MessageError("malformed", f"a payload is bytes, not {type(payload).__name__}")
    payload = bytes(payload)
    if len(payload) > max_bytes:
        raise MessageError("oversized", f"{len(payload)} bytes > {max_bytes}")
    try:
        outer = strict_json.loads(payload)
    except strict_json.StrictJSONError as exc:
        raise MessageError("malformed", str(exc)) from None
    _require(isinstance(outer, dict), "not a JSON object")
    _require(set(outer) == {"v", "key_id", "body", "sig"},
             "expected exactly v, key_id, body, sig")
    if not _is_int(outer["v"]) or outer["v"] != VERSION:
        raise MessageError("unsupported-version", f"v={str(outer['v'])[:16]!r}")
    _require(_is_str(outer["key_id"], 64) and _is_str(outer["sig"], 128)
             and isinstance(outer["body"], dict), "v, key_id, sig or body of the wrong type")
    if isinstance(verify_keys, (list, tuple)):
        pinned = {keys_mod.key_id(k) for k in verify_keys}
    else:
        pinned = {keys_mod.key_id(verify_keys)}
    if outer["key_id"] not in pinned:
        raise MessageError("unknown-key", f"key_id {outer['key_id'][:32]!r} is not pinned")
    try:
        obj = envelope_mod.verify_message(payload, verify_keys, max_size=max_bytes)
    except envelope_mod.EnvelopeError as exc:
        text = str(exc)
        reason = "bad-signature" if "signature" in text else "malformed"
        raise MessageError(reason, text[:200]) from None
    except (ValueError, TypeError, RecursionError) as exc:  # the strict read above should stop these
        raise MessageError("malformed", f"{type(exc).__name__} while verifying") from None
    _require(obj.get("kind") in CENTRAL_KINDS, "kind must be ack, notification or command")
    _require(_is_str(obj.get("id"), 64), "id must be a short string")
    _require(_is_str(obj.get("ori"), 9) and _is_str(obj.get("device"), 64),
             "ori and device must be short strings")
    issued = parse_rfc3339(obj.get("issued_at"))
    if abs(now - issued) > freshness_s:
        raise MessageError("stale", f"issued {now - issued:.0f} s from now; window {freshness_s:.0f} s",
                           verified_body=obj)
    if obj.get("ori") != ori or obj.get("device") != device:
        raise MessageError("wrong-addressee", f"for {obj.get('ori')}/{obj.get('device')}")
    if topic_kind is not None and obj["kind"] != topic_kind:
        raise MessageError("wrong-topic", f"{obj['kind']} on the {topic_kind} topic")
    validate_body(obj["kind"], obj)
    return Message(kind=obj["kind"], id=obj["id"], issued_at=issued, ori=obj["ori"],
                   device=obj["device"], body=obj, raw=outer)


def status_body(*, state: str, version: str, queue: dict | None = None,
                sensor: dict | None = None, last_capture_at: str | None = None,
                disk_free_mb: float | None = None, audit: dict | None = None) -> dict:
    """The appliance's health for the retained `status` topic (no personal data).

    `audit` is the head of the appliance's audit chain ({"seq", "hash"}) so that
    central holds a copy off the box and sees a rewritten log (None when offline)."""
    return {"state": state, "version": version, "queue": queue or {},
            "sensor": sensor or {}, "last_capture_at": last_capture_at,
            "disk_free_mb": disk_free_mb, "audit": audit}


def topic(root: str, ori: str, device: str, leaf: str) -> str:
    if leaf not in LEAVES:
        raise ValueError(f"unknown topic leaf {leaf!r}")
    return f"{root}/v1/{ori}/{device}/{leaf}"


def split_topic(name: str) -> tuple[str, str, str, str] | None:
    """(root, ori, device, leaf) of a contract topic, or None."""
    parts = name.split("/")
    if len(parts) != 5 or parts[1] != "v1" or parts[4] not in LEAVES:
        return None
    return parts[0], parts[2], parts[3], parts[4]
