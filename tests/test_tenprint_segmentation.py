"""Slap segmentation against the emulator's truth, and the retry message."""

import numpy as np
import pytest

from fpagent.biometrics import segmentation
from fpagent.drivers.tenprint import platen

CENTRE_PX = 25  # a fingertip is about 220 x 300 px
ANGLE_DEG = 12
SIZE_SHARE = 0.25


def _check_against_truth(slap, result):
    assert result.complete and result.message == ""
    assert [s.finger for s in result.segments] == [b.finger for b in slap.fingers]
    for seg, box in zip(result.segments, slap.fingers):
        assert np.hypot(seg.center[0] - box.center[0], seg.center[1] - box.center[1]) < CENTRE_PX
        assert abs(seg.angle - box.angle) < ANGLE_DEG
        for found, true in zip(seg.size, box.size):
            assert abs(found - true) < SIZE_SHARE * true
        assert seg.quality.score > 30
        assert seg.pixels.shape[0] > seg.pixels.shape[1]  # cut out upright


def test_a_right_hand_slap_is_cut_into_fingers_2_to_5_where_the_generator_put_them():
    slap = platen.slap(0, 0, platen.RIGHT_SLAP)
    _check_against_truth(slap, segmentation.segment_slap(slap.pixels, (2, 3, 4, 5)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_thumbs_are_found_left_thumb_first(seed):
    slap = platen.slap(seed, 0, platen.THUMBS_SLAP)
    _check_against_truth(slap, segmentation.segment_slap(slap.pixels, (1, 6)))


def test_a_missing_thumb_asks_for_a_new_slap():
    slap = platen.slap(0, 0, platen.THUMBS_SLAP, missing=(1,))
    result = segmentation.segment_slap(slap.pixels, (1, 6))
    assert not result.complete and len(result.segments) == 1
    assert result.message == "only 1 thumb found: place both thumbs flat on the glass"


def test_empty_glass_finds_nothing_and_says_so():
    glass = np.full((1500, 1600), 230, np.uint8)
    result = segmentation.segment_slap(glass, (2, 3, 4, 5))
    assert result.segments == ()
    assert result.message == "only 0 fingers found: place all four fingers of the right hand flat on the glass"


@pytest.mark.parametrize("found, expected, message", [
    (3, (2, 3, 4, 5), "only 3 fingers found: place all four fingers of the right hand flat on the glass"),
    (2, (7, 8, 9, 10), "only 2 fingers found: place all four fingers of the left hand flat on the glass"),
    (1, (2, 3, 4), "only 1 finger found: place the right index, right middle and right ring flat on the glass"),
    (4, (2, 3, 4, 5), ""),
])
def test_retry_messages(found, expected, message):
    assert segmentation.retry_message(found, expected) == message


def test_image_order_follows_the_slaps():
    assert segmentation.image_order((5, 2, 4, 3)) == (2, 3, 4, 5)
    assert segmentation.image_order((7, 8, 9, 10)) == (10, 9, 8, 7)
    assert segmentation.image_order((1, 6)) == (6, 1)
    with pytest.raises(ValueError):
        segmentation.image_order((2, 2))
