"""`fpagent bench sequence`: how often the sequence check catches swaps, and how often it cries wolf.

Why: a swap that slips through files a person's fingers under the wrong
positions; a false alarm sends the officer to re-roll good fingers. Over many
emulated persons (fpagent.drivers.tenprint.platen) each ten-print is checked
as captured (any alarm is a false alarm), with one random pair of rolled
fingers of the same hand in each other's place (caught when that pair is
named), and with the wrong hand put on the glass for both four-finger slaps
(caught when reported as swapped slaps). Slaps go through the on-device
segmentation, so its errors count too.
"""

from __future__ import annotations

import time

import numpy as np

from fpagent.bench import add_json_flag, emit, progress
from fpagent.errors import NoUsableFingerprint

# The biometrics (numba kernels) are imported when the benchmark runs, not when
# the command line starts: the service sets numba's cache first.


def _segment_templates(platen, seed, person, hands_swapped=False) -> dict:
    from fpagent.biometrics import segmentation  # noqa: PLC0415
    from fpagent.biometrics.extraction import extract  # noqa: PLC0415

    out = {}
    for position in (platen.RIGHT_SLAP, platen.LEFT_SLAP, platen.THUMBS_SLAP):
        slap = platen.slap(seed, person, position, hands_swapped=hands_swapped)
        result = segmentation.segment_slap(slap.pixels, platen.SLAP_FINGERS[position])
        for seg in result.segments:
            try:
                out[seg.finger] = extract(seg.pixels).template
            except NoUsableFingerprint:
                pass
    return out


def _rolled_templates(platen, seed, person) -> dict:
    from fpagent.biometrics.extraction import extract  # noqa: PLC0415

    out = {}
    for finger in range(1, 11):
        try:
            out[finger] = extract(platen.rolled(seed, person, finger)).template
        except NoUsableFingerprint:
            pass
    return out


def run(args) -> int:
    from fpagent.biometrics import sequence  # noqa: PLC0415
    from fpagent.drivers.tenprint import platen  # noqa: PLC0415 - a driver benchmark measures a driver

    rng = np.random.default_rng(args.seed)
    clean_alarms = clean_unconfirmed = pair_caught = hands_caught = 0
    pair_named_wrong = 0
    seconds = []
    for person in range(args.persons):
        progress("persons", person, args.persons)
        rolled = _rolled_templates(platen, args.seed, person)
        segments = _segment_templates(platen, args.seed, person)
        t0 = time.perf_counter()
        clean = sequence.check_sequence(rolled, segments)
        seconds.append(time.perf_counter() - t0)
        clean_alarms += clean.swap_found
        clean_unconfirmed += bool(clean.unconfirmed)
        hand = (2, 3, 4, 5) if rng.random() < 0.5 else (7, 8, 9, 10)
        a, b = sorted(int(f) for f in rng.choice(hand, size=2, replace=False))
        swapped = dict(rolled)
        if a in rolled and b in rolled:
            swapped[a], swapped[b] = rolled[b], rolled[a]
        verdict = sequence.check_sequence(swapped, segments)
        pair_caught += (a, b) in verdict.swapped_pairs
        pair_named_wrong += verdict.swap_found and (a, b) not in verdict.swapped_pairs
        wrong_hand = _segment_templates(platen, args.seed, person, hands_swapped=True)
        hands_caught += sequence.check_sequence(rolled, wrong_hand).hands_swapped == "slaps"
    progress("persons", args.persons, args.persons)
    n = max(args.persons, 1)
    result = dict(
        persons=args.persons, false_alarm_rate=clean_alarms / n,
        unconfirmed_rate=clean_unconfirmed / n, pair_catch_rate=pair_caught / n,
        pair_misnamed_rate=pair_named_wrong / n, hand_swap_catch_rate=hands_caught / n,
        check_ms_median=1000 * float(np.median(seconds)) if seconds else float("nan"),
    )
    print(f"{args.persons} emulated persons: false alarms {clean_alarms}/{n}, unconfirmed fingers "
          f"in {clean_unconfirmed}/{n}; swapped pair caught {pair_caught}/{n} "
          f"(caught but misnamed {pair_named_wrong}); wrong hand on the glass caught {hands_caught}/{n}; "
          f"check {result['check_ms_median']:.0f} ms")
    emit(result, args.json)
    return 0


def register(sub):
    p = sub.add_parser("sequence", help="sequence check catch and false-alarm rates (emulated persons)",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--persons", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=run)
