"""`fpagent bench duplicates`: how often the booking's duplicate-finger check prompts wrongly, how often it catches.

A booking compares each new print with the fingers already taken: 45
comparisons per ten-print. The check (fpagent.booking.duplicate_check)
prompts when one of them reaches DUPLICATE_THRESHOLD. Two figures decide
the threshold, per set (never pooled):

- false prompts: the share of ten-prints of ten different fingers that get
  at least one prompt (goal: at most 1 in 1,000). A "person" is ten
  different fingers of one set, one impression each: FVC2002 B sets hold
  exactly ten fingers, so each combination of impressions is one
  pseudo-person (8^10 of them; a seeded sample is scored, and the exact
  figure over all distinct impostor pairs is given beside it); the
  synthetic generator's persons give ten real fingers each, and its pairs
  of different fingers across persons (702,000 with 40 persons) resolve a
  rate per pair near the goal's 2.2e-5, which no FVC set can.
- catches: the share of same-finger pairs (two impressions of one finger,
  as when the officer presents a finger again) scoring at or above the
  threshold (goal: at least 99%).

An FVC set holds 2,880 different-finger pairs and each one sits in 1/64 of
the sampled ten-prints, so a sample cannot show a rate of 1 in 1,000: one
pair above the threshold already prompts 1.6% of them. The bench therefore
also extrapolates each set's different-finger tail (an exponential fit of
its highest tenth) to the per-pair rate that gives 1 in 1,000 ten-prints,
and gives the catch rate at that score: the best trade-off a fixed
threshold reaches on that set. DUPLICATE_THRESHOLD is the highest tail
threshold of the tuning sets (DB1_B, and the generator's prints of seed
TUNING_SEED), rounded up; the other sets (DB3_B, DB4_B, other seeds)
validate it.

The figures are printed for DUPLICATE_THRESHOLD (this rule), for the
previous threshold, for MATCH_THRESHOLD and for a sweep of thresholds, with
each set's tuning/validation split. Templates are computed once per image;
scoring is the matcher's.
"""

from __future__ import annotations

import itertools
import os
import pathlib
from typing import Optional

import numpy as np

from fpagent.bench import add_json_flag, emit, progress

FALSE_PROMPT_GOAL = 0.001
CATCH_GOAL = 0.99
COMPARISONS = 45  # pairs of fingers in a ten-print
TAIL_FRACTION = 0.10  # the share of highest different-finger scores the tail fit uses
PREVIOUS_THRESHOLD = 0.136  # the rule before this one (DB1_B's tail alone), printed beside it
TUNING_SEED = 0  # generated prints of this seed are a tuning set; every other seed validates
SWEEP = (0.095, 0.11, 0.12, 0.13, 0.14, 0.15, 0.18, 0.20, 0.25)


