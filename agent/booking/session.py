"""The booking session: ten fingers, in order, each good enough, none twice.

`BookingSession` is a pure state machine. Events go in (`Captured`,
`MarkMissing`, `ConfirmSequence`, `Cancel`); `Outcome`s come out, each with
the message for the officer. It walks FGP 1..10 (right thumb .. left
little), applies the quality gate (`quality.min_score`, at most
`quality.max_attempts` tries, then keeps the best and flags it), and the
sequence check: every new print is compared with the fingers already
taken, and one that the duplicate-finger check suspects
(fpagent.booking.duplicate_check: score >= DUPLICATE_THRESHOLD, far
stricter than a 1:1 match) is refused ("this looks like the right index
again"). A refused print is never the end of a booking: the officer may
confirm it (`ConfirmSequence`), or it is kept flagged for review
(`KeepForReview`); either way the transaction's 14.020 COM and the audit
entry say so. It does no I/O and never looks at a clock except through
`now`.

Around it, each testable alone: fpagent.booking.runner drives a sensor and
feeds the session, fpagent.booking.submit turns a finished session into one
outbox row, fpagent.booking.local_screening is the prefilter hook over the
galleries held on the appliance.

A note on "two fingers swapped": matching a booking against itself can only
catch the same finger twice. A swap (right thumb given for the index and the
index for the thumb) is caught only against a reference, e.g. the same
person's earlier booking from the local gallery (`reference=`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import logging
from typing import Callable, Iterable, Mapping, Optional

from fpagent import hal
from fpagent.records import transaction_format as profile_format
from fpagent.records import transaction as tx
from fpagent.errors import UserError
from fpagent.biometrics.template import Template
from fpagent.booking import duplicate_check

log = logging.getLogger(__name__)

FINGERS = profile_format.FINGERS
MISSING_CODES = profile_format.MISSING_CODES


def finger_label(position: int) -> str:
    """'right thumb', 'left little', ... for FGP 1..10."""
    return hal.FingerPosition(int(position)).label


class BookingError(UserError):
    """An event that makes no sense now (e.g. a capture after cancel); says why."""


class Phase(str, enum.Enum):
    CAPTURING = "capturing"  # walking the fingers
    READY = "ready"  # every finger taken or marked: complete_booking may run
    COMPLETED = "completed"  # sealed and queued
    CANCELLED = "cancelled"


class BookingRefused(BookingError):
    """The booking data fails the booking profile: one line per field, before any finger."""

    def __init__(self, findings):
        self.findings = list(findings)
        lines = "\n".join(f"  {f}" for f in self.findings)
        super().__init__(f"booking data does not meet the booking profile:\n{lines}")


@dataclasses.dataclass(frozen=True)
class BookingInfo:
    """What the booking is about, typed by the officer or taken from the jail's
    system (fpagent.booking.intake). Descriptive data about the person is
    limited by config booking.descriptive_fields; the arrest data (retention,
    charges, controlling agency, the officer to answer) is what the bureau
    needs for a criminal submission. `check` runs before the first finger."""

    booking_number: str
    ori: str
    operator_id: str
    descriptive: Mapping[str, str] = dataclasses.field(default_factory=dict)
    arrest_date: Optional[_dt.date] = None
    retention: str = ""  # 2.005 RET: Y or N
    charges: tuple = ()  # 2.047 ASL: (offense date YYYYMMDD or "", literal) per charge
    controlling_agency: str = ""  # 2.073 CRI; default: the booking agency's ORI
    attention: str = ""  # 2.006 ATN: the officer the bureau's answer is for

    def record(self, *, tcn: str = "", destination: str = "", fingers: tuple = (),
               type_of_transaction: str = "CAR", created_at: Optional[_dt.datetime] = None,
               tcr: str = "") -> tx.BookingRecord:
        """The transaction's BookingRecord of this booking (fingers added at the end)."""
        return tx.BookingRecord(
            tcn=tcn, ori=self.ori, destination=destination, fingers=tuple(fingers),
            booking_number=self.booking_number, descriptive=dict(self.descriptive),
            type_of_transaction=type_of_transaction,
            created_at=created_at or _dt.datetime.now(_dt.timezone.utc), arrest_date=self.arrest_date,
            retention=self.retention, charges=tuple(tuple(c) for c in self.charges),
            controlling_agency=self.controlling_agency or self.ori, attention=self.attention, tcr=tcr,
        )

    def check(self, allowed_fields: Optional[Iterable[str]] = None, profile=None) -> None:
        """Refuse what cannot become a transaction, and with `profile` (a
        fpagent.records.profile.Profile) every field that fails it (BookingRefused)."""
        if not str(self.booking_number).strip():
            raise BookingError("a booking number is required")
        if not str(self.operator_id).strip():
            raise BookingError("an operator id is required (who takes the prints)")
        if len(self.ori or "") != 9 or not str(self.ori).isalnum():
            raise BookingError(f"agency ORI must be 9 letters/digits, got {self.ori!r}")
        allowed = set(allowed_fields) if allowed_fields is not None else set(profile_format.DESCRIPTIVE_FIELDS)
        for key in self.descriptive:
            if key in profile_format.DESCRIPTIVE_FIELDS and key not in allowed:
                raise BookingError(
                    f"descriptive field {key!r} is not collected here "
                    f"(booking.descriptive_fields = {sorted(allowed)})"
                )
        try:  # every value checked now, before any finger is taken
            values = tx.type2_values(self.record(), allowed)
        except profile_format.TransactionError as exc:
            raise BookingError(str(exc)) from None
        if profile is not None:
            from fpagent.records.profile_check import check_descriptive

            findings = check_descriptive(profile, {mnemonic: value for _tag, mnemonic, value in values})
            if findings:
                raise BookingRefused(findings)

    def __repr__(self) -> str:  # no personal data in logs
        return f"BookingInfo(booking_number={self.booking_number!r}, ori={self.ori!r}, operator={self.operator_id!r})"


