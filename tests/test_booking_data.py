"""Booking data a state bureau would accept: the profile enforced before the first
finger, JMS booking records (file, spool folder, loopback endpoint), TCNs unique
across an agency's appliances, TCR, and the placeholder agency identifiers.

Real parts throughout: the shipped national profile, real files and folders,
a real HTTP server on loopback, real keys and SQLite, the synthetic sensor and
the `fpagent` command line in a subprocess.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpagent import config as config_mod
from fpagent.booking import intake, spool
from fpagent.booking import session as B
from fpagent.records import transaction as tx
from fpagent.records.booking_record import BookingRecordError
from fpagent.records.profile import load_profile
from fpagent.records.profile_check import check_transaction
from fpagent.records.tcn import device_tag, make_tcn, resubmission_tcr, tcn_is_valid
from fpagent.records.transaction_format import TransactionError
from fpagent.records.transaction_parse import parse_transaction
from fpagent.sealing import envelope, keys
from fpagent.storage.store import Store

NATIONAL = load_profile()
RECORD = {
    "schema": "fpagent-booking-record/1",
    "booking_number": "2026-0102",
    "person": {"last_name": "Doe", "first_name": "John", "middle_name": "Q",
               "date_of_birth": "1980-02-29", "sex": "M", "race": "W", "height_in": 71,
               "weight_lb": 180, "eye_color": "BRO", "hair_color": "BLK", "place_of_birth": "GA"},
    "arrest": {"date": "2026-11-28", "retain": True,
               "charges": [{"literal": "Theft by taking", "offense_date": "2026-11-27"}]},
    "officer": {"name": "Sgt A Smith", "badge": "417"},
}
FULL = {"name": "DOE,JOHN", "dob": "1980-01-02", "sex": "M", "pob": "GA", "race": "W",
        "height": "511", "weight": "180", "eyes": "BRO", "hair": "BLK"}
ALL_FIELDS = list(FULL)


def raw(record) -> bytes:
    return json.dumps(record).encode()


@pytest.fixture()
def env(tmp_path):
    keys_dir = tmp_path / "keys"
    keys.create_device_keys(keys_dir)
    central_hpke, _ = keys.create_central_keys(keys_dir)
    cfg = config_mod.from_dict({
        "device": {"ori": "GA0600000", "device_id": "booking-01"},
        "paths": {"state_dir": str(tmp_path / "state"), "keys_dir": str(keys_dir)},
        "booking": {"destination": "GA0000001"},
        "jms": {"spool_dir": str(tmp_path / "spool")},
    })
    toml = tmp_path / "agent.toml"
    toml.write_text(config_mod.to_toml(cfg))
    (tmp_path / "spool").mkdir()
    verify = keys.load_device_keys(cfg).signing_key.public_key()
    return dataclasses.make_dataclass("Env", ["cfg", "toml", "central", "verify", "spool"])(
        cfg, toml, central_hpke, verify, tmp_path / "spool")


# --- the profile before the first finger -------------------------------------------


def test_a_booking_missing_mandatory_data_is_refused_with_one_line_per_field():
    info = B.BookingInfo("BK-1", "GA0600000", "officer-1", {"name": "DOE,JOHN", "sex": "U"})
    with pytest.raises(B.BookingRefused) as refused:
        B.BookingSession(info, allowed_fields=ALL_FIELDS, profile=NATIONAL)
    lines = str(refused.value).splitlines()[1:]
    fields = {line.split(":")[0].strip() for line in lines}
    assert {"2.005 RET", "2.020 POB", "2.022 DOB", "2.025 RAC", "2.027 HGT", "2.029 WGT",
            "2.031 EYE", "2.032 HAI", "2.047 ASL", "2.024 SEX"} == fields
    assert "2.024 SEX: 'U' is not in the code table" in str(refused.value)  # U is NCIC, not EBTS
    assert "DOE" not in str(refused.value)  # names are described, never echoed


def test_a_complete_booking_passes_and_defaults_cri_to_the_booking_agency():
    info = B.BookingInfo("BK-1", "GA0600000", "officer-1", FULL, retention="Y",
                         charges=(("", "theft by taking"),))
    B.BookingSession(info, allowed_fields=ALL_FIELDS, profile=NATIONAL)  # no error
    values = {m: v for _t, m, v in tx.type2_values(info.record(), ALL_FIELDS)}
    assert values["CRI"] == "GA0600000" and values["ASL"] == [["", "THEFT BY TAKING"]]


# --- identifiers ---------------------------------------------------------------------------


def test_two_appliances_of_one_agency_never_share_a_tcn_on_one_day():
    day = dt.date(2026, 11, 29)
    first = {make_tcn("GA0600000", day, seq, device="booking-01") for seq in range(1, 500)}
    second = {make_tcn("GA0600000", day, seq, device="booking-02") for seq in range(1, 500)}
    assert not first & second and len(first) == len(second) == 499
    one = make_tcn("GA0600000", day, 1, device="booking-01")
    assert one == f"GA0600000-20261129-BOOKING-01-00000001-{one[-1]}"
    long_id = make_tcn("GA0600000", day, 99_999_999, device="front-desk-booking-station-17")
    for tcn in (one, long_id):
        assert tcn_is_valid(tcn) and 10 <= len(tcn) <= 40  # EBTS 1.009: ANS 10-40
    assert device_tag("front-desk-booking-station-17") != device_tag("front-desk-booking-station-18")
    assert not tcn_is_valid(one[:-1] + ("0" if one[-1] != "0" else "1"))


def test_a_resubmission_carries_the_original_tcn_in_tcr():
    original = make_tcn("GA0600000", dt.date(2026, 11, 29), 7, device="booking-01")
    assert resubmission_tcr(original) == original
    with pytest.raises(TransactionError, match="check character"):
        resubmission_tcr(original[:-1] + ("0" if original[-1] != "0" else "1"))
    with pytest.raises(TransactionError):
        resubmission_tcr("short")
    finger = tx.FingerCapture(1, pixels=np.full((64, 64), 128, np.uint8))
    info = B.BookingInfo("BK-1", "GA0600000", "officer-1", FULL, retention="Y", charges=(("", "X"),))
    again = make_tcn("GA0600000", dt.date(2026, 11, 30), 8, device="booking-01")
    data = tx.build_transaction(info.record(tcn=again, destination="GA0000001", fingers=(finger,),
                                            tcr=resubmission_tcr(original)), compression="png")
    r1 = parse_transaction(data).message[0]
    assert r1[9].value == again and r1[10].value == original
    assert parse_transaction(data).tcr == original  # central links the reprint by it


# --- JMS records -----------------------------------------------------------------------------


def test_a_jms_record_becomes_a_checked_booking_with_name_and_charges_for_the_officer():
    booking = intake.booking_from_bytes(raw(RECORD), ori="GA0600000", allowed_fields=ALL_FIELDS,
                                        profile=NATIONAL)
    assert booking.info.operator_id == "417" and booking.info.retention == "Y"
    assert "DOE,JOHN Q" in booking.announcement() and "THEFT BY TAKING" in booking.announcement()
    assert "DOE" not in repr(booking)
    bad = copy.deepcopy(RECORD)
    del bad["arrest"]["retain"]
    bad["person"]["race"] = "Q"
    with pytest.raises(B.BookingRefused) as refused:
        intake.booking_from_bytes(raw(bad), ori="GA0600000", allowed_fields=ALL_FIELDS, profile=NATIONAL)
    assert [str(f).split(":")[0] for f in refused.value.findings] == ["2.005 RET", "2.025 RAC"]
    for data, message in ((b"{", "not JSON"), (b"[]", "JSON object"), (b"\xff", "UTF-8"),
                          (b"[" * 100_000, "larger than"), (b"[" * 5000 + b"]" * 5000, "JSON")):
        with pytest.raises(BookingRecordError, match=message):
            intake.parse_record(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                 max_leaves=30).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={k: st.just(v) for k, v in RECORD.items()}).map(raw),
))
def test_fuzzed_record_bytes_raise_only_the_records_own_errors(data):
    try:
        intake.booking_from_bytes(data, ori="GA0600000", allowed_fields=ALL_FIELDS, profile=NATIONAL)
    except (BookingRecordError, B.BookingError):
        pass


def test_the_spool_files_records_in_ready_or_rejected_with_a_durable_result(env):
    (env.spool / "a1.json.tmp").write_bytes(raw(RECORD))  # still being written by the JMS
    bad = copy.deepcopy(RECORD)
    bad["person"]["sex"] = "U"
    (env.spool / "b2.json").write_bytes(raw(bad))
    (env.spool / "c3.json").write_bytes(b"not json")
    filed = spool.accept_new(env.spool, env.cfg)
    assert sorted((f.name, f.status) for f in filed) == [("b2", "rejected"), ("c3", "rejected")]
    os.replace(env.spool / "a1.json.tmp", env.spool / "a1.json")  # the JMS's atomic rename
    assert [(f.name, f.status) for f in spool.accept_new(env.spool, env.cfg)] == [("a1", "accepted")]
    assert (env.spool / "ready" / "a1.json").exists() and not (env.spool / "a1.json").exists()
    assert json.loads((env.spool / "a1.result.json").read_text())["status"] == "accepted"
    reason = (env.spool / "rejected" / "b2.reason.txt").read_text()
    assert reason.startswith("2.024 SEX: 'U' is not in the code table")
    assert json.loads((env.spool / "c3.result.json").read_text())["findings"][0].startswith(
        "the booking record is not JSON")
    assert (env.spool / "rejected" / "c3.json").read_bytes() == b"not json"
    assert spool.accept_new(env.spool, env.cfg) == []  # each record once


def test_the_loopback_endpoint_answers_with_the_same_result(env):
    from fpagent.service.jms_intake import SpoolPart

    cfg = config_mod.from_dict({**_as_dict(env.cfg), "jms": {"spool_dir": str(env.spool),
                                                               "listen": "127.0.0.1:0"}})
    part = SpoolPart(cfg)
    try:
        url = f"http://127.0.0.1:{part.server.server_address[1]}/booking-records"

        def post(body: bytes):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, doc = post(raw(RECORD))
        assert status == 200 and doc["status"] == "accepted" and doc["booking_number"] == "2026-0102"
        assert (env.spool / "ready" / f"{doc['record']}.json").read_bytes() == raw(RECORD)
        bad = copy.deepcopy(RECORD)
        bad["person"]["hair_color"] = "PUR"
        status, doc = post(raw(bad))
        assert status == 422 and doc["findings"][0].startswith("2.032 HAI: 'PUR'")
        assert (env.spool / "rejected" / f"{doc['record']}.reason.txt").exists()
        status, doc = post(b"{")
        assert status == 400 and doc["status"] == "rejected"
    finally:
        part.close()


def _as_dict(cfg):
    return {f.name: dataclasses.asdict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
            if f.name != "source"}


def fpagent(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fpagent", *map(str, args)], capture_output=True,
                          text=True, timeout=kw.pop("timeout", 300), **kw)


@pytest.mark.slow
def test_a_record_dropped_in_the_spool_becomes_a_queued_submission_without_typing(env):
    (env.spool / "jms-0102.json.tmp").write_bytes(raw(RECORD))
    os.replace(env.spool / "jms-0102.json.tmp", env.spool / "jms-0102.json")
    skip = ",".join(f"{p}:UP" for p in range(3, 11))
    proc = fpagent("--config", env.toml, "book", "--next", "--yes", "--skip", skip,
                   "--sensor", "synthetic://?seed=1&person=3", "--json", stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    shown = proc.stderr.split("RIGHT THUMB")[0]  # before the first finger
    assert "DOE,JOHN Q" in shown and "THEFT BY TAKING" in shown
    result = json.loads(proc.stdout.splitlines()[-1])
    filed = json.loads((env.spool / "jms-0102.result.json").read_text())
    assert filed["status"] == "queued" and filed["tcn"] == result["tcn"]
    assert (env.spool / "done" / "jms-0102.json").exists()
    assert "-BOOKING-01-" in result["tcn"]
    store = Store(env.cfg.paths.database(), env.cfg)
    try:
        item = store.outbox.get(result["submission_id"], with_envelope=True)
    finally:
        store.close()
    opened = envelope.verify_and_open(item.envelope, central_private_key=env.central,
                                      device_verify_keys=[env.verify])
    # every mandatory Type-1 and Type-2 field of the national profile, with valid codes
    assert [str(f) for f in check_transaction(NATIONAL, opened.plaintext)] == []
    parsed = parse_transaction(opened.plaintext)
    assert parsed.descriptive[5] == "Y" and parsed.destination == "GA0000001"
    # the same record again: nothing waiting
    again = fpagent("--config", env.toml, "book", "--next", "--yes", stdin=subprocess.DEVNULL)
    assert again.returncode != 0 and "no booking record waiting" in again.stderr


@pytest.mark.slow
def test_typed_booking_carries_every_mandatory_field_and_yes_refuses_what_is_missing(env):
    base = ["--config", env.toml, "book", "--yes", "--booking-number", "BK-9", "--operator", "o-1",
            "--sensor", "synthetic://?seed=1&person=3"]
    refused = fpagent(*base, "--name", "DOE,JOHN", "--sex", "M", timeout=120)
    assert refused.returncode != 0 and "2.005 RET: missing (mandatory)" in refused.stderr
    assert "2.047 ASL: missing (mandatory)" in refused.stderr and "RIGHT THUMB" not in refused.stderr
    typed = [f"--{k}={v}" for k, v in FULL.items()]
    skip = ",".join(f"{p}:UP" for p in range(2, 11))
    proc = fpagent(*base, *typed, "--retain", "N", "--charge", "Burglary", "--charge", "Obstruction",
                   "--skip", skip, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    store = Store(env.cfg.paths.database(), env.cfg)
    try:
        item = store.outbox.get(result["submission_id"], with_envelope=True)
    finally:
        store.close()
    opened = envelope.verify_and_open(item.envelope, central_private_key=env.central,
                                      device_verify_keys=[env.verify])
    assert [str(f) for f in check_transaction(NATIONAL, opened.plaintext)] == []


# --- the placeholder agency identifiers ------------------------------------------------------


def test_config_check_and_run_refuse_the_placeholder_ori_unless_allowed(tmp_path):
    plain = tmp_path / "plain.toml"
    plain.write_text(f'[paths]\nstate_dir = "{tmp_path / "s"}"\n')
    for command in (["config", "check"], ["run"]):
        proc = fpagent("--config", plain, *command, timeout=60)
        assert proc.returncode == 78, proc.stderr
        assert "placeholder XX0000000: run scripts/provision" in proc.stderr
        assert "[booking] destination" in proc.stderr
    allowed = tmp_path / "demo.toml"
    allowed.write_text(plain.read_text() + "[device]\nallow_placeholder = true\n")
    assert fpagent("--config", allowed, "config", "check", timeout=60).returncode == 0
