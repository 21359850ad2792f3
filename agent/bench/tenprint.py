"""`fpagent bench tenprint`: whole ten-print bookings on the emulated scanner, stage by stage.

Each booking is the real flow (fpagent.booking.tenprint on `tenprint://`, one
emulated person per booking): ten rolled fingers through the quality gate and
extraction, the three slaps segmented, the sequence check, then the
transaction built with WSQ (14 images: ten rolled, the two four-finger slaps
and the two plain thumbs cut from the thumb slap). Figures: seconds per stage
and per booking (the WSQ compression of the 14 images is part of the build,
and is also timed on its own); the
slap segments against the generator's truth (centre error, found rate; as
`fpagent bench segmentation` scores them); the sequence check's false alarms
on the clean bookings, its catch rate on the same bookings with two rolled
fingers of one hand swapped (templates swapped, as `fpagent bench sequence`
does) and on whole bookings taken with a swapped pair on the emulator.
"""

from __future__ import annotations

import time

import numpy as np

from fpagent.bench import add_json_flag, emit, progress

# The biometrics (numba kernels) are imported when the benchmark runs, not when
# the command line starts: the service sets numba's cache first.

STAGES = ("capture", "extraction", "segmentation", "sequence check", "transaction build", "wsq")


def _session():
    from fpagent.biometrics import matcher  # noqa: PLC0415
    from fpagent.booking import duplicate_check  # noqa: PLC0415
    from fpagent.booking.session import BookingInfo, BookingSession  # noqa: PLC0415

    info = BookingInfo("BENCH-TENPRINT", "CA0190000", "bench")
    return BookingSession(info, compare=matcher.compare,
                          match_threshold=duplicate_check.DUPLICATE_THRESHOLD)


def _segment_templates(report) -> dict:
    from fpagent.biometrics.extraction import extract  # noqa: PLC0415
    from fpagent.errors import NoUsableFingerprint  # noqa: PLC0415

    out = {}
    for taken in report.slaps.values():
        for seg in taken.segmentation.segments:
            try:
                out[seg.finger] = extract(seg.pixels).template
            except NoUsableFingerprint:
                pass
    return out


def one_booking(seed: int, person: int, swap: str = ""):
    """(session, report, stopped verdict or None, stage seconds) of one whole ten-print booking."""
    from fpagent import hal  # noqa: PLC0415
    from fpagent.booking import tenprint  # noqa: PLC0415
    from fpagent.records import images  # noqa: PLC0415
    from fpagent.records import transaction as tx  # noqa: PLC0415

    session = _session()
    report = tenprint.TenprintReport()
    url = f"tenprint://?seed={seed}&person={person}" + (f"&swap={swap}" if swap else "")
    with hal.open_sensor(url) as sensor:
        try:
            tenprint.run_tenprint(session, sensor, timeout=60.0, report=report)
        except tenprint.SequenceStopped as stopped:
            return session, report, stopped.verdict, dict(report.timings)
    timings = dict(report.timings)
    record = session.to_record(tcn=f"BENCH-{person}", destination="CA0000001")
    t0 = time.perf_counter()
    tx.build_transaction(record)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    for capture in record.fingers:
        if capture.pixels is not None:
            images.compress_image(capture.pixels, capture.ppi, "wsq")
    timings["wsq"] = time.perf_counter() - t0  # part of the build, measured again on its own
    timings["transaction build"] = built
    return session, report, None, timings


def _score_segments(seed: int, person: int, report) -> list[dict]:
    from fpagent.bench.segmentation import score_slap  # noqa: PLC0415
    from fpagent.drivers.tenprint import platen  # noqa: PLC0415 - a driver benchmark measures a driver

    rows = []
    for position, taken in report.slaps.items():
        if taken.below_gate:  # the slap kept may be an earlier capture than the last
            continue
        truth = platen.slap(seed, person, position, taken.attempts - 1).fingers
        rows.extend(score_slap(truth, taken.segmentation))
    return rows


