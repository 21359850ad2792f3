"""The accuracy benchmark's pure parts: FVC pair protocol, EER / FMRx / ZeroFMR, Spearman."""

from __future__ import annotations

import numpy as np
import pytest

from fpagent.bench.accuracy import _zero, eer, fnmr_at_fmr, protocol_pairs, spearman


def test_fvc_protocol_pair_counts():
    names = [f"{f}_{i}.png" for f in range(101, 111) for i in range(1, 9)]
    genuine, fvc, ext = protocol_pairs(names)
    assert len(genuine) == 10 * 28
    assert len(fvc) == 45 and all(a.endswith("_1.png") and b.endswith("_1.png") for a, b in fvc)
    assert len(ext) == 80 * 72 // 2
    assert all(a[:3] != b[:3] for a, b in fvc + ext)
    assert all(a[:3] == b[:3] for a, b in genuine)


def test_eer_of_separable_and_overlapping_scores():
    assert eer([0.9, 0.8, 0.7], [0.1, 0.2, 0.3]) == 0.0
    # one genuine below one impostor out of four each: the curves cross at 25%
    assert eer([0.9, 0.8, 0.7, 0.2], [0.1, 0.15, 0.3, 0.75]) == pytest.approx(0.25)
    # identical distributions: FNMR jumps from 0 to 1 where FMR drops from 1 to 0
    assert eer([0.5] * 4, [0.5] * 4) == pytest.approx(0.5)
    # shifted by one step: the crossing lies between 25% and 50%, reported as its middle
    assert eer([1, 2, 3, 4], [0, 1, 2, 3]) == pytest.approx(0.375)
    assert eer([0.1, 0.2], [0.8, 0.9]) == pytest.approx(1.0)


def test_fnmr_at_fmr_and_resolution_limits():
    genuine = np.linspace(0.5, 1.0, 100)
    impostor = np.linspace(0.0, 0.6, 1000)  # the top 1% of impostors lie above 0.594
    assert fnmr_at_fmr(genuine, impostor, 0.01) == pytest.approx(0.19, abs=0.01)
    assert fnmr_at_fmr(genuine, impostor[:45], 0.01) is None  # 45 impostors can't resolve 1%
    assert fnmr_at_fmr(genuine, impostor[:45], 0.001) is None
    assert _zero(genuine, impostor) == pytest.approx(0.21, abs=0.01)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get average ranks: (0, 1.5, 1.5, 3) against (0, 2, 1, 3) correlate at 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / np.sqrt(10))
    assert spearman([1, 1, 1], [1, 2, 3]) is None
