"""Key files: 0600, atomic, no silent overwrite, clear errors for every bad file."""

from __future__ import annotations

import os
import stat

import pytest

from fpagent import config as config_mod
from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.sealing.keys import KeyFileError


def test_create_and_load_round_trip(tmp_path):
    hk, csk = keys.create_central_keys(tmp_path)
    dsk = keys.create_device_keys(tmp_path)
    for name in (keys.CENTRAL_HPKE_PRIVATE, keys.CENTRAL_SIGNING_KEY, keys.DEVICE_SIGNING_KEY):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary leftovers
    loaded = keys.load_hpke_private(tmp_path / keys.CENTRAL_HPKE_PRIVATE)
    assert [k.key_id for k in loaded.keys] == [k.key_id for k in hk.keys]
    pub = keys.load_hpke_public(tmp_path / keys.CENTRAL_HPKE_PUBLIC)
    assert [k.key_id for k in pub.keys] == [k.key_id for k in hk.keys]
    assert keys.key_id(keys.load_signing_key(tmp_path / keys.DEVICE_SIGNING_KEY)) == keys.key_id(dsk)
    assert keys.key_id(keys.load_verify_key(tmp_path / keys.CENTRAL_VERIFY_KEY)) == keys.key_id(csk)
    # the loaded keys really work together, both suites
    for suite in keys.SUITES:
        env = envelope.seal(b"data", device_id="d", ori="XX0000000", sequence=1,
                            central_public_key=pub, device_signing_key=dsk, suite=suite)
        assert envelope.verify_and_open(env, central_private_key=loaded,
                                        device_verify_keys=[dsk.public_key()]).plaintext == b"data"


def test_load_device_keys_from_config(tmp_path):
    keys.create_central_keys(tmp_path)
    keys.create_device_keys(tmp_path)
    cfg = config_mod.from_dict({"paths": {"keys_dir": str(tmp_path)}})
    dk = keys.load_device_keys(cfg)
    assert dk.device_key_id == keys.key_id(dk.signing_key)
    assert dk.central_public.get("x25519").key_id
    assert "Ed25519PrivateKey" not in repr(dk)  # private key kept out of reprs


def test_refuses_to_overwrite(tmp_path):
    keys.create_device_keys(tmp_path)
    before = (tmp_path / keys.DEVICE_SIGNING_KEY).read_bytes()
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        keys.create_device_keys(tmp_path)
    assert (tmp_path / keys.DEVICE_SIGNING_KEY).read_bytes() == before
    keys.create_device_keys(tmp_path, overwrite=True)
    assert (tmp_path / keys.DEVICE_SIGNING_KEY).read_bytes() != before
    assert stat.S_IMODE((tmp_path / keys.DEVICE_SIGNING_KEY).stat().st_mode) == 0o600


def test_missing_file(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        keys.load_signing_key(tmp_path / "nope.key")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_private_key_too_open_says_chmod(tmp_path, mode):
    keys.create_device_keys(tmp_path)
    path = tmp_path / keys.DEVICE_SIGNING_KEY
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match=f"chmod 600 {path}"):
        keys.load_signing_key(path)


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        # root reads any file regardless of mode; use a folder instead of a file
        (tmp_path / "dir.key").mkdir(mode=0o700)
        with pytest.raises(KeyFileError, match="not a regular file"):
            keys.load_signing_key(tmp_path / "dir.key")
    else:
        keys.create_device_keys(tmp_path)
        os.chmod(tmp_path / keys.DEVICE_SIGNING_KEY, 0o000)
        with pytest.raises(KeyFileError, match="not readable"):
            keys.load_signing_key(tmp_path / keys.DEVICE_SIGNING_KEY)


def test_wrong_types(tmp_path):
    keys.create_central_keys(tmp_path)
    keys.create_device_keys(tmp_path)
    # a public key where a private one is expected, and the reverse
    os.chmod(tmp_path / keys.DEVICE_VERIFY_KEY, 0o600)
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        keys.load_signing_key(tmp_path / keys.DEVICE_VERIFY_KEY)
    with pytest.raises(KeyFileError, match="holds a private key"):
        keys.load_verify_key(tmp_path / keys.DEVICE_SIGNING_KEY)
    # HPKE private set where the public set is expected
    with pytest.raises(KeyFileError, match="it is a private key set"):
        keys.load_hpke_public(tmp_path / keys.CENTRAL_HPKE_PRIVATE)
    # an Ed25519 PEM where an HPKE set is expected
    with pytest.raises(KeyFileError, match="not an fpagent HPKE key set"):
        keys.load_hpke_public(tmp_path / keys.CENTRAL_VERIFY_KEY)
    # garbage, and an X25519 PEM (not Ed25519)
    (tmp_path / "junk.key").write_bytes(b"hello")
    os.chmod(tmp_path / "junk.key", 0o600)
    with pytest.raises(KeyFileError):
        keys.load_signing_key(tmp_path / "junk.key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import x25519
    pem = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    keys.write_file_atomic(tmp_path / "x.key", pem)
    with pytest.raises(KeyFileError, match="not an Ed25519 private key"):
        keys.load_signing_key(tmp_path / "x.key")


def test_altered_public_key_set_is_refused(tmp_path):
    keys.create_central_keys(tmp_path)
    path = tmp_path / keys.CENTRAL_HPKE_PUBLIC
    other = keys.generate_central_hpke_keys().public()
    import json
    doc = json.loads(path.read_text())
    doc["keys"][0]["public"] = json.loads(keys.encode_public(other))["keys"][0]["public"]
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="does not match the key"):
        keys.load_hpke_public(path)


def test_key_ids_are_short_and_distinct():
    a, b = keys.generate_signing_key(), keys.generate_signing_key()
    assert len(keys.key_id(a)) == 16 and keys.key_id(a) != keys.key_id(b)
    assert keys.key_id(a) == keys.key_id(a.public_key())
    hk = keys.generate_central_hpke_keys()
    ids = {k.key_id for k in hk.keys}
    assert len(ids) == 2
