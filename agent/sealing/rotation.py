"""Central's signing key changing over: the keys the appliance accepts, at a given time.

Provisioning pins central's verify key (and, ahead of a planned change, its
next one: fpagent.sealing.keys.load_central_verify_keys). A signed
`key-rotation` command adds a rotation with an overlap window:

    before not_before            the pinned key(s) only
    not_before .. not_after      the pinned key(s) and the new key
    after not_after              the new key only

The rotation is kept in <keys_dir>/central-sign.rotation.json (written
atomically, 0600), so it survives restarts; the next rotation first makes a
finished one's key the pinned key (central-sign.pub). A rotation still in its
window cannot be replaced by another one.
"""

from __future__ import annotations

import json
import pathlib
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fpagent.errors import FpagentError
from fpagent.sealing import keys as keys_mod

ROTATION_FILE = "central-sign.rotation.json"


class RotationError(FpagentError, ValueError):
    """A key rotation that cannot be installed (not an Ed25519 key, one in progress...)."""


def _public(pem: bytes) -> ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise RotationError("not a PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise RotationError("not an Ed25519 public key")
    return key


class CentralKeyRing:
    """The central verify keys in force at any time: `keys()` is what the link checks with."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.path = cfg.paths.keys() / ROTATION_FILE
        self._pinned = keys_mod.load_central_verify_keys(cfg)
        self._rotation = self._load()

    def _load(self) -> dict | None:
        try:
            doc = json.loads(self.path.read_bytes())
            return {"key": _public(doc["public_key_pem"].encode("ascii")),
                    "not_before": float(doc["not_before"]), "not_after": float(doc["not_after"])}
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError, RotationError):
            raise RotationError(f"{self.path} is not a key rotation record; restore it or "
                                f"remove it and provision central's key again") from None

    def keys(self, now: float | None = None) -> list:
        now = time.time() if now is None else now
        rot = self._rotation
        if rot is None or now < rot["not_before"]:
            return list(self._pinned)
        if now <= rot["not_after"]:
            return [*self._pinned, rot["key"]]
        return [rot["key"]]

    def install(self, public_key_pem: bytes, not_before: float, not_after: float,
                now: float | None = None) -> str:
        """Record a new rotation (atomically); returns the new key's id."""
        now = time.time() if now is None else now
        key = _public(public_key_pem)
        new_id = keys_mod.key_id(key)
        if new_id in {keys_mod.key_id(k) for k in self.keys(now)}:
            raise RotationError(f"key {new_id} is already accepted")
        rot = self._rotation
        if rot is not None and now <= rot["not_after"]:
            raise RotationError("a key rotation is still in its overlap window")
        if rot is not None:  # finished: its key becomes the pinned one
            pinned_path = self.cfg.key_path(self.cfg.envelope.central_verify_key,
                                            keys_mod.CENTRAL_VERIFY_KEY)
            keys_mod.write_file_atomic(pinned_path, keys_mod.encode_public(rot["key"]),
                                       mode=0o644, overwrite=True)
            self._pinned = [rot["key"]]
        doc = {"public_key_pem": public_key_pem.decode("ascii"), "key_id": new_id,
               "not_before": not_before, "not_after": not_after}
        pathlib.Path(self.path.parent).mkdir(parents=True, exist_ok=True)
        keys_mod.write_file_atomic(self.path, json.dumps(doc, sort_keys=True).encode(),
                                   mode=0o600, overwrite=True)
        self._rotation = {"key": key, "not_before": not_before, "not_after": not_after}
        return new_id
