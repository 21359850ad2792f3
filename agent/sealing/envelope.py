"""Sealed submissions (appliance -> central) and signed messages (central -> appliance).

A submission envelope is HPKE (RFC 9180, single-shot base mode, from
`cryptography.hazmat.primitives.hpke`) to central's public key, wrapped with
the appliance's Ed25519 signature over a versioned header and the ciphertext.
The header is also the HPKE `info`, so a header cannot be moved onto another
ciphertext even by someone holding a device key. The appliance holds only
central's public key: it cannot decrypt what it queued.

Binary layout (all integers big-endian; see docs/envelope.md):

    magic      4 bytes  b"FPE1"
    hlen       2 bytes  length of the header
    header     hlen     canonical JSON (UTF-8, sorted keys, no spaces)
    clen       4 bytes  length of the HPKE output
    ciphertext clen     HPKE enc || AEAD ciphertext (suite in the header)
    signature  64 bytes Ed25519 over b"fpagent-envelope-v1\\0" || everything above

Suites: "x25519" = DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305;
"mlkem768-x25519" = ML-KEM-768+X25519 hybrid KEM, HKDF-SHA256,
ChaCha20-Poly1305 (ChaCha20 because a Raspberry Pi 4 has no AES instructions).

Messages from central (ack, notification, command) are canonical JSON signed
with Ed25519: `sign_message` / `verify_message`. Freshness and seen-id
deduplication are the link's job (fpagent.link.inbound), on top of these.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import json
import re
import struct
import uuid
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519

from fpagent.errors import FpagentError
from fpagent.sealing import keys as keys_mod

MAGIC = b"FPE1"
FORMAT_VERSION = 1
SIGNATURE_LENGTH = 64
DEFAULT_MAX_SIZE = 64 * 1024 * 1024  # a ten-print WSQ booking is well under 2 MB
DEFAULT_CONTENT_TYPE = "application/x-ansi-nist-itl"

_SIG_CONTEXT = b"fpagent-envelope-v1\x00"
_INFO_CONTEXT = b"fpagent-envelope-v1 header\x00"
_MSG_CONTEXT = b"fpagent-message-v1\x00"
_PREFIX = struct.Struct(">4sH")
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
_CLEN = struct.Struct(">I")

_SUITES = {
    keys_mod.SUITE_X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256,
                                      hpke.AEAD.CHACHA20_POLY1305),
    keys_mod.SUITE_HYBRID: hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256,
                                      hpke.AEAD.CHACHA20_POLY1305),
}

# header field -> type; every field is required, no others are allowed
_HEADER_FIELDS = {
    "v": int,
    "submission_id": str,
    "device_id": str,
    "ori": str,
    "seq": int,
    "created": str,
    "suite": str,
    "central_key_id": str,
    "device_key_id": str,
    "content_type": str,
}


class EnvelopeError(FpagentError, ValueError):
    """An envelope or signed message is malformed, tampered, too big or for other keys."""


@dataclasses.dataclass(frozen=True)
class Header:
    """The readable, signed part of an envelope. Holds no personal or biometric data."""

    v: int
    submission_id: str
    device_id: str
    ori: str
    seq: int
    created: str  # RFC 3339 UTC, e.g. "2026-11-28T06:40:00.123Z"
    suite: str
    central_key_id: str
    device_key_id: str
    content_type: str = DEFAULT_CONTENT_TYPE

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Opened:
    """A verified and decrypted submission (central side)."""

    header: Header
    plaintext: bytes = dataclasses.field(repr=False)


def canonical_json(obj) -> bytes:
    """The one byte form of a JSON value that is signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _now_rfc3339() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- seal