def run(args) -> int:
    from fpagent.bench.segmentation import summarise  # noqa: PLC0415
    from fpagent.biometrics import extraction, sequence  # noqa: PLC0415

    extraction.warm_up()
    rng = np.random.default_rng(args.seed)
    per_stage = {stage: [] for stage in STAGES}
    totals, rows, slaps, complete = [], [], 0, 0
    false_alarms = unconfirmed = pair_caught = 0
    for n in range(args.bookings):
        progress("ten-print bookings", n, args.bookings)
        t0 = time.perf_counter()
        session, report, stopped, timings = one_booking(args.seed, n)
        totals.append(time.perf_counter() - t0)
        for stage in STAGES:
            per_stage[stage].append(timings.get(stage, 0.0))
        verdict = stopped or report.verdict
        false_alarms += verdict.swap_found
        unconfirmed += bool(verdict.unconfirmed)
        rows.extend(_score_segments(args.seed, n, report))
        slaps += len(report.slaps)
        complete += sum(taken.segmentation.complete for taken in report.slaps.values())
        rolled = {c.position: c.template for c in session.captures() if c.template is not None}
        if stopped is None:
            segments = _segment_templates(report)
            hand = (2, 3, 4, 5) if rng.random() < 0.5 else (7, 8, 9, 10)
            a, b = sorted(int(f) for f in rng.choice(hand, size=2, replace=False))
            swapped = dict(rolled)
            swapped[a], swapped[b] = rolled.get(b), rolled.get(a)
            pair_caught += (a, b) in sequence.check_sequence(
                {k: v for k, v in swapped.items() if v is not None}, segments).swapped_pairs
    progress("ten-print bookings", args.bookings, args.bookings)
    whole_caught = 0
    for n in range(args.swapped_bookings):
        progress("swapped bookings", n, args.swapped_bookings)
        hand = (2, 3, 4, 5) if rng.random() < 0.5 else (7, 8, 9, 10)
        a, b = sorted(int(f) for f in rng.choice(hand, size=2, replace=False))
        _s, _r, stopped, _t = one_booking(args.seed, args.bookings + n, swap=f"{a}-{b}")
        whole_caught += stopped is not None and (a, b) in stopped.swapped_pairs
    progress("swapped bookings", args.swapped_bookings, args.swapped_bookings)
    n = max(args.bookings, 1)
    seg = summarise(rows, slaps, complete, [])
    result = dict(
        bookings=args.bookings,
        seconds_per_booking_median=float(np.median(totals)) if totals else float("nan"),
        stage_seconds_median={stage: float(np.median(v)) if v else float("nan") for stage, v in per_stage.items()},
        segmentation=dict(slaps=slaps, complete_share=seg["complete_share"], fingers=seg["fingers"],
                          found_rate=seg["found_share"],
                          centre_px_median=seg["centre_px_median"], centre_px_p90=seg["centre_px_p90"],
                          number_accuracy=seg["number_accuracy"]),
        sequence=dict(false_alarm_rate=false_alarms / n, unconfirmed_rate=unconfirmed / n,
                      pair_catch_rate=pair_caught / n,
                      whole_bookings_swapped=args.swapped_bookings,
                      whole_booking_catch_rate=whole_caught / max(args.swapped_bookings, 1)),
    )
    _print(result, false_alarms, pair_caught, whole_caught, args)
    emit(result, args.json)
    return 0


def _print(result: dict, false_alarms: int, pair_caught: int, whole_caught: int, args) -> None:
    stages = result["stage_seconds_median"]
    print(f"{args.bookings} ten-print bookings on tenprint:// (10 rolled, 3 slaps, 14 images each): "
          f"{result['seconds_per_booking_median']:.1f} s per booking (median)")
    print("  per stage (median s per booking): "
          + ", ".join(f"{stage} {stages[stage]:.2f}" for stage in STAGES[:-1])
          + f" (of which WSQ {stages['wsq']:.2f}); capture is the emulator drawing the images")
    seg = result["segmentation"]
    print(f"  slap segments: {seg['fingers']} fingers, found {100 * seg['found_rate']:.0f}%, centre error "
          f"median {seg['centre_px_median']:.1f} px (p90 {seg['centre_px_p90']:.1f}), finger numbers right "
          f"{100 * seg['number_accuracy']:.0f}%")
    print(f"  sequence check: false alarms {false_alarms}/{args.bookings}; swapped pair (templates) caught "
          f"{pair_caught}/{args.bookings}; whole bookings with a swapped pair stopped naming it "
          f"{whole_caught}/{args.swapped_bookings}")


def register(sub):
    p = sub.add_parser("tenprint", help="whole ten-print bookings on the emulator: time per stage, "
                       "segmentation accuracy, sequence-check catch and false alarms",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--bookings", type=int, default=3, help="clean bookings (one emulated person each)")
    p.add_argument("--swapped-bookings", type=int, default=1,
                   help="whole bookings taken with a swapped pair of fingers")
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=run)
