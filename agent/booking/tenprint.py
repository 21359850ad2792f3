"""The ten-print booking: ten rolled fingers, the two four-finger slaps and the two plain thumbs.

Why: a bureau-grade criminal ten-print is not ten flat fingers. A booking desk
rolls each finger nail to nail (impression type live-scan rolled) and takes
the plain impressions of each hand's four fingers (FGP 13, 14) and of the two
thumbs (FGP 11 right, 12 left: the FBI's 14-image ten-print); comparing each
rolled finger with its place in the slaps catches two fingers rolled in each
other's box, or the wrong hand on the glass, which the duplicate-finger check
cannot see. The thumbs are captured together, as a two-thumb slap, and cut
apart by the segmentation, as live-scanners do: one placing for the officer,
and each thumb's place is found the same way as the four fingers'.

The flow, on a sensor that declares the rolled and slap capture modes
(checked before the first finger; a single-finger module is refused with the
HAL's hint):

1. the ten rolled fingers through the usual booking session and runner
   (finger order, per-finger quality gate and retry messages, the duplicate
   check, missing fingers marked XX or UP);
2. each slap, expecting only the fingers that are there (an amputated or
   bandaged finger is not expected), segmented on the device
   (fpagent.biometrics.segmentation); a slap with fewer fingers than expected,
   or a segment below the quality gate, is taken again with a message saying
   why, and after the last attempt the best one is kept and flagged;
3. the sequence check (fpagent.biometrics.sequence): each rolled finger
   against its slap segment; a swap stops the booking, naming the fingers,
   and nothing is kept.

The plain impressions join the session (`session.slaps`): FGP 13, 14 with
each finger's box for 14.021 SEG, and FGP 11, 12, each thumb's box cut out of
the two-thumb slap (which is not sent itself). A thumb marked missing gets a
plain record without image carrying its XX/UP, as its rolled record does; a
thumb the segmentation did not find in the slap kept after the last attempt
gets no plain record, and the thumb it did find one only when its rolled
thumb matches it (alone, its number is a guess). fpagent.booking.submit then
queues the booking as usual. `fpagent book --tenprint` runs this.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np

from fpagent import hal
from fpagent.biometrics import sequence as sequence_check
from fpagent.biometrics.matcher import MATCH_THRESHOLD
from fpagent.biometrics.segmentation import MARGIN, Segmentation, segment_slap
from fpagent.booking.runner import BookingAborted, BookingUI, run_booking
from fpagent.booking.session import BookingSession, Cancel, Phase
from fpagent.errors import NoUsableFingerprint
from fpagent.records import transaction as tx
from fpagent.records.transaction_format import PLAIN_THUMBS, SLAP_FINGERS

TENPRINT_MODES = (hal.CaptureMode.ROLLED, hal.CaptureMode.FOUR_FINGER_SLAP,
                  hal.CaptureMode.TWO_THUMB_SLAP)
SLAP_ORDER = (13, 14, 15)
THUMBS_SLAP = 15  # captured and segmented, sent as the plain thumbs 11 and 12
SLAP_NAMES = {13: "right four-finger slap", 14: "left four-finger slap", 15: "two-thumb slap"}
SLAP_PLACING = {13: "the four fingers of the right hand", 14: "the four fingers of the left hand",
                15: "both thumbs"}


class SequenceStopped(BookingAborted):
    """The rolled fingers do not match their places in the slaps: the booking stops, naming them."""

    def __init__(self, verdict: sequence_check.SequenceVerdict):
        self.verdict = verdict
        super().__init__(f"sequence check: {verdict.message}; booking cancelled, nothing was kept")


@dataclasses.dataclass(frozen=True, eq=False)
class SlapTaken:
    """One slap as kept: its segmentation, how many captures it took, whether it passed."""

    position: int
    segmentation: Segmentation
    attempts: int
    below_gate: bool


@dataclasses.dataclass(eq=False)
class TenprintReport:
    """What a ten-print booking found besides the session's own results (no images)."""

    slaps: dict = dataclasses.field(default_factory=dict)  # position -> SlapTaken
    verdict: Optional[sequence_check.SequenceVerdict] = None
    timings: dict = dataclasses.field(default_factory=dict)  # stage -> seconds


def require_tenprint_sensor(info: hal.SensorInfo) -> None:
    """ModeNotSupported (with what the sensor can do and what is needed) unless it rolls and slaps."""
    hal.require_modes(info, TENPRINT_MODES)


def expected_fingers(position: int, missing) -> tuple[int, ...]:
    """The fingers a slap should show: its own, less the amputated or unprintable ones."""
    return tuple(f for f in SLAP_FINGERS[position] if f not in set(missing))


def slap_problem(found: Segmentation, min_score: int) -> str:
    """Why a slap must be taken again ("" when it will do): fingers missing, or a poor segment."""
    if not found.complete:
        return found.message
    poor = [s for s in found.segments if int(s.quality.score) < min_score]
    if not poor:
        return ""
    names = " and ".join(f"the {sequence_check.finger_name(s.finger)} (quality {int(s.quality.score)})"
                         for s in poor)
    return f"in the slap {names} below {min_score}: press the fingers flat and still, then take it again"


