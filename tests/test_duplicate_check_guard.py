"""Guard of the duplicate-finger check's claims on the shared sets.

Fails when ten-prints of ten different fingers get a false "this looks like
the right index again" in more than 0.5% of bookings on any shared set, or
when it catches fewer same-finger pairs than it did when it was set, or when
the tail of different-finger scores no longer puts 1 in 1,000 ten-prints
below DUPLICATE_THRESHOLD (on the tuning set it was set from, and on the
validation sets that confirmed it). Templates are
computed once per image (80 per set) and every pair is scored once; the
ten-prints are a seeded sample of the impression combinations
(fpagent.bench.duplicates). Skips only when the shared data is absent.
"""

from __future__ import annotations

import pytest

from fpagent.bench import duplicates
from fpagent.booking.duplicate_check import DUPLICATE_THRESHOLD

FALSE_PROMPT_LIMIT = 0.005
# same-finger pairs caught at DUPLICATE_THRESHOLD, a point or more under what was last measured
# (96.4%, 71.4%, 88.6%): FVC volunteers varied placement and pressure on purpose, and the small
# capacitive DB3_B prints overlap little, so these are far from the 99% goal (see duplicate_check)
CATCH_FLOORS = {"fvc2002_db1_b": 0.95, "fvc2002_db3_b": 0.70, "fvc2002_db4_b": 0.87}
SETS = tuple(CATCH_FLOORS)


@pytest.fixture(scope="module")
def scored_sets(fingerprints_dir):
    return {s: duplicates.score_set(s, duplicates.templates_of_folder(fingerprints_dir / s))
            for s in SETS}


@pytest.mark.parametrize("name", SETS)
def test_false_prompt_rate_of_ten_prints_stays_below_limit(scored_sets, name):
    s = scored_sets[name]
    assert len(s.finger) == 80 and len(set(s.finger)) == 10
    tenprints = s.tenprints(samples=20_000, seed=0)
    assert tenprints.shape == (20_000, 10)
    r = duplicates.rates(s, DUPLICATE_THRESHOLD, duplicates.tenprint_max_scores(s.scores, tenprints))
    assert r["impostor_pairs"] == 2880
    assert r["false_prompt_rate"] <= FALSE_PROMPT_LIMIT, r
    assert r["catch_rate"] >= CATCH_FLOORS[name], r


@pytest.mark.parametrize("name", SETS)
def test_extrapolated_false_prompts_stay_below_the_goal_at_the_threshold(scored_sets, name):
    """The exponential tail of each set's different-finger scores reaches the per-pair rate of
    1 in 1,000 ten-prints at or below DUPLICATE_THRESHOLD (DB1_B and generated prints set it;
    DB3_B and DB4_B confirm it)."""
    s = scored_sets[name]
    assert duplicates.tail_threshold(s.impostor_within_person()) <= DUPLICATE_THRESHOLD


def test_the_old_rule_would_fail_the_guard_so_the_guard_can_fail(scored_sets):
    """At the 1:1 MATCH_THRESHOLD the same measure exceeds the limit on some set."""
    from fpagent.biometrics import matcher

    worst = 0.0
    for s in scored_sets.values():
        m = duplicates.tenprint_max_scores(s.scores, s.tenprints(samples=20_000, seed=0))
        worst = max(worst, duplicates.rates(s, matcher.MATCH_THRESHOLD, m)["false_prompt_rate"])
    assert worst > FALSE_PROMPT_LIMIT


def test_tenprint_sampling_and_calibration_core():
    """Pure core on a made-up set: two persons of ten fingers, two impressions each."""
    import numpy as np

    finger = [f"{p}/{f}" for p in range(2) for f in range(10) for _ in range(2)]
    person = [p for p in range(2) for _ in range(20)]
    n = len(finger)
    scores = np.full((n, n), 0.01)
    scores[0, 2] = scores[2, 0] = 0.5  # impression 0 of finger 0 looks like impression 0 of finger 1
    s = duplicates.ScoredSet("made-up", scores, finger, person)
    rows = s.tenprints(samples=10_000, seed=1)
    assert rows.shape == (2 * 1024, 10)  # every combination: 2^10 per person
    assert all(len({finger[i] for i in r}) == 10 and len({person[i] for i in r}) == 1 for r in rows)
    m = duplicates.tenprint_max_scores(scores, rows)
    r = duplicates.rates(s, 0.3, m)
    assert r["false_prompts"] == 256  # both fingers on impression 0: a quarter of person 0's ten-prints
    assert r["impostor_pairs_at_or_above"] == 1 and r["caught"] == 0
    assert r["different_finger_pairs"] == 2 * 180 + 20 * 20  # within each person, then across
    assert r["different_finger_pairs_at_or_above"] == 1
    import itertools

    pairs = list(itertools.combinations(range(n), 2))
    assert s.genuine().tolist() == [scores[i, j] for i, j in pairs if finger[i] == finger[j]]
    assert len(s.impostor_within_person()) == 2 * 180
    scores[0, 39] = scores[39, 0] = 0.7  # two persons' fingers alike: not in any ten-print
    assert duplicates.rates(s, 0.6, m)["different_finger_pairs_at_or_above"] == 1
    assert duplicates.rates(s, 0.6, m)["impostor_pairs_at_or_above"] == 0
    assert duplicates.smallest_threshold_meeting([m], goal=0.0) > 0.5
    assert duplicates.smallest_threshold_meeting([m], goal=0.2) > 0.01


def test_tail_threshold_extrapolates_an_exponential_tail():
    """On scores drawn from an exponential the fit finds the quantile the per-pair rate asks for."""
    import numpy as np

    rate = duplicates.per_pair_rate()
    assert 1.0 - (1.0 - rate) ** 45 == pytest.approx(duplicates.FALSE_PROMPT_GOAL)
    assert 2.1e-5 < rate < 2.3e-5
    scale = 0.01
    scores = np.random.default_rng(3).exponential(scale, 200_000)
    expected = -scale * np.log(rate)  # P(score > t) = exp(-t / scale) = rate
    assert duplicates.tail_threshold(scores) == pytest.approx(expected, rel=0.03)
    # a stricter goal asks for a higher score; a heavier tail too
    assert duplicates.tail_threshold(scores, goal=1e-4) > duplicates.tail_threshold(scores)
    assert duplicates.tail_threshold(scores * 2) > duplicates.tail_threshold(scores)
