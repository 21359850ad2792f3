"""kill -9 harness for the store, shared with the booking tests.

`kill_trials(db_path, work, trials=..., check=...)` forks a child that runs
`work(db_path, report)` (a loop that never returns), SIGKILLs it after a
random short delay, then reopens the database and runs the checks. Forking
from an already-imported interpreter makes a trial cost milliseconds, so a
few hundred fit in seconds; `exec_trial` does the same with a freshly
started `python` process for realism. The child reports each operation
AFTER its commit returned (`report("E", sid)`), so the parent knows what
must have survived: kill -9 keeps everything the kernel already has.

Use from another test file:

    from test_crash_support import kill_trials, standard_checks

    def booking_worker(db_path, report):   # loops until killed
        ...                                # complete bookings; report("E", sid) after each
    kill_trials(lambda t: tmp_path / "agent.sqlite3", booking_worker, trials=100)

standard_checks understands report kinds E (enqueued), S (sent), A (acknowledged),
P (purged) with a submission id, and I (inbox message id).
"""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.storage.store import Store

MARKER_IMAGE = b"\xf1IMAGE-MARKER-7b1d\xf2" * 4
MARKER_TEMPLATE = b"\xf3TEMPLATE-MARKER-c9a0\xf4" * 4


class _Reporter:
    def __init__(self, fd: int):
        self.fd = fd

    def __call__(self, kind: str, ident: str) -> None:
        os.write(self.fd, f"{kind} {ident}\n".encode())


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def _parse_reports(data: bytes) -> list[tuple[str, str]]:
    out = []
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2:  # a line cut by the kill is incomplete: ignore it
            out.append((parts[0], parts[1]))
    return out


def _wait_ready(fd: int, timeout_s: float = 30.0) -> bytes:
    """Read from the child until it reported "R ready" (its store is open); return what came."""
    import select

    got = b""
    deadline = time.monotonic() + timeout_s
    while b"R ready\n" not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError("worker never became ready")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        got += chunk
    return got


