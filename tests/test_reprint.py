"""Reject and reprint: central rejects unusable prints by name, the reprint is linked to them.

Over the real broker with real keys: central answers a booking whose fingers
3 and 7 cannot be used with a signed reprint request instead of a search; the
appliance verifies and keeps it, shows it to the officer like a hit, and does
not ask central again for answers that will not come. The reprint (TCR = the
original TCN) is answered normally and central links it to the original.
"""

from __future__ import annotations

import pytest

from fpagent.booking import answers
from fpagent.link import messages
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    appliance_config, broker, make_central, make_link, needs_mosquitto, pki, seal_test_booking,
    wait_for)


def _reprint(**kw):
    body = messages.reprint_body(submission_id="s1", tcr="T1", central_tcn="C1",
                                 reason="unusable-prints", **kw)
    return messages.message("notification", body, ori="XX0000000", device="booking-01")


def test_a_reprint_request_names_the_fingers_or_the_whole_booking():
    some = _reprint(fingers=[7, 3, 3])
    assert (some["fingers"], some["whole_booking"]) == ([3, 7], False)
    messages.validate_body("notification", some)
    whole = _reprint()
    assert (whole["fingers"], whole["whole_booking"]) == ([], True)
    messages.validate_body("notification", whole)
    for bad in ({"fingers": [11]}, {"fingers": [True]}, {"fingers": "3,7"},
                {"whole_booking": True}, {"reason": "no-reason"}, {"result": "hit"}):
        with pytest.raises(messages.MessageError):
            messages.validate_body("notification", {**some, **bad})
    with pytest.raises(ValueError):
        _reprint(fingers=[0])


def test_the_officer_sees_a_reprint_request_like_a_hit():
    body = _reprint(fingers=[3, 7])
    assert answers.headline(body) == "PRINTS REJECTED: REPRINT FINGERS 3, 7"
    assert answers.severity(body) == "alert" and answers.banner(body)
    assert answers.headline(_reprint()) == "PRINTS REJECTED: REPRINT THE WHOLE BOOKING"
    text = answers.render({"message_id": "m1", "received": 0.0, "body": body})
    assert "no search was made" in text and "TCR = booking TCN T1" in text


@needs_mosquitto
def test_rejected_prints_come_back_by_name_and_the_reprint_is_linked(tmp_path, pki, broker):
    cfg = appliance_config(tmp_path, pki, broker.port)
    sid, tcn, env = seal_test_booking(pki, "booking-01", 1, unusable=[3, 7], criminal=True)
    with Store(cfg.paths.database(), cfg) as store:
        store.outbox.enqueue(sid, tcn, env, {})
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    link = make_link(cfg, pki).start()
    try:
        with Store(cfg.paths.database(), cfg) as store:
            notes = wait_for(lambda: store.inbox.list(kind="notification"), 20,
                             what="central's reprint request")
            assert len(notes) == 1
            body = notes[0]["body"]
            assert (body["check"], body["result"], body["reason"]) == ("reprint", "rejected",
                                                                       "unusable-prints")
            assert (body["fingers"], body["whole_booking"], body["tcr"]) == ([3, 7], False, tcn)
            assert store.outbox.get(sid).state == "acknowledged"
            # the appliance does not ask for answers that will not come
            timeout, cfg.mqtt.answers_timeout_s = cfg.mqtt.answers_timeout_s, 0.001
            try:
                link.outbound.check_missing_answers(store)
            finally:
                cfg.mqtt.answers_timeout_s = timeout
            assert not link.outbound._resync

            again_sid, again_tcn, again = seal_test_booking(pki, "booking-01", 2, tcr=tcn,
                                                            criminal=True)
            store.outbox.enqueue(again_sid, again_tcn, again, {})
            wait_for(lambda: len([n for n in store.inbox.list(kind="notification")
                                  if n["body"]["submission_id"] == again_sid]) == 2, 20,
                     what="the reprint's two answers")
        assert central.store.reprint_of(again_sid) == {"tcr": tcn, "original_submission_id": sid}
        assert central.store.reprint_of(sid) is None
    finally:
        link.stop()
        central.stop()


def _transaction(tcn: str, usable: tuple, blank: tuple, tcr: str = "") -> bytes:
    """A real transaction: synthetic prints at `usable`, featureless grey images at `blank`."""
    import datetime as dt

    import numpy as np

    from fpagent.drivers.synthetic.generator import finger_image
    from fpagent.records import transaction as T
    from tests.mqtt_helpers import ORI
    fingers = tuple(T.FingerCapture(p, finger_image(9, p, 1, seed=7), 500, 60) for p in usable)
    fingers += tuple(T.FingerCapture(p, np.full((400, 400), 200, np.uint8), 500, 60)
                     for p in blank)
    rec = T.BookingRecord(tcn=tcn, ori=ORI, destination="XX0000001",
                          fingers=tuple(sorted(fingers, key=lambda f: f.position)),
                          created_at=dt.datetime.now(dt.timezone.utc), tcr=tcr)
    return T.build_transaction(rec)


