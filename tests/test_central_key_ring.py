"""Central's signing key changing over (fpagent.sealing.rotation): which keys the
appliance accepts before, during and after a rotation's overlap window, on real key files."""

from __future__ import annotations

import pytest

from fpagent import config as config_mod
from fpagent.sealing import keys
from fpagent.sealing.rotation import CentralKeyRing, RotationError


def ids(key_list) -> list[str]:
    return [keys.key_id(k) for k in key_list]


@pytest.fixture
def cfg(tmp_path):
    cfg = config_mod.from_dict({"paths": {"state_dir": str(tmp_path / "state")}})
    keys.save_public_key(cfg.paths.keys() / keys.CENTRAL_VERIFY_KEY,
                         keys.generate_signing_key().public_key())
    return cfg


def test_the_window_decides_which_keys_verify_and_it_survives_a_restart(cfg):
    ring = CentralKeyRing(cfg)
    (old,) = ring.keys()
    new = keys.generate_signing_key().public_key()
    ring.install(keys.encode_public(new), 1000.0, 2000.0, now=900.0)
    assert ids(ring.keys(now=999.0)) == ids([old])
    assert ids(ring.keys(now=1500.0)) == ids([old, new])
    assert ids(ring.keys(now=2000.1)) == ids([new])
    again = CentralKeyRing(cfg)  # read back from central-sign.rotation.json
    assert ids(again.keys(now=1500.0)) == ids([old, new]) and ids(again.keys(now=3000.0)) == ids([new])
    assert oct((cfg.paths.keys() / "central-sign.rotation.json").stat().st_mode & 0o777) == "0o600"


def test_a_rotation_in_its_window_cannot_be_replaced_and_a_finished_one_becomes_the_pinned_key(cfg):
    ring = CentralKeyRing(cfg)
    first = keys.generate_signing_key().public_key()
    second = keys.generate_signing_key().public_key()
    ring.install(keys.encode_public(first), 1000.0, 2000.0, now=900.0)
    with pytest.raises(RotationError):
        ring.install(keys.encode_public(second), 1500.0, 2500.0, now=1500.0)
    with pytest.raises(RotationError):
        ring.install(keys.encode_public(first), 3000.0, 4000.0, now=2500.0)  # already accepted
    ring.install(keys.encode_public(second), 3000.0, 4000.0, now=2500.0)
    pinned = keys.load_verify_key(cfg.paths.keys() / keys.CENTRAL_VERIFY_KEY)
    assert keys.key_id(pinned) == keys.key_id(first)
    assert ids(ring.keys(now=3500.0)) == ids([first, second])
    with pytest.raises(RotationError):
        ring.install(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 5000.0, 6000.0,
                     now=4500.0)


def test_an_altered_rotation_record_stops_the_ring_instead_of_trusting_it(cfg):
    (cfg.paths.keys() / "central-sign.rotation.json").write_text('{"public_key_pem": 1}')
    with pytest.raises(RotationError):
        CentralKeyRing(cfg)
