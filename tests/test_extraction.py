"""Minutiae extraction on the shared real prints: sane, stable across resolutions, never garbage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from fpagent import hal
from fpagent.biometrics import extraction
from fpagent.errors import NoUsableFingerprint
from fpagent.biometrics.template import BIFURCATION, MINUTIA_DTYPE, RIDGE_ENDING, Template
from nbis_required import nbis_or_skip

SETS = ("fvc2002_db1_b", "fvc2002_db3_b", "fvc2002_db4_b")


def _load(fingerprints_dir, folder, name):
    return np.asarray(Image.open(fingerprints_dir / folder / name).convert("L"))


def _all_paths(fingerprints_dir):
    return [p for s in SETS for p in sorted((fingerprints_dir / s).glob("*.png"))]


@pytest.mark.slow
def test_every_shared_image_gives_a_sane_template(fingerprints_dir):
    """No failure to extract on the 240 shared images; counts and fields in range."""
    paths = _all_paths(fingerprints_dir)
    assert len(paths) == 240
    counts = []
    for path in paths:
        px = np.asarray(Image.open(path).convert("L"))
        ext = extraction.extract(px)
        t = ext.template
        m = t.minutiae
        assert isinstance(t, Template) and m.dtype == MINUTIA_DTYPE
        assert extraction.MIN_MINUTIAE <= len(t) <= extraction.MAX_MINUTIAE, path.name
        assert (m["x"] >= 0).all() and (m["x"] < px.shape[1]).all()
        assert (m["y"] >= 0).all() and (m["y"] < px.shape[0]).all()
        assert (m["angle"] >= 0).all() and (m["angle"] < 2 * math.pi).all()
        assert set(np.unique(m["kind"])) <= {RIDGE_ENDING, BIFURCATION}
        assert (m["quality"] >= 1).all() and (m["quality"] <= 100).all()
        assert (t.width, t.height, t.ppi) == (px.shape[1], px.shape[0], 500)
        assert 1 <= ext.quality.score <= 100 and t.quality == ext.quality.score
        counts.append(len(t))
    counts = np.array(counts)
    # a plain impression of a finger holds some 20-70 minutiae
    assert 20 <= np.median(counts) <= 60, np.median(counts)
    # ISO 19794-2: 28 header bytes + 6 per minutia (+2): <= 400 bytes on average
    assert 30 + 6 * counts.mean() <= 400


def test_finger_image_input_keeps_its_facts(fingerprints_dir):
    px = _load(fingerprints_dir, "fvc2002_db1_b", "105_2.png")
    img = hal.FingerImage(px, ppi=500, finger_position=hal.FingerPosition.LEFT_INDEX)
    t = extraction.extract(img).template
    assert t.finger_position == 7 and t.ppi == 500
    again = extraction.extract(px).template
    np.testing.assert_array_equal(t.minutiae, again.minutiae)  # deterministic


def test_minutiae_lie_on_the_skeleton_inside_the_foreground(fingerprints_dir):
    ext = extraction.extract(_load(fingerprints_dir, "fvc2002_db3_b", "104_1.png"))
    m = ext.template.minutiae
    ys, xs = m["y"].astype(int), m["x"].astype(int)
    assert ext.skeleton[ys, xs].all()
    assert ext.mask[ys, xs].all()
    assert (m["kind"] == RIDGE_ENDING).any() and (m["kind"] == BIFURCATION).any()


@pytest.mark.parametrize("ppi", [1000, 700, 450])
@pytest.mark.parametrize("folder,name", [("fvc2002_db1_b", "106_1.png"),
                                         ("fvc2002_db3_b", "101_1.png")])
def test_other_resolutions_find_the_same_minutiae(fingerprints_dir, folder, name, ppi):
    """An upsampled (or downsampled) copy at its true ppi gives the same minutiae, scaled."""
    px = _load(fingerprints_dir, folder, name)
    ref = extraction.extract(px).template.minutiae
    s = ppi / 500
    other = np.asarray(Image.fromarray(px).resize(
        (round(px.shape[1] * s), round(px.shape[0] * s)), Image.Resampling.BICUBIC))
    t = extraction.extract(other, ppi=ppi).template
    assert t.ppi == ppi and (t.width, t.height) == (other.shape[1], other.shape[0])
    m = t.minutiae
    d = np.hypot(ref["x"][:, None] * s - m["x"][None], ref["y"][:, None] * s - m["y"][None])
    j = d.argmin(axis=1)
    near = d[np.arange(len(ref)), j] < 6 * s
    da = np.abs((ref["angle"] - m["angle"][j] + np.pi) % (2 * np.pi) - np.pi)
    assert (near & (da < 0.5)).mean() >= 0.65
    assert abs(len(m) - len(ref)) <= 0.25 * len(ref)


@pytest.mark.parametrize("folder,name", [("fvc2002_db1_b", "103_4.png"),
                                         ("fvc2002_db3_b", "105_6.png"),
                                         ("fvc2002_db4_b", "107_2.png")])
def test_sensor_like_16_grey_levels_crop(fingerprints_dir, folder, name):
    """What a UART sensor sends: 256x288, 4-bit grey. Same minutiae as the 8-bit crop, mostly."""
    px = _load(fingerprints_dir, folder, name)
    h, w = px.shape
    crop = np.ascontiguousarray(px[max(0, (h - 288) // 2):][:288, max(0, (w - 256) // 2):][:, :256])
    full = extraction.extract(crop).template.minutiae
    coarse = extraction.extract((crop // 16) * 17).template.minutiae
    assert len(coarse) >= 10
    d = np.hypot(full["x"][:, None] - coarse["x"][None], full["y"][:, None] - coarse["y"][None])
    assert (d.min(axis=1) < 6).mean() >= 0.6


def _photo(h=300, w=300):
    """A synthetic 'photo': smooth shading, a few shapes with soft edges, sensor noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 120 * (xx / w) + 30 * np.sin(yy / 60.0)
    img = Image.fromarray(base.astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.ellipse([60, 50, 200, 230], fill=200)
    d.rectangle([150, 150, 280, 270], fill=40)
    d.ellipse([100, 100, 130, 130], fill=10)
    img = img.filter(ImageFilter.GaussianBlur(2))
    noise = np.random.default_rng(1).normal(0, 3, (h, w))
    return np.clip(np.asarray(img, dtype=float) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["blank", "black", "noise", "photo", "gradient", "tiny"])
def test_non_fingerprints_raise_no_usable_fingerprint(kind):
    rng = np.random.default_rng(7)
    img = {
        "blank": np.full((300, 300), 230, np.uint8),
        "black": np.zeros((288, 256), np.uint8),
        "noise": rng.integers(0, 256, (300, 300), dtype=np.uint8),
        "photo": _photo(),
        "gradient": np.tile(np.linspace(0, 255, 300).astype(np.uint8), (300, 1)),
        "tiny": np.full((20, 20), 128, np.uint8),
    }[kind]
    with pytest.raises(NoUsableFingerprint, match="no usable fingerprint") as info:
        extraction.extract(img)
    q = info.value.quality
    assert q is None or q.score <= 10


def test_a_small_patch_of_a_print_is_refused(fingerprints_dir):
    px = _load(fingerprints_dir, "fvc2002_db1_b", "101_1.png").copy()
    h, w = px.shape
    patch = np.full_like(px, 235)
    patch[h // 2 - 20: h // 2 + 20, w // 2 - 20: w // 2 + 20] = px[h // 2 - 20: h // 2 + 20,
                                                                   w // 2 - 20: w // 2 + 20]
    with pytest.raises(NoUsableFingerprint):
        extraction.extract(patch)


def test_a_faint_print_on_clean_glass_stays_foreground(fingerprints_dir):
    """A light, low-contrast print (a small USB optical sensor's) is foreground down to the
    glass's own noise; a fixed floor of 6 grey kept a fifth of this crop, 0.71 is kept now."""
    from fpagent.bench import derived
    from fpagent.biometrics import fields

    px = _load(fingerprints_dir, "fvc2002_db1_b", "103_5.png")
    faint = derived.faint(derived.crop(px, 330, 360), 20)
    assert fields.analyse(faint).mask.mean() > 0.5
    glass = np.clip(236 + np.random.default_rng(0).normal(0, 2.5, faint.shape), 0, 255).astype(np.uint8)
    assert not fields.analyse(glass).mask.any()  # the same glass and noise without a finger
    assert len(extraction.extract(faint).template) >= 20


def test_a_textured_glass_does_not_become_foreground(fingerprints_dir, monkeypatch):
    """DB3_B's glass has column stripes; once the print is faint and dry they pass the low
    floor at the print's edge. The texture rule takes them back out there and nothing else:
    on clean glass it changes no pixel of the mask."""
    from fpagent.bench import derived
    from fpagent.biometrics import fields

    striped = derived.dry(_load(fingerprints_dir, "fvc2002_db3_b", "105_3.png"), 30)
    striped = derived.faint(striped, 40)
    clean = derived.faint(derived.crop(_load(fingerprints_dir, "fvc2002_db1_b", "103_5.png"), 330, 360), 20)
    with_rule = [fields.analyse(px).mask for px in (striped, clean)]
    monkeypatch.setattr(fields, "TEXTURE_MIN", float("inf"))  # the rule off
    without = [fields.analyse(px).mask for px in (striped, clean)]
    assert not (with_rule[0] & ~without[0]).any()  # only takes away
    assert (without[0] & ~with_rule[0]).sum() >= 800
    assert with_rule[0][-24:].mean() < without[0][-24:].mean() - 0.05  # the striped band below the print
    assert np.array_equal(with_rule[1], without[1])


def test_glass_texture_needs_one_direction_over_the_background():
    from fpagent.biometrics import fields

    rng = np.random.default_rng(3)
    fg = np.zeros((20, 20), dtype=bool)
    fg[5:15, 5:15] = True
    s = np.full(fg.shape, 4.0)  # every block below the usual floor
    c = np.full(fg.shape, 0.3)  # and of weak flow
    angle = np.full(fg.shape, 0.2)  # doubled angles: one direction everywhere ...
    vx, vy = c * np.cos(angle), c * np.sin(angle)
    found = fields._glass_texture(fg, s, c, vx, vy)
    assert found[fg].all() and not found[~fg].any()  # ... the candidate blocks are all texture
    assert not fields._glass_texture(fg, np.full(fg.shape, 7.0), c, vx, vy).any()  # contrast above it
    assert not fields._glass_texture(fg, s, np.full(fg.shape, 0.5), vx, vy).any()  # a clear flow
    other = angle + np.where(fg, 2 * np.radians(40), 0.0)  # the print's flow 40 degrees off
    assert not fields._glass_texture(fg, s, c, c * np.cos(other), c * np.sin(other)).any()
    scattered = rng.uniform(0, 2 * np.pi, fg.shape)  # clean glass: no one direction
    assert not fields._glass_texture(fg, s, c, c * np.cos(scattered), c * np.sin(scattered)).any()


def test_angles_follow_the_nbis_convention(fingerprints_dir):
    """Minutiae we and NBIS mindtct both find point the same way (ISO angles)."""
    nbis = nbis_or_skip("NBIS mindtct's angles to compare ours with")
    settings = nbis.NbisExtractorSettings(min_quality=0.0, get_center=False,
                                          check_fingerprint=False, compute_nfiq2=False, ppi=500.0)
    ex = nbis.new_nbis_extractor(settings)
    diffs = []
    for folder, name in [("fvc2002_db1_b", "102_1.png"), ("fvc2002_db3_b", "103_2.png"),
                         ("fvc2002_db1_b", "108_4.png")]:
        path = fingerprints_dir / folder / name
        ours = extraction.extract(_load(fingerprints_dir, folder, name)).template.minutiae
        theirs = ex.extract_minutiae(path.read_bytes()).get()
        tx = np.array([m.x() for m in theirs], float)
        ty = np.array([m.y() for m in theirs], float)
        ta = np.radians([m.angle() for m in theirs])  # NBIS: degrees, as in its ISO record
        for m in ours:
            d = np.hypot(tx - m["x"], ty - m["y"])
            j = int(d.argmin())
            if d[j] < 5:
                diffs.append(abs((m["angle"] - ta[j] + np.pi) % (2 * np.pi) - np.pi))
    diffs = np.array(diffs)
    assert len(diffs) >= 30
    assert np.median(diffs) < math.radians(20)
    assert (diffs < math.radians(45)).mean() > 0.85


def test_warm_up_runs():
    extraction.warm_up()


# Run in a fresh interpreter: in this process other tests have compiled the
# kernels already, which would hide a kernel that warm_up leaves out.
_COMPILES_AFTER_WARM_UP = r"""
import json, sys
import numpy as np
from PIL import Image
from numba.core.registry import CPUDispatcher
from fpagent.biometrics import extraction
from fpagent.biometrics.kernels import boxfilter, enhance, skeleton, thinning

def signatures():
    return {f"{m.__name__}.{name}": [str(s) for s in k.signatures]
            for m in (boxfilter, enhance, skeleton, thinning)
            for name, k in vars(m).items() if isinstance(k, CPUDispatcher)}

extraction.warm_up()
before = signatures()
px = np.asarray(Image.open(sys.argv[1]).convert("L"))
extraction.extract(px)  # 388x374: the foreground mask is a strided view
extraction.extract(np.ascontiguousarray(px[:368, :320]))  # multiples of 8: a contiguous one
after = signatures()
print(json.dumps({"kernels": sorted(after),
                  "new": {k: v for k, v in after.items() if v != before.get(k)}}))
"""


def test_after_warm_up_the_first_extraction_compiles_nothing(fingerprints_dir, tmp_path):
    """The appliance warms up before it says READY: the officer's first finger must
    not wait for a numba compile (the quality kernels included)."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    out = subprocess.run([sys.executable, "-c", _COMPILES_AFTER_WARM_UP,
                          str(fingerprints_dir / "fvc2002_db1_b" / "101_1.png")],
                         env=env, capture_output=True, text=True, timeout=600, check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    assert {"fpagent.biometrics.kernels.boxfilter.box_mean",
            "fpagent.biometrics.kernels.enhance.line_filter"} <= set(result["kernels"])
    assert result["new"] == {}


def _shared_share(a, b, shift):
    """Share of the minutiae of either template with a partner within 3 px in the other."""
    pa = np.stack([a["x"], a["y"]], 1).astype(float)
    pb = np.stack([b["x"], b["y"]], 1).astype(float) - shift
    d = np.hypot(pa[:, None, 0] - pb[None, :, 0], pa[:, None, 1] - pb[None, :, 1])
    return float(((d.min(1) <= 3).sum() + (d.min(0) <= 3).sum()) / (len(pa) + len(pb)))


@pytest.mark.parametrize("name", ["103_5.png", "108_4.png", "107_7.png"])
@pytest.mark.parametrize("grey", [None, 255])
def test_a_blank_border_changes_almost_no_minutia(fingerprints_dir, name, grey):
    """A print that fills a small sensor's window gives the same minutiae inside a blank
    border (a larger glass): no false minutiae where the print meets the glass, no lost ones."""
    from fpagent.bench import derived

    px = derived.crop(_load(fingerprints_dir, "fvc2002_db1_b", name), 240, 260)
    plain = extraction.extract(px).template.minutiae
    padded = extraction.extract(derived.pad(px, 40, grey)).template.minutiae
    assert abs(len(padded) - len(plain)) <= 3
    assert _shared_share(plain, padded, 40) >= 0.9


def test_blank_glass_is_flat_bright_area_never_ridges_or_a_dark_blot(fingerprints_dir):
    from fpagent.biometrics import fields

    px = _load(fingerprints_dir, "fvc2002_db3_b", "104_5.png").copy()
    px[100:140, 100:140] = 20  # a flat dark blot on the skin (wet)
    framed = np.pad(px, 30, constant_values=200).astype(np.float32)
    blank = fields.blank_glass(framed)
    assert blank[:26].all() and blank[-26:].all() and blank[:, :26].all()  # the step itself is not flat
    assert not blank[130:170, 130:170].any()  # the dark blot is skin, not glass
    assert blank[40:-40, 40:-40].mean() < 0.02  # the ridges are never glass