def segment_boxes(found: Segmentation, shape: tuple[int, int]) -> tuple:
    """Each segment as (FGP, left, right, top, bottom) px for 14.021 SEG: the upright box that
    holds the finger's turned box, inside the image, right and bottom one past the last pixel."""
    height, width = shape[:2]
    out = []
    for s in found.segments:
        a = np.deg2rad(s.angle)
        w, h = s.size
        half_x = 0.5 * (abs(w * np.cos(a)) + abs(h * np.sin(a)))
        half_y = 0.5 * (abs(w * np.sin(a)) + abs(h * np.cos(a)))
        left = int(np.clip(np.floor(s.center[0] - half_x), 0, width - 1))
        right = int(np.clip(np.ceil(s.center[0] + half_x) + 1, left + 1, width))
        top = int(np.clip(np.floor(s.center[1] - half_y), 0, height - 1))
        bottom = int(np.clip(np.ceil(s.center[1] + half_y) + 1, top + 1, height))
        out.append((int(s.finger), left, right, top, bottom))
    return tuple(sorted(out))


def slap_capture(image: hal.FingerImage, taken: SlapTaken) -> tx.FingerCapture:
    """The slap as a transaction record: plain impression, its segments, the poorest segment's quality."""
    scores = [int(s.quality.score) for s in taken.segmentation.segments]
    return tx.FingerCapture(
        position=taken.position, pixels=image.pixels, ppi=int(image.ppi),
        quality=max(0, min(100, min(scores) if scores else 0)), below_gate=taken.below_gate,
        attempts=taken.attempts, impression_type=int(image.impression_type),
        captured_at=image.captured_at, segments=segment_boxes(taken.segmentation, image.pixels.shape))


def plain_thumbs(image: hal.FingerImage, taken: SlapTaken) -> dict:
    """The thumbs found in a two-thumb slap as plain-thumb records (FGP 11, 12), by position.

    Each is the slap's pixels inside the thumb's upright box (as 14.021 SEG would give it)
    widened by the segmentation's margin, not resampled: what the glass saw. Quality is
    the thumb's own segment's; a slap kept below the gate flags both thumbs.
    """
    plain_of = {thumb: plain for plain, thumb in PLAIN_THUMBS.items()}
    quality = {s.finger: int(s.quality.score) for s in taken.segmentation.segments}
    height, width = image.pixels.shape[:2]
    out = {}
    for finger, left, right, top, bottom in segment_boxes(taken.segmentation, image.pixels.shape):
        left, top = max(0, left - MARGIN), max(0, top - MARGIN)
        right, bottom = min(width, right + MARGIN), min(height, bottom + MARGIN)
        out[plain_of[finger]] = tx.FingerCapture(
            position=plain_of[finger], pixels=np.ascontiguousarray(image.pixels[top:bottom, left:right]),
            ppi=int(image.ppi), quality=max(0, min(100, quality[finger])), below_gate=taken.below_gate,
            attempts=taken.attempts, impression_type=int(image.impression_type),
            captured_at=image.captured_at)
    return out


def confirmed_thumbs(plain: dict, taken: SlapTaken, verdict: sequence_check.SequenceVerdict) -> dict:
    """The plain thumbs whose number is sure: all of a complete slap's; from a slap kept with a
    thumb not found, only one its rolled thumb matched (a lone thumb is numbered by a guess)."""
    if taken.segmentation.complete:
        return plain
    return {position: capture for position, capture in plain.items()
            if verdict.scores.get(PLAIN_THUMBS[position], 0.0) >= MATCH_THRESHOLD}


def missing_plain_thumbs(missing: dict) -> dict:
    """Plain-thumb records without image for the thumbs marked missing (position -> XX/UP)."""
    return {plain: tx.FingerCapture(position=plain, missing=missing[thumb],
                                    impression_type=int(hal.ImpressionType.LIVE_PLAIN))
            for plain, thumb in PLAIN_THUMBS.items() if thumb in missing}