# --- events -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Captured:
    """One image of the current finger, already assessed by the runner."""

    image: hal.FingerImage
    score: int  # quality 0-100
    advice: str = ""  # what the officer should change, "" when good
    template: Optional[Template] = None  # None when extraction found no usable print


@dataclasses.dataclass(frozen=True)
class MarkMissing:
    """The finger is amputated (XX) or cannot be printed (UP). `position`
    defaults to the finger asked for now; a later finger may be marked ahead."""

    code: str
    position: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class ConfirmSequence:
    """The officer insists the print just refused by the sequence check is
    the finger asked for (recorded in the audit log)."""


@dataclasses.dataclass(frozen=True)
class KeepForReview:
    """Keep the print just refused by the sequence check without the officer's
    confirmation, flagged as a suspected duplicate for the examiner."""


@dataclasses.dataclass(frozen=True)
class Cancel:
    reason: str = ""


# --- outcomes -----------------------------------------------------------------


class Result(str, enum.Enum):
    ACCEPTED = "accepted"
    ACCEPTED_BELOW_GATE = "accepted_below_gate"  # best of max_attempts, flagged
    RETRY = "retry"  # quality too low: capture this finger again
    SEQUENCE_REJECTED = "sequence_rejected"  # matches a finger already taken
    MARKED = "marked"  # XX / UP recorded
    CANCELLED = "cancelled"


@dataclasses.dataclass(frozen=True)
class Outcome:
    result: Result
    position: int  # the finger the event was about (0 for cancel)
    message: str  # one line for the officer
    advice: str = ""
    attempt: int = 0  # quality attempts used on this finger so far
    score: Optional[int] = None
    matched_position: Optional[int] = None  # for SEQUENCE_REJECTED
    next_position: Optional[int] = None  # None when every finger is done

    @property
    def done(self) -> bool:
        return self.next_position is None


# --- the state machine ----------------------------------------------------------


