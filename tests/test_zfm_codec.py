"""The EF01 packet codec: worked frames from the spec, resync, properties."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fpagent import hal
from fpagent.drivers.zfm import codec

FF = codec.DEFAULT_ADDRESS

# (what, address, pid, payload, wire bytes): the table in section 2 of
# ../shared/specs/sensor-zfm-protocol.md.
WORKED_FRAMES = [
    ("VfyPwd(0)", FF, 0x01, bytes([0x13, 0, 0, 0, 0]),
     "EF 01 FF FF FF FF 01 00 07 13 00 00 00 00 00 1B"),
    ("GenImg", FF, 0x01, bytes([0x01]), "EF 01 FF FF FF FF 01 00 03 01 00 05"),
    ("Img2Tz(1)", FF, 0x01, bytes([0x02, 0x01]), "EF 01 FF FF FF FF 01 00 04 02 01 00 08"),
    ("RegModel", FF, 0x01, bytes([0x05]), "EF 01 FF FF FF FF 01 00 03 05 00 09"),
    ("Store(1, 5)", FF, 0x01, bytes([0x06, 0x01, 0x00, 0x05]),
     "EF 01 FF FF FF FF 01 00 06 06 01 00 05 00 13"),
    ("Search(1, 0, 1000)", FF, 0x01, bytes([0x04, 0x01, 0x00, 0x00, 0x03, 0xE8]),
     "EF 01 FF FF FF FF 01 00 08 04 01 00 00 03 E8 00 F9"),
    ("ReadSysPara", FF, 0x01, bytes([0x0F]), "EF 01 FF FF FF FF 01 00 03 0F 00 13"),
    ("UpImage", FF, 0x01, bytes([0x0A]), "EF 01 FF FF FF FF 01 00 03 0A 00 0E"),
    ("Ack OK", FF, 0x07, bytes([0x00]), "EF 01 FF FF FF FF 07 00 03 00 00 0A"),
]


@pytest.mark.parametrize("what,address,pid,payload,wire", WORKED_FRAMES,
                         ids=[f[0] for f in WORKED_FRAMES])
def test_worked_frames_encode_and_decode(what, address, pid, payload, wire):
    frame = bytes.fromhex(wire)
    assert codec.encode(address, pid, payload) == frame
    packet = codec.decode(frame)
    assert (packet.address, packet.pid, packet.payload) == (address, pid, payload)
    assert codec.checksum(pid, payload) == int.from_bytes(frame[-2:], "big")


def test_command_and_ack_helpers_match_worked_frames():
    assert codec.command(codec.GEN_IMG) == bytes.fromhex("EF01FFFFFFFF010003010005")
    assert codec.ack(codec.OK) == bytes.fromhex("EF01FFFFFFFF07000300000A")


def test_checksum_discards_overflow_beyond_16_bits():
    payload = b"\xff" * 256
    assert codec.checksum(codec.PID_DATA, payload) == (2 + 1 + 2 + 255 * 256) & 0xFFFF
    assert codec.decode(codec.encode(FF, codec.PID_DATA, payload)).payload == payload


def test_encode_rejects_what_cannot_go_on_the_wire():
    with pytest.raises(ValueError):
        codec.encode(FF, 0x05, b"\x01")
    with pytest.raises(ValueError):
        codec.encode(FF, codec.PID_DATA, b"")
    with pytest.raises(ValueError):
        codec.encode(FF, codec.PID_DATA, b"x" * 257)
    with pytest.raises(ValueError):
        codec.encode(1 << 32, codec.PID_ACK, b"\x00")


def test_reader_skips_power_on_byte_and_garbage():
    reader = codec.PacketReader()
    reader.feed(b"\x55" + b"\x00\xef\x13garbage\xef" + codec.ack(0) + b"\x55")
    packet = reader.next_packet()
    assert packet.pid == codec.PID_ACK and packet.code == 0
    assert reader.skipped == 12
    assert reader.next_packet() is None


def test_reader_waits_for_a_split_frame():
    frame = codec.ack(codec.OK, b"\x01\x02")
    reader = codec.PacketReader()
    for i, byte in enumerate(frame[:-1]):
        reader.feed(bytes([byte]))
        assert reader.next_packet() is None
        needed = reader.bytes_needed()
        # exact once LENGTH is known, a lower bound (never too many) before
        assert needed == len(frame) - i - 1 if i >= 8 else 1 <= needed <= len(frame) - i - 1
    reader.feed(frame[-1:])
    assert reader.next_packet().payload == b"\x00\x01\x02"


def test_bad_checksum_raises_then_resynchronises_on_next_frame():
    bad = bytearray(codec.ack(codec.OK))
    bad[-1] ^= 0x01
    reader = codec.PacketReader()
    reader.feed(bytes(bad) + codec.ack(codec.NO_FINGER))
    with pytest.raises(codec.CodecChecksumError) as err:
        reader.next_packet()
    assert isinstance(err.value, hal.ChecksumError)
    assert reader.next_packet().code == codec.NO_FINGER


@pytest.mark.parametrize("length", [0, 1, 2, 259, 0xFFFF])
def test_impossible_length_is_a_framing_error(length):
    reader = codec.PacketReader()
    reader.feed(codec.HEADER + b"\xff" * 4 + b"\x07" + length.to_bytes(2, "big") + b"\x00" * 4)
    with pytest.raises(codec.CodecFramingError) as err:
        reader.next_packet()
    assert isinstance(err.value, hal.FramingError)


def test_unknown_pid_is_a_framing_error_and_a_real_frame_after_it_is_found():
    reader = codec.PacketReader()
    reader.feed(codec.HEADER + b"\xff" * 4 + b"\x03\x00\x03\x00\x00\x06" + codec.ack(0))
    with pytest.raises(codec.CodecFramingError):
        reader.next_packet()
    assert reader.next_packet().code == 0


def test_decode_wants_exactly_one_frame():
    with pytest.raises(codec.CodecFramingError):
        codec.decode(codec.ack(0) + b"\x00")
    with pytest.raises(codec.CodecFramingError):
        codec.decode(codec.ack(0)[:-1])


def test_data_packets_split_and_mark_the_last():
    frames = codec.data_packets(bytes(range(256)) * 2, 128)
    assert len(frames) == 4
    packets = [codec.decode(f) for f in frames]
    assert [p.pid for p in packets] == [2, 2, 2, 8]
    assert b"".join(p.payload for p in packets) == bytes(range(256)) * 2


def test_nibble_packing_high_nibble_is_left_pixel():
    data = bytes([0xF0, 0x1E])
    px = codec.unpack_nibbles(data, 2, 2)
    assert px.tolist() == [[255, 0], [17, 238]]
    assert codec.pack_nibbles(px) == data
    with pytest.raises(codec.CodecFramingError):
        codec.unpack_nibbles(data, 4, 2)


def test_describe_never_shows_payload_bytes():
    packet = codec.decode(codec.encode(FF, codec.PID_DATA, b"\xab\xcd" * 64))
    assert "abcd" not in repr(packet).lower() and "171" not in repr(packet)
    assert "len=128" in packet.describe()


# -- properties ------------------------------------------------------------

payloads = st.binary(min_size=1, max_size=256)
pids = st.sampled_from(sorted(codec.PIDS))
addresses = st.integers(0, 0xFFFFFFFF)


def _drain(reader):
    """Everything a reader yields: packets, or the codec's own errors."""
    out = []
    for _ in range(10_000):
        try:
            packet = reader.next_packet()
        except (codec.CodecChecksumError, codec.CodecFramingError) as exc:
            out.append(exc)
            continue
        if packet is None:
            return out
        out.append(packet)
    raise AssertionError("reader did not terminate")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_arbitrary_bytes_give_only_frames_or_codec_errors(data, chunk):
    reader = codec.PacketReader()
    for i in range(0, len(data), chunk):
        reader.feed(data[i:i + chunk])
        for item in _drain(reader):
            if isinstance(item, codec.Packet):
                assert item.pid in codec.PIDS and 1 <= len(item.payload) <= 256
                assert codec.encode(item.address, item.pid, item.payload) in data


