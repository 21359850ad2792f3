"""What must come out the same on every architecture, and the script that records it.

The appliance's decisions rest on three things: the template extracted from a
print (its ISO 19794-2 bytes), the match scores between templates (and so
every same-finger / duplicate decision), and the prefilter scores that pick
the screening candidates. The WSQ bytes sent to the bureau are the fourth.
Intermediate arrays (the enhanced image, a skeleton pixel) may differ in the
last bits between x86-64 and aarch64; these four may not.

`observe()` computes them for a handful of shared FVC2002 DB1_B prints and
synthetic prints given as stored pixels (tests/fixtures/determinism/*.png),
so the generator's own numerics are not part of the comparison. Recorded on
x86-64 with:

    .venv/bin/python tests/determinism_reference.py --write

and replayed by tests/test_determinism.py (on x86-64 in the normal suite, on
aarch64 by scripts/check-arm64). Re-record only when a change to extraction,
matching or the prefilter is meant to change results, and say so in the commit.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "determinism"
REFERENCE = FIXTURES / "reference.json"
SHARED_PRINTS = ("101_1", "101_2", "101_3", "102_1", "102_2", "103_1")
WSQ_PRINTS = ("101_1", "104_1")
# (person, finger, impression) of the synthetic prints stored as PNG fixtures
SYNTHETIC_PRINTS = ((7, 2, 0), (7, 2, 1), (8, 1, 0), (9, 6, 0))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_png(path: pathlib.Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def synthetic_name(person: int, finger: int, impression: int) -> str:
    return f"synthetic_{person}_{finger}_{impression}"


def write_synthetic_fixtures() -> None:
    """Store the synthetic prints' pixels (made on x86-64) as the inputs to replay."""
    from PIL import Image

    from fpagent.drivers.synthetic.generator import finger_image

    FIXTURES.mkdir(parents=True, exist_ok=True)
    for person, finger, impression in SYNTHETIC_PRINTS:
        pixels = finger_image(person, finger, impression, seed=1)
        Image.fromarray(pixels, mode="L").save(FIXTURES / f"{synthetic_name(person, finger, impression)}.png",
                                               optimize=True)


def inputs(db1: pathlib.Path | None) -> dict[str, np.ndarray]:
    """name -> pixels: the synthetic fixtures, and the shared prints when `db1` is given."""
    images = {}
    if db1 is not None:
        for name in SHARED_PRINTS:
            images[f"db1_{name}"] = load_png(db1 / f"{name}.png")
    for key in SYNTHETIC_PRINTS:
        name = synthetic_name(*key)
        images[name] = load_png(FIXTURES / f"{name}.png")
    return images


def observe(db1: pathlib.Path | None) -> dict:
    """Template hashes, every pairwise match score and decision, prefilter scores, WSQ hashes."""
    from fpagent.biometrics import extraction, matcher
    from fpagent.records import fmr, transaction
    from fpagent.screening import prefilter

    images = inputs(db1)
    templates = {name: extraction.extract(pixels).template for name, pixels in images.items()}
    out: dict = {"templates": {}, "scores": {}, "prefilter": {}, "wsq": {}}
    for name, tpl in templates.items():
        out["templates"][name] = {"minutiae": int(len(tpl.minutiae)), "iso_sha256": sha256(fmr.encode_iso(tpl))}
    for a, b in itertools.combinations(sorted(templates), 2):
        score = matcher.compare(templates[a], templates[b])
        out["scores"][f"{a} {b}"] = {"score": float(score).hex(), "match": bool(score >= matcher.MATCH_THRESHOLD)}
    gallery = prefilter.Gallery()
    for name in sorted(templates):
        gallery.add(name, templates[name])
    for name in sorted(templates):
        ranked = gallery.screen(templates[name], len(templates))
        out["prefilter"][name] = [[id, float(np.float32(score)).hex()] for id, score in ranked]
    wsq_inputs = {synthetic_name(*SYNTHETIC_PRINTS[0]): images[synthetic_name(*SYNTHETIC_PRINTS[0])]}
    if db1 is not None:
        wsq_inputs.update({f"db1_{name}": load_png(db1 / f"{name}.png") for name in WSQ_PRINTS})
    for name, pixels in wsq_inputs.items():
        _, data = transaction.compress_image(pixels, 500, "wsq")
        out["wsq"][name] = sha256(data)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help=f"record {REFERENCE.relative_to(HERE.parent)}")
    p.add_argument("--db1", type=pathlib.Path,
                   default=HERE.parent.parent / "shared" / "data" / "fingerprints" / "fvc2002_db1_b")
    args = p.parse_args(argv)
    if args.write:
        import platform

        if platform.machine() != "x86_64":
            sys.exit("record the reference on x86-64; other architectures replay it")
        write_synthetic_fixtures()
    observed = observe(args.db1)
    text = json.dumps(observed, indent=1, sort_keys=True) + "\n"
    if args.write:
        REFERENCE.write_text(text)
        print(f"wrote {REFERENCE}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
