"""The ten-print booking end to end on the emulated scanner, with real parts throughout:
tenprint:// captures, real quality/extraction, on-device segmentation, the sequence check,
a real store and keys, and central opening the envelope and parsing the transaction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fpagent import hal
from fpagent.biometrics import segmentation
from fpagent.booking import runner, submit, tenprint
from fpagent.booking import session as B
from fpagent.drivers.tenprint import platen
from fpagent.records import transaction as tx
from fpagent.records.transaction_parse import record_lengths
from fpagent.storage.store import Store

from test_booking_flow import FULL, env, info, open_submission, warm  # noqa: F401 (fixtures)

SEED, PERSON = 3, 1
SEG_TOLERANCE_PX = 40  # a SEG box's centre against the generator's truth


class Notes(runner.BookingUI):
    def __init__(self):
        self.notices, self.prompts = [], []

    def notice(self, text):
        self.notices.append(text)

    def prompt(self, text, position):
        self.prompts.append((position, text))

    def confirm(self, question):
        return True


def take(env, url, missing=None, ui=None):
    session = B.new_session(env.cfg, info())
    for position, code in (missing or {}).items():
        session.handle(B.MarkMissing(code, position))
    with hal.open_sensor(url) as sensor:
        report = tenprint.run_tenprint(session, sensor, ui=ui or Notes(), timeout=60.0)
    return session, report


def test_a_ten_print_booking_becomes_one_transaction_with_rolls_and_segmented_slaps(env, warm):
    ui = Notes()
    session, report = take(env, f"tenprint://?seed={SEED}&person={PERSON}&faults=partial:1", ui=ui)
    assert session.phase is B.Phase.READY and report.verdict.ok
    # the partial slap was taken again, saying why
    assert report.slaps[13].attempts == 2 and not report.slaps[13].below_gate
    assert any("only 3 fingers found: place all four fingers of the right hand" in n for n in ui.notices)
    assert set(report.timings) >= {"capture", "extraction", "segmentation", "sequence check"}
    assert ui.prompts[0] == (1, "Roll the RIGHT THUMB nail to nail on the glass (finger 1 of 10).")
    assert (15, "Place both thumbs flat on the glass together (right thumb, left thumb; attempt 1 of 3).") \
        in ui.prompts

    store = Store(env.db, env.cfg)
    try:
        sid = submit.complete_booking(session, env.cfg, store, env.keys)
        item = store.outbox.get(sid, with_envelope=True)
    finally:
        store.close()
    _opened, parsed = open_submission(env, item)
    # the FBI's 14 images: ten rolled, the plain thumbs apart (11, 12), the four-finger slaps
    assert [r for r, _, _ in record_lengths(_opened.plaintext)].count(14) == 14
    assert [f.position for f in parsed.fingers] == [*range(1, 11), 11, 12, 13, 14]
    assert all(f.impression_type == 1 and f.cga == "WSQ20" for f in parsed.fingers[:10])
    assert all(f.impression_type == 0 and f.cga == "WSQ20" and not f.missing for f in parsed.fingers[10:])
    assert (parsed.finger(13).width, parsed.finger(13).height) == (1600, 1500)
    assert parsed.finger(11).segments == parsed.finger(12).segments == ()
    # each SEG box sits where the generator put the finger (capture 1 of the right slap:
    # the first one had the little finger lifted)
    for position, capture in ((13, 1), (14, 0)):
        truth = {b.finger: b.center for b in platen.slap(SEED, PERSON, position, capture).fingers}
        seg = {f: ((left + right - 1) / 2, (top + bottom - 1) / 2)
               for f, left, right, top, bottom in parsed.finger(position).segments}
        assert set(seg) == set(truth)
        for finger, (x, y) in truth.items():
            assert np.hypot(seg[finger][0] - x, seg[finger][1] - y) < SEG_TOLERANCE_PX, (position, finger)
    # the plain thumbs were cut where the segmentation found each thumb in the two-thumb slap,
    # and that is where the generator put it
    thumbs = report.slaps[15].segmentation
    truth = {b.finger: b.center for b in platen.slap(SEED, PERSON, 15, 0).fingers}
    assert sorted(s.finger for s in thumbs.segments) == [1, 6]
    for s in thumbs.segments:
        assert np.hypot(s.center[0] - truth[s.finger][0], s.center[1] - truth[s.finger][1]) < SEG_TOLERANCE_PX
    cut = tenprint.plain_thumbs(hal.FingerImage(pixels=platen.slap(SEED, PERSON, 15, 0).pixels, ppi=500),
                                report.slaps[15])
    for plain in (11, 12):
        assert (parsed.finger(plain).height, parsed.finger(plain).width) == cut[plain].pixels.shape


def test_a_swapped_pair_stops_the_booking_naming_the_fingers(env, warm):
    with pytest.raises(tenprint.SequenceStopped) as stopped:
        take(env, f"tenprint://?seed={SEED}&person={PERSON}&swap=3-4")
    assert stopped.value.verdict.swapped_pairs == ((3, 4),)
    assert "the right middle finger and the right ring finger are swapped" in str(stopped.value)


def test_an_amputated_finger_is_not_expected_in_its_slap(env, warm):
    session, report = take(env, f"tenprint://?seed={SEED}&person={PERSON}&missing=4,6",
                           missing={4: "XX", 6: "XX"})
    right = report.slaps[13]
    assert right.segmentation.expected == (2, 3, 5) and right.attempts == 1
    assert [s.finger for s in right.segmentation.segments] == [2, 3, 5]
    assert [s.finger for s in report.slaps[15].segmentation.segments] == [1]
    record = session.to_record(tcn="T", destination="CA0000001")
    fingers = {f.position: f for f in record.fingers}
    assert fingers[4].missing == "XX" and [s[0] for s in fingers[13].segments] == [2, 3, 5]
    # the left thumb's plain record says XX as its rolled record does; the right thumb is imaged
    assert fingers[6].missing == fingers[12].missing == "XX" and fingers[12].pixels is None
    assert fingers[11].pixels is not None and not fingers[11].missing
    assert sorted(fingers) == [*range(1, 15)] and session.summary()["slaps"] == [11, 13, 14]


def test_a_thumb_never_found_in_the_thumb_slap_gets_no_plain_record(env, warm):
    # every thumb slap has the right thumb lifted: the left thumb alone is kept, flagged, and
    # sent as FGP 12 because its rolled thumb confirms its number; no FGP 11
    fingers = [*range(2, 6), *range(7, 11)]
    session, report = take(env, f"tenprint://?seed={SEED}&person={PERSON}&faults=partial:-1&missing="
                           + ",".join(map(str, fingers)), missing={f: "XX" for f in fingers})
    thumbs = report.slaps[15]
    assert thumbs.below_gate and thumbs.attempts == 3 and not thumbs.segmentation.complete
    assert [s.finger for s in thumbs.segmentation.segments] == [6]
    assert sorted(session.slaps) == [12] and session.slaps[12].below_gate
    assert "BELOW QUALITY GATE AFTER 3 ATTEMPTS" in tx.review_comments(session.slaps[12])
    found = {6: session.slaps[12]}
    assert tenprint.confirmed_thumbs({12: found[6]}, thumbs, report.verdict) == {12: found[6]}
    doubtful = dataclasses.replace(report.verdict, scores={})
    assert tenprint.confirmed_thumbs({12: found[6]}, thumbs, doubtful) == {}


def test_a_flat_only_sensor_is_refused_before_the_first_finger(env):
    session = B.new_session(env.cfg, info())
    with hal.open_sensor("synthetic://?seed=1") as sensor:
        with pytest.raises(hal.ModeNotSupported) as refused:
            tenprint.run_tenprint(session, sensor, timeout=1.0)
    assert "captures flat single fingers only" in refused.value.hint
    assert "ten-print" in refused.value.hint and session.results == {}


def test_slap_problems_and_boxes_are_pure():
    from fpagent.biometrics.segmentation import segment_slap

    slap = platen.slap(SEED, PERSON, 15)
    found = segment_slap(slap.pixels, (1, 6))
    assert tenprint.slap_problem(found, 25) == ""
    assert "quality" in tenprint.slap_problem(found, 101)
    boxes = tenprint.segment_boxes(found, slap.pixels.shape)
    assert [b[0] for b in boxes] == [1, 6]
    assert all(0 <= left < right <= 1600 and 0 <= top < bottom <= 1500 for _, left, right, top, bottom in boxes)
    assert tenprint.expected_fingers(14, [9, 2]) == (7, 8, 10)
    # the plain thumbs are the slap's own pixels around each thumb, the right thumb as FGP 11
    taken = tenprint.SlapTaken(15, found, 2, below_gate=True)
    image = hal.FingerImage(pixels=slap.pixels, ppi=500, impression_type=hal.ImpressionType.LIVE_PLAIN)
    plain = tenprint.plain_thumbs(image, taken)
    assert sorted(plain) == [11, 12]
    truth = {b.finger: b.center for b in slap.fingers}
    for position, thumb in ((11, 1), (12, 6)):
        capture = plain[position]
        assert capture.impression_type == 0 and capture.below_gate and capture.attempts == 2
        assert capture.quality == int(next(s.quality.score for s in found.segments if s.finger == thumb))
        left, right, top, bottom = next(b[1:] for b in boxes if b[0] == thumb)
        x, y = truth[thumb]
        assert left <= x < right and top <= y < bottom  # the box holds the thumb the generator drew
        margin = segmentation.MARGIN
        cut = slap.pixels[max(0, top - margin):bottom + margin, max(0, left - margin):right + margin]
        assert np.array_equal(capture.pixels, cut)
    gone = tenprint.missing_plain_thumbs({1: "UP", 4: "XX"})
    assert list(gone) == [11] and gone[11].missing == "UP" and gone[11].pixels is None


def _book(env, *extra):
    import subprocess
    import sys

    from test_booking_flow import full_args

    return subprocess.run(
        [sys.executable, "-m", "fpagent", "--config", str(env.toml), "book", "--tenprint",
         "--booking-number", "BK-TEN-1", "--operator", "officer-9", *full_args(), "--yes", "--json",
         "--timeout", "60",
         *extra], capture_output=True, text=True, timeout=300)


def test_the_cli_refuses_a_ten_print_on_a_flat_only_module(env):
    proc = _book(env, "--sensor", "emulated://?source=synthetic&seed=1")
    assert proc.returncode != 0
    assert "this ZFM-EMULATOR captures flat single fingers only; a ten-print booking needs" in proc.stderr
    assert "RIGHT THUMB" not in proc.stderr  # refused before the first finger
    store = Store(env.db, env.cfg)
    try:
        assert store.outbox.list() == []
    finally:
        store.close()


def test_the_cli_books_a_ten_print(env, warm):
    # two fingers printed (the others amputated, so absent from the glass too) keep this short
    gone = list(range(3, 11))
    proc = _book(env, "--sensor", f"tenprint://?seed={SEED}&person={PERSON}&missing="
                 + ",".join(map(str, gone)), "--skip", ",".join(f"{p}:XX" for p in gone))
    assert proc.returncode == 0, proc.stderr
    result = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    # the right four-finger slap (index only) and the right plain thumb; the left thumb's is XX
    assert result["printed"] == 2 and result["amputated"] == gone and result["slaps"] == [11, 13]
    assert "Right four-finger slap: accepted (1 finger found)" in proc.stderr
    assert "Left four-finger slap: no finger to take" in proc.stderr


def test_bench_tenprint_prints_figures_and_one_json_line(capsys, warm):
    import json

    from fpagent import cli

    assert cli.main(["bench", "tenprint", "--bookings", "1", "--swapped-bookings", "0", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["bookings"] == 1 and result["sequence"]["false_alarm_rate"] == 0.0
    assert result["segmentation"]["found_rate"] == 1.0 and result["segmentation"]["centre_px_median"] < 20
    stages = result["stage_seconds_median"]
    assert all(stages[s] > 0 for s in ("capture", "extraction", "segmentation", "transaction build", "wsq"))
    assert any(line.startswith("  per stage") for line in out)


def test_the_zfm_flats_only_booking_says_plain_impressions(env, warm):
    # the real ZFM driver over a pty: its transaction holds live-scan plain prints, no slaps
    from fpagent.records import transaction as tx
    from fpagent.records.transaction_parse import parse_transaction

    session = B.new_session(env.cfg, info())
    for position in range(3, 11):
        session.handle(B.MarkMissing("UP", position))
    with hal.open_sensor(f"emulated://?source=synthetic&seed={SEED}&person={PERSON}") as sensor:
        runner.run_booking(session, sensor, ui=Notes(), timeout=30.0)
    assert session.phase is B.Phase.READY and session.slaps == {}
    parsed = parse_transaction(tx.build_transaction(session.to_record(tcn="T-1", destination="CA0000001"),
                                                    compression="png"))
    printed = [f for f in parsed.fingers if not f.missing]
    assert [f.position for f in printed] == [1, 2] and all(f.impression_type == 0 for f in printed)
    assert all(t.impression_type == 0 for t in parsed.templates().values())
    assert all(f.position <= 10 and f.segments == () for f in parsed.fingers)
