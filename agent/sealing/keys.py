"""Key files of the appliance and of the central system: create, save, load, name.

Which keys exist and who holds them:

- device signing key (Ed25519, `device-sign.key` / `.pub`): the appliance signs
  every envelope with it; central pins the public half per device.
- central HPKE key set (`central-hpke.key` / `.pub`): the appliance encrypts
  bookings to the public half; only central holds the private half, so the
  appliance cannot read back what it queued. One file holds one key per suite:
  "x25519" (DHKEM(X25519)) and "mlkem768-x25519" (the ML-KEM-768 + X25519
  post-quantum hybrid KEM of `cryptography.hazmat.primitives.hpke`).
- central signing key (Ed25519, `central-sign.key` / `.pub`): central signs
  acks, notifications and commands; the appliance pins the public half.

File formats (documented in docs/envelope.md):
- Ed25519: PEM, PKCS#8 (private) and SubjectPublicKeyInfo (public), readable
  by `openssl pkey`.
- HPKE key sets: a small JSON document `{"format": "fpagent-hpke-private-keyset"
  | "fpagent-hpke-public-keyset", "version": 1, "keys": [...]}` with raw key
  bytes in base64, because the hybrid KEM key has no standard file format yet.

Private key files are written 0600 atomically and never silently overwritten;
loading a private key that others can read is refused with a message saying
`chmod 600 <file>`. A key id is a short SHA-256 fingerprint of the public key
(16 hex digits), used in envelope headers and audit entries.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pathlib
import stat
import tempfile

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from fpagent.errors import AccessError
SUITE_X25519 = "x25519"
SUITE_HYBRID = "mlkem768-x25519"
SUITES = (SUITE_X25519, SUITE_HYBRID)

DEVICE_SIGNING_KEY = "device-sign.key"
DEVICE_VERIFY_KEY = "device-sign.pub"
CENTRAL_HPKE_PRIVATE = "central-hpke.key"
CENTRAL_HPKE_PUBLIC = "central-hpke.pub"
CENTRAL_SIGNING_KEY = "central-sign.key"
CENTRAL_VERIFY_KEY = "central-sign.pub"
LOCAL_DATA_KEY = "local-data.key"

_PRIVATE_SET = "fpagent-hpke-private-keyset"
_PUBLIC_SET = "fpagent-hpke-public-keyset"


class KeyFileError(AccessError):
    """A key file is missing, unreadable, too open, of the wrong kind or in the way."""


# --------------------------------------------------------------------------- ids


def key_id(public_key) -> str:
    """Short fingerprint of a public key: first 16 hex digits of SHA-256.

    Accepts an Ed25519 public key, an HpkePublicKey, or raw bytes. The
    algorithm name is hashed in, so equal bytes of different kinds differ.
    """
    if isinstance(public_key, HpkePublicKey):
        return public_key.key_id
    if isinstance(public_key, ed25519.Ed25519PrivateKey):
        public_key = public_key.public_key()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return _fingerprint("ed25519", public_key.public_bytes_raw())
    if isinstance(public_key, (bytes, bytearray)):
        return _fingerprint("raw", bytes(public_key))
    raise TypeError(f"no key id for {type(public_key).__name__}")


def _fingerprint(kind: str, raw: bytes) -> str:
    return hashlib.sha256(kind.encode() + b"\x00" + raw).hexdigest()[:16]


# --------------------------------------------------------------------------- HPKE keys


@dataclasses.dataclass(frozen=True)
class HpkePublicKey:
    """One central HPKE public key: its suite, the cryptography object, its id."""

    suite: str
    key: object  # x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
    raw: bytes  # X25519: 32 bytes; hybrid: ML-KEM-768 public (1184) || X25519 public (32)

    @property
    def key_id(self) -> str:
        return _fingerprint(self.suite, self.raw)


@dataclasses.dataclass(frozen=True)
class HpkePrivateKey:
    """One central HPKE private key (central side only)."""

    suite: str
    key: object  # x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey
    secret: bytes = dataclasses.field(repr=False)  # raw private bytes, for saving
    public: HpkePublicKey = dataclasses.field(repr=False)

    @property
    def key_id(self) -> str:
        return self.public.key_id


@dataclasses.dataclass(frozen=True)
class HpkePublicKeySet:
    """Central's HPKE public keys, one per suite (what the appliance holds)."""

    keys: tuple[HpkePublicKey, ...]

    def get(self, suite: str) -> HpkePublicKey:
        for k in self.keys:
            if k.suite == suite:
                return k
        have = ", ".join(k.suite for k in self.keys) or "none"
        raise KeyFileError(
            f"the central public key set has no {suite!r} key (it has: {have}); "
            f"ask the central system for a key set with that suite or set [envelope] suite"
        )


