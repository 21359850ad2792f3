"""Encryption at rest under the appliance's local data key (AES-256-GCM).

The local galleries and the criminal-history text in the inbox are personal
data kept on an SD card that can be pulled out of the box: they are stored
sealed under a 32-byte key of the appliance's own (`local-data.key`, 0600,
never leaves it). Each blob is bound to its name (the associated data), so
one cannot be swapped for another.
"""

from __future__ import annotations

import os
import pathlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fpagent.errors import UserError
from fpagent.sealing import keys as keys_mod

MAGIC = b"FPG1"
_OVERHEAD = len(MAGIC) + 12 + 16


class SealedBlobError(UserError):
    """A sealed blob is truncated, altered, or sealed under another key or name."""


def load_or_create_local_key(path) -> bytes:
    """The 32-byte local data key; created (0600, atomically) when absent."""
    path = pathlib.Path(path)
    if not path.exists():
        try:
            keys_mod.write_file_atomic(path, AESGCM.generate_key(bit_length=256), mode=0o600)
        except keys_mod.KeyFileError:
            pass  # someone else created it a moment ago: read theirs
    data = keys_mod.read_key_file(path, private=True, what="local data key")
    if len(data) != 32:
        raise keys_mod.KeyFileError(f"local data key {path} is {len(data)} bytes, not 32; "
                                    f"it is damaged (what was sealed with it is lost; "
                                    f"move it away and let central push the galleries again)")
    return data


def seal_blob(key: bytes, name: str, data: bytes) -> bytes:
    """Encrypt one blob under the local key, bound to its name."""
    nonce = os.urandom(12)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, MAGIC + name.encode())


def is_sealed(blob) -> bool:
    return isinstance(blob, (bytes, bytearray)) and len(blob) >= _OVERHEAD and blob.startswith(MAGIC)


def open_blob(key: bytes, name: str, blob: bytes) -> bytes:
    """Decrypt a blob sealed by seal_blob; SealedBlobError if altered or other key/name."""
    if not is_sealed(blob):
        raise SealedBlobError(f"{name!r}: not a sealed blob (truncated or another format)")
    nonce, ct = blob[4:16], blob[16:]
    try:
        return AESGCM(key).decrypt(nonce, bytes(ct), MAGIC + name.encode())
    except InvalidTag:
        raise SealedBlobError(f"{name!r} does not decrypt: altered, renamed, or sealed under "
                              f"another local key") from None
