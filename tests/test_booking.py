"""The booking state machine (pure: events in, outcomes out) and its runner.

The session is fed `Captured` events directly; the comparison it uses for the
sequence check is injected. Here it is a tiny stand-in that says "same
finger" when two templates hold the same minutiae (the real matcher is
exercised end to end in test_booking_flow.py); this keeps these tests about
the state machine's rules, not about matcher accuracy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fpagent import hal
from fpagent.booking import runner
from fpagent.booking import session as B
from fpagent.biometrics.template import Template, minutiae_array

INFO = B.BookingInfo("BK-1", "CA0190000", "officer-7", {"name": "DOE,JOHN", "dob": "19800101"})


def same_minutiae(a: Template, b: Template) -> float:
    """Stand-in comparison: 1.0 for templates of the same finger, else 0.0."""
    return 1.0 if np.array_equal(a.minutiae, b.minutiae) else 0.0


def finger_template(finger: int) -> Template:
    rng = np.random.default_rng(finger)
    rows = [(rng.uniform(0, 255), rng.uniform(0, 287), rng.uniform(0, 2 * math.pi), 1, 50)
            for _ in range(20)]
    return Template(minutiae_array(rows), 256, 288, 500, 60)


def image(finger: int = 1, value: int = 128) -> hal.FingerImage:
    px = np.full((288, 256), value, np.uint8)
    px[::7, :] = 30  # something that is not flat, so PNG/WSQ have work to do
    return hal.FingerImage(px, 500)


def capture(finger: int, score: int = 80, advice: str = "", template: bool = True) -> B.Captured:
    return B.Captured(image(finger), score, advice, finger_template(finger) if template else None)


def session(**kw) -> B.BookingSession:
    args = dict(min_score=40, max_attempts=3, compare=same_minutiae, match_threshold=0.5)
    args.update(kw)
    return B.BookingSession(INFO, **args)


def test_walks_the_ten_fingers_in_standard_order_and_says_which_is_next():
    s = session()
    seen = []
    while s.current is not None:
        p = s.current
        assert hal.FingerPosition(p).label.upper() in s.prompt()
        assert f"finger {p} of 10" in s.prompt()
        out = s.handle(capture(p))
        assert out.result is B.Result.ACCEPTED and out.position == p
        if p < 10:
            assert out.next_position == p + 1
            assert f"Next: {hal.FingerPosition(p + 1).label}" in out.message
        seen.append(p)
    assert seen == list(range(1, 11))
    assert s.phase is B.Phase.READY and out.done
    assert [c.position for c in s.captures()] == seen
    assert all(c.template.finger_position == c.position for c in s.captures())
    assert "review" in s.prompt()


def test_poor_capture_is_retried_with_the_advice_shown():
    s = session()
    out = s.handle(capture(1, score=20, advice="press a little harder"))
    assert out.result is B.Result.RETRY and out.next_position == 1
    assert out.advice == "press a little harder"
    assert "below 40" in out.message and out.attempt == 1
    assert "attempt 2 of 3" in s.prompt()
    out = s.handle(capture(1, score=75))
    assert out.result is B.Result.ACCEPTED and s.current == 2
    assert s.results[1].quality == 75 and not s.results[1].below_gate
    assert s.results[1].attempts == 2


def test_after_the_last_attempt_the_best_print_is_kept_and_flagged():
    s = session()
    first = B.Captured(image(1, 100), 25, "press harder", finger_template(1))
    s.handle(first)
    s.handle(B.Captured(image(1, 110), 31, "dry finger", finger_template(1)))
    out = s.handle(B.Captured(image(1, 120), 12, "move up", finger_template(1)))
    assert out.result is B.Result.ACCEPTED_BELOW_GATE and out.score == 31
    kept = s.results[1]
    assert kept.below_gate and kept.quality == 31 and kept.attempts == 3
    assert int(kept.pixels[1, 0]) == 110  # the second image, the best one
    assert "flagged" in out.message and s.current == 2


def test_no_usable_print_counts_as_an_attempt_with_advice():
    s = session(max_attempts=2)
    out = s.handle(capture(1, score=0, template=False))
    assert out.result is B.Result.RETRY and "No usable fingerprint" in out.advice
    out = s.handle(capture(1, score=0, template=False))
    assert out.result is B.Result.ACCEPTED_BELOW_GATE
    assert s.results[1].template is None  # image kept for the examiner, no Type-9


def test_the_same_finger_captured_twice_is_refused():
    s = session()
    s.handle(capture(1))  # right thumb
    s.handle(capture(2))  # right index
    out = s.handle(capture(2))  # the right index again, asked for the right middle
    assert out.result is B.Result.SEQUENCE_REJECTED
    assert out.matched_position == 2 and out.next_position == 3
    assert "this looks like the right index again" in out.message.lower()
    assert 3 not in s.results and s.attempt == 1  # not a quality attempt
    out = s.handle(capture(3))
    assert out.result is B.Result.ACCEPTED and s.sequence_rejections == 1


def test_officer_can_confirm_a_refused_print():
    s = session()
    s.handle(capture(1))
    assert s.handle(capture(1)).result is B.Result.SEQUENCE_REJECTED
    out = s.handle(B.ConfirmSequence())
    assert out.result is B.Result.ACCEPTED and s.sequence_overrides == [2]
    assert s.summary()["sequence_overrides"] == [2]
    with pytest.raises(B.BookingError, match="no refused print"):
        s.handle(B.ConfirmSequence())


def test_a_refused_print_kept_without_confirmation_is_flagged_for_review():
    from fpagent.records import transaction as T
    from fpagent.records.tcn import make_tcn
    from fpagent.records.transaction_parse import parse_transaction

    s = session()
    s.handle(capture(1))
    out = s.handle(capture(1))  # the right thumb again, asked for the right index
    assert out.result is B.Result.SEQUENCE_REJECTED and out.matched_position == 1
    out = s.handle(B.KeepForReview())
    assert out.result is B.Result.ACCEPTED and out.next_position == 3
    kept = s.results[2]
    assert (kept.duplicate_of, kept.duplicate_score, kept.duplicate_confirmed) == (1, 1.0, False)
    assert s.sequence_overrides == []  # nobody confirmed it
    assert s.summary()["suspected_duplicates"] == [
        {"position": 2, "matched_position": 1, "score": 1.0, "confirmed": False}]
    assert s.results[1].duplicate_of == 0
    with pytest.raises(B.BookingError, match="no refused print to keep"):
        s.handle(B.KeepForReview())
    for p in range(3, 11):
        s.handle(capture(p))
    rec = s.to_record(tcn=make_tcn("CA0190000", s.started_at, 1), destination="CA0000001")
    parsed = parse_transaction(T.build_transaction(rec, compression="png"))
    assert parsed.finger(2).comment == "SUSPECTED SAME FINGER AS FGP 1 (SCORE 1.000): NOT CONFIRMED, REVIEW"
    assert parsed.finger(1).comment == "" and parsed.finger(3).comment == ""


def test_a_confirmed_refused_print_is_recorded_as_confirmed():
    s = session()
    s.handle(capture(1))
    s.handle(capture(1))
    s.handle(B.ConfirmSequence())
    assert s.results[2].duplicate_of == 1 and s.results[2].duplicate_confirmed
    assert s.summary()["suspected_duplicates"][0]["confirmed"] is True


def test_the_check_uses_its_own_threshold_not_the_match_threshold():
    """A print scoring between MATCH_THRESHOLD and DUPLICATE_THRESHOLD against a
    taken finger is accepted: the 1:1 threshold prompts a few percent of bookings."""
    from fpagent.biometrics import matcher
    from fpagent.booking import duplicate_check

    assert duplicate_check.DUPLICATE_THRESHOLD > matcher.MATCH_THRESHOLD
    between = (matcher.MATCH_THRESHOLD + duplicate_check.DUPLICATE_THRESHOLD) / 2
    s = session(compare=lambda a, b: between, match_threshold=duplicate_check.DUPLICATE_THRESHOLD)
    s.handle(capture(1))
    assert s.handle(capture(2)).result is B.Result.ACCEPTED
    assert duplicate_check.suspect({1: between, 2: duplicate_check.DUPLICATE_THRESHOLD}) == (
        2, duplicate_check.DUPLICATE_THRESHOLD)
    assert duplicate_check.suspect({1: between}) is None


def test_swapped_fingers_are_caught_against_a_reference_booking():
    reference = {p: finger_template(p) for p in range(1, 11)}
    s = session(reference=reference)
    out = s.handle(capture(2))  # the right index given when the thumb was asked for
    assert out.result is B.Result.SEQUENCE_REJECTED and out.matched_position == 2
    assert "swapped" in out.message
    assert s.handle(capture(1)).result is B.Result.ACCEPTED


def test_fingers_can_be_marked_amputated_or_unable_to_print():
    s = session()
    out = s.handle(B.MarkMissing("XX"))  # the current finger, 1
    assert out.result is B.Result.MARKED and out.next_position == 2
    out = s.handle(B.MarkMissing("up", position=6))  # marked ahead
    assert out.next_position == 2 and s.results[6].missing == "UP"
    for p in (2, 3, 4, 5, 7, 8, 9, 10):
        assert s.current == p
        s.handle(capture(p))
    assert s.phase is B.Phase.READY
    summary = s.summary()
    assert summary["amputated"] == [1] and summary["unable_to_print"] == [6]
    assert summary["printed"] == 8


def test_bad_marks_are_refused():
    s = session()
    s.handle(capture(1))
    with pytest.raises(B.BookingError, match="already taken"):
        s.handle(B.MarkMissing("XX", position=1))
    with pytest.raises(B.BookingError, match="XX .amputated. or UP"):
        s.handle(B.MarkMissing("AM"))
    with pytest.raises(B.BookingError, match="not part"):
        s.handle(B.MarkMissing("XX", position=11))


def test_cancel_keeps_nothing_and_ends_the_session():
    s = session()
    for p in (1, 2, 3):
        s.handle(capture(p))
    out = s.handle(B.Cancel("wrong person"))
    assert out.result is B.Result.CANCELLED
    assert s.phase is B.Phase.CANCELLED and s.results == {} and s.captures() == ()
    with pytest.raises(B.BookingError, match="cancelled"):
        s.handle(capture(4))
    with pytest.raises(B.BookingError):
        s.to_record(tcn="X", destination="CA0000001")


def test_booking_info_is_checked_against_the_configured_fields():
    with pytest.raises(B.BookingError, match="not collected"):
        B.BookingSession(INFO, allowed_fields=["name"])
    with pytest.raises(B.BookingError, match="booking number"):
        B.BookingSession(B.BookingInfo("", "CA0190000", "o"))
    with pytest.raises(B.BookingError, match="ORI"):
        B.BookingSession(B.BookingInfo("1", "CA01", "o"))
    with pytest.raises(B.BookingError, match="unknown descriptive"):
        B.BookingSession(B.BookingInfo("1", "CA0190000", "o", {"ssn": "1"}))
    assert "DOE" not in repr(B.BookingSession(INFO))


def test_to_record_only_when_ready_and_it_builds_a_transaction():
    from fpagent.records import transaction as T
    from fpagent.records.tcn import make_tcn
    from fpagent.records.transaction_parse import parse_transaction

    s = session()
    with pytest.raises(B.BookingError, match="not ready"):
        s.to_record(tcn="T", destination="CA0000001")
    s.handle(B.MarkMissing("XX", position=10))
    for p in range(1, 10):
        s.handle(capture(p))
    rec = s.to_record(tcn=make_tcn("CA0190000", s.started_at, 1), destination="CA0000001")
    parsed = parse_transaction(T.build_transaction(rec, compression="png"))
    assert len(parsed.fingers) == 10 and parsed.finger(10).missing == "XX"
    assert len(parsed.records(9)) == 9
    assert parsed.descriptive[9] == "BK-1"


# --- runner -------------------------------------------------------------------


class ScriptedSensor(hal.Sensor):
    """Stand-in sensor for runner tests: hands out a scripted list of results
    (an image, or an exception to raise). The synthetic:// sensor is used in
    the end-to-end tests."""

    interface = "scripted"

    def __init__(self, script):
        super().__init__("scripted://")
        self.script = list(script)
        self.asked = []

    def _capture(self, request):
        self.asked.append(int(request.finger_position))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def _info_internal(self):
        return hal.SensorInfo("scripted", "scripted")


class RecordingUI(runner.BookingUI):
    def __init__(self, answers=()):
        self.events = []
        self.answers = list(answers)

    def prompt(self, text, position):
        self.events.append(("prompt", position, text))

    def outcome(self, outcome):
        self.events.append(("outcome", outcome.result.value, outcome.message))

    def notice(self, text):
        self.events.append(("notice", text))

    def confirm(self, question):
        self.events.append(("confirm", question))
        return self.answers.pop(0) if self.answers else False

    def candidates(self, position, found):
        self.events.append(("candidates", position, found))


def fake_extract_factory(finger_of_image):
    """Stand-in for fpagent.biometrics.extraction.extract: the image's top-left pixel says
    which finger it is and its second pixel the quality score."""

    class Ex:
        def __init__(self, t, score):
            self.template = t
            self.quality = type("Q", (), {"score": score, "advice": "" if score >= 40 else "press harder"})()

    def extract(img):
        finger = int(img.pixels[0, 0])
        score = int(img.pixels[0, 1])
        return Ex(finger_template(finger), score)

    return extract


def tagged(finger: int, score: int = 80) -> hal.FingerImage:
    px = np.full((288, 256), 128, np.uint8)
    px[0, 0], px[0, 1] = finger, score
    return hal.FingerImage(px, 500)


def test_runner_drives_the_sensor_through_retry_duplicate_and_no_finger():
    script = [tagged(1), tagged(2, 10), tagged(2), tagged(2), hal.NoFinger("none"), tagged(3)]
    script += [tagged(p) for p in range(4, 11)]
    sensor = ScriptedSensor(script)
    ui = RecordingUI()
    found = []
    s = runner.run_booking(session(), sensor, ui=ui, extract=fake_extract_factory(None),
                           screen=lambda t: found.append(1) or [("gallery:42", 0.9)])
    assert s.phase is B.Phase.READY
    assert sensor.asked == [1, 2, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9, 10]
    results = [e[1] for e in ui.events if e[0] == "outcome"]
    assert results[:4] == ["accepted", "retry", "accepted", "sequence_rejected"]
    assert any(e[0] == "notice" and "No finger" in e[1] for e in ui.events)
    assert s.screening[1] == [("gallery:42", 0.9)] and len(found) == 10
    assert ("candidates", 1, [("gallery:42", 0.9)]) in ui.events


def test_runner_gives_up_on_a_silent_sensor_and_keeps_nothing():
    sensor = ScriptedSensor([tagged(1)] + [hal.NoFinger("none")] * 3)
    s = session()
    with pytest.raises(runner.BookingAborted, match="right index"):
        runner.run_booking(s, sensor, ui=RecordingUI(answers=[False]), extract=fake_extract_factory(None))
    assert s.phase is B.Phase.CANCELLED and s.results == {}


def test_runner_can_mark_up_after_no_finger_when_the_officer_agrees():
    script = [hal.NoFinger("none")] * 2 + [tagged(p) for p in range(2, 11)]
    s = runner.run_booking(session(), ScriptedSensor(script), ui=RecordingUI(answers=[True]),
                           extract=fake_extract_factory(None), max_no_finger=2)
    assert s.phase is B.Phase.READY and s.results[1].missing == "UP"


def test_ctrl_c_cancels_the_session():
    class Interrupting(ScriptedSensor):
        def _capture(self, request):
            if len(self.asked) == 2:  # the third capture
                raise KeyboardInterrupt
            return super()._capture(request)

    s = session()
    with pytest.raises(KeyboardInterrupt):
        runner.run_booking(s, Interrupting([tagged(1), tagged(2)]), extract=fake_extract_factory(None))
    assert s.phase is B.Phase.CANCELLED and s.results == {}


def test_runner_never_loops_on_a_refused_print():
    """The same finger keeps being refused: after 3 refusals the officer is
    asked; 'no' (or nobody to ask) keeps it flagged for review and the booking
    goes on, 'yes' accepts it and records the override."""
    script = [tagged(1)] + [tagged(1)] * 3 + [tagged(p) for p in range(3, 11)]
    ui = RecordingUI(answers=[False])
    s = runner.run_booking(session(), ScriptedSensor(script), ui=ui, extract=fake_extract_factory(None))
    assert s.phase is B.Phase.READY and s.sequence_overrides == []
    assert s.results[2].duplicate_of == 1 and not s.results[2].duplicate_confirmed
    assert any(e[0] == "notice" and "flagged for review" in e[1] for e in ui.events)

    # no officer at all (the default UI never confirms): the booking is not cancelled
    script = [tagged(1)] + [tagged(1)] * 3 + [tagged(p) for p in range(3, 11)]
    s = runner.run_booking(session(), ScriptedSensor(script), extract=fake_extract_factory(None))
    assert s.phase is B.Phase.READY
    assert [d["position"] for d in s.summary()["suspected_duplicates"]] == [2]

    script = [tagged(1)] + [tagged(1)] * 3 + [tagged(p) for p in range(3, 11)]
    ui = RecordingUI(answers=[True])
    s = runner.run_booking(session(), ScriptedSensor(script), ui=ui, extract=fake_extract_factory(None))
    assert s.phase is B.Phase.READY and s.sequence_overrides == [2]
    assert any(e[0] == "confirm" and "right index" in e[1] for e in ui.events)
