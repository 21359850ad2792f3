"""Envelope and signed messages: real HPKE ciphertexts and Ed25519 signatures, bad input."""

from __future__ import annotations

import json
import os
import struct

import pytest

from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.sealing.envelope import EnvelopeError

PAYLOAD = b"NIST\x1d" + os.urandom(3000) + b"\x1c"


@pytest.fixture(scope="module")
def central():
    return keys.generate_central_hpke_keys()


@pytest.fixture(scope="module")
def device():
    return keys.generate_signing_key()


def _seal(central, device, suite="x25519", payload=PAYLOAD, **kw):
    return envelope.seal(payload, device_id="booking-01", ori="XX0000000", sequence=7,
                         central_public_key=central.public(), device_signing_key=device,
                         suite=suite, **kw)


def _open(env, central, device, **kw):
    return envelope.verify_and_open(env, central_private_key=central,
                                    device_verify_keys=[device.public_key()], **kw)


@pytest.mark.parametrize("suite", keys.SUITES)
def test_round_trip_each_suite(central, device, suite):
    env = _seal(central, device, suite)
    opened = _open(env, central, device)
    assert opened.plaintext == PAYLOAD
    h = opened.header
    assert (h.v, h.device_id, h.ori, h.seq, h.suite) == (1, "booking-01", "XX0000000", 7, suite)
    assert h.central_key_id == central.public().get(suite).key_id
    assert h.device_key_id == keys.key_id(device.public_key())
    assert envelope.inspect(env) == h
    assert PAYLOAD not in env  # encrypted, not just signed


def test_submission_id_kept_and_fresh_by_default(central, device):
    sid = envelope.make_submission_id()
    assert envelope.inspect(_seal(central, device, submission_id=sid)).submission_id == sid
    a, b = (envelope.inspect(_seal(central, device)).submission_id for _ in range(2))
    assert a != b


def test_header_is_canonical_json_without_payload_facts(central, device):
    env = _seal(central, device)
    hlen = struct.unpack(">H", env[4:6])[0]
    doc = json.loads(env[6:6 + hlen])
    assert set(doc) == {"v", "submission_id", "device_id", "ori", "seq", "created", "suite",
                        "central_key_id", "device_key_id", "content_type"}
    assert env[:4] == b"FPE1"


def test_appliance_cannot_open_what_it_sealed(central, device):
    """The appliance holds the public key set only; another key set (even a fresh one with
    the same suites) cannot open it, and HPKE private keys never come from public ones."""
    env = _seal(central, device)
    other = keys.generate_central_hpke_keys()
    with pytest.raises(EnvelopeError, match="does not hold"):
        _open(env, other, device)
    with pytest.raises(TypeError):
        _open(env, central.public(), device)


@pytest.mark.parametrize("suite", keys.SUITES)
def test_every_byte_flipped_is_rejected(central, device, suite):
    """Flip each byte of header, ciphertext and signature in turn: never opens."""
    env = _seal(central, device, suite, payload=b"x" * 64)
    vk = [device.public_key()]
    for i in range(len(env)):
        bad = bytearray(env)
        bad[i] ^= 0x01 if i % 2 else 0x80
        with pytest.raises(EnvelopeError) as info:
            envelope.verify_and_open(bytes(bad), central_private_key=central,
                                     device_verify_keys=vk)
        assert str(info.value)  # a message a person can read


def test_error_messages_name_the_part(central, device):
    env = _seal(central, device)
    hlen = struct.unpack(">H", env[4:6])[0]
    sig_at = len(env) - 64
    cases = {
        0: "not an fpagent envelope",
        sig_at + 3: "signature does not verify",
        6 + hlen + 4 + 10: "signature does not verify",  # ciphertext byte: signature covers it
    }
    for pos, msg in cases.items():
        bad = bytearray(env)
        bad[pos] ^= 0xFF
        with pytest.raises(EnvelopeError, match=msg):
            _open(bytes(bad), central, device)


def test_header_swapped_onto_other_ciphertext_fails_even_for_the_device(central, device):
    """Someone with the device key re-signs a header from another envelope: HPKE info binds it."""
    a, b = _seal(central, device), _seal(central, device)
    ha = struct.unpack(">H", a[4:6])[0]
    hb = struct.unpack(">H", b[4:6])[0]
    body = a[:6 + ha] + b[6 + hb:-64]
    forged = body + device.sign(b"fpagent-envelope-v1\x00" + body)
    with pytest.raises(EnvelopeError, match="does not decrypt"):
        _open(forged, central, device)


