"""No biometric data in plaintext on disk: scan the database, its WAL/SHM/journal and the
gallery files for image and template bytes planted in real bookings."""

from __future__ import annotations

import os
import pathlib
import random
import stat

import numpy as np
import pytest

from fpagent.sealing import envelope
from fpagent.records import transaction as tx
from fpagent.sealing import keys
from fpagent.screening.galleries import GalleryStore, GalleryStoreError
from fpagent.storage.store import Store
from test_crash_support import MARKER_IMAGE, MARKER_TEMPLATE, booking_payload


def _disk_bytes(folder: pathlib.Path) -> dict[str, bytes]:
    """Every file the store or the galleries wrote (db, -wal, -shm, -journal, *.gallery)."""
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _windows(data: bytes, n: int, width: int = 24, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [data[i:i + width] for i in (rng.randrange(0, len(data) - width) for _ in range(n))]


def _found(files: dict[str, bytes], needles) -> list[str]:
    return [f"{name} holds {needle[:8].hex()}..." for name, blob in files.items()
            for needle in needles if needle in blob]


@pytest.fixture(scope="module")
def crypto():
    return keys.generate_central_hpke_keys(), keys.generate_signing_key()


def _seal(crypto, payload, suite="x25519", seq=1):
    central, dev = crypto
    return envelope.seal(payload, device_id="booking-01", ori="XX0000000", sequence=seq,
                         central_public_key=central.public(), device_signing_key=dev, suite=suite)


def test_scanner_finds_what_is_there(tmp_path, crypto):
    """Positive control: the scan reads the right files (ciphertext found, plaintext planted
    on purpose in a throwaway table found), so 'not found' below means something."""
    s = Store(tmp_path / "agent.sqlite3")
    env = _seal(crypto, booking_payload(random.Random(1)))
    s.outbox.enqueue(envelope.inspect(env).submission_id, "T", env)
    s.conn.execute("CREATE TABLE leak (b BLOB)")
    s.conn.execute("INSERT INTO leak VALUES (?)", (MARKER_IMAGE,))
    files = _disk_bytes(tmp_path)
    assert any(name.endswith("-wal") for name in files)  # WAL really scanned while open
    assert _found(files, [env[-64:]])  # the signature is on disk
    assert _found(files, [MARKER_IMAGE])
    s.close()


@pytest.mark.parametrize("suite", keys.SUITES)
def test_outbox_files_hold_no_image_or_template_bytes(tmp_path, crypto, suite):
    rng = random.Random(5)
    s = Store(tmp_path / "agent.sqlite3", check="none")
    sids = []
    for i in range(12):
        env = _seal(crypto, booking_payload(rng, 20_000), suite, seq=i)
        sid = envelope.inspect(env).submission_id
        s.outbox.enqueue(sid, f"T{i}", env, {"booking_number": f"B{i}"})
        sids.append(sid)
    for sid in sids[:6]:
        s.outbox.mark_sent(sid)
        s.outbox.mark_acknowledged(sid, {"central_tcn": "C"})
    s.outbox.purge_expired(now=10 ** 11)
    s.inbox.add("m1", "notification", {"hit": True, "level": 2})
    needles = [MARKER_IMAGE, MARKER_TEMPLATE, MARKER_IMAGE[:16], MARKER_TEMPLATE[-16:]]
    assert _found(_disk_bytes(tmp_path), needles) == []  # while open: WAL and SHM too
    s.close()
    assert _found(_disk_bytes(tmp_path), needles) == []  # after checkpoint into the main file


def _ten_fingers(fingerprints_root: pathlib.Path | None):
    """Ten (pixels, template) pairs: shared real images when present, else synthetic noise
    shaped like prints (the scan is about bytes, not about ridge quality)."""
    from fpagent.biometrics.template import MINUTIA_DTYPE, Template

    rng = np.random.default_rng(3)
    out = []
    files = sorted((fingerprints_root / "fvc2002_db1_b").glob("*.png"))[:10] if fingerprints_root else []
    for i in range(10):
        if files:
            from PIL import Image
            px = np.asarray(Image.open(files[i]).convert("L"), dtype=np.uint8)
        else:
            px = rng.integers(0, 255, size=(288, 256), dtype=np.uint8)
        m = np.zeros(30, dtype=MINUTIA_DTYPE)
        m["x"] = rng.uniform(10, 240, 30)
        m["y"] = rng.uniform(10, 270, 30)
        m["angle"] = rng.uniform(0, 6.28, 30)
        m["kind"] = 1
        m["quality"] = 80
        t = Template(minutiae=m, width=px.shape[1], height=px.shape[0], ppi=500, quality=80,
                     finger_position=i + 1, impression_type=0)
        out.append((px, t))
    return out


def test_real_transaction_bytes_not_on_disk(tmp_path, crypto):
    """A real ten-print ANSI/NIST transaction (WSQ): 400 random windows of it,
    of the raw pixels and of the minutiae never appear in any file."""
    from conftest import SHARED_FINGERPRINTS

    root = SHARED_FINGERPRINTS if (SHARED_FINGERPRINTS / "INDEX.tsv").exists() else None
    fingers = _ten_fingers(root)
    caps = tuple(tx.FingerCapture(position=i + 1, pixels=px, quality=70, template=t)
                 for i, (px, t) in enumerate(fingers))
    rec = tx.BookingRecord(tcn="XX0000000-20261128-000001-X", ori="XX0000000",
                           destination="XX0000000", fingers=caps, booking_number="B-77")
    data = tx.build_transaction(rec)
    s = Store(tmp_path / "agent.sqlite3")
    env = _seal(crypto, data)
    s.outbox.enqueue(envelope.inspect(env).submission_id, "T", env)
    needles = _windows(data, 400)
    for px, t in fingers:
        needles += _windows(px.tobytes(), 5, seed=int(px[0, 0]))
        needles.append(t.minutiae.tobytes()[:24])
    assert _found(_disk_bytes(tmp_path), needles) == []
    s.close()
    assert _found(_disk_bytes(tmp_path), needles) == []


# ------------------------------------------------------------------ galleries at rest


def test_gallery_encrypted_at_rest(tmp_path):
    gs = GalleryStore(tmp_path / "galleries", tmp_path / "keys" / "local-data.key")
    blob = MARKER_TEMPLATE + os.urandom(5000) + MARKER_IMAGE
    gs.save("watchlist", blob)
    gs.save("recent", b"other")
    assert gs.load("watchlist") == blob
    assert gs.names() == ["recent", "watchlist"]
    assert stat.S_IMODE((tmp_path / "keys" / "local-data.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "galleries" / "watchlist.gallery").stat().st_mode) == 0o600
    assert _found(_disk_bytes(tmp_path), [MARKER_TEMPLATE, MARKER_IMAGE]) == []
    # a new GalleryStore object reads with the same key file
    assert GalleryStore(tmp_path / "galleries", tmp_path / "keys" / "local-data.key").load(
        "watchlist") == blob


def test_gallery_tampered_renamed_or_other_key(tmp_path):
    gs = GalleryStore(tmp_path / "g", tmp_path / "k" / "local-data.key")
    gs.save("watchlist", b"secret gallery")
    path = tmp_path / "g" / "watchlist.gallery"
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(GalleryStoreError, match="does not decrypt"):
        gs.load("watchlist")
    gs.save("a", b"A")
    os.replace(tmp_path / "g" / "a.gallery", tmp_path / "g" / "b.gallery")
    with pytest.raises(GalleryStoreError, match="renamed"):
        gs.load("b")
    gs.save("c", b"C")
    other = GalleryStore(tmp_path / "g", tmp_path / "k2" / "local-data.key")
    with pytest.raises(GalleryStoreError):
        other.load("c")
    with pytest.raises(GalleryStoreError, match="no gallery"):
        gs.load("missing")
    with pytest.raises(ValueError):
        gs.save("../escape", b"x")
    (tmp_path / "g" / "short.gallery").write_bytes(b"FPG1")
    with pytest.raises(GalleryStoreError, match="truncated"):
        gs.load("short")
    os.chmod(tmp_path / "k" / "local-data.key", 0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 600"):
        GalleryStore(tmp_path / "g", tmp_path / "k" / "local-data.key").load("c")
