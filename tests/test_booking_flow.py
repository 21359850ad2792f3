"""A booking end to end with real parts: synthetic prints from the generator,
real quality/extraction, the real matcher, real keys, a real SQLite store,
and the central side opening the envelope and parsing the transaction.

The only stand-ins are for the *officer's* behaviour (a wrong finger put
down, a finger lifted too early), done by wrapping the sensor.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fpagent import hal
from fpagent.booking import local_screening, runner, submit
from fpagent.booking import session as B
from fpagent import config as config_mod
from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.records.tcn import tcn_is_valid
from fpagent.records.transaction_parse import parse_transaction, validate
from fpagent.storage.store import Store

PERSON = 7
SEED = 11


@pytest.fixture(scope="module")
def warm():
    """Compile/load the numba kernels once for this module."""
    from fpagent.biometrics import extraction
    from fpagent.biometrics import matcher

    extraction.warm_up()
    matcher.warm_up()


@pytest.fixture()
def env(tmp_path):
    """A configuration, device and central keys, and a store, all under tmp_path."""
    state = tmp_path / "state"
    keys_dir = tmp_path / "keys"
    keys.create_device_keys(keys_dir)
    central_hpke, _central_sign = keys.create_central_keys(keys_dir)
    data = {
        "device": {"ori": "CA0190000", "device_id": "booking-test"},
        "paths": {"state_dir": str(state), "keys_dir": str(keys_dir)},
        "sensor": {"url": f"synthetic://?seed={SEED}&person={PERSON}", "capture_timeout_s": 5.0},
        "booking": {"destination": "CA0000001"},
    }
    cfg = config_mod.from_dict(data)
    toml = tmp_path / "agent.toml"
    toml.write_text(config_mod.to_toml(cfg))
    device_keys = keys.load_device_keys(cfg)
    return dataclasses.make_dataclass("Env", ["cfg", "toml", "keys", "central", "device_verify", "db"])(
        cfg, toml, device_keys, central_hpke, device_keys.signing_key.public_key(),
        cfg.paths.database(),
    )


def open_submission(env, item):
    opened = envelope.verify_and_open(item.envelope, central_private_key=env.central,
                                      device_verify_keys=[env.device_verify])
    parsed = parse_transaction(opened.plaintext)
    validate(parsed)
    return opened, parsed


def synthetic_sensor() -> hal.Sensor:
    return hal.open_sensor(f"synthetic://?seed={SEED}&person={PERSON}")


class Officer(hal.Sensor):
    """Wraps a sensor to play the officer's mistakes: `wrong[p] = q` puts
    finger q down the first time finger p is asked for; `lifted` positions
    give a blank image on their first attempt."""

    interface = "officer"

    def __init__(self, inner, wrong=None, lifted=()):
        super().__init__(inner.url)
        self.inner, self.wrong, self.lifted = inner, dict(wrong or {}), set(lifted)
        self.asked = []

    def _capture(self, request):
        p = int(request.finger_position)
        self.asked.append(p)
        if p in self.lifted:
            self.lifted.discard(p)
            return hal.FingerImage(np.full((288, 256), 235, np.uint8), 500)
        q = self.wrong.pop(p, p)  # the base class stamps the position asked for (p)
        return self.inner.capture(timeout=max(request.remaining(), 1e-3), progress=request.progress,
                                  finger_position=q, impression_type=request.impression_type)

    def _info_internal(self):
        return self.inner.info()

    def _close_internal(self):
        self.inner.close()


class Recorder(runner.BookingUI):
    """Records outcomes. Like an officer sure of the finger, it confirms a print
    refused three times in a row: impostor scores between *synthetic* fingers
    of one person sometimes pass the matcher's threshold (calibrated on real
    prints), and this test is about the booking, not the matcher's FMR."""

    def __init__(self):
        self.outcomes = []

    def outcome(self, outcome):
        self.outcomes.append(outcome)

    def confirm(self, question):
        return True


def info(number="BK-2026-0001", **descriptive):
    return B.BookingInfo(number, "CA0190000", "officer-7",
                         descriptive or {"name": "DOE,JOHN", "dob": "1980-01-02", "sex": "M"})


# --- the whole booking ---------------------------------------------------------


