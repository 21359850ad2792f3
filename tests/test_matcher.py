"""1:1 matcher: kernels against their numpy references, symmetry, invariance, separation on real prints."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fpagent.biometrics import matcher
from fpagent.biometrics.match_kernels import match_edges, match_pairing, match_score
from fpagent.biometrics.template import MINUTIA_DTYPE, Template

from fpagent.devtools import nbis as nbis_ref  # noqa: E402
from nbis_required import nbis_or_skip  # noqa: E402

nbis_or_skip("the real-print minutiae of these tests (NBIS mindtct)")

NAMES = ("101_1", "101_2", "101_3", "101_4", "102_1", "102_2", "103_1", "104_1", "105_1", "106_1")


@pytest.fixture(scope="module")
def real(fingerprints_dir):
    """NBIS mindtct templates of a few DB1 and DB3 prints (the matcher's input, not ours to test)."""
    from PIL import Image

    out = {}
    for db in ("fvc2002_db1_b", "fvc2002_db3_b"):
        for n in NAMES:
            path = fingerprints_dir / db / f"{n}.png"
            with Image.open(path) as im:
                w, h = im.size
            out[(db, n)] = nbis_ref.to_template(nbis_ref.extract(path), w, h)
    return out


def _transform(t: Template, angle: float, shift=(0.0, 0.0), canvas=(700, 700)) -> Template:
    """Rotate a template by `angle` (counter-clockwise as seen, y down) about its centre, move it."""
    m = t.minutiae.copy()
    cx, cy = t.width / 2, t.height / 2
    dx, dy = m["x"] - cx, m["y"] - cy
    c, s = math.cos(angle), math.sin(angle)
    # counter-clockwise as seen with y down: y' = -(sin * dx) + cos * dy ...
    m["x"] = c * dx + s * dy + canvas[0] / 2 + shift[0]
    m["y"] = -s * dx + c * dy + canvas[1] / 2 + shift[1]
    m["angle"] = np.mod(m["angle"] + angle, 2 * math.pi)
    return Template(m, width=canvas[0], height=canvas[1], ppi=t.ppi)


def test_self_match_scores_one_and_rotated_self_near_one(real):
    t = real[("fvc2002_db1_b", "101_1")]
    self_score = matcher.compare(t, t)
    # every minutia paired; only the few-minutiae damping keeps it below 1
    assert self_score == pytest.approx(1.0 - math.exp(-len(t) / matcher.PARAMS[12]), rel=1e-4)
    for angle in (0.3, 1.2, math.pi, 5.0):
        assert matcher.compare(t, _transform(t, angle, (17, -23))) > 0.9 * self_score


def test_rotation_and_translation_barely_move_a_genuine_score(real):
    a = real[("fvc2002_db1_b", "101_1")]
    b = real[("fvc2002_db1_b", "101_2")]
    base = matcher.compare(a, b)
    assert base >= matcher.MATCH_THRESHOLD
    for angle, shift in ((0.5, (30, 10)), (2.5, (-40, 25)), (4.0, (0, 0))):
        moved = matcher.compare(a, _transform(b, angle, shift))
        assert moved >= matcher.MATCH_THRESHOLD
        assert abs(moved - base) < 0.15


def test_compare_is_symmetric(real):
    keys = list(real)[:8]
    for a, b in itertools.combinations(keys, 2):
        assert matcher.compare(real[a], real[b]) == matcher.compare(real[b], real[a])


def test_genuine_pairs_score_above_impostor_pairs(real):
    genuine, impostor = [], []
    for (da, na), (db, nb) in itertools.combinations(real, 2):
        if da != db:
            continue  # never pair across databases
        s = matcher.compare(real[(da, na)], real[(db, nb)])
        (genuine if na[:3] == nb[:3] else impostor).append(s)
    assert len(genuine) == 2 * 7 and len(impostor) > 50
    # loose sanity bound; accuracy figures are `fpagent bench accuracy`'s job
    assert np.median(genuine) > np.max(impostor)
    assert np.mean(np.array(genuine) >= matcher.MATCH_THRESHOLD) >= 0.7
    assert np.mean(np.array(impostor) >= matcher.MATCH_THRESHOLD) <= 0.02


def test_tiny_and_empty_templates_score_zero():
    empty = Template(np.zeros(0, MINUTIA_DTYPE), 256, 288)
    one = Template(np.array([(10, 10, 1.0, 1, 50)], MINUTIA_DTYPE), 256, 288)
    assert matcher.compare(empty, empty) == 0.0
    assert matcher.compare(empty, one) == 0.0 == matcher.compare(one, one)


def test_a_record_with_the_most_minutiae_is_capped_before_its_edges_are_built():
    """Edges keep minutia indexes in a byte: a 255-minutia record (the ISO maximum) is cut
    to MAX_MINUTIAE first, and more than that never reaches the edge builder."""
    rng = np.random.default_rng(7)
    m = np.zeros(255, MINUTIA_DTYPE)
    m["x"], m["y"] = rng.uniform(0, 255, 255), rng.uniform(0, 287, 255)
    m["angle"], m["kind"], m["quality"] = rng.uniform(0, 2 * math.pi, 255), 1, rng.integers(0, 100, 255)
    t = Template(m, 256, 288)
    p = matcher.prepare(t)
    assert len(p.x) == matcher.MAX_MINUTIAE
    assert matcher.compare_prepared(p, p) > 0.99
    with pytest.raises(ValueError, match="at most"):
        matcher.from_minutiae(np.zeros((3, matcher.MAX_MINUTIAE + 1), np.float32), p.grid, p.key)


def test_non_finite_minutiae_are_ignored(real):
    a = real[("fvc2002_db1_b", "101_1")]
    m = np.concatenate([a.minutiae, np.array([(np.nan, 5, 1.0, 1, 0), (5, np.inf, 1.0, 1, 0)],
                                             MINUTIA_DTYPE)])
    assert matcher.compare(a, Template(m, a.width, a.height)) == matcher.compare(a, a)


def test_resolution_is_normalised(real):
    a = real[("fvc2002_db1_b", "101_1")]
    m = a.minutiae.copy()
    m["x"] *= 2
    m["y"] *= 2
    a1000 = Template(m, width=a.width * 2, height=a.height * 2, ppi=1000)
    assert matcher.compare(a, a1000) > 0.95 * matcher.compare(a, a)


def test_prepared_path_equals_compare(real):
    a, b = real[("fvc2002_db3_b", "101_1")], real[("fvc2002_db3_b", "101_3")]
    assert matcher.compare_prepared(matcher.prepare(a), matcher.prepare(b)) == matcher.compare(a, b)


def test_warm_up_runs():
    matcher.warm_up()


# ------------------------------------------------------------------ kernels vs references


def _prepared_pairs(real):
    keys = [("fvc2002_db1_b", "101_1"), ("fvc2002_db1_b", "101_2"), ("fvc2002_db1_b", "104_1"),
            ("fvc2002_db3_b", "102_1"), ("fvc2002_db3_b", "102_2")]
    p = {k: matcher.prepare(real[k]) for k in keys}
    return [(p[a], p[b]) for a, b in itertools.permutations(keys, 2)]


def test_edge_votes_kernel_matches_reference(real):
    prm = matcher.PARAMS
    for pa, pb in _prepared_pairs(real):
        args = (pa.e_len, pa.e_i, pa.e_j, pa.e_ai, pa.e_aj, pa.e_dir,
                pb.e_len, pb.e_i, pb.e_j, pb.e_ai, pb.e_aj, pb.e_dir, pb.e_bucket_start,
                len(pa), len(pb), prm[0], prm[1], prm[2],
                prm[match_score.P_EDGE_LEN_BIN], int(prm[match_score.P_EDGE_LEN_BINS]))
        got = match_edges.edge_votes(*args)
        want = match_edges.edge_votes_reference(*args)
        assert want[0].sum() > 0
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-3)