def seal(payload: bytes, *, device_id: str, ori: str, sequence: int,
         central_public_key, device_signing_key: ed25519.Ed25519PrivateKey,
         suite: str = keys_mod.SUITE_X25519, submission_id: str | None = None,
         created: str | None = None, content_type: str = DEFAULT_CONTENT_TYPE) -> bytes:
    """Encrypt `payload` to central and sign it as this device; return the envelope bytes.

    `central_public_key`: a keys.HpkePublicKeySet (the suite's key is picked)
    or a keys.HpkePublicKey. `submission_id` defaults to a fresh UUID4; pass
    the booking's own id so a re-seal after a crash keeps the same id.
    """
    if suite not in _SUITES:
        raise EnvelopeError(f"unknown suite {suite!r}; known: {', '.join(_SUITES)}")
    if isinstance(central_public_key, keys_mod.HpkePublicKeySet):
        central_public_key = central_public_key.get(suite)
    if not isinstance(central_public_key, keys_mod.HpkePublicKey):
        raise TypeError("central_public_key must be a keys.HpkePublicKey or HpkePublicKeySet")
    if central_public_key.suite != suite:
        raise EnvelopeError(f"central key {central_public_key.key_id} is for suite "
                            f"{central_public_key.suite!r}, not {suite!r}")
    header = Header(
        v=FORMAT_VERSION,
        submission_id=str(uuid.UUID(submission_id)) if submission_id else str(uuid.uuid4()),
        device_id=device_id, ori=ori, seq=int(sequence),
        created=created or _now_rfc3339(), suite=suite,
        central_key_id=central_public_key.key_id,
        device_key_id=keys_mod.key_id(device_signing_key),
        content_type=content_type,
    )
    hbytes = canonical_json(header.to_dict())
    if len(hbytes) > 0xFFFF:
        raise EnvelopeError("envelope header too long (device id or ORI far too long)")
    ct = _SUITES[suite].encrypt(payload, central_public_key.key, info=_INFO_CONTEXT + hbytes)
    body = _PREFIX.pack(MAGIC, len(hbytes)) + hbytes + _CLEN.pack(len(ct)) + ct
    return body + device_signing_key.sign(_SIG_CONTEXT + body)


# --------------------------------------------------------------------------- parse


@dataclasses.dataclass(frozen=True)
class _Parts:
    header: Header
    header_bytes: bytes
    ciphertext: bytes
    signed: bytes
    signature: bytes


def _parse(envelope: bytes, max_size: int) -> _Parts:
    if not isinstance(envelope, (bytes, bytearray, memoryview)):
        raise EnvelopeError(f"an envelope is bytes, not {type(envelope).__name__}")
    envelope = bytes(envelope)
    n = len(envelope)
    if n > max_size:
        raise EnvelopeError(f"envelope of {n} bytes is larger than the limit of {max_size} bytes")
    minimum = _PREFIX.size + _CLEN.size + SIGNATURE_LENGTH
    if n < minimum:
        raise EnvelopeError(f"envelope truncated: {n} bytes, an envelope has at least {minimum}")
    magic, hlen = _PREFIX.unpack_from(envelope, 0)
    if magic != MAGIC:
        raise EnvelopeError(f"not an fpagent envelope (magic {magic!r}, expected {MAGIC!r})")
    pos = _PREFIX.size
    if pos + hlen + _CLEN.size + SIGNATURE_LENGTH > n:
        raise EnvelopeError(f"envelope truncated: header length {hlen} runs past the end")
    hbytes = envelope[pos:pos + hlen]
    pos += hlen
    (clen,) = _CLEN.unpack_from(envelope, pos)
    pos += _CLEN.size
    if pos + clen + SIGNATURE_LENGTH != n:
        if pos + clen + SIGNATURE_LENGTH > n:
            raise EnvelopeError(f"envelope truncated: ciphertext length {clen} runs past the end")
        raise EnvelopeError(f"envelope has {n - (pos + clen + SIGNATURE_LENGTH)} stray bytes "
                            f"after the signature")
    ct = envelope[pos:pos + clen]
    return _Parts(_parse_header(hbytes), hbytes, ct, envelope[:pos + clen], envelope[pos + clen:])