@pytest.mark.slow
def test_full_ten_print_booking_is_one_outbox_row_central_can_open(env, warm):
    # a local gallery (encrypted at rest) already holds this person's right thumb
    from fpagent.biometrics import extraction
    from fpagent.screening.galleries import GalleryStore
    from fpagent.screening.prefilter import Gallery

    known = Gallery()
    with synthetic_sensor() as other_visit:
        for _ in range(3):  # a later impression than the booking will see
            img = other_visit.capture(timeout=5.0, finger_position=1)
        known.add("earlier-booking-17", extraction.extract(img).template)
    GalleryStore.from_config(env.cfg).save("recent", known.to_bytes())
    screen = local_screening.local_screen(env.cfg)
    assert screen is not None

    ui = Recorder()
    session = B.new_session(env.cfg, info())
    session.handle(B.MarkMissing("XX", 5))
    officer = Officer(synthetic_sensor(), wrong={3: 2}, lifted={1})
    with officer:
        runner.run_booking(session, officer, ui=ui, timeout=5.0, screen=screen)
    assert [c[0] for c in session.screening.get(1, [])] == ["recent:earlier-booking-17"]
    assert session.phase is B.Phase.READY
    results = [(o.position, o.result) for o in ui.outcomes]
    # the lifted finger was retried with advice, the repeated index refused
    assert results[0] == (1, B.Result.RETRY) and ui.outcomes[0].advice
    rejected = [o for o in ui.outcomes if o.result is B.Result.SEQUENCE_REJECTED]
    at_3 = [o for o in rejected if o.position == 3]
    assert at_3 and at_3[0].matched_position == 2
    assert "right index again" in at_3[0].message
    assert officer.asked[:5] == [1, 1, 2, 3, 3]

    store = Store(env.db, env.cfg)
    try:
        sid = submit.complete_booking(session, env.cfg, store, env.keys)
        assert session.phase is B.Phase.COMPLETED and session.results == {}
        items = store.outbox.list()
        assert [i.submission_id for i in items] == [sid]
        item = store.outbox.get(sid, with_envelope=True)
        assert item.state == "pending" and item.booking_number == "BK-2026-0001"
        assert store.check_consistency() == []
        completed = store.audit.list(action="booking.completed")
        assert len(completed) == 1 and completed[0].detail["submission_id"] == sid
        assert completed[0].actor == "officer-7"
    finally:
        store.close()

    opened, parsed = open_submission(env, item)
    assert opened.header.submission_id == sid and opened.header.ori == "CA0190000"
    assert parsed.tcn == item.tcn and tcn_is_valid(parsed.tcn)
    assert parsed.tot == "CAR" and parsed.destination == "CA0000001"
    assert [f.position for f in parsed.fingers] == list(range(1, 11))
    assert parsed.finger(5).missing == "XX" and parsed.finger(5).image_data == b""
    printed = [f for f in parsed.fingers if not f.missing]
    assert len(printed) == 9 and all(f.cga == "WSQ20" for f in printed)
    assert len(parsed.records(9)) == 9
    assert all(f.minutiae_count and f.minutiae_count > 5 for f in printed)
    assert parsed.descriptive[18] == "DOE,JOHN" and parsed.descriptive[22] == "19800102"
    assert parsed.descriptive[9] == "BK-2026-0001"
    # the WSQ image decodes to a picture of the right size
    assert parsed.finger(1).pixels().shape == (parsed.finger(1).height, parsed.finger(1).width)


def test_cancel_leaves_nothing_in_the_outbox(env, warm):
    session = B.new_session(env.cfg, info("BK-CANCEL"))
    for p in range(1, 11):
        if p > 2:
            session.handle(B.MarkMissing("UP", p))
    with synthetic_sensor() as sensor:
        sensor_images = [sensor.capture(timeout=5.0, finger_position=p) for p in (1, 2)]
    for img in sensor_images[:1]:
        session.handle(runner.assess(img))
    session.handle(B.Cancel("wrong person"))
    store = Store(env.db, env.cfg)
    try:
        with pytest.raises(B.BookingError, match="cancelled"):
            submit.complete_booking(session, env.cfg, store, env.keys)
        assert store.outbox.counts().get("pending", 0) == 0 and store.outbox.list() == []
        assert store.audit.list(action="booking.completed") == []
    finally:
        store.close()


# --- kill -9 during completion -------------------------------------------------------


@pytest.fixture(scope="module")
def ready_captures(fingerprints_dir):
    """Ten real prints (FVC2002 DB3, 300x300) with stand-in templates: the kill
    test is about atomicity of completion, so no extraction runs in it."""
    from PIL import Image

    from fpagent.biometrics.template import Template, minutiae_array

    folder = fingerprints_dir / "fvc2002_db3_b"
    out = []
    rng = np.random.default_rng(3)
    for p in range(1, 11):
        px = np.asarray(Image.open(folder / f"{100 + p}_2.png").convert("L"))
        rows = [(rng.uniform(0, 299), rng.uniform(0, 299), rng.uniform(0, 6.28), 1, 60) for _ in range(30)]
        t = Template(minutiae_array(rows), px.shape[1], px.shape[0], 500, 70, p)
        out.append(B.Captured(hal.FingerImage(px, 500, finger_position=p), 70, "", t))
    return out


