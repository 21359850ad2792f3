"""Power cut: the WAL cut off (or its tail garbled) at random points, as a torn write leaves it.

kill -9 keeps what the kernel has; a power cut loses what the disk had not
yet written. With synchronous=FULL every commit that returned is on disk, so
what a power cut can leave is a WAL whose last frames are missing or torn.
Here the database of 30 bookings is copied while all of them sit in the
WAL (no checkpoint), the WAL is cut at random byte offsets or its tail is
overwritten, and each copy is opened: it must open without being seen as
corrupt, pass integrity_check and the outbox/audit consistency check, and
hold a prefix of the bookings in commit order (nothing half-written, no
later one without the earlier ones).
"""

from __future__ import annotations

import os
import random

import pytest

from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.storage.store import Store


@pytest.fixture(scope="module")
def wal_snapshot(tmp_path_factory):
    d = tmp_path_factory.mktemp("powercut")
    central = keys.generate_central_hpke_keys(suites=("x25519",)).public()
    dev = keys.generate_signing_key()
    s = Store(d / "agent.sqlite3")
    s.conn.execute("PRAGMA wal_autocheckpoint = 0")  # keep every commit in the WAL
    s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    order = []
    for i in range(30):
        env = envelope.seal(os.urandom(3000), device_id="booking-01", ori="XX0000000",
                            sequence=i, central_public_key=central, device_signing_key=dev)
        sid = envelope.inspect(env).submission_id
        s.outbox.enqueue(sid, f"T{i}", env)
        order.append(sid)
    db = (d / "agent.sqlite3").read_bytes()
    wal = (d / "agent.sqlite3-wal").read_bytes()
    s.close()
    return db, wal, order


def _open_copy(folder, db: bytes, wal: bytes):
    folder.mkdir()
    (folder / "agent.sqlite3").write_bytes(db)
    (folder / "agent.sqlite3-wal").write_bytes(wal)
    return Store(folder / "agent.sqlite3", check="full")


def _check(s: Store, order: list[str]) -> int:
    assert s.recovered_from is None, "a torn WAL must not make the database look corrupt"
    assert s.check_consistency() == []
    present = {r[0] for r in s.conn.execute("SELECT submission_id FROM outbox")}
    n = len(present)
    assert present == set(order[:n]), "bookings survived out of commit order"
    return n


def test_wal_cut_at_random_offsets(tmp_path, wal_snapshot):
    db, wal, order = wal_snapshot
    rng = random.Random(1)
    cuts = sorted({0, 32, len(wal)} | {rng.randrange(0, len(wal)) for _ in range(40)})
    survived = []
    for i, cut in enumerate(cuts):
        with _open_copy(tmp_path / f"c{i}", db, wal[:cut]) as s:
            survived.append(_check(s, order))
    assert survived[-1] == len(order)  # the whole WAL: everything there
    assert survived[0] == 0
    assert survived == sorted(survived)  # a longer WAL never holds fewer bookings
    assert len(set(survived)) > 5  # the cuts really landed all over


def test_wal_tail_garbled(tmp_path, wal_snapshot):
    db, wal, order = wal_snapshot
    rng = random.Random(2)
    for i in range(25):
        start = rng.randrange(32, len(wal))
        torn = bytearray(wal)
        for j in range(start, min(len(torn), start + rng.randrange(1, 9000))):
            torn[j] = rng.randrange(256)
        with _open_copy(tmp_path / f"g{i}", db, bytes(torn)) as s:
            _check(s, order)