def test_pairing_kernel_matches_reference(real):
    prm = matcher.PARAMS
    rng = np.random.default_rng(5)
    for pa, pb in _prepared_pairs(real):
        for _ in range(3):
            i, k = rng.integers(len(pa)), rng.integers(len(pb))
            rot = float(rng.uniform(0, 2 * math.pi))
            common = (pa.x, pa.y, pa.th, pb.x, pb.y, pb.th, pa.x[i], pa.y[i], pb.x[k], pb.y[k], rot,
                      prm[3], prm[4], prm[5], prm[6], pa.grid, pb.grid, prm[9])
            out_a = np.empty(len(pa), np.int32)
            out_b = np.empty(len(pa), np.int32)
            m, oa, ob, cl = match_pairing.pair_under_alignment(*common, out_a, out_b)
            rm, roa, rob, rcl, pairs = match_pairing.pair_under_alignment_reference(*common)
            assert (m, oa, ob) == (rm, roa, rob)
            assert cl == pytest.approx(rcl, rel=1e-4, abs=1e-4)
            assert sorted(zip(out_a[:m].tolist(), out_b[:m].tolist())) == sorted(
                (int(x), int(y)) for x, y in pairs)


def test_whole_kernel_matches_a_numpy_composition(real):
    """match_prepared's anchor search and refit, recomputed with the numpy references."""
    prm = matcher.PARAMS
    wants = []
    for pa, pb in _prepared_pairs(real)[:6]:
        got, details = match_score.match_prepared(*pa.args, *pb.args, prm)
        want = match_score.match_prepared_reference(*pa.args, *pb.args, prm)
        assert got == pytest.approx(want, rel=1e-3, abs=1e-3)
        assert match_score.similarity(*pa.args, *pb.args, prm) == got
        wants.append(want)
    assert max(wants) > 0.1  # a genuine pair among them: the comparison is not all zeros