def fork_and_kill(db_path, work, delay_s: float, *, after_ready: bool = False) -> list[tuple[str, str]]:
    """Run work(db_path, report) in a forked child, SIGKILL it after delay_s; return reports.

    after_ready: start the delay once the child reported ("R", "ready"), so the
    kill lands in its work loop however slow the machine is at opening the store.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            os.close(r)
            random.seed(os.getpid() ^ int(time.time() * 1e6))
            work(str(db_path), _Reporter(w))
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    head = _wait_ready(r) if after_ready else b""
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    reports = _parse_reports(head + _read_all(r))
    os.close(r)
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
        raise AssertionError(f"worker ended by itself (status {status}) before the kill: "
                             f"it must loop until killed")
    return reports


def kill_trials(db_path_for, work, trials: int, *, max_delay_s: float = 0.1, seed: int = 0,
                check=None) -> dict:
    """Run `trials` fork-and-kill trials; after each, run the checks and fail loudly.

    `db_path_for(trial)` gives the database file of a trial (the same path for a
    growing database, or a new one now and then); `check(db_path, reports,
    ledger)` returns a list of problems (default: standard_checks). Returns
    {"trials", "reports"}: how many and how many committed operations were reported.
    """
    rng = random.Random(seed)
    check = check or standard_checks
    ledgers: dict = {}
    reported = 0
    for trial in range(trials):
        db = pathlib.Path(db_path_for(trial))
        ledger = ledgers.setdefault(db, {})
        reports = fork_and_kill(db, work, rng.uniform(0.0, max_delay_s))
        reported += sum(1 for k, _ in reports if k not in ("R", "B"))
        problems = check(db, reports, ledger)
        if problems:
            raise AssertionError(f"kill -9 trial {trial} on {db.name}: {problems[:5]}")
    return {"trials": trials, "reports": reported}


def exec_trial(db_path, worker: str, delay_s: float, extra_args=()) -> list[tuple[str, str]]:
    """Like fork_and_kill, but in a freshly exec'd Python: `worker` = 'module:function'
    importable from tests/ (the child waits for the file 'ready' before the timer starts)."""
    module, func = worker.split(":")
    tests_dir = str(pathlib.Path(__file__).parent)
    code = (f"import sys; sys.path.insert(0, {tests_dir!r}); import os; "
            f"from {module} import {func} as f; "
            f"from test_crash_support import _Reporter; f(sys.argv[1], _Reporter(1))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db_path), *extra_args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    # wait until the child has started working (first report line), then the random delay
    first = proc.stdout.readline()
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait(timeout=30)
    reports = []
    for line in (first + rest).decode().splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2:
            reports.append((parts[0], parts[1]))
    return reports


def killed_during(reports) -> str:
    """Which operation the kill interrupted: the last one begun ("B name") with no
    completion line after it; "open" before the store was ready; "between" when
    the last operation had reported its result. (A send loop reports one S per
    item, so a kill inside it still counts as "sent".)"""
    if ("R", "ready") not in reports:
        return "open"
    last, done = None, False
    for kind, what in reports:
        if kind == "B":
            last, done = what, False
        elif kind in ("E", "A", "P", "I"):
            done = True
    return "between" if done or last is None else last


def standard_checks(db_path, reports, ledger: dict) -> list[str]:
    """Reopen and check: integrity, audit chain, outbox/audit consistency, and that every
    operation the child reported as committed is there. `ledger` accumulates across
    trials: submission id -> strongest state reported."""
    rank = {"pending": 0, "sent": 1, "acknowledged": 2, "purged": 3}
    for kind, sid in reports:
        state = {"E": "pending", "S": "sent", "A": "acknowledged", "P": "purged"}.get(kind)
        if state and rank[state] >= rank.get(ledger.get(sid), -1):
            ledger[sid] = state
        elif kind == "I":
            ledger.setdefault(("inbox",), set()).add(sid)
    with Store(db_path, check="full") as s:
        problems = list(s.check_consistency())
        if s.recovered_from:
            problems.append(f"database was found corrupt and moved aside: {s.recovered_from}")
        rows = {r[0]: r[1] for r in s.conn.execute("SELECT submission_id, state FROM outbox")}
        for sid, state in ledger.items():
            if sid == ("inbox",):
                for mid in state:
                    if s.inbox.get(mid) is None:
                        problems.append(f"inbox message {mid} reported stored but lost")
                continue
            have = rows.get(sid)
            if have is None:
                problems.append(f"{sid}: reported {state} but lost")
            elif rank.get(have, 9) < rank[state] and not (have == "rejected"):
                problems.append(f"{sid}: reported {state}, found {have} (went back)")
    return problems


# ------------------------------------------------------------------ the store worker


_CENTRAL = None


def _keys():
    global _CENTRAL
    if _CENTRAL is None:
        _CENTRAL = (keys.generate_central_hpke_keys(suites=("x25519",)).public(),
                    keys.generate_signing_key())
    return _CENTRAL


def booking_payload(rng: random.Random, size: int = 6000) -> bytes:
    """A stand-in 'transaction' carrying the image and template marker bytes."""
    filler = rng.randbytes(size)
    return b"NIST" + MARKER_IMAGE + filler + MARKER_TEMPLATE


def store_worker(db_path: str, report) -> None:
    """Loop forever over random store operations: enqueue, send, ack, purge, inbox, counters."""
    from fpagent import config as config_mod

    rng = random.Random()
    central, dev = _keys()
    cfg = config_mod.from_dict({"store": {"retention_days": 0.0, "min_free_mb": 0.0}})
    s = Store(db_path, cfg, check="none")
    report("R", "ready")
    while True:
        op = rng.random()
        if op < 0.4:
            report("B", "enqueue")
            seq = s.next_sequence()
            env = envelope.seal(booking_payload(rng, rng.randrange(1000, 6000)),
                                device_id="booking-01", ori="XX0000000", sequence=seq,
                                central_public_key=central, device_signing_key=dev)
            sid = envelope.inspect(env).submission_id
            s.outbox.enqueue(sid, f"TCN{seq}", env, {"booking_number": f"B{seq}", "seq": seq})
            report("E", sid)
        elif op < 0.55:
            report("B", "sent")
            for item in s.outbox.due(now=time.time() + 10 ** 6, limit=3):
                s.outbox.mark_sent(item.submission_id)
                report("S", item.submission_id)
        elif op < 0.75:
            report("B", "acknowledge")
            items = s.outbox.pending(limit=5)
            if items:
                it = rng.choice(items)
                if s.outbox.mark_acknowledged(it.submission_id, {"central_tcn": "C" + it.tcn}):
                    report("A", it.submission_id)
        elif op < 0.9:
            acked = [i.submission_id for i in s.outbox.list(state="acknowledged", limit=1000)]
            if not acked:
                continue
            report("B", "purge")
            n = s.outbox.purge_expired()
            if n:
                for sid in acked:
                    report("P", sid)
        else:
            report("B", "inbox")
            mid = f"m{rng.getrandbits(64):x}"
            if s.inbox.add(mid, "notification", {"hit": False}):
                report("I", mid)
            s.counters.incr("link.rejected.stale")


def test_kill_trials_helper(tmp_path):
    out = kill_trials(lambda t: tmp_path / "k.sqlite3", store_worker, trials=5, max_delay_s=0.05)
    assert out["trials"] == 5


def test_harness_reports_and_kills(tmp_path):
    """The harness itself: a killed child's committed work is reported and found."""
    db = tmp_path / "h.sqlite3"
    Store(db).close()
    reports = fork_and_kill(db, store_worker, 0.3)
    assert ("R", "ready") in reports
    assert any(k == "E" for k, _ in reports)
    assert standard_checks(db, reports, {}) == []
