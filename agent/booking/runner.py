"""The booking runner: drives a sensor through one BookingSession and tells the officer.

The thin shell around the pure state machine of fpagent.booking.session: it
captures from any `hal.Sensor`, extracts each image
(fpagent.biometrics.extraction), feeds the session, hands accepted prints to
the local prefilter hook and reports everything to a `BookingUI` (terminal,
web, or nothing in tests).
"""

from __future__ import annotations

from typing import Callable, Optional

from fpagent import hal
from fpagent.biometrics.template import Template
from fpagent.booking.session import (BookingSession, Cancel, Captured, ConfirmSequence,
                                     KeepForReview, MarkMissing, Outcome, Phase, Result,
                                     finger_label)
from fpagent.errors import NoUsableFingerprint, UserError


class BookingUI:
    """What the runner tells the officer. Subclass it (terminal, web); the
    defaults print nothing and never confirm."""

    def prompt(self, text: str, position: int) -> None:
        pass

    def progress(self, stage: str, done: int, total: int) -> None:
        pass

    def outcome(self, outcome: Outcome) -> None:
        pass

    def notice(self, text: str) -> None:
        pass

    def confirm(self, question: str) -> bool:
        return False

    def candidates(self, position: int, found: list) -> None:
        pass


def assess(image: hal.FingerImage, extract: Optional[Callable] = None) -> Captured:
    """Run extraction (with its quality report) on one image -> a Captured event."""
    if extract is None:
        from fpagent.biometrics.extraction import extract
    try:
        ex = extract(image)
    except NoUsableFingerprint as exc:
        return Captured(image, 0, f"No usable fingerprint ({exc}): clean the sensor and "
                                  f"the finger, then press flat.", None)
    q = ex.quality
    return Captured(image, int(q.score), q.advice, ex.template)


class BookingAborted(UserError):
    """The runner could not get a print (sensor silent, no finger) and gave up."""


def run_booking(
    session: BookingSession,
    sensor: hal.Sensor,
    *,
    ui: Optional[BookingUI] = None,
    timeout: float = 20.0,
    extract: Optional[Callable] = None,
    screen: Optional[Callable[[Template], list]] = None,
    max_no_finger: int = 3,
    max_sequence_rejections: int = 3,
    impression_type: int = hal.ImpressionType.LIVE_PLAIN,
) -> BookingSession:
    """Drive `sensor` until the session is READY or CANCELLED.

    NoFinger/CaptureTimeout do not use up a quality attempt; after
    `max_no_finger` in a row the officer is asked whether to mark the finger
    unable to print (UP), else the booking is cancelled (BookingAborted).
    A print refused by the sequence check `max_sequence_rejections` times in
    a row is then kept: confirmed by the officer when the officer says so,
    otherwise (and always without an officer, e.g. `--yes`) flagged as a
    suspected duplicate for review in the transaction and the audit entry.
    A suspected duplicate never cancels a booking and never loops. Ctrl-C cancels. `screen(template) -> [(gallery id, score)]` is the local
    prefilter hook; its candidates go to `ui.candidates` and `session.screening`.
    `impression_type`: live-scan plain (a single-finger module) or rolled (a
    ten-print scanner, fpagent.booking.tenprint).
    """
    ui = ui or BookingUI()
    no_finger = 0
    rejections_here = 0
    try:
        while session.phase is Phase.CAPTURING:
            p = session.current
            ui.prompt(session.prompt(), p)
            try:
                image = sensor.capture(timeout=timeout, progress=ui.progress, finger_position=p,
                                       impression_type=impression_type)
            except (hal.NoFinger, hal.CaptureTimeout) as exc:
                no_finger += 1
                ui.notice(f"No finger seen on the sensor ({exc}).")
                if no_finger >= max_no_finger:
                    if ui.confirm(f"Mark the {finger_label(p)} as unable to print (UP)?"):
                        ui.outcome(session.handle(MarkMissing("UP")))
                        no_finger = 0
                        continue
                    session.handle(Cancel("no finger on the sensor"))
                    raise BookingAborted(
                        f"no finger on the sensor for the {finger_label(p)} after "
                        f"{max_no_finger} tries; booking cancelled, nothing was kept"
                    ) from None
                continue
            no_finger = 0
            event = assess(image, extract)
            out = session.handle(event)
            if out.result is Result.SEQUENCE_REJECTED:
                rejections_here += 1
                ui.outcome(out)
                if rejections_here < max_sequence_rejections:
                    continue
                if ui.confirm(f"Refused {rejections_here} times as the "
                              f"{finger_label(out.matched_position)}. Are you sure this is "
                              f"the {finger_label(p)}?"):
                    out = session.handle(ConfirmSequence())
                else:
                    ui.notice(f"Kept as the {finger_label(p)}, flagged for review: it looks like "
                              f"the {finger_label(out.matched_position)}.")
                    out = session.handle(KeepForReview())
            if out.next_position != p:
                rejections_here = 0
            ui.outcome(out)
            if screen is not None and out.result in (Result.ACCEPTED, Result.ACCEPTED_BELOW_GATE):
                taken = session.results.get(p)
                if taken is not None and taken.template is not None:
                    found = list(screen(taken.template) or [])
                    if found:
                        session.screening[p] = [(str(i), float(s)) for i, s in found]
                        ui.candidates(p, session.screening[p])
    except KeyboardInterrupt:
        if session.phase in (Phase.CAPTURING, Phase.READY):
            ui.outcome(session.handle(Cancel("interrupted by the officer")))
        raise
    return session
