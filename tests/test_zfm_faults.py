"""Injected faults: each gives the documented error or a successful retry,
never a hang and never a wrong image. Real pty, unpaced emulator."""

import time

import numpy as np
import pytest

from fpagent import hal

BASE = "emulated://?seed=1&person=2&timeout=0.5"


def capture(url, timeout=5.0):
    """Open, capture finger 2, return (image or the exception, sensor facts, seconds)."""
    started = time.monotonic()
    with hal.open_sensor(url) as sensor:
        try:
            result = sensor.capture(timeout=timeout, finger_position=2)
        except hal.SensorError as exc:
            result = exc
        facts = dict(served=sensor.last_image, uploads=sensor.emulator.uploads,
                     commands=list(sensor.emulator.commands), error=sensor.emulator.error)
    return result, facts, time.monotonic() - started


def assert_exact(result, facts):
    assert isinstance(result, hal.FingerImage), result
    assert np.array_equal(result.pixels, facts["served"])
    assert facts["error"] is None


@pytest.mark.parametrize("fault", ["flip:1", "drop:1", "dup:1", "flip:3"])
def test_corrupted_upload_is_retried_and_the_image_is_exact(fault):
    result, facts, _ = capture(f"{BASE}&faults={fault}")
    assert_exact(result, facts)
    times = int(fault.split(":")[1])
    assert facts["uploads"] == times + 1  # each corrupted upload was asked again


@pytest.mark.parametrize("fault", ["drop:1,at:-1", "drop:1,at:0", "dup:1,at:-2", "flip:1,at:-1"])
def test_corruption_at_the_edges_of_the_upload_is_retried(fault):
    # a byte lost from the very last packet leaves a frame that never
    # completes: that is a link error (retried), not a silent sensor
    result, facts, _ = capture(f"{BASE}&faults={fault}")
    assert_exact(result, facts)
    assert facts["uploads"] == 2


@pytest.mark.parametrize("fault", ["flip:4", "drop:9", "dup:9"])
def test_persistent_corruption_gives_a_link_error_after_bounded_retries(fault):
    result, facts, seconds = capture(f"{BASE}&retries=3&faults={fault}")
    assert isinstance(result, hal.TransportError), result
    assert isinstance(result, (hal.ChecksumError, hal.FramingError))
    assert facts["uploads"] == 4 and seconds < 10


def test_garbage_and_power_on_byte_before_answers_are_skipped():
    result, facts, _ = capture(f"{BASE}&faults=garbage:40,poweron:1")
    assert_exact(result, facts)
    assert facts["uploads"] == 1


def test_no_finger_for_a_few_polls_then_a_capture():
    result, facts, _ = capture(f"{BASE}&poll=0.01&faults=nofinger:5")
    assert_exact(result, facts)
    assert facts["commands"].count(0x01) == 6  # five "no finger", then the image


def test_never_a_finger_is_no_finger_at_the_deadline():
    result, facts, seconds = capture(f"{BASE}&poll=0.05&faults=nofinger:-1", timeout=0.5)
    assert isinstance(result, hal.NoFinger)
    assert facts["uploads"] == 0 and 0.4 < seconds < 6


def test_silent_sensor_is_not_found_when_opening():
    started = time.monotonic()
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor(f"{BASE}&retries=1&faults=silent:0")
    assert "no answer" in str(err.value)
    assert time.monotonic() - started < 6


def test_sensor_going_silent_mid_session_is_a_capture_timeout():
    # answers VfyPwd, ReadSysPara, ReadProdInfo, then nothing
    result, facts, seconds = capture(f"{BASE}&retries=1&faults=silent:3")
    assert isinstance(result, hal.CaptureTimeout), result
    assert facts["uploads"] == 0 and seconds < 6


def test_sensor_going_silent_before_the_upload_is_a_capture_timeout():
    result, facts, seconds = capture(f"{BASE}&retries=1&faults=silent:4")  # GenImg answered
    assert isinstance(result, hal.CaptureTimeout), result
    assert seconds < 6


def test_slow_answers_within_the_timeout_are_fine():
    result, facts, _ = capture("emulated://?seed=1&person=2&timeout=1&faults=delay:0.05")
    assert_exact(result, facts)


def test_answers_slower_than_the_timeout_mean_not_found():
    started = time.monotonic()
    with pytest.raises(hal.SensorNotFound):
        hal.open_sensor(f"{BASE}&retries=1&faults=delay:1.0")
    assert time.monotonic() - started < 6


def test_a_late_answer_is_asked_again_and_never_mistaken_for_the_next_one():
    # VfyPwd's answer comes after the timeout; the driver asks again, and the
    # late "OK" that then turns up must not pass for ReadSysPara's answer
    result, facts, _ = capture(f"{BASE}&faults=late:0.8")
    assert_exact(result, facts)
    assert facts["commands"][:2] == [0x13, 0x13]


def test_short_stall_mid_upload_is_waited_out():
    result, facts, _ = capture("emulated://?seed=1&person=2&timeout=1&faults=stall:0.2")
    assert_exact(result, facts)
    assert facts["uploads"] == 1


def test_long_stall_mid_upload_is_a_capture_timeout_not_a_half_image():
    result, facts, seconds = capture(f"{BASE}&faults=stall:2")
    assert isinstance(result, hal.CaptureTimeout), result
    assert seconds < 6


@pytest.mark.parametrize("fault_seed", range(6))
def test_mixed_faults_never_give_a_wrong_image(fault_seed):
    rng = np.random.default_rng(fault_seed)
    flip, drop, dup = (int(v) for v in rng.integers(0, 3, size=3))
    garbage = int(rng.integers(0, 30))
    url = (f"{BASE}&retries=3&fault_seed={fault_seed}"
           f"&faults=flip:{flip},drop:{drop},dup:{dup},garbage:{garbage},poweron:1")
    result, facts, seconds = capture(url)
    # at most two corrupted uploads (faults may share one), three retries
    assert_exact(result, facts)
    assert facts["uploads"] == max(flip, drop, dup) + 1
    assert seconds < 10


def test_a_false_header_in_line_noise_costs_one_retry_not_a_hang():
    from fpagent.drivers.zfm.emulator import Faults, ZfmEmulator

    # noise that looks like the start of a 200-byte acknowledge swallows the
    # real 12-byte answer; the driver must give up on it at the timeout and
    # ask again, not wait forever for 188 more bytes
    false_header = bytes.fromhex("EF01FFFFFFFF0700C8")
    with ZfmEmulator(seed=1, person=2, faults=Faults(garbage=9)) as emulator:
        noise = iter([false_header])
        emulator._rng.randbytes = lambda n: next(noise, b"\x00" * n)  # the noise source
        started = time.monotonic()
        with hal.open_sensor(f"zfm://{emulator.port_path}?timeout=0.5") as sensor:
            assert emulator.commands[:2] == [0x13, 0x13]  # VfyPwd asked twice
            emulator.set_finger(2)
            image = sensor.capture(timeout=5, finger_position=2)
            assert np.array_equal(image.pixels, emulator.last_image)
        assert time.monotonic() - started < 6
