"""A full disk refuses new bookings with a clear error and loses nothing already queued.

Two ways to fill a disk, both real:
- a 2 MiB tmpfs mounted in the test's temp folder (needs root / CAP_SYS_ADMIN;
  skipped with the reason otherwise), filled by real enqueues until the
  kernel says ENOSPC;
- RLIMIT_FSIZE in a child process (works for any user): the kernel refuses
  to grow any file beyond the limit (EFBIG), which SQLite sees as a full disk.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fpagent import config as config_mod
from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.errors import StorageFull
from fpagent.storage.store import Store


@pytest.fixture(scope="module")
def crypto():
    central = keys.generate_central_hpke_keys(suites=("x25519",))
    return central, keys.generate_signing_key()


def _sealed(crypto, size, seq):
    central, dev = crypto
    return envelope.seal(os.urandom(size), device_id="booking-01", ori="XX0000000", sequence=seq,
                         central_public_key=central.public(), device_signing_key=dev)


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({res.stderr.strip()}); "
                    f"the RLIMIT_FSIZE test covers the full disk instead")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill_until_full(store, crypto, size, start_seq=1):
    queued, seq = [], start_seq
    while True:
        env = _sealed(crypto, size, seq)
        sid = envelope.inspect(env).submission_id
        try:
            store.outbox.enqueue(sid, f"T{seq}", env)
        except StorageFull as exc:
            return queued, exc
        queued.append((sid, env))
        seq += 1
        assert seq < 10_000, "the small filesystem never filled up"


def _assert_all_there(path, crypto, queued):
    central, dev = crypto
    with Store(path, check="full") as s:
        assert s.check_consistency() == []
        assert s.outbox.counts()["pending"] == len(queued)
        for sid, env in queued:
            item = s.outbox.get(sid, with_envelope=True)
            assert item.envelope == env
            envelope.verify_and_open(item.envelope, central_private_key=central,
                                     device_verify_keys=[dev.public_key()])


def test_tmpfs_disk_full_refuses_and_keeps_everything(small_fs, crypto):
    cfg = config_mod.from_dict({"store": {"min_free_mb": 0.0}})  # let it hit the real ENOSPC
    filler = small_fs / "filler.bin"
    filler.write_bytes(b"\0" * 300_000)  # space we can give back later
    path = small_fs / "agent.sqlite3"
    s = Store(path, cfg)
    queued, exc = _fill_until_full(s, crypto, 40_000)
    assert len(queued) >= 5
    msg = str(exc)
    assert "full" in msg and "NOT queued" in msg and "nothing queued was dropped" in msg
    assert "Free disk space" in msg
    # still full: refused again, cleanly, and the store still answers
    with pytest.raises(StorageFull):
        env = _sealed(crypto, 40_000, 9999)
        s.outbox.enqueue(envelope.inspect(env).submission_id, "T", env)
    assert s.outbox.counts()["pending"] == len(queued)
    s.close()
    _assert_all_there(path, crypto, queued)
    # give space back: bookings are accepted again
    filler.unlink()
    s = Store(path, cfg)
    env = _sealed(crypto, 40_000, 10_000)
    assert s.outbox.enqueue(envelope.inspect(env).submission_id, "T", env)
    queued.append((envelope.inspect(env).submission_id, env))
    s.close()
    _assert_all_there(path, crypto, queued)


def test_tmpfs_real_enospc_when_free_space_looked_fine(small_fs, crypto, monkeypatch):
    """The last line of defence: free space looked fine (another process filled the disk
    between the check and the write), SQLite gets ENOSPC. shutil.disk_usage is the only
    thing faked here; the filesystem really is full."""
    import collections
    import shutil

    fake = collections.namedtuple("usage", "total used free")(10**12, 0, 10**12)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: fake)
    path = small_fs / "agent.sqlite3"
    s = Store(path, config_mod.from_dict({"store": {"min_free_mb": 0.0}}))
    queued, exc = _fill_until_full(s, crypto, 40_000)
    assert "the disk is full" in str(exc) and "NOT queued" in str(exc)
    s.close()
    monkeypatch.undo()
    _assert_all_there(path, crypto, queued)


def test_store_cannot_start_on_a_full_disk_says_so(small_fs):
    (small_fs / "filler.bin").write_bytes(b"\0" * 2_000_000)
    with open(small_fs / "filler2.bin", "wb") as fh:
        with pytest.raises(OSError):
            fh.write(b"\0" * 200_000)
            fh.flush()
    with pytest.raises(StorageFull, match="Free disk space"):
        Store(small_fs / "agent.sqlite3")


def test_tmpfs_min_free_policy_refuses_before_the_disk_is_full(small_fs, crypto):
    cfg = config_mod.from_dict({"store": {"min_free_mb": 1.0}})
    path = small_fs / "agent.sqlite3"
    s = Store(path, cfg)
    queued, exc = _fill_until_full(s, crypto, 40_000)
    assert "min_free_mb" in str(exc) and "NOT queued" in str(exc)
    free = os.statvfs(small_fs)
    assert free.f_bavail * free.f_frsize > 0.5 * 1024 * 1024  # refused with room to spare
    s.close()
    _assert_all_there(path, crypto, queued)


_RLIMIT_CHILD = r"""
import os, resource, signal, sys, json
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # get EFBIG instead of being killed
from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent import config
from fpagent.errors import StorageFull
from fpagent.storage.store import Store
path, limit = sys.argv[1], int(sys.argv[2])
central = keys.load_hpke_public(sys.argv[3]); dev = keys.load_signing_key(sys.argv[4])
s = Store(path, config.from_dict({"store": {"min_free_mb": 0.0}}))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
queued = []
for seq in range(1, 5000):
    env = envelope.seal(os.urandom(30000), device_id="booking-01", ori="XX0000000", sequence=seq,
                        central_public_key=central, device_signing_key=dev)
    sid = envelope.inspect(env).submission_id
    try:
        s.outbox.enqueue(sid, "T", env)
    except StorageFull as exc:
        print(json.dumps({"queued": queued, "error": str(exc)}))
        break
    queued.append(sid)
"""


def test_rlimit_fsize_full_refuses_and_keeps_everything(tmp_path):
    keys.create_central_keys(tmp_path / "k", suites=("x25519",))
    keys.create_device_keys(tmp_path / "k")
    path = tmp_path / "agent.sqlite3"
    Store(path).close()
    out = subprocess.run([sys.executable, "-c", _RLIMIT_CHILD, str(path), str(1_000_000),
                          str(tmp_path / "k" / keys.CENTRAL_HPKE_PUBLIC),
                          str(tmp_path / "k" / keys.DEVICE_SIGNING_KEY)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    import json
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["queued"]) >= 5
    assert "full or failing" in result["error"] and "NOT queued" in result["error"]
    central = keys.load_hpke_private(tmp_path / "k" / keys.CENTRAL_HPKE_PRIVATE)
    dev = keys.load_verify_key(tmp_path / "k" / keys.DEVICE_VERIFY_KEY)
    with Store(path, check="full") as s:
        assert s.check_consistency() == []
        assert s.outbox.counts()["pending"] == len(result["queued"])
        for sid in result["queued"]:
            env = s.outbox.get(sid, with_envelope=True).envelope
            envelope.verify_and_open(env, central_private_key=central, device_verify_keys=[dev])
