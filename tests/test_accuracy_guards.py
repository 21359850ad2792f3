"""Guards of the accuracy claims on the shared real prints (our extractor, matcher, prefilter).

These fail when a change makes the core worse than the figures the project
states: the DB1_B equal error rate over the extended impostor set, and the
prefilter's hit rate at 10% penetration on the real sets. They skip only
when the shared data (../shared/data/fingerprints) is absent.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fpagent.bench.accuracy import eer, protocol_pairs
from fpagent.bench.prefilter import derive
from fpagent.biometrics import extraction, matcher
from fpagent.errors import NoUsableFingerprint
from fpagent.screening import prefilter

EER_LIMIT_DB1 = 0.015
HIT_RATE_LIMIT = 0.99
PENETRATION = 0.10
GALLERY_SIZE = 2000  # real first impressions + distractors derived from synthetic prints


def _extract_folder(folder):
    from PIL import Image

    out = {}
    for path in sorted(folder.glob("*_*.png")):
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("L"))
        try:
            out[path.name] = extraction.extract(pixels).template
        except NoUsableFingerprint:
            out[path.name] = None
    return out


@pytest.fixture(scope="module")
def real_templates(fingerprints_dir):
    """Our templates of every image of the two real sets: {set: {file name: template}}."""
    return {s: _extract_folder(fingerprints_dir / s) for s in ("fvc2002_db1_b", "fvc2002_db3_b")}


def test_db1_eer_extended_impostors_stays_below_limit(real_templates):
    templates = real_templates["fvc2002_db1_b"]
    assert len(templates) == 80
    prepared = {n: matcher.prepare(t) if t is not None else None for n, t in templates.items()}

    def score(a, b):
        pa, pb = prepared[a], prepared[b]
        return 0.0 if pa is None or pb is None else matcher.compare_prepared(pa, pb)

    genuine, _, extended = protocol_pairs(list(templates))
    assert (len(genuine), len(extended)) == (280, 2880)
    g = [score(a, b) for a, b in genuine]
    i = [score(a, b) for a, b in extended]
    rate = eer(g, i)
    assert rate <= EER_LIMIT_DB1, f"DB1_B EER {rate:.2%} above {EER_LIMIT_DB1:.1%}"


def test_prefilter_hit_rate_at_ten_percent_penetration(real_templates):
    """Gallery: first impressions of both real sets plus distractors derived from synthetic
    prints (as `fpagent bench prefilter` builds them); probes: every other impression."""
    from fpagent.drivers.synthetic.generator import finger_image

    gallery = prefilter.Gallery(capacity=GALLERY_SIZE)
    probes = []
    for s, templates in real_templates.items():
        for name, t in templates.items():
            if t is None:
                continue
            finger, imp = name[:-4].split("_")
            if imp == "1":
                gallery.add(f"{s}/{finger}", t)
            else:
                probes.append((t, f"{s}/{finger}"))
    bases = []
    for k in range(20):
        try:
            bases.append(extraction.extract(finger_image(person=1000 + k // 10, finger=k % 10 + 1,
                                                         impression=0)).template)
        except NoUsableFingerprint:
            pass
    assert len(bases) >= 15
    rng = np.random.default_rng(0)
    for i in range(GALLERY_SIZE - len(gallery)):
        base = bases[i % len(bases)]
        gallery.add_descriptor(f"distractor/{i}",
                               prefilter.descriptor(base if i < len(bases) else derive(base, rng)))
    assert len(gallery) == GALLERY_SIZE and len(probes) >= 130
    depth = int(math.ceil(PENETRATION * len(gallery)))
    hits = sum(mate in {id for id, _ in gallery.screen(t, depth)} for t, mate in probes)
    rate = hits / len(probes)
    assert rate >= HIT_RATE_LIMIT, f"prefilter hit rate {rate:.1%} at 10% penetration"
