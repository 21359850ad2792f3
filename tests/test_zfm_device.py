"""The ZFM driver end to end through a real pty against the (unpaced) emulator."""

import logging
import time

import numpy as np
import pytest
from PIL import Image

from fpagent import hal
from fpagent.drivers.zfm import codec
from fpagent.drivers.zfm.device import ZfmSensor
from fpagent.drivers.zfm.emulator import EmulatedZfmSensor, ZfmEmulator, fit_to_module

LEVELS = {v * 17 for v in range(16)}


def test_capture_equals_the_emulators_image_pixel_by_pixel():
    with hal.open_sensor("emulated://?source=synthetic&seed=1&person=2") as sensor:
        assert isinstance(sensor, EmulatedZfmSensor)
        image = sensor.capture(timeout=5, finger_position=2)
        served = sensor.last_image
    assert image.pixels.shape == (288, 256) and image.pixels.dtype == np.uint8
    assert np.array_equal(image.pixels, served)
    assert set(np.unique(image.pixels)) <= LEVELS  # 16 grey levels, as the module has
    assert image.pixels.std() > 20  # a fingerprint, not a blank
    assert image.ppi == 500 and image.finger_position == hal.FingerPosition.RIGHT_INDEX


def test_folder_source_serves_real_prints_cropped_and_quantised(fingerprints_dir):
    folder = fingerprints_dir / "fvc2002_db1_b"
    first = sorted(folder.glob("*.png"))[0]
    with hal.open_sensor(f"emulated://?source={folder}") as sensor:
        image = sensor.capture(timeout=5)
    original = np.asarray(Image.open(first).convert("L"))
    h, w = original.shape  # 374 x 388: larger than the module, so a centre crop
    top, left = (h - 288) // 2, (w - 256) // 2
    expected = (original[top:top + 288, left:left + 256] >> 4) * 17
    assert np.array_equal(image.pixels, expected)


def test_one_file_source_serves_that_print_every_time(fingerprints_dir):
    from fpagent.commands import demo
    from fpagent.drivers.zfm.emulator import IMAGE_SUFFIXES

    assert demo.IMAGE_SUFFIXES == IMAGE_SUFFIXES  # the demo lists what the emulator serves
    third = sorted((fingerprints_dir / "fvc2002_db1_b").glob("*.png"))[2]
    with hal.open_sensor(f"emulated://?source={third}") as sensor:
        images = [sensor.capture(timeout=5).pixels for _ in range(2)]
    expected = fit_to_module(np.asarray(Image.open(third).convert("L")))
    assert np.array_equal(images[0], expected) and np.array_equal(images[1], expected)


def test_fit_to_module_scales_up_small_images():
    small = np.tile(np.arange(100, dtype=np.uint8), (120, 1))
    fitted = fit_to_module(small)
    assert fitted.shape == (288, 256) and set(np.unique(fitted)) <= LEVELS
    assert fitted[:, 0].mean() < fitted[:, -1].mean()  # the gradient survives


@pytest.mark.parametrize("packet_size", [32, 64, 256])
def test_every_packet_size_reassembles_the_same_image(packet_size):
    with hal.open_sensor(f"emulated://?seed=1&person=2&packet_size={packet_size}") as sensor:
        image = sensor.capture(timeout=5, finger_position=2)
        assert sensor.packet_size == packet_size
        assert sensor.last_upload["packets"] == 36864 // packet_size
        assert np.array_equal(image.pixels, sensor.last_image)


def test_geometry_comes_from_the_bytes_when_the_module_cannot_say():
    with hal.open_sensor("emulated://?seed=1&person=2&prodinfo=0") as sensor:
        assert sensor.product == {}
        image = sensor.capture(timeout=5, finger_position=2)
        assert (image.width, image.height) == (256, 288)
        assert np.array_equal(image.pixels, sensor.last_image)