@dataclasses.dataclass(frozen=True)
class HpkePrivateKeySet:
    """Central's HPKE private keys, one per suite (central side only)."""

    keys: tuple[HpkePrivateKey, ...]

    def public(self) -> HpkePublicKeySet:
        return HpkePublicKeySet(tuple(k.public for k in self.keys))

    def by_id(self) -> dict[str, HpkePrivateKey]:
        return {k.key_id: k for k in self.keys}


def _hpke_private_from_secret(suite: str, secret: bytes) -> HpkePrivateKey:
    if suite == SUITE_X25519:
        priv = x25519.X25519PrivateKey.from_private_bytes(secret)
        raw_pub = priv.public_key().public_bytes_raw()
        pub = HpkePublicKey(suite, priv.public_key(), raw_pub)
        return HpkePrivateKey(suite, priv, secret, pub)
    if suite == SUITE_HYBRID:
        if len(secret) != 64 + 32:
            raise ValueError("hybrid private key must be 96 bytes (ML-KEM seed 64 + X25519 32)")
        mk = mlkem.MLKEM768PrivateKey.from_seed_bytes(secret[:64])
        xk = x25519.X25519PrivateKey.from_private_bytes(secret[64:])
        priv = hpke.MLKEM768X25519PrivateKey(mk, xk)
        raw_pub = mk.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
        pub = HpkePublicKey(suite, priv.public_key(), raw_pub)
        return HpkePrivateKey(suite, priv, secret, pub)
    raise ValueError(f"unknown HPKE suite {suite!r}; known: {', '.join(SUITES)}")


def _hpke_public_from_raw(suite: str, raw: bytes) -> HpkePublicKey:
    if suite == SUITE_X25519:
        return HpkePublicKey(suite, x25519.X25519PublicKey.from_public_bytes(raw), raw)
    if suite == SUITE_HYBRID:
        if len(raw) != 1184 + 32:
            raise ValueError("hybrid public key must be 1216 bytes (ML-KEM-768 1184 + X25519 32)")
        mk = mlkem.MLKEM768PublicKey.from_public_bytes(raw[:1184])
        xk = x25519.X25519PublicKey.from_public_bytes(raw[1184:])
        return HpkePublicKey(suite, hpke.MLKEM768X25519PublicKey(mk, xk), raw)
    raise ValueError(f"unknown HPKE suite {suite!r}; known: {', '.join(SUITES)}")


def generate_hpke_key(suite: str = SUITE_X25519) -> HpkePrivateKey:
    """A fresh central HPKE private key for one suite."""
    if suite == SUITE_X25519:
        secret = x25519.X25519PrivateKey.generate().private_bytes_raw()
    elif suite == SUITE_HYBRID:
        secret = (mlkem.MLKEM768PrivateKey.generate().private_bytes_raw()
                  + x25519.X25519PrivateKey.generate().private_bytes_raw())
    else:
        raise ValueError(f"unknown HPKE suite {suite!r}; known: {', '.join(SUITES)}")
    return _hpke_private_from_secret(suite, secret)


def generate_central_hpke_keys(suites=SUITES) -> HpkePrivateKeySet:
    """A central HPKE key set holding one fresh key per suite (both by default)."""
    return HpkePrivateKeySet(tuple(generate_hpke_key(s) for s in suites))