def _opener(pki):
    """tx -> the transaction sealed by booking-01 and opened as central opens it."""
    from fpagent.sealing import envelope
    from tests.mqtt_helpers import ORI

    def opened(tx: bytes):
        env = envelope.seal(tx, device_id="booking-01", ori=ORI, sequence=1,
                            central_public_key=pki.hpke.public(),
                            device_signing_key=pki.device_signing["booking-01"])
        return envelope.verify_and_open(
            env, central_private_key=pki.hpke,
            device_verify_keys=pki.device_signing["booking-01"].public_key())
    return opened


def test_central_asks_for_the_fingers_it_cannot_use(pki):
    from fpagent.central.screening import Galleries, TransactionScreen

    opened = _opener(pki)

    screen = TransactionScreen(Galleries(), fingers=(2, 3, 7))
    try:
        most_blank = screen(opened(_transaction("XX-T1", usable=(2,), blank=(3, 7), tcr="XX-ORIGINAL")))
        assert most_blank.reprint == ("unusable-prints", (3, 7))
        assert most_blank.tcr == "XX-ORIGINAL"
        all_blank = screen(opened(_transaction("XX-T2", usable=(), blank=(2, 7))))
        assert all_blank.reprint == ("unusable-prints", ())  # the whole booking
        fine = screen(opened(_transaction("XX-T3", usable=(2, 7), blank=(3,))))
        assert fine.reprint is None  # one blank finger among usable ones: searched without it
    finally:
        screen.close()


def test_the_officer_reprints_only_the_named_fingers_with_tcr(tmp_path, capsys):
    """`fpagent book --reprint TCN`: a real capture of fingers 3 and 7 from the synthetic
    sensor, sealed as a transaction whose TCR is the original TCN."""
    import json as json_mod

    from fpagent import cli
    from fpagent import config as config_mod
    from fpagent.records.transaction_parse import parse_transaction
    from fpagent.sealing import envelope, keys

    keys_dir = tmp_path / "keys"
    keys.create_device_keys(keys_dir)
    central_hpke, _ = keys.create_central_keys(keys_dir)
    cfg = config_mod.from_dict({
        "device": {"ori": "CA0190000", "device_id": "booking-test"},
        "paths": {"state_dir": str(tmp_path / "state"), "keys_dir": str(keys_dir)},
        "sensor": {"url": "synthetic://?seed=11&person=7", "capture_timeout_s": 5.0},
        "booking": {"destination": "CA0000001"}})
    toml = tmp_path / "agent.toml"
    toml.write_text(config_mod.to_toml(cfg))
    original = "CA0190000-ORIGINAL"
    with Store(cfg.paths.database(), cfg) as store:  # as the link keeps a verified answer
        store.inbox.add("m-reprint", "notification", messages.message(
            "notification", messages.reprint_body(submission_id="s0", tcr=original,
                                                  central_tcn="C0", reason="unusable-prints",
                                                  fingers=[3, 7]),
            ori="CA0190000", device="booking-test"))
    base = ["--config", str(toml), "book", "--booking-number", "BK-R-1", "--operator", "officer-7",
            "--name=DOE,JOHN", "--dob=1980-01-02", "--sex=M", "--pob=GA", "--race=W",
            "--height=511", "--weight=180", "--eyes=BRO", "--hair=BLK", "--retain", "Y",
            "--charge", "BURGLARY", "--yes", "--json"]
    assert cli.main(base + ["--reprint", "CA0190000-NEVER-ASKED"]) == 2
    assert "has not asked for a reprint" in capsys.readouterr().err
    assert cli.main(base + ["--reprint", original]) == 0
    result = json_mod.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["reprint_of"] == original and result["printed"] == 2
    with Store(cfg.paths.database(), cfg) as store:
        item = store.outbox.get(result["submission_id"], with_envelope=True)
        assert item.meta["reprint_of"] == original
        central_keys = keys.load_device_keys(cfg)
        opened = envelope.verify_and_open(item.envelope, central_private_key=central_hpke,
                                          device_verify_keys=[central_keys.signing_key.public_key()])
    parsed = parse_transaction(opened.plaintext)
    assert parsed.tcr == original and parsed.tcn == result["tcn"]
    assert [f.position for f in parsed.fingers if not f.missing] == [3, 7]


