"""The synthetic fingerprint generator: determinism, the orientation model,
the ridge pattern, and that impressions of one finger match each other (and
not other fingers) under a real extractor and matcher (NIST NBIS)."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest

from fpagent.drivers.synthetic import generator as g
from nbis_required import nbis_or_skip


# --- API, determinism ---------------------------------------------------------


def test_finger_image_shape_dtype_and_default_size():
    img = g.finger_image(2, 1, 0, seed=1)
    assert img.shape == (288, 256)
    assert img.dtype == np.uint8
    # dark ridges on a light background: the border (glass) is light, the
    # middle holds both dark ridges and light valleys
    assert np.median(img[:4, :]) > 150 or np.median(img[:, :4]) > 150
    centre = img[100:190, 80:180]
    assert centre.min() < 90 and centre.max() > 150


@pytest.mark.parametrize("size", [(400, 400), (64, 48), (300, 300)])
def test_other_sizes(size):
    img = g.finger_image(2, 1, 0, seed=1, size=size)
    assert img.shape == size and img.dtype == np.uint8


def test_same_arguments_same_image_even_after_the_cache_is_dropped():
    a = g.finger_image(2, 1, 3, seed=1)
    g.master_finger.cache_clear()
    b = g.finger_image(2, 1, 3, seed=1)
    assert np.array_equal(a, b)


def test_impressions_share_one_master_and_differ():
    m = g.master_finger(2, 1, 1)
    assert g.master_finger(2, 1, 1) is m  # cached: ten impressions, one master
    with pytest.raises(ValueError):  # and shared, so read-only
        m.ridges[0, 0] = 0.5
    a, b = g.finger_image(2, 1, 0, seed=1), g.finger_image(2, 1, 1, seed=1)
    assert np.mean(a != b) > 0.5
    assert np.array_equal(g.impression_of(m, 1), b)


def test_different_person_finger_or_seed_give_different_masters():
    base = g.master_finger(2, 1, 1)
    for other in (g.master_finger(3, 1, 1), g.master_finger(2, 3, 1), g.master_finger(2, 1, 2)):
        assert other is not base
        assert not np.array_equal(other.ridges, base.ridges)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(person=-1, finger=1, impression=0),
        dict(person=1, finger=-2, impression=0),
        dict(person=1, finger=1, impression=-1),
        dict(person=1, finger=1, impression=0, seed=-5),
        dict(person=1.5, finger=1, impression=0),
        dict(person=1, finger=1, impression=0, size=(5, 5)),
        dict(person=1, finger=1, impression=0, size="big"),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs):
    with pytest.raises(ValueError):
        g.finger_image(**kwargs)


# --- orientation model ---------------------------------------------------------


def test_sherlock_monro_against_hand_computed_values():
    # one core at (5, 5) above one delta at (5, 15) (x, y; y down)
    field = g.orientation_field((21, 21), cores=[(5, 5)], deltas=[(5, 15)])
    # right of the core: arg(z-c) = 0, arg(z-d) = atan2(-10, 10) = -pi/4
    assert field[5, 15] == pytest.approx(np.pi / 8)
    # straight above both: arg(z-c) = arg(z-d) = -pi/2 -> horizontal ridges
    assert min(field[0, 5], np.pi - field[0, 5]) == pytest.approx(0.0, abs=1e-12)
    # between core and delta: +pi/2 - (-pi/2), halved -> vertical ridges
    assert field[10, 5] == pytest.approx(np.pi / 2)
    # theta_inf rotates everything
    turned = g.orientation_field((21, 21), [(5, 5)], [(5, 15)], theta_inf=0.3)
    assert turned[5, 15] == pytest.approx(np.pi / 8 + 0.3)


def _winding(field: np.ndarray, cx: int, cy: int, r: int) -> float:
    """Total turn of the doubled orientation angle along a square loop."""
    path = (
        [(cx - r + k, cy - r) for k in range(2 * r)]
        + [(cx + r, cy - r + k) for k in range(2 * r)]
        + [(cx + r - k, cy + r) for k in range(2 * r)]
        + [(cx - r, cy + r - k) for k in range(2 * r)]
    )
    doubled = np.array([2 * field[y, x] for x, y in path + path[:1]])
    steps = np.angle(np.exp(1j * np.diff(doubled)))
    return float(steps.sum())


def test_core_and_delta_have_the_right_poincare_index_with_corrections():
    rng = np.random.default_rng(0)
    field = g.orientation_field(
        (60, 60),
        cores=[(20, 20)],
        deltas=[(40, 40)],
        core_corrections=[rng.uniform(-0.3, 0.3, 8)],
        delta_corrections=[rng.uniform(-0.3, 0.3, 8)],
    )
    # doubled angle turns +2pi around a core, -2pi around a delta (index +-1/2)
    assert _winding(field, 20, 20, 6) == pytest.approx(2 * np.pi, abs=1e-6)
    assert _winding(field, 40, 40, 6) == pytest.approx(-2 * np.pi, abs=1e-6)
    assert _winding(field, 10, 45, 5) == pytest.approx(0.0, abs=1e-6)


def test_zero_correction_is_the_plain_model():
    plain = g.orientation_field((30, 30), [(10, 10)], [(20, 25)])
    zero = g.orientation_field(
        (30, 30), [(10, 10)], [(20, 25)], core_corrections=[np.zeros(8)], delta_corrections=[np.zeros(8)]
    )
    assert np.allclose(plain, zero)


def test_ridge_conserving_spacing_widens_along_spokes_and_not_around_circles():
    y, x = np.mgrid[0:256, 0:256].astype(float)
    spokes = np.mod(np.arctan2(y - 128, x - 128), np.pi)  # ridges radiate: spacing grows ~ r
    circles = np.mod(spokes + np.pi / 2, np.pi)  # concentric ridges: spacing constant
    phi = g.flux_log_spacing(spokes)
    outward = [phi[128, 128 + r] for r in (40, 60, 80, 100, 120)]
    assert np.all(np.diff(outward) > 0)
    assert outward[-1] - outward[0] > 0.4  # ideal ln(120/40) = 1.1; smoothing takes some
    assert abs(phi[128 + 80, 128] - phi[128, 128 + 80]) < 0.05  # same radius, same spacing
    flat = g.flux_log_spacing(circles)[48:208, 48:208]
    assert flat.max() - flat.min() < 0.15  # (spokes span about 1.0 here)


def test_loops_open_towards_the_little_finger_on_each_hand():
    right, left = g.class_frequencies(2), g.class_frequencies(7)
    i_left, i_right = g.PATTERN_CLASSES.index("left_loop"), g.PATTERN_CLASSES.index("right_loop")
    assert right[i_right] > 3 * right[i_left] and left[i_left] > 3 * left[i_right]
    for p in (right, left, g.class_frequencies(None)):
        assert p.sum() == pytest.approx(1.0)
        assert p[g.PATTERN_CLASSES.index("whorl")] == pytest.approx(0.279, abs=1e-3)


def test_pattern_classes_follow_population_frequencies():
    rng = np.random.default_rng(7)
    draws = [g.choose_pattern(rng) for _ in range(4000)]
    for name, p in zip(g.PATTERN_CLASSES, g.CLASS_FREQUENCIES):
        assert draws.count(name) / len(draws) == pytest.approx(p, abs=0.03)


# --- ridge pattern ---------------------------------------------------------------


def test_master_ridges_are_binarised_balanced_and_about_9px_apart():
    m = g.master_finger(2, 1, 1)
    inside = m.ridges[m.mask]
    assert np.mean(np.abs(inside) > 0.8) > 0.6  # grown to full contrast
    assert 0.35 < np.mean(inside > 0) < 0.65  # as much ridge as valley
    # ridge period from the spectrum of a central block
    cx, cy = (int(v) for v in m.center)
    block = m.ridges[cy - 32 : cy + 32, cx - 32 : cx + 32]
    spectrum = np.abs(np.fft.fft2(block - block.mean()))
    fy, fx = np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij")
    k = np.unravel_index(np.argmax(spectrum), spectrum.shape)
    period = 1.0 / np.hypot(fy[k], fx[k])
    assert 7.0 < period < 11.5


def test_contextual_filter_keeps_an_ideal_ridge_pattern():
    # a cosine ridge pattern along the field is (nearly) an eigenfunction of
    # the contextual filter: filtering it must not change its phase
    shape = (96, 96)
    y, x = np.mgrid[0:96, 0:96].astype(float)
    theta = np.full(shape, np.pi / 6)
    period = np.full(shape, 9.0, np.float32)
    normal = -x * np.sin(np.pi / 6) + y * np.cos(np.pi / 6)
    pattern = np.cos(2 * np.pi * normal / 9.0).astype(np.float32)
    terms = g._bank_weights(theta, period)
    out = g.contextual_filter(pattern, terms, g._gabor_bank(shape))
    corr = np.corrcoef(out[16:-16, 16:-16].ravel(), pattern[16:-16, 16:-16].ravel())[0, 1]
    assert corr > 0.95


# --- genuine vs impostor with a real extractor and matcher ---------------------


@pytest.fixture(scope="module")
def nbis_templates():
    nbis = nbis_or_skip("NIST's mindtct + bozorth3 as an independent judge of the prints")
    from PIL import Image

    extractor = nbis.new_nbis_extractor(
        nbis.NbisExtractorSettings(
            min_quality=0.0, get_center=False, check_fingerprint=False, compute_nfiq2=False, ppi=500.0
        )
    )

    def png(pixels):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        return buf.getvalue()

    return {
        (finger, imp): extractor.extract_minutiae(png(g.finger_image(2, finger, imp, seed=1)))
        for finger in (1, 3, 5)
        for imp in (0, 1, 2)
    }


def test_nbis_finds_a_realistic_number_of_minutiae(nbis_templates):
    counts = [len(t.get()) for t in nbis_templates.values()]
    assert all(15 <= c <= 100 for c in counts), counts


def test_impressions_of_one_finger_match_and_other_fingers_do_not(nbis_templates):
    keys = sorted(nbis_templates)
    genuine, impostor = [], []
    for a, b in itertools.combinations(keys, 2):
        score = nbis_templates[a].compare(nbis_templates[b])
        (genuine if a[0] == b[0] else impostor).append(score)
    assert min(genuine) > 40, genuine
    assert np.median(impostor) < 20, impostor
    assert min(genuine) > max(impostor), (genuine, impostor)
