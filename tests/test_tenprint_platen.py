"""The ten-print platen emulator: slap geometry, truth boxes, rolled prints of the same fingers."""

import numpy as np
import pytest

from fpagent.biometrics.extraction import extract
from fpagent.biometrics.matcher import MATCH_THRESHOLD, compare
from fpagent.drivers.tenprint import platen


def test_a_right_slap_shows_fingers_2_to_5_from_the_left_on_a_3_2_by_3_inch_platen():
    slap = platen.slap(0, 0, platen.RIGHT_SLAP)
    assert slap.pixels.shape == (1500, 1600) and slap.pixels.dtype == np.uint8
    assert [b.finger for b in slap.fingers] == [2, 3, 4, 5]
    xs = [b.center[0] for b in slap.fingers]
    assert xs == sorted(xs)
    for box in slap.fingers:
        x, y = box.center
        assert 0 < x < 1600 and 0 < y < 1500
        assert 150 < box.size[0] < 320 and box.size[1] > box.size[0]  # a fingertip is taller than wide
    # the middle finger reaches highest, the little finger lowest
    tips = {b.finger: b.center[1] for b in slap.fingers}
    assert tips[5] > max(tips[2], tips[3], tips[4])


def test_slaps_are_deterministic_and_differ_between_captures():
    a = platen.slap(0, 0, platen.THUMBS_SLAP)
    b = platen.slap(0, 0, platen.THUMBS_SLAP)
    c = platen.slap(0, 0, platen.THUMBS_SLAP, capture=1)
    assert np.array_equal(a.pixels, b.pixels) and a.fingers == b.fingers
    assert not np.array_equal(a.pixels, c.pixels)
    assert [f.finger for f in a.fingers] == [6, 1]


def test_a_missing_finger_leaves_the_glass_empty_there():
    slap = platen.slap(0, 0, platen.THUMBS_SLAP, missing=(1,))
    assert [b.finger for b in slap.fingers] == [6]


def test_hands_swapped_puts_the_left_hand_on_the_right_hand_slap():
    slap = platen.slap(0, 0, platen.RIGHT_SLAP, hands_swapped=True)
    assert [b.finger for b in slap.fingers] == [10, 9, 8, 7]


def test_a_rolled_print_is_wider_than_the_flat_and_matches_the_same_finger_only():
    roll = platen.rolled(0, 0, 1)
    assert roll.shape == (750, 800)
    inked = np.flatnonzero((roll < 150).any(axis=0))
    slap = platen.slap(0, 0, platen.THUMBS_SLAP)
    thumb = next(b for b in slap.fingers if b.finger == 1)
    assert inked[-1] - inked[0] > 1.15 * thumb.size[0]
    rolled_right = extract(roll).template
    rolled_left = extract(platen.rolled(0, 0, 6)).template
    flat_right = extract(_cut(slap.pixels, thumb)).template
    assert compare(rolled_right, flat_right) > 2 * MATCH_THRESHOLD
    assert compare(rolled_left, flat_right) < MATCH_THRESHOLD


def test_a_swapped_pair_rolls_each_finger_in_the_others_place():
    normal = extract(platen.rolled(0, 0, 6)).template
    swapped = extract(platen.rolled(0, 0, 1, swapped_pair=(1, 6))).template
    assert compare(normal, swapped) > MATCH_THRESHOLD


@pytest.mark.parametrize("bad", [dict(position=12), dict(position=16)])
def test_slap_positions_are_13_14_15(bad):
    with pytest.raises(ValueError):
        platen.slap(0, 0, **bad)


def test_rolled_finger_positions_are_1_to_10():
    with pytest.raises(ValueError):
        platen.rolled(0, 0, 11)


def _cut(pixels, box):
    """The truth box cut out upright (nearest pixel)."""
    a = np.deg2rad(box.angle)
    w, h = int(box.size[0]) + 24, int(box.size[1]) + 24
    v, u = np.mgrid[0:h, 0:w].astype(float)
    u -= (w - 1) / 2
    v -= (h - 1) / 2
    x = np.rint(box.center[0] + u * np.cos(a) - v * np.sin(a)).astype(int).clip(0, pixels.shape[1] - 1)
    y = np.rint(box.center[1] + u * np.sin(a) + v * np.cos(a)).astype(int).clip(0, pixels.shape[0] - 1)
    return pixels[y, x]