def _ready_session(cfg, captures, number):
    s = B.BookingSession(info(number), allowed_fields=cfg.booking.descriptive_fields)
    for ev in captures:
        s.handle(ev)
    assert s.phase is B.Phase.READY
    return s


def _child_books_until_killed(env, captures, prefix, fd):
    """In the forked child: complete bookings back to back, reporting each
    one that complete_booking returned for."""
    try:
        store = Store(env.db, env.cfg)
        os.write(fd, b"ready\n")  # the kill timer starts now, so kills land in the work
        n = 0
        while True:
            number = f"{prefix}-{n}"
            os.write(fd, f"start:{number}\n".encode())
            sid = submit.complete_booking(_ready_session(env.cfg, captures, number), env.cfg, store, env.keys)
            os.write(fd, f"{number} {sid}\n".encode())
            n += 1
    finally:
        os._exit(0)


@pytest.mark.slow
def test_kill_9_during_completion_leaves_each_booking_whole_or_absent(env, ready_captures):
    """At least 50 SIGKILLs at random moments of back-to-back completions.
    After each: the file is sound, the audit chain verifies, every booking
    the child saw committed is there exactly once, nothing else is there but
    possibly the one in flight, and every row opens and parses."""
    rnd = random.Random(20261128)
    trials, reported_total, checked = 50, 0, set()
    killed_mid_booking = 0
    killed_during_completion = 0  # the child was inside complete_booking when killed
    for trial in range(trials):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(r)
            _child_books_until_killed(env, ready_captures, f"T{trial}", w)
        os.close(w)
        head = b""
        ready_by = time.monotonic() + 60
        while b"ready\n" not in head and time.monotonic() < ready_by:
            if select.select([r], [], [], 1.0)[0]:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                head += chunk
        time.sleep(rnd.uniform(0.0, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as pipe:
            text = (head + pipe.read()).decode()
        reported = dict(line.split() for line in text.splitlines() if " " in line)
        started = [line[6:] for line in text.splitlines() if line.startswith("start:")]
        reported_total += len(reported)
        if started and started[-1] not in reported:
            killed_during_completion += 1

        store = Store(env.db, env.cfg, check="full")
        try:
            assert store.check_consistency() == [], f"trial {trial}"
            rows = [i for i in store.outbox.list(limit=100000)
                    if i.booking_number.startswith(f"T{trial}-")]
            numbers = [i.booking_number for i in rows]
            assert len(numbers) == len(set(numbers)), f"trial {trial}: a booking twice"
            for number, sid in reported.items():
                assert number in numbers, f"trial {trial}: committed booking {number} lost"
            extra = set(numbers) - set(reported)
            assert len(extra) <= 1, f"trial {trial}: unexpected rows {extra}"
            if extra:
                killed_mid_booking += 1
            completed = {e.detail["submission_id"] for e in store.audit.list(
                limit=100000, action="booking.completed")}
            for item in rows:
                assert item.submission_id in completed  # its audit entry came with it
                full = store.outbox.get(item.submission_id, with_envelope=True)
                if item.submission_id not in checked:
                    _, parsed = open_submission(env, full)
                    assert parsed.tcn == item.tcn
                    assert parsed.descriptive[9] == item.booking_number
                    checked.add(item.submission_id)
            total_rows = len(store.outbox.list(limit=100000))
            assert len(completed) == total_rows
        finally:
            store.close()
    print(f"\nkill -9 trials: {trials}; bookings reported committed: {reported_total}; "
          f"killed inside complete_booking: {killed_during_completion}; "
          f"of those, the booking had already committed: {killed_mid_booking}; "
          f"envelopes opened and parsed: {len(checked)}")
    assert reported_total > 0  # the kills did land after some completions
    assert killed_during_completion >= trials // 2  # most kills hit a completion in progress
    # TCNs never repeat across crashes (the sequence counter is durable)
    store = Store(env.db, env.cfg)
    try:
        tcns = [i.tcn for i in store.outbox.list(limit=100000)]
        assert len(tcns) == len(set(tcns))
    finally:
        store.close()


# --- the command line ----------------------------------------------------------------


def test_non_interactive_cli_books_end_to_end(env, warm):
    """The configured default kind of sensor: the ZFM emulator over a real pty,
    spoken to by the real driver."""
    skip = ",".join(f"{p}:UP" for p in range(3, 11))  # two fingers captured keep this test short
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(env.toml), "book",
         "--booking-number", "BK-CLI-1", "--operator", "officer-9", "--name", "ROE,JANE",
         "--dob", "1990-12-31", "--sex", "F", "--yes",
         "--sensor", f"emulated://?source=synthetic&seed={SEED}&person={PERSON + 1}",
         "--skip", skip, "--json"],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["booking_number"] == "BK-CLI-1" and result["printed"] == 2
    assert result["unable_to_print"] == list(range(3, 11))
    assert f"TCN {result['tcn']}" in proc.stdout
    assert "RIGHT THUMB" in proc.stderr and "RIGHT INDEX" in proc.stderr
    assert "ROE" not in proc.stderr + proc.stdout  # no personal data echoed
    store = Store(env.db, env.cfg)
    try:
        item = store.outbox.get(result["submission_id"], with_envelope=True)
        assert item is not None and item.tcn == result["tcn"]
    finally:
        store.close()
    _, parsed = open_submission(env, item)
    assert parsed.descriptive[18] == "ROE,JANE" and parsed.descriptive[24] == "F"
    assert [f.position for f in parsed.fingers if not f.missing] == [1, 2]


def test_cli_refuses_bad_input_before_any_capture(env):
    base = [sys.executable, "-m", "agent", "--config", str(env.toml), "book", "--yes",
            "--sensor", "emulated://?source=synthetic&seed=1"]
    for extra, message in (
        (["--operator", "x"], "--booking-number and --operator"),
        (["--booking-number", "1", "--operator", "x", "--skip", "11:XX"], "--skip"),
        (["--booking-number", "1", "--operator", "x", "--dob", "1990-02-30"], "not a real date"),
        (["--booking-number", "1", "--operator", "x", "--race", "W"], "not collected"),
    ):
        proc = subprocess.run(base + extra, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and message in proc.stderr, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_guided_cli_asks_and_a_no_at_the_end_keeps_nothing(env, warm):
    skip = ",".join(f"{p}:XX" for p in range(2, 11))
    cmd = [sys.executable, "-m", "agent", "--config", str(env.toml), "book",
           "--sensor", f"emulated://?source=synthetic&seed={SEED}&person={PERSON}", "--skip", skip]
    answers = "BK-G-1\nofficer-3\nDOE,JANE\n1990-01-01\nF\n\n"
    no = subprocess.run(cmd, input=answers + "n\n", capture_output=True, text=True, timeout=120)
    assert no.returncode == 1, no.stderr
    for question in ("Booking number:", "Operator id:", "Date of birth (YYYY-MM-DD)", "Submit this booking?"):
        assert question in no.stderr
    assert "nothing was kept" in no.stderr
    yes = subprocess.run(cmd, input=answers + "y\n", capture_output=True, text=True, timeout=120)
    assert yes.returncode == 0, yes.stderr
    store = Store(env.db, env.cfg)
    try:
        rows = store.outbox.list()
        assert [r.booking_number for r in rows] == ["BK-G-1"]  # only the confirmed one
    finally:
        store.close()


def test_kill_9_of_the_cli_in_the_middle_of_capture_leaves_no_booking(env, warm):
    # pace=1 with a slow line: each image takes its real wire time, so there is a "middle"
    url = f"emulated://?source=synthetic&seed={SEED}&person={PERSON}&baud=115200&pace=1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--config", str(env.toml), "book", "--yes",
         "--booking-number", "BK-KILL", "--operator", "officer-1", "--sensor", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while "finger 2 of 10" not in seen and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
        assert "finger 2 of 10" in seen, seen
    finally:
        proc.kill()
        proc.wait(timeout=30)
    store = Store(env.db, env.cfg)
    try:
        assert store.outbox.list() == [] and store.check_consistency() == []
        assert store.audit.list(action="booking.completed") == []
    finally:
        store.close()


def test_a_full_queue_refuses_the_booking_loudly(env, warm, tmp_path):
    data = config_mod.to_toml(env.cfg).replace("max_queue_mb = 2048.0", "max_queue_mb = 0.001")
    assert "max_queue_mb = 0.001" in data
    toml = tmp_path / "full.toml"
    toml.write_text(data)
    skip = ",".join(f"{p}:UP" for p in range(2, 11))
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(toml), "book", "--yes",
         "--booking-number", "BK-FULL", "--operator", "officer-1", "--skip", skip,
         "--sensor", f"emulated://?source=synthetic&seed={SEED}&person={PERSON}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 75, proc.stderr  # EX_TEMPFAIL
    assert "NOT queued" in proc.stderr and "max_queue_mb" in proc.stderr
    store = Store(env.db, env.cfg)
    try:
        assert store.outbox.list() == []
    finally:
        store.close()