class _Timed:
    """Adds up the seconds spent in each stage (for `fpagent bench tenprint`)."""

    def __init__(self, timings: dict):
        self.timings = timings

    def add(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    def call(self, stage: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(stage, time.perf_counter() - t0)


class _RollingUI:
    """The officer's UI, with the session's "place the finger" prompts asking for a roll."""

    def __init__(self, ui: BookingUI):
        self._ui = ui

    def __getattr__(self, name):
        return getattr(self._ui, name)

    def prompt(self, text: str, position: int) -> None:
        self._ui.prompt(text.replace("Place the", "Roll the", 1)
                        .replace(" on the sensor", " nail to nail on the glass", 1), position)


class _TimedSensor:
    """The sensor as the runner sees it, with its capture time counted."""

    def __init__(self, sensor: hal.Sensor, timed: _Timed):
        self._sensor, self._timed = sensor, timed

    def capture(self, **kwargs) -> hal.FingerImage:
        return self._timed.call("capture", self._sensor.capture, **kwargs)


def _take_slap(session: BookingSession, sensor, position: int, expected: tuple, ui: BookingUI,
               timeout: float, timed: _Timed, max_no_finger: int) -> tuple[hal.FingerImage, SlapTaken]:
    """Capture one slap until its fingers are all found and good enough, or keep the best."""
    best = None
    attempts = no_finger = 0
    names = ", ".join(sequence_check.finger_name(f) for f in expected)
    while attempts < session.max_attempts:
        ui.prompt(f"Place {SLAP_PLACING[position]} flat on the glass together "
                  f"({names}; attempt {attempts + 1} of {session.max_attempts}).", position)
        try:
            image = sensor.capture(timeout=timeout, progress=ui.progress, finger_position=position,
                                   impression_type=hal.ImpressionType.LIVE_PLAIN)
        except (hal.NoFinger, hal.CaptureTimeout) as exc:
            no_finger += 1
            ui.notice(f"No hand seen on the glass ({exc}).")
            if no_finger >= max_no_finger:
                session.handle(Cancel("no hand on the scanner"))
                raise BookingAborted(f"no hand on the scanner for the {SLAP_NAMES[position]} after "
                                     f"{max_no_finger} tries; booking cancelled, nothing was kept") from None
            continue
        no_finger = 0
        attempts += 1
        found = timed.call("segmentation", segment_slap, image.pixels, expected, int(image.ppi))
        problem = slap_problem(found, session.min_score)
        key = (len(found.segments), min((int(s.quality.score) for s in found.segments), default=0))
        if best is None or key > best[0]:
            best = (key, image, found)
        if not problem:
            ui.notice(f"{SLAP_NAMES[position].capitalize()}: accepted ({len(found.segments)} "
                      f"{'finger' if len(found.segments) == 1 else 'fingers'} found).")
            return image, SlapTaken(position, found, attempts, below_gate=False)
        ui.notice(f"{SLAP_NAMES[position].capitalize()}: {problem}.")
    _key, image, found = best
    ui.notice(f"{SLAP_NAMES[position].capitalize()}: kept the best of {attempts} attempts "
              f"({len(found.segments)} of {len(expected)} fingers, flagged for the examiner).")
    return image, SlapTaken(position, found, attempts, below_gate=True)


def _segment_templates(slaps: dict, extract: Callable, timed: _Timed) -> dict:
    """Each slap segment's minutiae, by finger position (segments without a usable print left out)."""
    out = {}
    for taken in slaps.values():
        for s in taken.segmentation.segments:
            try:
                out[s.finger] = timed.call("extraction", extract, s.pixels).template
            except NoUsableFingerprint:
                pass
    return out


def run_tenprint(session: BookingSession, sensor: hal.Sensor, *, ui: Optional[BookingUI] = None,
                 timeout: float = 20.0, extract: Optional[Callable] = None,
                 screen: Optional[Callable] = None, max_no_finger: int = 3,
                 report: Optional[TenprintReport] = None) -> TenprintReport:
    """Take a ten-print on `sensor` into `session` (see the module doc); READY when it returns.

    Raises ModeNotSupported before the first finger when the sensor cannot
    roll and slap, BookingAborted when no finger or hand comes, and
    SequenceStopped when a rolled finger is not where the slaps say it is.
    """
    require_tenprint_sensor(sensor.info())
    if extract is None:
        from fpagent.biometrics.extraction import extract
    ui = ui or BookingUI()
    report = report if report is not None else TenprintReport()
    timed = _Timed(report.timings)
    timed_sensor = _TimedSensor(sensor, timed)

    def timed_extract(image):
        return timed.call("extraction", extract, image)

    run_booking(session, timed_sensor, ui=_RollingUI(ui), timeout=timeout, screen=screen,
                extract=timed_extract, max_no_finger=max_no_finger,
                impression_type=hal.ImpressionType.LIVE_ROLLED)
    if session.phase is not Phase.READY:
        return report
    missing = {c.position: c.missing for c in session.captures() if c.missing}
    images = {}
    for position in SLAP_ORDER:
        expected = expected_fingers(position, missing)
        if not expected:
            ui.notice(f"{SLAP_NAMES[position].capitalize()}: no finger to take (all marked missing).")
            continue
        images[position], report.slaps[position] = _take_slap(
            session, timed_sensor, position, expected, ui, timeout, timed, max_no_finger)
    rolled = {c.position: c.template for c in session.captures() if c.template is not None}
    segments = _segment_templates(report.slaps, extract, timed)
    verdict = timed.call("sequence check", sequence_check.check_sequence, rolled, segments)
    report.verdict = verdict
    if verdict.swap_found:
        ui.notice(f"SEQUENCE CHECK: {verdict.message}.")
        session.handle(Cancel("sequence check: " + verdict.message))
        raise SequenceStopped(verdict)
    if verdict.unconfirmed:
        ui.notice(f"Sequence check: {verdict.message} (kept; the examiner will see the slaps).")
    for position, taken in report.slaps.items():
        if position == THUMBS_SLAP:
            session.slaps.update(confirmed_thumbs(plain_thumbs(images[position], taken), taken, verdict))
        else:
            session.slaps[position] = slap_capture(images[position], taken)
    session.slaps.update(missing_plain_thumbs(missing))
    return report
