"""Sequence check: rolled fingers against their slap segments (emulated and real prints)."""

import functools
import pathlib

import numpy as np
import pytest
from PIL import Image

from fpagent.biometrics import segmentation, sequence
from fpagent.biometrics.extraction import extract
from fpagent.drivers.tenprint import platen


@functools.cache
def _segments(seed, person, position):
    slap = platen.slap(seed, person, position)
    result = segmentation.segment_slap(slap.pixels, platen.SLAP_FINGERS[position])
    assert result.complete
    return {s.finger: extract(s.pixels).template for s in result.segments}


@functools.cache
def _rolled(seed, person, finger, swapped_pair=None):
    return extract(platen.rolled(seed, person, finger, swapped_pair=swapped_pair)).template


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thumbs_in_their_places_pass(seed):
    segments = _segments(seed, 0, platen.THUMBS_SLAP)
    verdict = sequence.check_sequence({f: _rolled(seed, 0, f) for f in (1, 6)}, segments)
    assert verdict.ok and verdict.message == "" and not verdict.swap_found


def test_swapped_thumbs_are_caught_and_named():
    segments = _segments(0, 0, platen.THUMBS_SLAP)
    rolled = {f: _rolled(0, 0, f, swapped_pair=(1, 6)) for f in (1, 6)}
    verdict = sequence.check_sequence(rolled, segments)
    assert not verdict.ok and verdict.swapped_pairs == ((1, 6),)
    assert "the right thumb and the left thumb are swapped" in verdict.message


def test_a_swapped_pair_in_a_four_finger_slap_is_caught_and_the_others_pass():
    segments = _segments(0, 0, platen.RIGHT_SLAP)
    rolled = {f: _rolled(0, 0, f, swapped_pair=(3, 4)) for f in (2, 3, 4, 5)}
    verdict = sequence.check_sequence(rolled, segments)
    assert verdict.swapped_pairs == ((3, 4),) and not verdict.hands_swapped
    assert verdict.scores[2] > 0.095 and verdict.scores[5] > 0.095
    assert verdict.message.startswith("the right middle finger and the right ring finger are swapped")


def test_fingers_on_one_side_only_are_not_judged():
    segments = _segments(0, 0, platen.THUMBS_SLAP)
    verdict = sequence.check_sequence({1: _rolled(0, 0, 1)}, segments)
    assert verdict.ok and set(verdict.scores) == {1}


# Real prints: ten different FVC fingers stand in for one person's ten fingers
# (impression 1 "rolled", impression 2 "in the slap"); the check only sees templates.

@pytest.fixture(scope="module")
def real_hands(fingerprints_dir):
    folder = pathlib.Path(fingerprints_dir) / "fvc2002_db1_b"

    def template(subject, impression):
        return extract(np.asarray(Image.open(folder / f"{subject}_{impression}.png"))).template

    positions = [2, 3, 4, 5, 7, 8, 9, 10]
    subjects = range(101, 109)
    rolled = {p: template(s, 1) for p, s in zip(positions, subjects)}
    slapped = {p: template(s, 2) for p, s in zip(positions, subjects)}
    return rolled, slapped


def test_real_prints_in_their_places_pass(real_hands):
    rolled, slapped = real_hands
    verdict = sequence.check_sequence(rolled, slapped)
    assert not verdict.swap_found


def test_the_wrong_hand_on_the_glass_is_reported_as_swapped_slaps(real_hands):
    rolled, slapped = real_hands
    wrong_hand = {sequence.other_slap_place(f): t for f, t in slapped.items()}
    verdict = sequence.check_sequence(rolled, wrong_hand)
    assert verdict.hands_swapped == "slaps" and not verdict.swapped_pairs
    assert "take both slaps again" in verdict.message


def test_hands_rolled_in_each_others_rows_are_reported(real_hands):
    rolled, slapped = real_hands
    wrong_rows = {sequence.other_hand(f): t for f, t in rolled.items()}
    verdict = sequence.check_sequence(wrong_rows, slapped)
    assert verdict.hands_swapped == "rolled"
    assert "the rolled right and left hands are swapped" in verdict.message