@settings(max_examples=200, deadline=None)
@given(addresses, pids, payloads)
def test_encode_decode_round_trip(address, pid, payload):
    packet = codec.decode(codec.encode(address, pid, payload))
    assert (packet.address, packet.pid, packet.payload) == (address, pid, payload)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), addresses, pids, payloads, st.integers(1, 50))
def test_frame_embedded_in_garbage_is_found(garbage, address, pid, payload, chunk):
    frame = codec.encode(address, pid, payload)
    # a false header in the garbage may claim the frame's bytes as its own;
    # its checksum fails and the reader rescans from one byte further on
    stream = garbage + frame
    reader = codec.PacketReader()
    found = []
    for i in range(0, len(stream), chunk):
        reader.feed(stream[i:i + chunk])
        found += [p for p in _drain(reader) if isinstance(p, codec.Packet)]
    assert codec.Packet(address, pid, payload) in found


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40).flatmap(
    lambda h: st.binary(min_size=h * 8, max_size=h * 8).map(lambda b: (b, h))))
def test_nibbles_round_trip(data_h):
    data, h = data_h
    px = codec.unpack_nibbles(data, 16, h)
    assert px.shape == (h, 16) and px.dtype == np.uint8
    assert set(np.unique(px)) <= {v * 17 for v in range(16)}
    assert codec.pack_nibbles(px) == data
