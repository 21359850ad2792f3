"""Sequence check: does each rolled finger match its place in the slaps?

Why: an officer who rolls the ring finger in the middle finger's box, or a
person who puts the left hand on the glass for the right-hand slap, makes a
ten-print whose fingers are filed under the wrong positions; the duplicate
check does not see it (no finger is taken twice). Bureaus compare each rolled
finger with the plain impression of the same finger in the slaps, and so do
we before the booking is submitted.

Pure: templates in, a verdict out. Each rolled finger is compared with its own
slap segment; one that does not match is compared with every other segment to
tell what happened: two fingers in each other's place (a swapped pair), a whole
hand in the other's place (swapped hands), a finger that matches another place
only, or a finger that matches nothing (too poor to tell: capture again).
"""

from __future__ import annotations

import dataclasses

from fpagent.biometrics.matcher import MATCH_THRESHOLD, compare
from fpagent.biometrics.segmentation import FINGER_NAMES
from fpagent.biometrics.template import Template


def other_hand(finger: int) -> int:
    """The same finger of the other hand (right index 2 <-> left index 7): where a finger
    lands when the rolled hands are swapped."""
    return finger + 5 if finger <= 5 else finger - 5


def other_slap_place(finger: int) -> int:
    """Where a finger lands when the wrong hand is put on the glass: the same place from
    the left in the other slap (right index 2 <-> left little 10), the thumbs stay."""
    return finger if finger in (1, 6) else 12 - finger


# how a whole hand can be in the other's place: where each finger then matches
HAND_SWAPS = {"slaps": other_slap_place, "rolled": other_hand}


@dataclasses.dataclass(frozen=True)
class SequenceVerdict:
    """What the sequence check found; `message` is for the officer ("" when all is well)."""

    ok: bool
    swapped_pairs: tuple[tuple[int, int], ...]  # fingers found in each other's place
    hands_swapped: str  # "slaps" (wrong hand on the glass), "rolled" (hands rolled in each
    # other's rows) or ""
    misplaced: tuple[tuple[int, int], ...]  # (rolled finger, slap place it matches instead)
    unconfirmed: tuple[int, ...]  # rolled fingers that match no slap segment
    scores: dict  # rolled finger -> score against its own slap segment
    message: str

    @property
    def swap_found(self) -> bool:
        return bool(self.swapped_pairs or self.hands_swapped or self.misplaced)


def check_sequence(rolled: dict[int, Template], segments: dict[int, Template],
                   threshold: float = MATCH_THRESHOLD) -> SequenceVerdict:
    """Compare each rolled finger (position -> template) with the slap segments (position -> template).

    Fingers present on one side only (missing, bandaged, not segmented) are
    not judged.
    """
    both = sorted(set(rolled) & set(segments))
    own = {f: float(compare(rolled[f], segments[f])) for f in both}
    best: dict[int, int | None] = {}
    for f in both:
        if own[f] >= threshold:
            continue
        scores = {g: float(compare(rolled[f], segments[g])) for g in segments if g != f}
        g = max(scores, key=scores.get) if scores else None
        best[f] = g if g is not None and scores[g] >= threshold and scores[g] > own[f] else None
    hands_swapped = ""
    fingers = [f for f in both if f not in (1, 6)]
    for kind, place in HAND_SWAPS.items():
        if sum(best.get(f) == place(f) for f in fingers) >= max(2, len(fingers) // 2):
            hands_swapped = kind
    mapped = HAND_SWAPS.get(hands_swapped)
    pairs, misplaced, seen = [], [], set()
    for f, g in sorted(best.items()):
        if g is None or f in seen:
            continue
        if mapped and g == mapped(f):
            continue
        if best.get(g) == f:
            pairs.append((f, g))
            seen.update((f, g))
        else:
            misplaced.append((f, g))
    unconfirmed = tuple(f for f, g in sorted(best.items()) if g is None)
    verdict = dict(swapped_pairs=tuple(pairs), hands_swapped=hands_swapped,
                   misplaced=tuple(misplaced), unconfirmed=unconfirmed, scores=own)
    message = _message(**verdict)
    return SequenceVerdict(ok=not message, message=message, **verdict)


def finger_name(finger: int) -> str:
    """"right thumb", "left ring finger"."""
    name = FINGER_NAMES[finger]
    return name if finger in (1, 6) else f"{name} finger"


def _message(swapped_pairs, hands_swapped, misplaced, unconfirmed, scores) -> str:
    lines = []
    if hands_swapped == "slaps":
        lines.append("the slaps show the right and left hands in each other's place: take both "
                     "slaps again, the right hand for the right-hand slap")
    elif hands_swapped == "rolled":
        lines.append("the rolled right and left hands are swapped: roll both hands again, "
                     "each in its own row")
    for a, b in swapped_pairs:
        lines.append(f"the {finger_name(a)} and the {finger_name(b)} are swapped: "
                     "roll them again in their own boxes")
    for f, g in misplaced:
        lines.append(f"the rolled {finger_name(f)} matches the {finger_name(g)} in the slap: "
                     "roll it again")
    for f in unconfirmed:
        lines.append(f"the rolled {finger_name(f)} could not be confirmed against the slap: "
                     "roll it again")
    return "; ".join(lines)
