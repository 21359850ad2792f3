"""Templates, match scores and decisions, prefilter scores and WSQ bytes are the
same on every architecture: replayed against what x86-64 recorded
(tests/determinism_reference.py says what and why; scripts/check-arm64
replays it on aarch64)."""

from __future__ import annotations

import json

import pytest

from determinism_reference import REFERENCE, observe


@pytest.fixture(scope="module")
def observed(fingerprints_dir):
    return observe(fingerprints_dir / "fvc2002_db1_b")


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("section", ["templates", "scores", "prefilter", "wsq"])
def test_same_as_recorded_on_x86_64(observed, reference, section):
    got, want = observed[section], reference[section]
    assert sorted(got) == sorted(want), f"{section}: different inputs than recorded"
    differ = {key: (got[key], want[key]) for key in want if got[key] != want[key]}
    assert not differ, f"{section} differ from x86-64 for {len(differ)} of {len(want)}: {differ}"


def test_the_reference_covers_real_and_synthetic_prints_and_both_decisions(reference):
    names = reference["templates"]
    assert any(n.startswith("db1_") for n in names) and any(n.startswith("synthetic_") for n in names)
    decisions = {v["match"] for v in reference["scores"].values()}
    assert decisions == {True, False}, "the replay must cover a match and a non-match"
    assert all(v["minutiae"] >= 12 for v in names.values())