def register(sub):
    p = sub.add_parser("duplicates", help="false-prompt and catch rates of the duplicate-finger check",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("dirs", nargs="*", metavar="DIR",
                   help="folders of NNN_I.png images, ten fingers each (default: the shared "
                        "FVC2002 B sets)")
    p.add_argument("--persons", type=int, default=40,
                   help="synthetic persons (ten fingers each; 0 = none), default 40")
    p.add_argument("--impressions", type=int, default=3, help="impressions per synthetic finger")
    p.add_argument("--seed", type=int, default=0, help="generator and sampling seed")
    p.add_argument("--samples", type=int, default=100_000,
                   help="ten-prints sampled per set from the impression combinations")
    add_json_flag(p)
    p.set_defaults(func=run)


# ------------------------------------------------------------------ pure core


class ScoredSet:
    """All-pairs scores of one set: `scores[i, j]` for images i, j; `finger[i]` and `person[i]`
    say whose image i is (a person holds ten different fingers)."""

    def __init__(self, name: str, scores: np.ndarray, finger: list, person: list):
        self.name = name
        self.scores = np.asarray(scores, dtype=np.float64)
        self.finger = list(finger)
        self.person = list(person)

    def _pairs(self, same_finger: bool, same_person: Optional[bool]) -> np.ndarray:
        """Scores of every pair i < j (in that order) of the kind asked for."""
        finger, person = np.asarray(self.finger), np.asarray(self.person)
        i, j = np.triu_indices(len(finger), 1)
        keep = (finger[i] == finger[j]) == same_finger
        if same_person is not None:
            keep &= (person[i] == person[j]) == same_person
        return self.scores[i[keep], j[keep]]

    def genuine(self) -> np.ndarray:
        """Scores of every pair of images of the same finger."""
        return self._pairs(True, None)

    def impostor_within_person(self) -> np.ndarray:
        """Scores of every pair of images of different fingers of one person."""
        return self._pairs(False, True)

    def impostor_all(self) -> np.ndarray:
        """Scores of every pair of images of different fingers, of one person or of two.

        The generator's persons are as unlike across persons as within one, so its many
        pairs across persons resolve rates per pair that a few persons cannot.
        """
        return self._pairs(False, None)

    def tenprints(self, samples: int, seed: int) -> np.ndarray:
        """(n, fingers) image indices: one impression of each finger of one person per row.

        Every combination when there are at most `samples` per person, else a seeded sample.
        """
        rng = np.random.default_rng(seed)
        rows = []
        persons = sorted(set(self.person))
        for who in persons:
            fingers = sorted({f for f, p in zip(self.finger, self.person) if p == who})
            images = [[i for i, (f, p) in enumerate(zip(self.finger, self.person))
                       if p == who and f == fg] for fg in fingers]
            total = int(np.prod([len(x) for x in images]))
            per_person = max(1, samples // len(persons))
            if total <= per_person:
                rows.append(np.array(list(itertools.product(*images))))
            else:
                rows.append(np.stack([rng.choice(x, per_person) for x in images], axis=1))
        return np.concatenate(rows)


def tenprint_max_scores(scores: np.ndarray, tenprints: np.ndarray) -> np.ndarray:
    """The highest score among the 45 pairs of fingers of each ten-print."""
    k = tenprints.shape[1]
    ii, jj = np.triu_indices(k, 1)
    return scores[tenprints[:, ii], tenprints[:, jj]].max(axis=1)


def rates(s: ScoredSet, threshold: float, tenprint_max: np.ndarray) -> dict:
    """False-prompt and catch figures of one set at one threshold."""
    genuine = s.genuine()
    impostor = s.impostor_within_person()
    different = s.impostor_all()
    prompts = int(np.sum(tenprint_max >= threshold))
    over = int(np.sum(impostor >= threshold))
    per_pair = over / max(len(impostor), 1)
    over_all = int(np.sum(different >= threshold))
    return {
        "threshold": threshold,
        "tenprints": int(len(tenprint_max)),
        "false_prompts": prompts,
        "false_prompt_rate": prompts / max(len(tenprint_max), 1),
        "impostor_pairs": int(len(impostor)),
        "impostor_pairs_at_or_above": over,
        # 45 independent comparisons at the per-pair rate: the expected ten-print rate
        "false_prompt_rate_from_pairs": 1.0 - (1.0 - per_pair) ** 45,
        # the same from every different-finger pair (across persons too, where there are any)
        "different_finger_pairs": int(len(different)),
        "different_finger_pairs_at_or_above": over_all,
        "false_prompt_rate_from_all_pairs": 1.0 - (1.0 - over_all / max(len(different), 1)) ** 45,
        "genuine_pairs": int(len(genuine)),
        "caught": int(np.sum(genuine >= threshold)),
        "catch_rate": float(np.mean(genuine >= threshold)) if len(genuine) else None,
    }


def smallest_threshold_meeting(per_set_max: list[np.ndarray], goal: float = FALSE_PROMPT_GOAL) -> float:
    """The lowest threshold at which every set's sampled false-prompt rate is at most `goal`."""
    need = 0.0
    for m in per_set_max:
        m = np.sort(m)[::-1]
        allowed = int(np.floor(goal * len(m)))  # this many ten-prints may prompt
        need = max(need, float(np.nextafter(m[allowed], np.inf)) if allowed < len(m) else 0.0)
    return need


def per_pair_rate(goal: float = FALSE_PROMPT_GOAL, comparisons: int = COMPARISONS) -> float:
    """The rate per different-finger pair at which `comparisons` independent pairs prompt a
    ten-print with probability `goal` (about 2.2e-5 for 1 in 1,000 and 45 pairs)."""
    return 1.0 - (1.0 - goal) ** (1.0 / comparisons)


def tail_threshold(impostor: np.ndarray, goal: float = FALSE_PROMPT_GOAL,
                   comparisons: int = COMPARISONS, tail: float = TAIL_FRACTION) -> float:
    """The score a different-finger pair exceeds at `per_pair_rate(goal, comparisons)`.

    A few thousand pairs cannot show a rate of 2e-5, so the highest `tail` share of the
    scores is fitted with an exponential (its mean excess over the cut) and extrapolated:
    P(score > cut + x) = tail * exp(-x / mean_excess).
    """
    impostor = np.asarray(impostor, dtype=np.float64)
    cut = float(np.quantile(impostor, 1.0 - tail))
    excess = impostor[impostor > cut] - cut
    if len(excess) == 0:
        return cut
    return cut + float(excess.mean()) * float(np.log(tail / per_pair_rate(goal, comparisons)))


# ------------------------------------------------------------------ I/O shell


def templates_of_folder(folder: pathlib.Path) -> list:
    """(finger, person, template or None) of every NNN_I image of a folder: one person per set."""
    from fpagent.bench.accuracy import IMAGE_NAME, load_image  # noqa: PLC0415
    from fpagent.biometrics import extraction  # noqa: PLC0415
    from fpagent.errors import NoUsableFingerprint  # noqa: PLC0415

    files = sorted(p for p in folder.iterdir() if IMAGE_NAME.match(p.name))
    out = []
    for n, path in enumerate(files):
        finger = IMAGE_NAME.match(path.name).group(1)
        pixels, ppi = load_image(path)
        try:
            t = extraction.extract(pixels, ppi).template
        except NoUsableFingerprint:
            t = None
        out.append((finger, "all", t))
        progress(f"{folder.name}: extracting", n + 1, len(files))
    return out


def _templates_synthetic(persons: int, impressions: int, seed: int):
    from fpagent.biometrics import extraction  # noqa: PLC0415
    from fpagent.drivers.synthetic import generator  # noqa: PLC0415
    from fpagent.errors import NoUsableFingerprint  # noqa: PLC0415

    out = []
    for who in range(persons):
        for finger in range(1, 11):
            master = generator.master_finger(who, finger, seed)
            for k in range(impressions):
                try:
                    t = extraction.extract(generator.impression_of(master, k, (288, 256))).template
                except NoUsableFingerprint:
                    t = None
                out.append((f"{who}/{finger}", who, t))
        progress("synthetic persons", who + 1, persons)
    return out


def score_set(name: str, items) -> ScoredSet:
    """All pairs of (finger, person, template) items scored by the matcher (0 without a template)."""
    from fpagent.biometrics import matcher  # noqa: PLC0415

    prepared = [matcher.prepare(t) if t is not None else None for _, _, t in items]
    n = len(items)
    scores = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        a, b = prepared[i], prepared[j]
        scores[i, j] = scores[j, i] = 0.0 if a is None or b is None else matcher.compare_prepared(a, b)
    return ScoredSet(name, scores, [f for f, _, _ in items], [p for _, p, _ in items])


def _default_dirs() -> list[pathlib.Path]:
    root = pathlib.Path(os.environ.get("FPAGENT_FINGERPRINTS", "../shared/data/fingerprints"))
    if not root.is_dir():
        root = pathlib.Path("/work/shared/data/fingerprints")
    return [root / s for s in ("fvc2002_db1_b", "fvc2002_db3_b", "fvc2002_db4_b") if (root / s).is_dir()]


def _pct(v):
    return "n/a" if v is None else f"{v * 100:.2f}%"


def _line(r: dict) -> str:
    across = ""
    if r["different_finger_pairs"] > r["impostor_pairs"]:
        across = (f"; from all {r['different_finger_pairs']} different-finger pairs, "
                  f"{r['different_finger_pairs_at_or_above']} at or above: "
                  f"{_pct(r['false_prompt_rate_from_all_pairs'])}")
    return (f"false prompts {r['false_prompts']}/{r['tenprints']} ten-prints ({_pct(r['false_prompt_rate'])}; "
            f"from {r['impostor_pairs_at_or_above']}/{r['impostor_pairs']} impostor pairs at or above: "
            f"{_pct(r['false_prompt_rate_from_pairs'])}{across});  caught {r['caught']}/{r['genuine_pairs']} "
            f"same-finger pairs ({_pct(r['catch_rate'])})")


def set_figures(s: ScoredSet, tenprint_max: np.ndarray, threshold: float, match_threshold: float,
                split: str) -> dict:
    """Every figure the bench gives for one set (pure: scores in, numbers out)."""
    impostor, genuine = s.impostor_all(), s.genuine()
    tail_t = tail_threshold(impostor)
    return {"name": s.name, "split": split, "images": len(s.finger),
            "at_duplicate_threshold": rates(s, threshold, tenprint_max),
            "at_previous_threshold": rates(s, PREVIOUS_THRESHOLD, tenprint_max),
            "at_match_threshold": rates(s, match_threshold, tenprint_max),
            "sweep": [rates(s, t, tenprint_max) for t in SWEEP],
            "tail_threshold": tail_t,
            "catch_rate_at_tail_threshold": float(np.mean(genuine >= tail_t)),
            "lowest_sampled_threshold": smallest_threshold_meeting([tenprint_max]),
            "impostor_max": float(impostor.max()),
            "genuine_p01": float(np.quantile(genuine, 0.01))}


def _print_set(fig: dict, label: str, threshold: float, match_threshold: float) -> None:
    print(f"{fig['name']}: {fig['images']} images; {label}")
    print(f"  this rule, DUPLICATE_THRESHOLD {threshold:.3f}: {_line(fig['at_duplicate_threshold'])}")
    print(f"  previous rule, {PREVIOUS_THRESHOLD:.3f}: {_line(fig['at_previous_threshold'])}")
    print(f"  MATCH_THRESHOLD {match_threshold} (1:1 rule): {_line(fig['at_match_threshold'])}")
    print(f"  1 in 1,000 ten-prints by this set's own tail: threshold {fig['tail_threshold']:.3f}, "
          f"caught there {_pct(fig['catch_rate_at_tail_threshold'])}; lowest threshold with at most "
          f"{FALSE_PROMPT_GOAL:.1%} of the sample prompted {fig['lowest_sampled_threshold']:.3f}")
    print(f"  highest different-finger score {fig['impostor_max']:.3f}; 1st percentile of same-finger "
          f"scores {fig['genuine_p01']:.3f}")
    for r in fig["sweep"]:
        from_all = (f" (from all different-finger pairs {_pct(r['false_prompt_rate_from_all_pairs'])})"
                    if r["different_finger_pairs"] > r["impostor_pairs"] else "")
        print(f"    at {r['threshold']:.3f}: false prompts {_pct(r['false_prompt_rate'])}{from_all}, "
              f"caught {_pct(r['catch_rate'])}")


def run(args) -> int:
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    from fpagent.bench import splits  # noqa: PLC0415
    from fpagent.biometrics import extraction, matcher  # noqa: PLC0415
    from fpagent.booking.duplicate_check import DUPLICATE_THRESHOLD  # noqa: PLC0415
    from fpagent.errors import UserError  # noqa: PLC0415

    extraction.warm_up()
    matcher.warm_up()
    dirs = [pathlib.Path(d) for d in args.dirs] or _default_dirs()
    sets = []
    for folder in dirs:
        if not folder.is_dir():
            raise UserError(f"{folder}: not a folder of fingerprint images")
        sets.append(score_set(folder.name, templates_of_folder(folder)))
    if args.persons > 0:
        sets.append(score_set(f"synthetic(seed={args.seed})",
                              _templates_synthetic(args.persons, args.impressions, args.seed)))
    if not sets:
        raise UserError("no sets to measure: give image folders or --persons")
    maxima = {s.name: tenprint_max_scores(s.scores, s.tenprints(args.samples, args.seed)) for s in sets}
    calibrated = smallest_threshold_meeting(list(maxima.values()))
    out = []
    for s in sets:
        generated = s.name.startswith("synthetic")
        if generated:
            split = splits.TUNING if args.seed == TUNING_SEED else splits.VALIDATION
            text = f"{split} (generated, seed {args.seed}; seed {TUNING_SEED} tunes)"
        else:
            split, text = splits.split_of(s.name), splits.label(s.name)
        fig = set_figures(s, maxima[s.name], DUPLICATE_THRESHOLD, matcher.MATCH_THRESHOLD, split)
        _print_set(fig, text, DUPLICATE_THRESHOLD, matcher.MATCH_THRESHOLD)
        out.append(fig)
    met = all(f["at_duplicate_threshold"]["false_prompt_rate"] <= FALSE_PROMPT_GOAL for f in out)
    caught = all((f["at_duplicate_threshold"]["catch_rate"] or 0) >= CATCH_GOAL for f in out)
    tuned = [f for f in out if f["split"] == splits.TUNING]
    if tuned:
        print("tail threshold of the tuning set(s) (DUPLICATE_THRESHOLD is the highest, rounded up): "
              + ", ".join(f"{f['name']} {f['tail_threshold']:.3f}" for f in tuned))
    print(f"lowest threshold with at most {FALSE_PROMPT_GOAL:.1%} sampled false prompts on every set: "
          f"{calibrated:.3f}")
    from_pairs = max(f["at_duplicate_threshold"]["false_prompt_rate_from_all_pairs"] for f in out)
    print(f"goals at DUPLICATE_THRESHOLD: false prompts <= {FALSE_PROMPT_GOAL:.1%} "
          f"{'met' if met else 'NOT met'} on the sampled ten-prints (from every different-finger pair: "
          f"{_pct(from_pairs)} on the worst set); catches >= {CATCH_GOAL:.0%} "
          f"{'met' if caught else 'NOT met'}")
    emit({"benchmark": "duplicates", "duplicate_threshold": DUPLICATE_THRESHOLD,
          "previous_threshold": PREVIOUS_THRESHOLD,
          "match_threshold": matcher.MATCH_THRESHOLD, "lowest_threshold_meeting_goal": calibrated,
          "false_prompt_goal_met": met, "false_prompt_rate_from_pairs_worst": from_pairs,
          "catch_goal_met": caught, "datasets": out}, args.json)
    return 0
