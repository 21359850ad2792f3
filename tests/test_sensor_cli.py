"""`fpagent sensor ...` against the emulator, in process (the same main() the console script runs)."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fpagent import cli
from fpagent.drivers.zfm.emulator import fit_to_module


@pytest.fixture
def image_folder(tmp_path):
    """One made-up grey image (not a fingerprint, not a person's print)."""
    rng = np.random.default_rng(5)
    px = (rng.random((300, 280)) * 255).astype(np.uint8)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(px).save(folder / "a.png")
    return folder, px


def test_capture_writes_a_png_equal_to_the_emulators_image(image_folder, tmp_path, capsys):
    folder, px = image_folder
    out = tmp_path / "finger.png"
    rc = cli.main(["sensor", "capture", f"emulated://?source={folder}", "--out", str(out),
                   "--finger", "2"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "right index" in captured.out
    assert "36864/36864" in captured.err  # the progress bar reached the end
    with Image.open(out) as png:
        assert png.mode == "L" and png.size == (256, 288)
        assert round(png.info["dpi"][0]) == 500
        written = np.asarray(png)
    assert np.array_equal(written, fit_to_module(px))
    assert out.stat().st_mode & 0o777 == 0o600  # a fingerprint: owner only


def test_capture_makes_an_existing_output_file_private(image_folder, tmp_path):
    folder, _ = image_folder
    out = tmp_path / "old.png"
    out.write_bytes(b"old")
    out.chmod(0o644)
    assert cli.main(["sensor", "capture", f"emulated://?source={folder}", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600


def test_capture_from_the_configured_sensor(tmp_path, capsys):
    config = tmp_path / "agent.toml"
    config.write_text('[sensor]\nurl = "emulated://?seed=1&person=2"\ncapture_timeout_s = 5\n')
    out = tmp_path / "f.png"
    assert cli.main(["--config", str(config), "sensor", "capture", "--out", str(out),
                     "--finger", "2"]) == 0
    with Image.open(out) as png:
        assert png.size == (256, 288) and np.asarray(png).std() > 20


def test_capture_without_a_finger_is_one_line_and_nonzero(tmp_path, capsys):
    rc = cli.main(["sensor", "capture", "emulated://?seed=1&person=2&faults=nofinger:-1&poll=0.05",
                   "--out", str(tmp_path / "x.png"), "--timeout", "0.3", "--finger", "2"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "no finger" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_capture_refuses_a_bad_finger_code(tmp_path, capsys):
    assert cli.main(["sensor", "capture", "emulated://?seed=1", "--out",
                     str(tmp_path / "x.png"), "--finger", "11"]) != 0
    assert "0-10" in capsys.readouterr().err


def test_info_lists_the_parameters(capsys):
    assert cli.main(["sensor", "info", "emulated://?seed=3&baud=115200"]) == 0
    out = capsys.readouterr().out
    assert "256x288 at 500 ppi" in out and "115200 baud" in out and "packet_size" in out


def test_test_passes_on_a_healthy_sensor(capsys):
    assert cli.main(["sensor", "test", "emulated://?seed=1&person=2", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    lines = [l for l in out.splitlines() if l.startswith(("PASS", "FAIL"))]
    assert [l.split()[:2] for l in lines] == [
        ["PASS", "handshake"], ["PASS", "parameters"], ["PASS", "capture"], ["PASS", "timing"]]


def test_test_fails_on_a_silent_sensor(capsys):
    rc = cli.main(["sensor", "test", "emulated://?seed=1&timeout=0.2&retries=0&faults=silent:0"])
    assert rc == 1
    assert capsys.readouterr().out.startswith("FAIL  handshake")


def test_test_fails_when_no_finger_comes(capsys):
    rc = cli.main(["sensor", "test", "emulated://?seed=1&faults=nofinger:-1&poll=0.05",
                   "--timeout", "0.3"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL  capture" in out and "PASS  handshake" in out


def test_list_runs_and_probe_reports_each_port(capsys, monkeypatch):
    from fpagent import hal

    # no USB sensor on a build machine: list whatever pyserial sees, plus a
    # made-up entry pointing at a path that does not exist (probe must say so)
    real = hal.candidate_ports()
    monkeypatch.setattr(hal, "candidate_ports", lambda: real + [dict(
        device="/dev/no-such-port", vid=0x1A86, pid=0x7523, description="CH340", interface="zfm")])
    assert cli.main(["sensor", "list", "--probe"]) == 0
    out = capsys.readouterr().out
    assert "/dev/no-such-port" in out and "1a86:7523" in out and "no EF01 sensor" in out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "fpagent", "sensor", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "capture" in out.stdout and "test" in out.stdout


@pytest.mark.slow
def test_bench_sensor_runs_and_its_json_line_is_last(capsys):
    # the benchmark must keep working; its figures are not judged here
    import json

    assert cli.main(["bench", "sensor", "--rates", "115200", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    (rate,) = json.loads(last)["rates"]
    assert rate["baud"] == 115200 and rate["wire_bytes"] == 40056
    assert {"wire_s", "upload_s", "ratio", "cpu_s"} <= set(rate)
