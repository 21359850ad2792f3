"""Central's image worker: a real child process that decodes and extracts, and may die.

Its crashes are real: the worker is killed with SIGSEGV between images, or
given the WSQ that segfaults the `wsq` decoder (../shared/data/hostile/), or
a timeout it cannot meet; each time the caller gets WorkerFailed (or the
decoder's own refusal as TransactionError) and the next image is decoded by a
fresh worker.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from fpagent.central.image_worker import ImageWorker, WorkerFailed
from fpagent.records.images import compress_image
from fpagent.records.transaction_format import TransactionError
from tests.mqtt_helpers import ROOT_DIR

HOSTILE_WSQ = ROOT_DIR.parent / "shared" / "data" / "hostile" / "wsq-decoder-segfault.wsq"


@pytest.fixture(scope="module")
def good_wsq():
    from fpagent.drivers.synthetic.generator import finger_image
    return compress_image(finger_image(1, 2, 1, seed=3), 500, "wsq")


@pytest.fixture
def worker():
    w = ImageWorker()
    yield w
    w.close()


@pytest.mark.slow
def test_a_worker_killed_by_a_crash_fails_that_image_and_the_next_gets_a_fresh_one(worker, good_wsq):
    cga, data = good_wsq
    assert len(worker.extract(cga, data, 500)) > 10
    pid = worker._proc.pid
    os.kill(pid, signal.SIGSTOP)  # hold it, so the crash lands while it holds the next image

    def crash():
        os.kill(pid, signal.SIGSEGV)
        os.kill(pid, signal.SIGCONT)
    threading.Timer(0.5, crash).start()
    with pytest.raises(WorkerFailed, match="SIGSEGV"):
        worker.extract(cga, data, 500)
    assert len(worker.extract(cga, data, 500)) > 10
    assert worker.starts == 2 and worker.failures == 1
    os.kill(worker._proc.pid, signal.SIGKILL)  # died between images: replaced, no failure
    worker._proc.wait(10)
    assert len(worker.extract(cga, data, 500)) > 10
    assert worker.starts == 3 and worker.failures == 1


@pytest.mark.slow
def test_an_image_over_its_time_fails_and_the_worker_is_replaced(good_wsq):
    cga, data = good_wsq
    worker = ImageWorker(timeout_s=0.001)
    try:
        with pytest.raises(WorkerFailed, match="timed out"):
            worker.extract(cga, data, 500)
        assert worker._proc is None  # killed, not left running
    finally:
        worker.close()


@pytest.mark.slow
@pytest.mark.skipif(not HOSTILE_WSQ.exists(), reason="hostile corpus not found")
def test_the_decoder_crashing_wsq_never_reaches_the_caller_as_a_crash(worker, good_wsq):
    with pytest.raises((WorkerFailed, TransactionError)):
        worker.extract("WSQ20", HOSTILE_WSQ.read_bytes(), 500)
    assert worker._proc is None  # crashed, or retired after the decoder refused the bytes
    cga, data = good_wsq
    assert len(worker.extract(cga, data, 500)) > 10


@pytest.mark.slow
def test_an_undecodable_image_is_a_transaction_error(worker):
    with pytest.raises(TransactionError, match="does not decode"):
        worker.extract("PNG", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 500)
    with pytest.raises(TransactionError, match="over"):
        worker.extract("PNG", b"\x00" * (5 * 1024 * 1024), 500)