class BookingSession:
    """Pure state machine of one booking; see the module docstring."""

    def __init__(
        self,
        info: BookingInfo,
        *,
        min_score: int = 25,
        max_attempts: int = 3,
        compare: Optional[Callable[[Template, Template], float]] = None,
        match_threshold: Optional[float] = None,
        reference: Optional[Mapping[int, Template]] = None,
        fingers: Iterable[int] = FINGERS,
        allowed_fields: Optional[Iterable[str]] = None,
        profile=None,
        now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.timezone.utc),
    ):
        info.check(allowed_fields, profile)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if compare is not None and match_threshold is None:
            raise ValueError("a compare function needs its match_threshold")
        self.info = info
        self.min_score = int(min_score)
        self.max_attempts = int(max_attempts)
        self._compare = compare
        self._threshold = match_threshold
        self._reference = dict(reference or {})
        self.order = tuple(int(p) for p in fingers)
        self._now = now
        self.started_at = now()
        self.phase = Phase.CAPTURING
        self.results: dict[int, tx.FingerCapture] = {}
        # a ten-print's plain impressions: four-finger slaps 13, 14 and plain thumbs 11, 12
        self.slaps: dict[int, tx.FingerCapture] = {}
        self._attempts: list[Captured] = []  # quality attempts on the current finger
        self._rejected: Optional[Captured] = None  # last capture refused by the sequence check
        self._suspected: Optional[tuple[int, float]] = None  # (position, score) it resembled
        self._keeping: Optional[tuple] = None  # (position, score, confirmed, event) of the print being kept
        self.sequence_rejections = 0
        self.sequence_overrides: list[int] = []
        self.suspected_duplicates: list[dict] = []  # prints kept although the check refused them
        self.cancel_reason = ""
        self.screening: dict[int, list] = {}  # position -> [(gallery id, score)] from the prefilter hook

    # -- where we are -----------------------------------------------------------
    @property
    def current(self) -> Optional[int]:
        """The finger to capture now, or None."""
        if self.phase is not Phase.CAPTURING:
            return None
        for p in self.order:
            if p not in self.results:
                return p
        return None

    @property
    def attempt(self) -> int:
        """Number of the next quality attempt on the current finger (1-based)."""
        return len(self._attempts) + 1

    def prompt(self) -> str:
        """What the officer should do now."""
        if self.phase is Phase.CANCELLED:
            return "Booking cancelled."
        if self.phase is Phase.COMPLETED:
            return "Booking sent to the queue."
        p = self.current
        if p is None:
            return "All fingers done: review and submit."
        index = self.order.index(p) + 1
        text = f"Place the {finger_label(p).upper()} on the sensor (finger {index} of {len(self.order)}"
        if self._attempts:
            text += f", attempt {self.attempt} of {self.max_attempts}"
        return text + ")."

    def _advance(self) -> Optional[int]:
        self._attempts = []
        self._rejected = None
        nxt = self.current
        if nxt is None and self.phase is Phase.CAPTURING:
            self.phase = Phase.READY
        return nxt

    def _need(self, *phases: Phase) -> None:
        if self.phase not in phases:
            raise BookingError(f"booking is {self.phase.value}; that is not possible now")

    # -- events -----------------------------------------------------------------
    def handle(self, event) -> Outcome:
        if isinstance(event, Captured):
            return self._captured(event)
        if isinstance(event, MarkMissing):
            return self._mark(event)
        if isinstance(event, ConfirmSequence):
            return self._keep_refused(confirmed=True)
        if isinstance(event, KeepForReview):
            return self._keep_refused(confirmed=False)
        if isinstance(event, Cancel):
            return self._cancel(event)
        raise TypeError(f"unknown booking event {type(event).__name__}")

    def _sequence_conflict(self, position: int, template: Template
                           ) -> Optional[tuple[int, float, str]]:
        """(earlier position, score, message) when this print looks like another finger."""
        if self._compare is None:
            return None
        scores = {q: float(self._compare(template, taken.template))
                  for q, taken in self.results.items()
                  if taken.template is not None and q != position}
        best = duplicate_check.suspect(scores, self._threshold)
        if best is not None:
            q = best[0]
            return q, best[1], (f"This looks like the {finger_label(q)} again: "
                                f"place the {finger_label(position)}.")
        if self._reference:
            own = self._reference.get(position)
            own_score = float(self._compare(template, own)) if own is not None else None
            swapped = None
            for q, ref in self._reference.items():
                if q == position or ref is None:
                    continue
                score = float(self._compare(template, ref))
                if score >= self._threshold and (swapped is None or score > swapped[1]):
                    swapped = (q, score)
            if swapped is not None and (own_score is None or own_score < swapped[1]):
                q = swapped[0]
                return q, swapped[1], (f"This looks like the {finger_label(q)} (earlier booking): "
                           f"were two fingers swapped? Place the {finger_label(position)}.")
        return None

    def _captured(self, ev: Captured) -> Outcome:
        self._need(Phase.CAPTURING)
        p = self.current
        score = int(ev.score)
        if ev.template is not None:
            conflict = self._sequence_conflict(p, ev.template)
            if conflict is not None:
                q, matched_score, message = conflict
                self._rejected = ev
                self._suspected = (q, matched_score)
                self.sequence_rejections += 1
                return Outcome(Result.SEQUENCE_REJECTED, p, message, attempt=len(self._attempts),
                               score=score, matched_position=q, next_position=p)
        self._rejected = None
        self._attempts.append(ev)
        if score >= self.min_score and ev.template is not None:
            return self._accept(p, ev, below_gate=False)
        if len(self._attempts) < self.max_attempts:
            advice = ev.advice or ("No usable fingerprint: clean the sensor and the finger, "
                                   "then press flat." if ev.template is None else
                                   "Press the finger flat and still.")
            return Outcome(Result.RETRY, p,
                           f"{finger_label(p).capitalize()}: quality {score} is below "
                           f"{self.min_score}; capture it again.",
                           advice=advice, attempt=len(self._attempts), score=score, next_position=p)
        # last attempt: keep the best one (a usable template first, then score)
        best = max(self._attempts, key=lambda a: (a.template is not None, int(a.score)))
        return self._accept(p, best, below_gate=True)

    def _accept(self, p: int, ev: Captured, *, below_gate: bool) -> Outcome:
        attempts = len(self._attempts) or 1
        template = ev.template
        if template is not None:
            template = dataclasses.replace(template, finger_position=p)
        self.results[p] = tx.FingerCapture(
            position=p,
            pixels=ev.image.pixels,
            ppi=int(ev.image.ppi),
            quality=max(0, min(100, int(ev.score))),
            template=template,
            below_gate=below_gate,
            attempts=attempts,
            impression_type=int(ev.image.impression_type),
            captured_at=ev.image.captured_at,
            **self._duplicate_flag(ev),
        )
        nxt = self._advance()
        if below_gate:
            message = (f"{finger_label(p).capitalize()}: kept the best of {attempts} attempts "
                       f"(quality {int(ev.score)}, flagged for the examiner).")
            result = Result.ACCEPTED_BELOW_GATE
        else:
            message = f"{finger_label(p).capitalize()}: accepted (quality {int(ev.score)})."
            result = Result.ACCEPTED
        if nxt is not None:
            message += f" Next: {finger_label(nxt)}."
        return Outcome(result, p, message, attempt=attempts, score=int(ev.score), next_position=nxt)

    def _mark(self, ev: MarkMissing) -> Outcome:
        self._need(Phase.CAPTURING)
        code = str(ev.code).upper()
        if code not in MISSING_CODES:
            raise BookingError(f"missing-finger code must be XX (amputated) or UP (unable to print), got {ev.code!r}")
        p = int(ev.position) if ev.position is not None else self.current
        if p not in self.order:
            raise BookingError(f"finger {p} is not part of this booking (1-10)")
        if p in self.results:
            raise BookingError(f"the {finger_label(p)} is already taken")
        was_current = p == self.current
        self.results[p] = tx.FingerCapture(p, missing=code)
        nxt = self._advance() if was_current else self.current
        message = f"{finger_label(p).capitalize()}: marked {code} ({MISSING_CODES[code]})."
        if nxt is not None:
            message += f" Next: {finger_label(nxt)}."
        return Outcome(Result.MARKED, p, message, next_position=nxt)

    def _duplicate_flag(self, ev: Captured) -> dict:
        """FingerCapture fields of a print kept after the sequence check refused it."""
        if self._keeping is None or ev is not self._keeping[3]:
            return {}
        q, score, confirmed, _ = self._keeping
        return {"duplicate_of": q, "duplicate_score": score, "duplicate_confirmed": confirmed}

    def _keep_refused(self, *, confirmed: bool) -> Outcome:
        """Accept the refused print as given, confirmed by the officer or flagged for review."""
        self._need(Phase.CAPTURING)
        if self._rejected is None:
            raise BookingError("there is no refused print to "
                               + ("confirm" if confirmed else "keep"))
        ev, self._rejected = self._rejected, None
        q, score = self._suspected or (0, 0.0)
        p = self.current
        if confirmed:
            self.sequence_overrides.append(p)
        self.suspected_duplicates.append(
            {"position": p, "matched_position": q, "score": round(score, 4), "confirmed": confirmed})
        self._keeping = (q, score, confirmed, ev)
        saved, self._compare = self._compare, None  # accept this one print as given
        try:
            return self._captured(ev)
        finally:
            self._compare = saved
            self._keeping = None

    def _cancel(self, ev: Cancel) -> Outcome:
        self._need(Phase.CAPTURING, Phase.READY)
        self.phase = Phase.CANCELLED
        self.cancel_reason = ev.reason
        # drop images and templates now: nothing of a cancelled booking is kept
        self.results.clear()
        self.slaps.clear()
        self._attempts = []
        self._rejected = None
        return Outcome(Result.CANCELLED, 0, "Booking cancelled; nothing was kept.")

    # -- results ----------------------------------------------------------------
    def captures(self) -> tuple:
        """The FingerCapture of every finger, in FGP order."""
        return tuple(self.results[p] for p in sorted(self.results))

    def summary(self) -> dict:
        """Counts and flags only (safe for logs, audit and --json)."""
        caps = self.captures()
        return {
            "booking_number": self.info.booking_number,
            "phase": self.phase.value,
            "fingers": len(caps),
            "printed": sum(1 for c in caps if not c.missing),
            "amputated": [c.position for c in caps if c.missing == "XX"],
            "unable_to_print": [c.position for c in caps if c.missing == "UP"],
            "below_gate": [c.position for c in caps if c.below_gate],
            "slaps": sorted(p for p, c in self.slaps.items() if not c.missing),  # plain images taken
            "sequence_rejections": self.sequence_rejections,
            "sequence_overrides": list(self.sequence_overrides),
            "suspected_duplicates": [dict(d) for d in self.suspected_duplicates
                                     if d["position"] in self.results],
        }

    def to_record(self, *, tcn: str, destination: str, type_of_transaction: str = "CAR",
                  created_at: Optional[_dt.datetime] = None, tcr: str = "") -> tx.BookingRecord:
        if self.phase is not Phase.READY:
            raise BookingError(f"booking is {self.phase.value}, not ready to submit")
        slaps = tuple(self.slaps[p] for p in sorted(self.slaps))
        return self.info.record(tcn=tcn, destination=destination, fingers=self.captures() + slaps,
                                type_of_transaction=type_of_transaction,
                                created_at=created_at or self._now(), tcr=tcr)

    def __repr__(self) -> str:
        return f"BookingSession({self.info!r}, {self.phase.value}, {len(self.results)} fingers)"


def new_session(cfg, info: BookingInfo, *, compare=None, match_threshold=None,
                reference=None, sequence_check: bool = True,
                fingers: Iterable[int] = FINGERS) -> BookingSession:
    """A session set up from the configuration: the booking data checked
    against the selected booking profile (BookingRefused, before any finger),
    the real matcher and the duplicate-finger check's own threshold unless
    `compare` is given. `fingers`: only these positions (a reprint of the
    fingers central rejected)."""
    from fpagent.records.profile import load_profile

    if sequence_check and compare is None:
        from fpagent.biometrics import matcher
        compare, match_threshold = matcher.compare, duplicate_check.DUPLICATE_THRESHOLD
    return BookingSession(
        info,
        min_score=cfg.quality.min_score,
        max_attempts=cfg.quality.max_attempts,
        compare=compare if sequence_check else None,
        match_threshold=match_threshold if sequence_check else None,
        reference=reference,
        fingers=fingers,
        allowed_fields=cfg.booking.descriptive_fields,
        profile=load_profile(cfg.transaction.profile),
    )