def generate_signing_key() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 signing key (device or central)."""
    return ed25519.Ed25519PrivateKey.generate()


# --------------------------------------------------------------------------- encoding


def encode_private(key) -> bytes:
    """File bytes for a private key (Ed25519 PEM, or HPKE key-set JSON)."""
    if isinstance(key, HpkePrivateKey):
        key = HpkePrivateKeySet((key,))
    if isinstance(key, HpkePrivateKeySet):
        doc = {"format": _PRIVATE_SET, "version": 1,
               "keys": [{"suite": k.suite, "key_id": k.key_id,
                         "private": base64.b64encode(k.secret).decode()} for k in key.keys]}
        return (json.dumps(doc, indent=1) + "\n").encode()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    raise TypeError(f"cannot save a private key of type {type(key).__name__}")


def encode_public(key) -> bytes:
    """File bytes for a public key (Ed25519 PEM, or HPKE public key-set JSON)."""
    if isinstance(key, (HpkePrivateKeySet, HpkePrivateKey)):
        raise TypeError("pass the public half (.public()) to encode_public")
    if isinstance(key, HpkePublicKey):
        key = HpkePublicKeySet((key,))
    if isinstance(key, HpkePublicKeySet):
        doc = {"format": _PUBLIC_SET, "version": 1,
               "keys": [{"suite": k.suite, "key_id": k.key_id,
                         "public": base64.b64encode(k.raw).decode()} for k in key.keys]}
        return (json.dumps(doc, indent=1) + "\n").encode()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        key = key.public_key()
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo)
    raise TypeError(f"cannot save a public key of type {type(key).__name__}")


# --------------------------------------------------------------------------- files


def write_file_atomic(path, data: bytes, *, mode: int = 0o600, overwrite: bool = False) -> pathlib.Path:
    """Write `data` to `path` all-or-nothing with `mode`; refuse to replace unless asked.

    Written to a temporary file in the same folder, fsynced, then linked into
    place (no-clobber) or renamed over the old one (overwrite=True); the
    folder is fsynced too, so a power cut leaves the old file or the new one.
    """
    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path} already exists; refusing to overwrite it. "
                           f"Move it away first if you really mean to replace it")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyFileError(f"{path} already exists; refusing to overwrite it. "
                                   f"Move it away first if you really mean to replace it") from None
            os.unlink(tmp)
        tmp = None
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_private_key(path, key, *, overwrite: bool = False) -> pathlib.Path:
    """Save a private key (Ed25519 or HPKE set) as a 0600 file, atomically."""
    return write_file_atomic(path, encode_private(key), mode=0o600, overwrite=overwrite)


def save_public_key(path, key, *, overwrite: bool = False) -> pathlib.Path:
    """Save a public key (Ed25519 or HPKE set) as a 0644 file, atomically."""
    return write_file_atomic(path, encode_public(key), mode=0o644, overwrite=overwrite)


def read_key_file(path, *, private: bool, what: str = "key") -> bytes:
    """Read a key file with clear errors; private files must not be group/other accessible."""
    path = pathlib.Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{what} file {path} does not exist; create it with "
                           f"`fpagent` provisioning (scripts/provision) or fix the path "
                           f"in the configuration") from None
    except PermissionError:
        raise KeyFileError(f"{what} file {path} cannot be reached by this user; "
                           f"check the folder's owner and mode") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{what} file {path} is not a regular file")
    if private and st.st_mode & 0o077:
        raise KeyFileError(f"{what} file {path} is readable by others (mode "
                           f"{stat.S_IMODE(st.st_mode):04o}); run `chmod 600 {path}`")
    try:
        return path.read_bytes()
    except PermissionError:
        raise KeyFileError(f"{what} file {path} is not readable by this user; "
                           f"check its owner (the agent's service user must own it)") from None


def _parse_signing(data: bytes, path, what) -> ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{what} file {path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{what} file {path} holds a {type(key).__name__}, "
                           f"not an Ed25519 private key")
    return key


def load_signing_key(path, what: str = "signing key") -> ed25519.Ed25519PrivateKey:
    """Load an Ed25519 private key (device or central) from a 0600 PEM file."""
    return _parse_signing(read_key_file(path, private=True, what=what), path, what)


def load_verify_key(path, what: str = "verify key") -> ed25519.Ed25519PublicKey:
    """Load an Ed25519 public key (PEM SubjectPublicKeyInfo)."""
    data = read_key_file(path, private=False, what=what)
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{what} file {path} holds a private key; give the public "
                           f"half (.pub) here and keep the private one secret")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{what} file {path} is not a PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeyFileError(f"{what} file {path} holds a {type(key).__name__}, "
                           f"not an Ed25519 public key")
    return key


def _parse_keyset(data: bytes, path, what, expected: str) -> list[dict]:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        raise KeyFileError(f"{what} file {path} is not an fpagent HPKE key set "
                           f"(JSON with format {expected!r})") from None
    if doc.get("format") != expected:
        other = {_PRIVATE_SET: "private", _PUBLIC_SET: "public"}.get(doc.get("format"))
        hint = f"; it is a {other} key set" if other else ""
        raise KeyFileError(f"{what} file {path} has format {doc.get('format')!r}, "
                           f"expected {expected!r}{hint}")
    if doc.get("version") != 1:
        raise KeyFileError(f"{what} file {path} has key-set version {doc.get('version')!r}; "
                           f"this agent reads version 1 (upgrade the agent)")
    keys = doc.get("keys")
    if not isinstance(keys, list) or not keys:
        raise KeyFileError(f"{what} file {path} holds no keys")
    return keys


def load_hpke_private(path, what: str = "central HPKE private key") -> HpkePrivateKeySet:
    """Load central's HPKE private key set (central side only; 0600)."""
    out = []
    for entry in _parse_keyset(read_key_file(path, private=True, what=what), path, what, _PRIVATE_SET):
        try:
            out.append(_hpke_private_from_secret(entry["suite"], base64.b64decode(entry["private"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyFileError(f"{what} file {path}: bad key entry ({exc})") from None
    return HpkePrivateKeySet(tuple(out))


def load_hpke_public(path, what: str = "central HPKE public key") -> HpkePublicKeySet:
    """Load central's HPKE public key set (what the appliance encrypts to)."""
    out = []
    for entry in _parse_keyset(read_key_file(path, private=False, what=what), path, what, _PUBLIC_SET):
        try:
            k = _hpke_public_from_raw(entry["suite"], base64.b64decode(entry["public"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyFileError(f"{what} file {path}: bad key entry ({exc})") from None
        if entry.get("key_id") not in (None, k.key_id):
            raise KeyFileError(f"{what} file {path}: key id {entry.get('key_id')!r} does not "
                               f"match the key ({k.key_id}); the file was altered")
        out.append(k)
    return HpkePublicKeySet(tuple(out))


# --------------------------------------------------------------------------- bundles


@dataclasses.dataclass(frozen=True)
class DeviceKeys:
    """What the appliance needs to seal and to check central's messages."""

    signing_key: ed25519.Ed25519PrivateKey = dataclasses.field(repr=False)
    device_key_id: str
    central_public: HpkePublicKeySet
    central_verify_key: ed25519.Ed25519PublicKey
    central_verify_key_id: str


def load_device_keys(cfg) -> DeviceKeys:
    """Load the appliance's keys from the paths in `cfg.envelope` (defaults under keys_dir)."""
    env = cfg.envelope
    sk = load_signing_key(cfg.key_path(env.device_signing_key, DEVICE_SIGNING_KEY), "device signing key")
    cp = load_hpke_public(cfg.key_path(env.central_public_key, CENTRAL_HPKE_PUBLIC))
    vk = load_verify_key(cfg.key_path(env.central_verify_key, CENTRAL_VERIFY_KEY),
                         "central verify key")
    return DeviceKeys(sk, key_id(sk), cp, vk, key_id(vk))


def create_device_keys(keys_dir, *, overwrite: bool = False) -> ed25519.Ed25519PrivateKey:
    """Create device-sign.key (0600) and device-sign.pub in keys_dir."""
    keys_dir = pathlib.Path(keys_dir)
    sk = generate_signing_key()
    save_private_key(keys_dir / DEVICE_SIGNING_KEY, sk, overwrite=overwrite)
    save_public_key(keys_dir / DEVICE_VERIFY_KEY, sk.public_key(), overwrite=overwrite)
    return sk


def create_central_keys(keys_dir, *, suites=SUITES, overwrite: bool = False):
    """Create central-hpke.key/.pub and central-sign.key/.pub in keys_dir.

    Returns (HpkePrivateKeySet, Ed25519PrivateKey). The .pub files are what an
    appliance is provisioned with; the .key files stay on the central system.
    """
    keys_dir = pathlib.Path(keys_dir)
    hk = generate_central_hpke_keys(suites)
    sk = generate_signing_key()
    save_private_key(keys_dir / CENTRAL_HPKE_PRIVATE, hk, overwrite=overwrite)
    save_public_key(keys_dir / CENTRAL_HPKE_PUBLIC, hk.public(), overwrite=overwrite)
    save_private_key(keys_dir / CENTRAL_SIGNING_KEY, sk, overwrite=overwrite)
    save_public_key(keys_dir / CENTRAL_VERIFY_KEY, sk.public_key(), overwrite=overwrite)
    return hk, sk
