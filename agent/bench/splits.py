"""Which images the constants were tuned on, and which only check them.

The extractor's and matcher's constants, MATCH_THRESHOLD, the prefilter
descriptor and the quality score's weights were tuned on FVC2002 DB1_B (the
tuning split); DUPLICATE_THRESHOLD is where the tails of the
different-finger scores of DB1_B and of the generator's seed-0 prints give 1
false prompt in 1,000 ten-prints (the higher of the two), the other sets and
seeds confirm it. DB3_B (real, capacitive), DB4_B (SFinGe, synthetic) and
the project's own generated prints (but seed 0 for the duplicate check) are
validation: figures on them are out of sample. A set derived from a shared
one (resampled, cropped, padded, faint, dry: fpagent.bench.derived) takes
its source's split: the extractor's edge handling was tuned on DB1_B's
padded and cropped copies too. A figure is quoted with its split, never
pooled across sets.

Earlier constants (before this split was declared) were fitted on DB1_B and
DB3_B together, so DB3_B is validation only for what is tuned from now on;
`split_of` says so in its label.
"""

from __future__ import annotations

TUNING = "tuning"
VALIDATION = "validation"

# folder name (as in ../shared/data/fingerprints/INDEX.tsv) -> split
SPLITS = {
    "fvc2002_db1_b": TUNING,
    "fvc2002_db3_b": VALIDATION,
    "fvc2002_db4_b": VALIDATION,
}

# what a reader must know about a validation set that earlier work looked at
CAVEATS = {
    "fvc2002_db3_b": "MATCH_THRESHOLD was first fitted on DB1_B + DB3_B",
}


def split_of(name: str) -> str:
    """TUNING or VALIDATION for a data set name; unknown sets are validation.

    A derived set is named after its source with a suffix (`fvc2002_db1_b@resample569`)
    and takes the source's split: constants tuned on a set may have been tuned on
    its derived copies too, so those are never out of sample.
    """
    return SPLITS.get(name.split("@", 1)[0], VALIDATION)


def label(name: str) -> str:
    """'tuning' / 'validation' plus the caveat, for the bench's printed lines."""
    text = split_of(name)
    base = name.split("@", 1)[0]
    if "@" in name:
        text += f" (derived from {base}, a {split_of(base)} set)"
    if name in CAVEATS:
        text += f"; note: {CAVEATS[name]}"
    return text


def tuning_sets() -> list[str]:
    return sorted(n for n, s in SPLITS.items() if s == TUNING)


def validation_sets() -> list[str]:
    return sorted(n for n, s in SPLITS.items() if s == VALIDATION)