def test_progress_reports_the_upload_in_order():
    seen = []
    with hal.open_sensor("emulated://?seed=1&person=2&faults=nofinger:2") as sensor:
        sensor.capture(timeout=5, progress=lambda *a: seen.append(a), finger_position=2)
    stages = [s for s, _, _ in seen]
    assert stages[:2] == ["waiting", "waiting"] and stages[-1] == "done"
    upload = [(d, t) for s, d, t in seen if s == "upload"]
    assert upload[0] == (0, 36864) and upload[-1] == (36864, 36864)
    assert all(a[0] < b[0] for a, b in zip(upload, upload[1:]))
    assert len(upload) == 1 + 288


def test_ten_fingers_are_ten_different_fingers_and_repeats_are_new_impressions():
    images = {}
    with hal.open_sensor("emulated://?seed=1&person=2") as sensor:
        for finger in (1, 2, 3):  # three fingers keep the test quick; ten work the same
            images[finger] = sensor.capture(timeout=5, finger_position=finger).pixels
        again = sensor.capture(timeout=5, finger_position=2).pixels
    assert not np.array_equal(images[1], images[2]) and not np.array_equal(images[2], images[3])
    assert not np.array_equal(again, images[2])  # the next impression of the same finger


def test_info_reports_parameters_and_product():
    with hal.open_sensor("emulated://?seed=7&baud=115200") as sensor:
        info = sensor.info()
    assert info.interface == "emulated" and info.baud == 115200
    assert (info.image_width, info.image_height, info.ppi) == (256, 288, 500)
    assert info.extra["packet_size"] == 128 and info.extra["capacity"] == 1000
    assert info.extra["baud_n"] == 12 and info.serial_number == "00000007"
    assert info.sensor_id == "emulated:00000007"


def test_zfm_url_on_a_pty_and_a_second_open_is_busy():
    with ZfmEmulator(seed=1) as emulator:
        with hal.open_sensor(f"zfm://{emulator.port_path}?timeout=0.5") as sensor:
            assert isinstance(sensor, ZfmSensor) and sensor.info().interface == "zfm"
            with pytest.raises(hal.SensorBusy):
                hal.open_sensor(f"zfm://{emulator.port_path}")
            emulator.set_finger(4)
            image = sensor.capture(timeout=5, finger_position=4)
            assert np.array_equal(image.pixels, emulator.last_image)
        # closed: the port is free again
        hal.open_sensor(f"zfm://{emulator.port_path}?timeout=0.5").close()


def test_missing_port_is_sensor_not_found():
    with pytest.raises(hal.SensorNotFound):
        hal.open_sensor("zfm:///dev/no-such-sensor-port")


def test_pyserial_loop_url_gets_our_own_command_back_not_an_answer():
    started = time.monotonic()
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor("zfm://loop://?timeout=0.2&retries=1")
    assert "garbled" in str(err.value)
    assert time.monotonic() - started < 3


def test_unsupported_baud_is_refused_before_opening():
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor("zfm:///dev/ttyUSB9?baud=960000")
    assert "9600 x N" in str(err.value)


def test_password():
    with hal.open_sensor("emulated://?seed=1&password=0x1234") as sensor:
        assert sensor.emulator.password == 0x1234
        sensor.capture(timeout=5)
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor("emulated://?seed=1&module_password=5")
    assert "password" in str(err.value)


def test_wrong_address_is_silence_then_not_found():
    started = time.monotonic()
    with pytest.raises(hal.SensorNotFound) as err:
        hal.open_sensor("emulated://?seed=1&module_address=0x12345678&timeout=0.2&retries=0")
    assert "no answer" in str(err.value) and time.monotonic() - started < 3


