"""`fpagent synth` writes the generator's images, named as documented."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fpagent.cli import main
from fpagent.drivers.synthetic.generator import finger_image


def test_synth_writes_deterministic_pngs(tmp_path, capsys):
    out = tmp_path / "prints"
    rc = main(["synth", "--person", "4", "--finger", "1,2", "--impressions", "2",
               "--seed", "3", "--size", "200x240", "--out", str(out)])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["4_1_1.png", "4_1_2.png", "4_2_1.png", "4_2_2.png"]
    with Image.open(out / "4_2_2.png") as im:
        assert round(im.info["dpi"][0]) == 500
        pixels = np.array(im)
    assert np.array_equal(pixels, finger_image(4, 2, 1, seed=3, size=(240, 200)))
    assert "wrote 4 images" in capsys.readouterr().out


def test_synth_refuses_bad_fingers_and_sizes_with_one_line(tmp_path, capsys):
    assert main(["synth", "--finger", "0", "--out", str(tmp_path)]) == 2
    assert "1 (right thumb) to 10" in capsys.readouterr().err
    assert main(["synth", "--size", "huge", "--out", str(tmp_path)]) == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bench_synthetic_prints_figures_and_a_json_line(capsys):
    import json

    assert main(["bench", "synthetic", "--fingers", "2", "--impressions", "2",
                 "--no-nbis", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("master finger:") for line in out)
    result = json.loads(out[-1])
    assert result["fingers"] == 2 and result["impressions"] == 2
    assert result["master_s_median"] > 0 and result["impression_s_median"] > 0
    assert sum(result["patterns"].values()) == 2
