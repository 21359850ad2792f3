"""Local prefilter galleries, encrypted at rest (no biometric data in plaintext on disk).

A gallery (`fpagent.screening.prefilter.Gallery.to_bytes()`) is stored as one file
per name under `<state_dir>/galleries/`, sealed with AES-256-GCM (from
`cryptography`) under a local 32-byte key kept in a 0600 file
(`<keys_dir>/local-data.key`, created on first use). The gallery name and
format version are bound in as associated data, so a file renamed onto
another gallery's name does not open. Losing the key loses the galleries
(they are caches: central can push the watch list again), never the queue.

File layout: b"FPG1" || nonce (12 bytes) || AES-GCM ciphertext+tag.
"""

from __future__ import annotations

import os
import pathlib
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fpagent.sealing import keys as keys_mod
from fpagent.errors import UserError

MAGIC = b"FPG1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SUFFIX = ".gallery"


class GalleryStoreError(UserError):
    """A gallery file is missing, altered, or sealed under another local key."""


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
                                    f"it is damaged (galleries sealed with it are lost; "
                                    f"move it away and let central push them again)")
    return data


def seal_blob(key: bytes, name: str, data: bytes) -> bytes:
    """Encrypt one blob under the local key, bound to its name."""
    nonce = os.urandom(12)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, MAGIC + name.encode())


def open_blob(key: bytes, name: str, blob: bytes) -> bytes:
    """Decrypt a blob sealed by seal_blob; GalleryStoreError if altered or other key/name."""
    if len(blob) < len(MAGIC) + 12 + 16 or not blob.startswith(MAGIC):
        raise GalleryStoreError(f"gallery {name!r}: not a sealed gallery file (truncated or "
                                f"another format)")
    nonce, ct = blob[4:16], blob[16:]
    try:
        return AESGCM(key).decrypt(nonce, ct, MAGIC + name.encode())
    except InvalidTag:
        raise GalleryStoreError(f"gallery {name!r} does not decrypt: altered, renamed, or "
                                f"sealed under another local key") from None


class GalleryStore:
    """Named encrypted galleries in one folder."""

    def __init__(self, directory, key_path):
        self.directory = pathlib.Path(directory)
        self.key_path = pathlib.Path(key_path)
        self._key: bytes | None = None

    @classmethod
    def from_config(cls, cfg) -> "GalleryStore":
        return cls(pathlib.Path(cfg.paths.state_dir) / "galleries",
                   cfg.paths.keys() / keys_mod.LOCAL_DATA_KEY)

    def _k(self) -> bytes:
        if self._key is None:
            self._key = load_or_create_local_key(self.key_path)
        return self._key

    def _path(self, name: str) -> pathlib.Path:
        if not _NAME.match(name):
            raise ValueError(f"gallery name {name!r}: use letters, digits, '.', '_' or '-' "
                             f"(up to 64)")
        return self.directory / (name + SUFFIX)

    def save(self, name: str, data: bytes) -> pathlib.Path:
        """Encrypt and write (atomically, replacing an older version of that gallery)."""
        return self.write_sealed(name, self.seal(name, data))

    def seal(self, name: str, data: bytes) -> bytes:
        """The encrypted file content of gallery `name` (to write later with write_sealed)."""
        self._path(name)  # refuse a bad name before any work
        return seal_blob(self._k(), name, bytes(data))

    def write_sealed(self, name: str, blob: bytes) -> pathlib.Path:
        """Write a blob made by `seal` atomically, replacing an older version of that gallery."""
        path = self._path(name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return keys_mod.write_file_atomic(path, blob, mode=0o600, overwrite=True)

    def load(self, name: str) -> bytes:
        path = self._path(name)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise GalleryStoreError(f"no gallery named {name!r} in {self.directory}") from None
        return open_blob(self._k(), name, blob)

    def names(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.name[:-len(SUFFIX)] for p in self.directory.glob("*" + SUFFIX))

    def delete(self, name: str) -> bool:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True


# --------------------------------------------------------------------------- the local galleries

RECENT = "recent"  # people booked at this appliance lately (filled after each booking)
WATCHLIST = "watchlist"  # pushed by central (`command` watchlist.replace), replaced whole


def _tcn_order(tcn: str) -> tuple:
    """Sort key of a TCN `ORI-YYYYMMDD-SEQUENCE-C`: (date, sequence); unknown shapes first."""
    parts = tcn.split("-")
    if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit():
        return (1, parts[1], int(parts[2]), tcn)
    return (0, "", 0, tcn)


def add_recent_booking(gs: GalleryStore, tcn: str, templates, limit: int) -> int:
    """Add one booking's templates ({finger position: Template}) to the "recent" gallery
    under ids "<TCN>/<position>" (no personal data), keep at most `limit` bookings (the
    oldest by TCN date and sequence go) and save it atomically. Returns the number of
    bookings held. An unreadable old gallery is started afresh (it is a cache)."""
    from fpagent.screening.prefilter import Gallery, GalleryError  # lazy: numpy only when a gallery is touched

    if "/" in tcn or not tcn:
        raise ValueError(f"TCN {tcn!r} cannot be a gallery id prefix")
    try:
        gallery = Gallery.from_bytes(gs.load(RECENT))
    except (GalleryStoreError, GalleryError) as exc:
        if RECENT in gs.names():
            import logging
            logging.getLogger(__name__).warning("recent gallery unreadable, starting afresh: %s", exc)
        gallery = Gallery()
    for position, template in sorted(templates.items()):
        gallery.add(f"{tcn}/{int(position)}", template)
    bookings: dict[str, list[str]] = {}
    for gid in gallery.ids():
        bookings.setdefault(gid.rsplit("/", 1)[0], []).append(gid)
    if limit > 0 and len(bookings) > limit:
        for old in sorted(bookings, key=_tcn_order)[:len(bookings) - limit]:
            for gid in bookings.pop(old):
                gallery.remove(gid)
    gs.save(RECENT, gallery.to_bytes())
    return len(bookings)
