"""`fpagent inspect` draws a readable picture and says what it found."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fpagent import cli
from fpagent.biometrics import extraction
from fpagent.biometrics import overlay


def test_inspect_writes_a_png_with_minutiae_drawn(fingerprints_dir, tmp_path, capsys):
    src = fingerprints_dir / "fvc2002_db1_b" / "102_2.png"
    out = tmp_path / "view.png"
    assert cli.main(["inspect", str(src), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert "quality" in line and "minutiae" in line and "advice" in line
    pic = Image.open(out)
    px = np.asarray(Image.open(src).convert("L"))
    assert pic.format == "PNG" and pic.mode == "RGB"
    assert pic.size == (2 * px.shape[1], 2 * px.shape[0])
    rgb = np.asarray(pic).astype(int)
    # the minutiae markers: pure-ish red and blue strokes exist
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
    blue = (rgb[..., 2] > 200) & (rgb[..., 0] < 60)
    assert red.sum() > 50 and blue.sum() > 50
    # the background blocks are dimmed: the corner is darker than in the original
    assert rgb[:8, :8].mean() < px[:4, :4].mean() - 30


def test_overlay_marks_every_minutia_at_its_place(fingerprints_dir):
    px = np.asarray(Image.open(fingerprints_dir / "fvc2002_db3_b" / "102_4.png").convert("L"))
    ext = extraction.extract(px)
    rgb = np.asarray(overlay.render(px, ext, zoom=1)).astype(int)
    for m in ext.template.minutiae:
        x, y = int(m["x"]), int(m["y"])
        patch = rgb[max(0, y - 4): y + 5, max(0, x - 4): x + 5]
        coloured = (np.abs(patch[..., 0] - patch[..., 2]) > 120).any()
        assert coloured, (x, y)


def test_inspect_of_a_blank_image_still_draws_and_exits_65(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((288, 256), 240, np.uint8)).save(blank)
    out = tmp_path / "view.png"
    assert cli.main(["inspect", str(blank), "--out", str(out)]) == 65
    assert "no usable fingerprint" in capsys.readouterr().out
    assert Image.open(out).size == (512, 576)


@pytest.mark.parametrize("bad", ["missing.png", "notimage.png"])
def test_inspect_bad_input_is_one_clear_line(tmp_path, capsys, bad):
    path = tmp_path / bad
    if bad == "notimage.png":
        path.write_bytes(b"this is not a picture")
    assert cli.main(["inspect", str(path), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fpagent: ") and str(path) in err and "Traceback" not in err