def test_spy_logs_frames_but_never_image_bytes(caplog):
    caplog.set_level(logging.DEBUG, logger="fpagent.hal.spy")
    with caplog.at_level(logging.DEBUG, logger="fpagent.drivers.zfm.spy"):
        with hal.open_sensor("spy+emulated://?seed=1&person=2") as sensor:
            image = sensor.capture(timeout=5, finger_position=2)
            payload = codec.pack_nibbles(image.pixels)
    lines = [r.getMessage() for r in caplog.records if r.name == "fpagent.drivers.zfm.spy"]
    assert any("-> CMD 0x0A UpImage" in line for line in lines)
    assert any("<- ACK 0x00 OK" in line for line in lines)
    assert sum("<- DATA len=128" in line for line in lines) == 287
    assert sum("<- END len=128" in line for line in lines) == 1
    text = "\n".join(lines)
    assert payload[:16].hex() not in text.replace(" ", "") and max(map(len, lines)) < 120
    # the ZFM family keeps its frame spy, and the HAL logs the capture as for every driver
    (capture,) = [r.getMessage() for r in caplog.records if r.name == "fpagent.hal.spy"]
    assert "fgp=2" in capture and "256x288 @ 500 ppi" in capture


def test_without_spy_nothing_is_logged(caplog):
    with caplog.at_level(logging.DEBUG, logger="fpagent.drivers.zfm.spy"):
        with hal.open_sensor("emulated://?seed=1&person=2") as sensor:
            sensor.capture(timeout=5, finger_position=2)
    assert not [r for r in caplog.records if r.name == "fpagent.drivers.zfm.spy"]


def test_emulator_paces_bytes_at_the_baud_rate():
    # not a speed test: pacing is a property of the emulator that the bench
    # relies on; 9600 baud makes a 12-byte answer take at least 12.5 ms
    with ZfmEmulator(seed=1, baud=9600, pace=True) as emulator:
        with hal.open_sensor(f"zfm://{emulator.port_path}?baud=9600&prodinfo=0") as sensor:
            started = time.perf_counter()
            for _ in range(4):
                sensor._command(codec.TEMPLATE_NUM)
            elapsed = time.perf_counter() - started
    assert elapsed >= 4 * (12 + 14) * 10 / 9600 * 0.99


def test_emulator_commands_and_image_buffer():
    with hal.open_sensor("emulated://?seed=1&person=2") as sensor:
        assert sensor._command(codec.GET_ECHO).code == 0x55
        assert sensor._command(codec.HANDSHAKE).code == codec.OK
        # UpImage before any GenImg: the module refuses
        with pytest.raises(hal.SensorRejected) as err:
            sensor._upload_image(lambda *a: None)
        assert "0x0F" in str(err.value)
        assert sensor._command(0x35).code == codec.UNSUPPORTED


def test_emulator_answers_a_garbled_command_with_0x01_and_the_driver_retries():
    import serial

    with ZfmEmulator(seed=1) as emulator:
        port = serial.Serial(emulator.port_path, 57600, timeout=2)
        try:
            frame = bytearray(codec.command(codec.TEMPLATE_NUM))
            frame[-1] ^= 0xFF
            port.write(bytes(frame))
            reader = codec.PacketReader()
            reader.feed(port.read(12))
            assert reader.next_packet().code == codec.ERR_RECEIVE
        finally:
            port.close()
        # the driver turns 0x01 into a retried link error, then a clear one
        with hal.open_sensor(f"zfm://{emulator.port_path}?retries=2") as sensor:
            sent = []
            real_send = sensor._send

            def garble_first_two(instruction, params):
                sent.append(instruction)
                if len(sent) <= 2:  # corrupt the command on its way out
                    frame = bytearray(codec.command(instruction, params))
                    frame[-1] ^= 0xFF
                    sensor._port.reset_input_buffer()
                    sensor._port.write(bytes(frame))
                else:
                    real_send(instruction, params)

            sensor._send = garble_first_two
            assert sensor._command(codec.TEMPLATE_NUM).code == codec.OK
            assert len(sent) == 3


def test_a_duplicated_byte_after_the_last_frame_is_harmless():
    with hal.open_sensor("emulated://?seed=1&person=2&faults=dup:1,at:-1") as sensor:
        image = sensor.capture(timeout=5, finger_position=2)
        assert np.array_equal(image.pixels, sensor.last_image)
        assert sensor.emulator.uploads == 1
