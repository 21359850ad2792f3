"""`fpagent transaction check`: transactions built independently with nistitl,
good and broken, checked against the national profile through the real CLI."""

from __future__ import annotations

import nistitl
import pytest

from fpagent.cli import main

TYPE2_GOOD = {
    5: "Y", 9: "2026-0102", 18: "DOE,JOHN Q", 20: "GA", 22: "19800229", 24: "M", 25: "W", 27: "511",
    29: "180", 31: "BRO", 32: "BLK", 45: "20261128", 47: [["20261127", "THEFT BY TAKING"]], 73: "GA0600000",
}


def transaction(type2: dict, tot: str = "CAR") -> bytes:
    """A CAR built with nistitl alone (Type-1, Type-2, one Type-14 amputation record)."""
    msg = nistitl.Message()
    r1 = msg[0]
    r1.VER, r1.TOT, r1.DAT, r1.DAI, r1.ORI = "0502", tot, "20261128", "GA0000000", "GA0600000"
    r1.TCN, r1.NSR, r1.NTR, r1.DOM, r1.GMT = "GA0600000-20261128-00000001-J", "00.00", "00.00", "NORAM", "20261128063015Z"
    r2 = nistitl.AsciiRecord(2)
    r2.IDC = 0
    for tag, value in sorted(type2.items()):
        field = nistitl.Field(2, tag)
        if isinstance(value, list):
            for items in value:
                sf = nistitl.SubField()
                sf.add_values(*items)
                field.add_subfields(sf)
        else:
            field = nistitl.Field(2, tag, value)
        r2 += field
    msg += r2
    r14 = nistitl.AsciiRecord(14)
    r14.IDC, r14.IMP, r14.SRC, r14.FCD, r14.FGP = 1, 1, "GA0600000", "20261128", 1
    msg += r14
    return msg.NIST


def run(tmp_path, data: bytes, capsys, *extra) -> tuple[int, list[str]]:
    path = tmp_path / "booking.an2"
    path.write_bytes(data)
    code = main(["transaction", "check", str(path), *extra])
    out = capsys.readouterr()
    return code, (out.out + out.err).strip().splitlines()


def test_a_conformant_transaction_exits_0(tmp_path, capsys):
    code, out = run(tmp_path, transaction(TYPE2_GOOD), capsys)
    assert code == 0, out
    assert out == ["booking.an2: conforms to profile ebts-national 2026.1"]


def test_missing_mandatory_field_is_named(tmp_path, capsys):
    code, out = run(tmp_path, transaction({k: v for k, v in TYPE2_GOOD.items() if k != 24}), capsys)
    assert code == 1
    assert out[0] == "2.024 SEX: missing (mandatory)"
    assert out[-1].startswith("booking.an2: 1 finding(s)")


def test_bad_code_and_unknown_field_and_wrong_tot(tmp_path, capsys):
    code, out = run(tmp_path, transaction(TYPE2_GOOD | {25: "Q", 300: "X"}, tot="CNA"), capsys)
    assert code == 1
    assert out[:3] == ["1.004 TOT: 'CNA' is not in the code table (CAR)",
                       "2.025 RAC: 'Q' is not in the code table (A, B, I, U, W)",
                       "2.300: is not a field of profile ebts-national for CAR"]


def test_overlay_selected_on_the_command_line(tmp_path, capsys):
    code, out = run(tmp_path, transaction(TYPE2_GOOD), capsys, "--profile", "example-state")
    assert code == 1 and out[0] == "2.900 AOC: missing (mandatory)"


@pytest.mark.parametrize("data", [b"", b"GIF89a garbage", b"1.001:99\x1d1.002:0502\x1c" + b"\x00" * 50,
                                  bytes(range(256)) * 4])
def test_garbage_is_a_clear_error_not_a_traceback(tmp_path, capsys, data):
    code, out = run(tmp_path, data, capsys)
    assert code == 65
    assert len(out) == 1 and out[0].startswith("fpagent: not ")


def test_a_broken_length_is_refused(tmp_path, capsys):
    data = bytearray(transaction(TYPE2_GOOD))
    data[6:9] = b"999"  # 1.001 LEN no longer matches the record
    code, out = run(tmp_path, bytes(data), capsys)
    assert code == 65 and "not a readable ANSI/NIST-ITL transaction" in out[0]


def test_unknown_profile_is_a_clear_error(tmp_path, capsys):
    code, out = run(tmp_path, transaction(TYPE2_GOOD), capsys, "--profile", "nosuch")
    assert code == 78 and out[0].startswith("fpagent: no shipped profile 'nosuch'")


def test_profile_comes_from_the_configuration(tmp_path, capsys, monkeypatch):
    conf = tmp_path / "agent.toml"
    conf.write_text('[transaction]\nprofile = "example-state"\n')
    monkeypatch.setenv("FPAGENT_CONFIG", str(conf))
    code, out = run(tmp_path, transaction(TYPE2_GOOD), capsys)
    assert code == 1 and "example-state 2026.1" in out[-1]