@needs_mosquitto
@pytest.mark.slow
def test_the_whole_reprint_loop_over_the_broker(tmp_path, pki, broker, capsys):
    """Real transaction screen at central: fingers 3 and 7 of a booking are featureless, central
    asks for them by name; the officer reprints them with `fpagent book --reprint`; the reprint
    goes out over the link, is searched, answered, and linked to the original booking."""
    import json as json_mod
    import shutil

    from fpagent import cli
    from fpagent import config as config_mod
    from fpagent.central.screening import Galleries, TransactionScreen
    from fpagent.sealing import envelope, keys
    from tests.mqtt_helpers import ORI

    cfg = appliance_config(tmp_path, pki, broker.port)
    kdir = tmp_path / "appliance-keys"
    shutil.copytree(pki.root / "device-keys" / "booking-01", kdir)
    for name in (keys.CENTRAL_HPKE_PUBLIC, keys.CENTRAL_VERIFY_KEY):
        shutil.copy(pki.central_dir / name, kdir / name)
    cfg.paths.keys_dir = str(kdir)
    cfg.sensor.url = "synthetic://?seed=11&person=7"
    toml = tmp_path / "agent.toml"
    toml.write_text(config_mod.to_toml(cfg))

    original_tcn = "XX-ORIG-0001"
    tx = _transaction(original_tcn, usable=(2,), blank=(3, 7))
    sid = envelope.make_submission_id()
    env = envelope.seal(tx, device_id="booking-01", ori=ORI, sequence=1,
                        central_public_key=pki.hpke.public(),
                        device_signing_key=pki.device_signing["booking-01"], submission_id=sid)
    with Store(cfg.paths.database(), cfg) as store:
        store.outbox.enqueue(sid, original_tcn, env, {})
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3",
                           screen=TransactionScreen(Galleries(), fingers=(2, 3, 7))).start()
    link = make_link(cfg, pki).start()
    try:
        with Store(cfg.paths.database(), cfg) as store:
            notes = wait_for(lambda: store.inbox.list(kind="notification"), 30,
                             what="central's reprint request")
        assert [(n["body"]["check"], n["body"]["fingers"]) for n in notes] == [("reprint", [3, 7])]
        assert answers.headline(notes[0]["body"]) == "PRINTS REJECTED: REPRINT FINGERS 3, 7"

        assert cli.main(["--config", str(toml), "book", "--booking-number", "BK-R-2",
                         "--operator", "officer-7", "--name=DOE,JOHN", "--dob=1980-01-02",
                         "--sex=M", "--pob=GA", "--race=W", "--height=511", "--weight=180",
                         "--eyes=BRO", "--hair=BLK", "--retain", "Y", "--charge", "BURGLARY",
                         "--yes", "--json", "--reprint", original_tcn]) == 0
        result = json_mod.loads(capsys.readouterr().out.strip().splitlines()[-1])
        again = result["submission_id"]
        with Store(cfg.paths.database(), cfg) as store:
            wait_for(lambda: {n["body"]["check"] for n in store.inbox.list(kind="notification")
                              if n["body"]["submission_id"] == again}
                     == {"criminal-history", "immigration"}, 60, what="the reprint's answers")
        assert central.store.reprint_of(again) == {"tcr": original_tcn,
                                                   "original_submission_id": sid}
    finally:
        link.stop()
        central.stop()


def test_central_rejects_a_known_rejected_persons_first_booking_only(pki):
    """The demo's deterministic reprint: a person in central's `rejects` gallery has the
    first booking rejected for the named fingers; the reprint (a TCR) is searched."""
    from fpagent.central.screening import (Galleries, GalleryEntry, TransactionScreen,
                                           extract_template)
    from fpagent.drivers.synthetic.generator import finger_image

    opened = _opener(pki)

    person = {f: extract_template(finger_image(9, f, 1, seed=7)) for f in (2, 7)}
    rejected = GalleryEntry("P9", {"reason": "unusable-prints", "fingers": (3, 7)}, person)
    screen = TransactionScreen(Galleries(rejects=[rejected]))
    try:
        first = screen(opened(_transaction("XX-R1", usable=(2, 3, 7), blank=())))
        assert first.reprint == ("unusable-prints", (3, 7))
        again = screen(opened(_transaction("XX-R2", usable=(3, 7), blank=(), tcr="XX-R1")))
        assert again.reprint is None and again.tcr == "XX-R1"
        other = TransactionScreen(Galleries())
        try:
            assert other(opened(_transaction("XX-R3", usable=(2, 3, 7), blank=()))).reprint is None
        finally:
            other.close()
    finally:
        screen.close()
