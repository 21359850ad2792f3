"""Derived generalisation sets (resampled, cropped) and the declared tuning/validation split."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fpagent.bench import derived, splits
from fpagent.bench.accuracy import load_image
from fpagent.errors import UserError


def test_parse_the_derive_option():
    assert derived.parse("resample:569, resample:1000,crop:330x360") == [
        (("resample", (569,)),), (("resample", (1000,)),), (("crop", (330, 360)),)]
    assert derived.parse("") == []
    assert derived.parse("pad:40,pad:40:255") == [(("pad", (40,)),), (("pad", (40, 255)),)]
    assert derived.suffix((("pad", (40, 255)),)) == "pad40g255"
    chain = derived.parse("crop:330x360+dry:20+faint:40")
    assert chain == [(("crop", (330, 360)), ("dry", (20,)), ("faint", (40,)))]
    assert derived.suffix(chain[0]) == "crop330x360+dry20+faint40"
    assert splits.split_of("fvc2002_db1_b@" + derived.suffix(chain[0])) == splits.TUNING
    for bad in ("resample:90", "crop:330", "blur:3", "crop:10x10", "pad:0", "pad:x", "pad:4:256",
                "faint:0", "faint:101", "dry:0", "dry:61", "crop:330x360+", "crop:330x360+faint"):
        with pytest.raises(UserError):
            derived.parse(bad)


def test_resampled_images_carry_their_resolution_and_extraction_normalises(fingerprints_dir, tmp_path):
    from fpagent.biometrics import extraction

    src = fingerprints_dir / "fvc2002_db1_b"
    files = [src / "101_1.png"]
    out = derived.write_folder(src, files, (("resample", (1000,)),), tmp_path, load_image)
    assert out.name == "fvc2002_db1_b@resample1000"
    pixels, ppi = load_image(out / "101_1.png")
    original, _ = load_image(files[0])
    assert ppi == 1000 and pixels.shape == (original.shape[0] * 2, original.shape[1] * 2)
    ex = extraction.extract(pixels, ppi)
    assert ex.template.ppi == 1000 and ex.scale == pytest.approx(2.0)
    assert ex.enhanced.shape == pytest.approx(original.shape, abs=2)  # worked on at 500 ppi


def test_crop_keeps_a_window_around_the_print():
    px = np.full((374, 388), 255, np.uint8)
    px[200:300, 250:350] = 40  # the finger, off centre
    out = derived.crop(px, 120, 150)
    assert out.shape == (150, 120)
    assert (out < 128).mean() > 0.5  # the window sits on the print, not on background
    small = derived.crop(px[:300, :300], 330, 360)  # never padded: a small sensor shows no more
    assert small.shape == (300, 300)
    assert derived.crop(px[:, :288], 330, 360).shape == (360, 288)


def test_pad_surrounds_the_image_with_blank_glass():
    px = np.full((100, 120), 230, np.uint8)
    px[30:70, 40:80] = 40  # the finger
    out, ppi = derived.derive_image(px, 500, "pad", (16,))
    assert ppi == 500 and out.shape == (132, 152) and out.dtype == np.uint8
    assert (out[16:-16, 16:-16] == px).all()
    assert set(np.unique(out[:16])) == {230} and set(np.unique(out[:, -16:])) == {230}
    assert derived.derive_image(px, 1000, "pad", (16,))[0].shape == (164, 184)  # 16 px at 500 ppi
    assert (derived.derive_image(px, 500, "pad", (4, 255))[0][:4] == 255).all()


def test_crop_of_a_resampled_image_is_the_same_skin_area():
    px = np.zeros((800, 800), np.uint8)
    out, ppi = derived.derive_image(px, 1000, "crop", (330, 360))
    assert ppi == 1000 and out.shape == (720, 660)


def test_the_split_is_declared_once():
    assert splits.split_of("fvc2002_db1_b") == splits.TUNING
    assert splits.split_of("fvc2002_db3_b") == splits.VALIDATION
    # a derived set takes its source's split: the edge handling was tuned on DB1_B's copies
    assert splits.split_of("fvc2002_db1_b@crop330x360") == splits.TUNING
    assert splits.split_of("fvc2002_db3_b@pad40") == splits.VALIDATION
    assert splits.split_of("someone_elses_set") == splits.VALIDATION
    assert "derived from fvc2002_db1_b, a tuning set" in splits.label("fvc2002_db1_b@resample569")
    assert splits.tuning_sets() == ["fvc2002_db1_b"]


def _ridges(h=200, w=220, period=9):
    """Straight dark ridges (grey 30) on a white glass (250), one every `period` px."""
    px = np.full((h, w), 250, np.uint8)
    for c in range(10, w - 10, period):
        px[20:h - 20, c:c + 4] = 30
    return px


def test_faint_compresses_the_contrast_on_a_bright_uneven_glass_and_is_repeatable():
    px = _ridges()
    out, ppi = derived.derive_image(px, 500, "faint", (40,))
    assert ppi == 500 and out.shape == px.shape and out.dtype == np.uint8
    ridge, valley = px == 30, px == 250
    glass = out[valley].astype(float)
    assert 215 < glass.mean() < 250  # bright glass
    depth = glass.mean() - out[ridge].astype(float)
    # ridges reach at most about 40% of the way to black, a third of that where the finger presses least
    assert 0.4 / 3 * 236 < depth.mean() < 0.4 * 236
    assert np.percentile(depth, 99) > 0.3 * 236 and np.percentile(depth, 1) < 0.2 * 236
    assert out[ridge].max() < glass.min() + 20  # ridges and valleys still apart
    # the illumination is uneven: the glass's grey differs across the image
    corners = [out[:15, :15].mean(), out[:15, -15:].mean(), out[-15:, :15].mean(), out[-15:, -15:].mean()]
    assert max(corners) - min(corners) > 8
    assert (derived.faint(px, 40) == out).all()  # seeded by the image: the same set every run
    assert (derived.faint(px, 25).astype(int)[ridge].mean() > out.astype(int)[ridge].mean())


def test_dry_breaks_ridges_without_brightening_past_the_valleys():
    px = _ridges()
    out, _ = derived.derive_image(px, 500, "dry", (30,))
    ridge = px == 30
    lifted = (out[ridge] > 140).mean()
    assert 0.1 < lifted < 0.45  # about 30% of the ridge area, in soft-edged blobs
    assert out.max() <= 250 and (out[px == 250] == 250).all()  # valleys and glass untouched
    assert (derived.dry(px, 30) == out).all()
    assert (derived.dry(px, 10)[ridge] > 140).mean() < lifted


def test_steps_chain_in_order():
    px = np.full((400, 420), 250, np.uint8)
    px[100:300, 120:330] = _ridges(200, 210)
    chain = derived.parse("crop:330x360+dry:20+faint:40")[0]
    out, ppi = derived.derive_chain(px, 500, chain)
    assert ppi == 500 and out.shape == (360, 330)
    by_hand = derived.faint(derived.dry(derived.crop(px, 330, 360), 20), 40)
    assert (out == by_hand).all()