def test_wrong_device_key_and_unknown_key(central, device):
    env = _seal(central, device)
    other = keys.generate_signing_key()
    with pytest.raises(EnvelopeError, match="unknown device key"):
        envelope.verify_and_open(env, central_private_key=central,
                                 device_verify_keys=[other.public_key()])
    # a key id that matches but belongs to another device id
    kid = keys.key_id(device.public_key())
    with pytest.raises(EnvelopeError, match="does not belong"):
        _open(env, central, device, device_ids={kid: "booking-02"})
    assert _open(env, central, device, device_ids={kid: "booking-01"}).plaintext == PAYLOAD


def test_truncated_at_every_length_is_rejected(central, device):
    env = _seal(central, device, payload=b"y" * 40)
    for n in range(len(env)):
        with pytest.raises(EnvelopeError):
            _open(env[:n], central, device)
    with pytest.raises(EnvelopeError, match="stray bytes"):
        _open(env + b"\x00", central, device)


def test_oversized_rejected_before_parsing(central, device):
    env = _seal(central, device, payload=b"z" * 5000)
    with pytest.raises(EnvelopeError, match="larger than the limit"):
        _open(env, central, device, max_size=4096)
    with pytest.raises(EnvelopeError, match="larger than the limit"):
        envelope.inspect(env, max_size=100)


def test_not_bytes_and_garbage(central, device):
    for junk in (b"", b"FPE1", b"\x00" * 200, "text"):
        with pytest.raises(EnvelopeError):
            _open(junk, central, device)


def test_rotation_old_and_new_central_keys(central, device):
    new = keys.generate_central_hpke_keys()
    env_old = _seal(central, device)
    env_new = _seal(new, device)
    both = [central, new]
    assert envelope.verify_and_open(env_old, central_private_key=both,
                                    device_verify_keys=[device.public_key()]).plaintext == PAYLOAD
    assert envelope.verify_and_open(env_new, central_private_key=both,
                                    device_verify_keys=[device.public_key()]).plaintext == PAYLOAD


def test_suite_missing_from_public_set(device):
    only_x = keys.generate_central_hpke_keys(suites=("x25519",))
    with pytest.raises(keys.KeyFileError, match="no 'mlkem768-x25519' key"):
        _seal(only_x, device, "mlkem768-x25519")
    with pytest.raises(EnvelopeError, match="unknown suite"):
        _seal(only_x, device, "p256")


# ---------------------------------------------------------------- signed messages


def test_message_round_trip_and_tamper():
    sk = keys.generate_signing_key()
    body = {"type": "ack", "submission_id": "abc", "status": "accepted", "n": 3, "x": 0.5,
            "text": "Überprüfung"}
    data = envelope.sign_message(body, sk)
    assert envelope.verify_message(data, [sk.public_key()]) == body
    assert envelope.verify_message(data, {keys.key_id(sk): sk.public_key()}) == body
    doc = json.loads(data)
    for field, value in (("body", {**body, "status": "rejected"}), ("key_id", "0" * 16),
                         ("v", 2), ("sig", doc["sig"][:-4] + "AAA=")):
        bad = json.dumps({**doc, field: value}).encode()
        with pytest.raises(EnvelopeError):
            envelope.verify_message(bad, [sk.public_key()])


def test_message_every_byte_flipped_rejected_or_identical():
    """A flipped byte either breaks parsing/signature or (JSON whitespace/escape
    equivalents) yields exactly the signed body; never a different body."""
    sk = keys.generate_signing_key()
    body = {"type": "notification", "id": "m1", "hit": True, "level": 1}
    data = envelope.sign_message(body, sk)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        try:
            got = envelope.verify_message(bytes(bad), [sk.public_key()])
        except EnvelopeError:
            continue
        assert got == body


def test_message_unknown_key_oversized_malformed():
    sk, other = keys.generate_signing_key(), keys.generate_signing_key()
    data = envelope.sign_message({"id": "1"}, sk)
    with pytest.raises(EnvelopeError, match="unknown key"):
        envelope.verify_message(data, [other.public_key()])
    with pytest.raises(EnvelopeError, match="larger than the limit"):
        envelope.verify_message(envelope.sign_message({"pad": "x" * 5000}, sk),
                                [sk.public_key()], max_size=1000)
    for junk in (b"", b"{", b"[]", b'{"v":1}', b"\xff\xfe", "str"):
        with pytest.raises(EnvelopeError):
            envelope.verify_message(junk, [sk.public_key()])