def _parse_header(hbytes: bytes) -> Header:
    try:
        doc = json.loads(hbytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError("envelope header is not valid UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise EnvelopeError("envelope header is not a JSON object")
    if doc.get("v") != FORMAT_VERSION:
        raise EnvelopeError(f"envelope format version {doc.get('v')!r} is not supported "
                            f"(this code reads version {FORMAT_VERSION})")
    missing = set(_HEADER_FIELDS) - set(doc)
    extra = set(doc) - set(_HEADER_FIELDS)
    if missing or extra:
        raise EnvelopeError(f"envelope header fields wrong: missing {sorted(missing)}, "
                            f"unknown {sorted(extra)}")
    for name, kind in _HEADER_FIELDS.items():
        if type(doc[name]) is not kind:
            raise EnvelopeError(f"envelope header field {name!r} must be {kind.__name__}")
    if canonical_json(doc) != hbytes:
        raise EnvelopeError("envelope header is not in canonical form (altered)")
    try:
        uuid.UUID(doc["submission_id"])
    except ValueError:
        raise EnvelopeError("envelope header submission_id is not a UUID") from None
    if not _RFC3339.match(doc["created"]):
        raise EnvelopeError("envelope header created is not an RFC 3339 UTC time")
    if doc["suite"] not in _SUITES:
        raise EnvelopeError(f"envelope suite {doc['suite']!r} unknown; known: {', '.join(_SUITES)}")
    return Header(**doc)


def inspect(envelope: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Header:
    """Read an envelope's header without any key (no secrets, NOT verified)."""
    return _parse(envelope, max_size).header


def envelope_sizes(envelope: bytes) -> dict:
    """Byte counts of the parts (for `fpagent queue show` and the benchmark)."""
    p = _parse(envelope, max(len(envelope), 1))
    return {"total": len(envelope), "header": len(p.header_bytes),
            "ciphertext": len(p.ciphertext), "signature": len(p.signature)}


# --------------------------------------------------------------------------- open


def _verify_key_map(verify_keys) -> dict[str, ed25519.Ed25519PublicKey]:
    """Accept {key_id: key}, {anything: key} or an iterable of keys; index by key id."""
    if isinstance(verify_keys, ed25519.Ed25519PublicKey):
        verify_keys = [verify_keys]
    values = verify_keys.values() if isinstance(verify_keys, Mapping) else verify_keys
    out = {}
    for k in values:
        if isinstance(k, ed25519.Ed25519PrivateKey):
            k = k.public_key()
        if not isinstance(k, ed25519.Ed25519PublicKey):
            raise TypeError(f"verify keys must be Ed25519 public keys, got {type(k).__name__}")
        out[keys_mod.key_id(k)] = k
    return out


def verify_envelope(envelope: bytes, *, device_verify_keys, max_size: int = DEFAULT_MAX_SIZE,
                    device_ids: Mapping[str, str] | None = None) -> Header:
    """Check the device signature only (no decryption); return the verified header.

    `device_ids`, when given, maps device key id -> the device id that key
    belongs to, so one device cannot sign in another's name.
    """
    parts = _parse(envelope, max_size)
    kmap = _verify_key_map(device_verify_keys)
    h = parts.header
    vk = kmap.get(h.device_key_id)
    if vk is None:
        raise EnvelopeError(f"envelope signed by unknown device key {h.device_key_id} "
                            f"(device {h.device_id!r}); provision that device's public key")
    try:
        vk.verify(parts.signature, _SIG_CONTEXT + parts.signed)
    except InvalidSignature:
        raise EnvelopeError(f"envelope signature does not verify with device key "
                            f"{h.device_key_id}: altered in transit or forged") from None
    if device_ids is not None and device_ids.get(h.device_key_id) != h.device_id:
        raise EnvelopeError(f"device key {h.device_key_id} does not belong to device "
                            f"{h.device_id!r}")
    return h


def verify_and_open(envelope: bytes, *, central_private_key, device_verify_keys,
                    max_size: int = DEFAULT_MAX_SIZE,
                    device_ids: Mapping[str, str] | None = None) -> Opened:
    """Central side: verify the device signature, then decrypt. Raises EnvelopeError.

    `central_private_key`: a keys.HpkePrivateKeySet, a keys.HpkePrivateKey or
    an iterable of them (old and new keys during a rotation); the one whose
    id is in the header is used.
    """
    parts = _parse(envelope, max_size)
    h = verify_envelope(envelope, device_verify_keys=device_verify_keys, max_size=max_size,
                        device_ids=device_ids)
    candidates = {}
    items = central_private_key
    if isinstance(items, (keys_mod.HpkePrivateKey, keys_mod.HpkePrivateKeySet)):
        items = [items]
    for item in items:
        if isinstance(item, keys_mod.HpkePrivateKeySet):
            candidates.update(item.by_id())
        elif isinstance(item, keys_mod.HpkePrivateKey):
            candidates[item.key_id] = item
        else:
            raise TypeError(f"central_private_key items must be HPKE private keys, "
                            f"got {type(item).__name__}")
    priv = candidates.get(h.central_key_id)
    if priv is None:
        raise EnvelopeError(f"envelope is encrypted to central key {h.central_key_id}, which "
                            f"this central system does not hold (has: "
                            f"{', '.join(sorted(candidates)) or 'none'})")
    if priv.suite != h.suite:
        raise EnvelopeError(f"central key {h.central_key_id} is for suite {priv.suite!r}, "
                            f"header says {h.suite!r}")
    try:
        plaintext = _SUITES[h.suite].decrypt(parts.ciphertext, priv.key,
                                             info=_INFO_CONTEXT + parts.header_bytes)
    except (InvalidTag, ValueError):
        raise EnvelopeError("envelope ciphertext does not decrypt (altered, or sealed "
                            "with another header)") from None
    return Opened(h, plaintext)


# --------------------------------------------------------------------------- messages


def sign_message(body: dict, signing_key: ed25519.Ed25519PrivateKey, key_id: str | None = None) -> bytes:
    """Sign a JSON message body (central -> appliance: ack, notification, command).

    Wire form: canonical JSON `{"v": 1, "key_id": ..., "body": {...}, "sig": base64}`;
    the signature covers b"fpagent-message-v1\\0" || canonical JSON of
    `{"v", "key_id", "body"}`. Bodies must be plain JSON (no NaN).
    """
    if not isinstance(body, dict):
        raise TypeError("a message body is a dict")
    kid = key_id or keys_mod.key_id(signing_key)
    signed = {"v": 1, "key_id": kid, "body": body}
    sig = signing_key.sign(_MSG_CONTEXT + canonical_json(signed))
    return canonical_json({**signed, "sig": base64.b64encode(sig).decode("ascii")})


def verify_message(data: bytes, verify_keys, max_size: int = 256 * 1024) -> dict:
    """Check a signed message and return its body; raises EnvelopeError with the reason.

    `verify_keys`: {key_id: Ed25519PublicKey}, a list of keys, or one key
    (the pinned central key, and its successor during a rotation).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EnvelopeError(f"a signed message is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise EnvelopeError(f"message of {len(data)} bytes is larger than the limit of {max_size}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError("message is not valid UTF-8 JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"v", "key_id", "body", "sig"}:
        raise EnvelopeError("message is not a signed fpagent message "
                            "(expected exactly v, key_id, body, sig)")
    if doc["v"] != 1:
        raise EnvelopeError(f"message version {doc['v']!r} not supported (this code reads 1)")
    if not isinstance(doc["body"], dict) or not isinstance(doc["key_id"], str) \
            or not isinstance(doc["sig"], str):
        raise EnvelopeError("message fields have the wrong types")
    vk = _verify_key_map(verify_keys).get(doc["key_id"])
    if vk is None:
        raise EnvelopeError(f"message signed by unknown key {doc['key_id']!r}; only the "
                            f"pinned central key is accepted")
    try:
        sig = base64.b64decode(doc["sig"], validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("message signature is not base64") from None
    signed = {"v": doc["v"], "key_id": doc["key_id"], "body": doc["body"]}
    try:
        vk.verify(sig, _MSG_CONTEXT + canonical_json(signed))
    except (InvalidSignature, ValueError):
        raise EnvelopeError(f"message signature does not verify with key {doc['key_id']}: "
                            f"altered or forged") from None
    return doc["body"]


def make_submission_id() -> str:
    """A fresh submission id (UUID4 text)."""
    return str(uuid.uuid4())
