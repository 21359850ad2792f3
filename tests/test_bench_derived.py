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
        ("resample", (569,)), ("resample", (1000,)), ("crop", (330, 360))]
    assert derived.parse("") == []
    assert derived.parse("pad:40,pad:40:255") == [("pad", (40,)), ("pad", (40, 255))]
    assert derived.suffix("pad", (40, 255)) == "pad40g255"
    for bad in ("resample:90", "crop:330", "blur:3", "crop:10x10", "pad:0", "pad:x", "pad:4:256"):
        with pytest.raises(UserError):
            derived.parse(bad)


def test_resampled_images_carry_their_resolution_and_extraction_normalises(fingerprints_dir, tmp_path):
    from fpagent.biometrics import extraction

    src = fingerprints_dir / "fvc2002_db1_b"
    files = [src / "101_1.png"]
    out = derived.write_folder(src, files, "resample", (1000,), tmp_path, load_image)
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
