"""After the first answer, over the real broker with real keys: answers that evolve,
detainers, reminders, the officer's acknowledgement and the jail's release notice.

Central sends an immigration answer that changes through versions (under
review, removable level 2, a detainer lodged) and then a stale version that
must change nothing; the appliance shows the current state with its history
and the detainer's deadline, the service announces it again until an officer
acknowledges the booking (audited with who and when), `fpagent release` sends
a signed release notice, central verifies, stores and acknowledges it, and
the detainer task is closed.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil

import jsonschema
import pytest
import yaml

from fpagent import cli
from fpagent import config as config_mod
from fpagent.booking import answer_state, release, reminders
from fpagent.central import followups, people
from fpagent.link import messages
from fpagent.link.hook import NotificationHook
from fpagent.sealing import keys
from fpagent.service.reminders import Reminders
from fpagent.storage.releases import Releases
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ROOT_DIR, appliance_config, broker, json_screen, make_central, make_link, needs_mosquitto,
    pki, seal_test_booking, wait_for)

HOLD_UNTIL = "2026-12-24T18:00:00Z"


def _immigration(store, sid: str) -> list[dict]:
    return [n for n in store.inbox.list(kind="notification", limit=1000)
            if n["body"]["submission_id"] == sid and n["body"]["check"] == "immigration"]


def _appliance(tmp_path, pki, port, hook_file):
    """An appliance configuration with its keys on disk (for `fpagent release`) and a hook."""
    cfg = appliance_config(tmp_path, pki, port)
    kdir = tmp_path / "appliance-keys"
    shutil.copytree(pki.root / "device-keys" / "booking-01", kdir)
    for name in (keys.CENTRAL_HPKE_PUBLIC, keys.CENTRAL_VERIFY_KEY):
        shutil.copy(pki.central_dir / name, kdir / name)
    cfg.paths.keys_dir = str(kdir)
    cfg.notifications.hook = f"cat >> {hook_file}; echo >> {hook_file}"
    cfg.answers.reannounce_s = 10.0
    toml = tmp_path / "agent.toml"
    toml.write_text(config_mod.to_toml(cfg))
    return cfg, toml


def _contract(message: str):
    """A validator for one message of docs/asyncapi.yaml."""
    doc = yaml.safe_load((ROOT_DIR / "docs" / "asyncapi.yaml").read_text())
    root = {**doc, "$ref": f"#/components/messages/{message}/payload"}
    root.pop("id", None)
    return jsonschema.Draft202012Validator(root)


def _hook_events(hook_file) -> list[dict]:
    if not hook_file.exists():
        return []
    text = hook_file.read_text()
    complete = text[:text.rfind("\n") + 1]  # a hook may be writing the last line right now
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


@needs_mosquitto
def test_a_determination_evolves_a_detainer_is_kept_and_closed_by_a_release(
        tmp_path, pki, broker, capsys):
    hook_file = tmp_path / "hook.jsonl"
    cfg, toml = _appliance(tmp_path, pki, broker.port, hook_file)
    sid, tcn, env = seal_test_booking(pki, "booking-01", 1, determination="under-review")
    with Store(cfg.paths.database(), cfg) as store:
        store.outbox.enqueue(sid, tcn, env, {})
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    link = make_link(cfg, pki).start()
    try:
        with Store(cfg.paths.database(), cfg) as store:
            wait_for(lambda: len(_immigration(store, sid)) == 1, 20, what="the first answer")
            # by hand, as an operator of the reference central would: `fpagent central answer`
            assert cli.main(["central", "answer", tcn, "--db", str(tmp_path / "central.sqlite3"),
                             "--determination", "removable", "--level", "2"]) == 0
            assert json.loads(capsys.readouterr().out)["submission_id"] == sid
            wait_for(lambda: len(_immigration(store, sid)) == 2, 20, what="version 2")
            assert cli.main(["central", "answer", tcn, "--db", str(tmp_path / "central.sqlite3"),
                             "--determination", "detainer-lodged"]) == 2  # says what it asks
            assert "--hold-until" in capsys.readouterr().err
            central.send_update(sid, determination="detainer-lodged", level=2,
                                detainer=messages.detainer_fields("hold", hold_until=HOLD_UNTIL))
            wait_for(lambda: len(_immigration(store, sid)) == 3, 20, what="version 3")
            central.send_update(sid, determination="under-review", version=2)  # late and stale
            wait_for(lambda: len(_immigration(store, sid)) == 4, 20, what="the stale answer")
            [booking] = [b for b in answer_state.fold(store.inbox.list(kind="notification"))
                         if b.submission_id == sid]
            assert [(a.version, a.standing) for a in booking.history if a.check == "immigration"] \
                == [(1, "superseded"), (2, "superseded"), (3, "current"), (2, "stale")]
            assert booking.current["immigration"].body["determination"] == "detainer-lodged"
            [task] = booking.open_tasks()
            assert task.deadline_text() == "hold until 2026-12-24T18:00Z"
        # every state change reached the hook, the stale one too (with its version)
        wait_for(lambda: len([e for e in _hook_events(hook_file) if e.get("check") == "immigration"])
                 == 4, 10, what="the hook")
        assert [e["version"] for e in _hook_events(hook_file)
                if e.get("check") == "immigration"] == [1, 2, 3, 2]

        # the officer's screens: current state, history and the deadline
        assert cli.main(["--config", str(toml), "notifications", "bookings"]) == 0
        out = capsys.readouterr().out
        assert "IMMIGRATION: DETAINER LODGED - HOLD" in out and "stale" in out
        assert "task   detainer: hold until 2026-12-24T18:00Z  [OPEN]" in out
        assert cli.main(["--config", str(toml), "status"]) == 0
        out = capsys.readouterr().out
        assert f"booking TCN {tcn}: IMMIGRATION: DETAINER LODGED - HOLD (NOT ACKNOWLEDGED); " \
               f"detainer task OPEN: hold until 2026-12-24T18:00Z" in out

        # announced again until acknowledged: a log line and the hook
        with Store(cfg.paths.database(), cfg) as store:
            hook = NotificationHook(cfg.notifications.hook, 10.0)
            loop = Reminders(cfg, store, hook=hook)
            later = booking.last_received + cfg.answers.reannounce_s + 1
            [sent] = loop.step(now=later)
            assert sent["event"] == "reminder" and sent["tcr"] == tcn
            assert loop.step(now=later + 1) == []  # not before the interval
            assert cli.main(["--config", str(toml), "notifications", "ack", tcn,
                             "--by", "officer-7"]) == 0
            assert "still open: detainer task, hold until" in capsys.readouterr().out
            assert loop.step(now=later + 2 * cfg.answers.reannounce_s) == []
            acks = store.audit.list(action="booking.acknowledged")
            assert [(e.actor, e.detail["tcr"]) for e in acks] == [("officer-7", tcn)]
            assert acks[0].ts.startswith(messages.now_rfc3339()[:10])
            hook.stop()
        assert any(e.get("event") == "acknowledged" and e.get("by") == "officer-7"
                   for e in _hook_events(hook_file))

        # the release notice: signed, sent, verified, stored and acknowledged by central
        assert cli.main(["--config", str(toml), "release", tcn, "--at",
                         "2026-12-02T09:30:00Z", "--by", "officer-7", "--json"]) == 0
        sent = json.loads(capsys.readouterr().out)
        link.outbound.releases_due()
        wait_for(lambda: central.store.releases(sid), 20, what="central to store the release")
        [kept] = central.store.releases(sid)
        assert (kept["release_id"], kept["released_at"], kept["officer"], kept["tcr"]) == (
            sent["release_id"], "2026-12-02T09:30:00.000Z", "officer-7", tcn)
        with Store(cfg.paths.database(), cfg) as store:
            wait_for(lambda: not Releases(store).pending(), 20, what="central's answer")
            [booking] = [b for b in answer_state.fold(store.inbox.list(kind="notification"))
                         if b.submission_id == sid]
            assert booking.open_tasks() == [] and booking.tasks[0].closed_by == "release-acknowledged"
            # what went over the wire, both ways, is what docs/asyncapi.yaml says
            [kept_notice] = Releases(store).all()
            wire = json.loads(base64.b64decode(kept_notice["body"]["wire_b64"]))
            _contract("Release").validate(wire)
            assert wire["body"]["kind"] == "release" and wire["body"]["officer"] == "officer-7"
            notes = _contract("Notification")
            for item in store.inbox.list(kind="notification"):
                notes.validate({"v": 1, "key_id": "0123456789abcdef", "sig": "AA==",
                                "body": item["body"]})
            actions = [(e.actor, e.action) for e in store.audit.list(limit=1000)]
            assert ("officer-7", "release.sent") in actions
            assert ("link", "release.acknowledged-by-central") in actions
        assert cli.main(["--config", str(toml), "status"]) == 0
        assert "answers waiting for an officer" not in capsys.readouterr().out
    finally:
        link.stop()
        central.stop()


@needs_mosquitto
def test_a_forged_release_notice_is_refused(tmp_path, pki, broker):
    """booking-02 cannot release booking-01's booking: signed by the wrong device."""
    cfg = appliance_config(tmp_path, pki, broker.port)
    sid, tcn, env = seal_test_booking(pki, "booking-01", 1)
    with Store(cfg.paths.database(), cfg) as store:
        store.outbox.enqueue(sid, tcn, env, {})
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3").start()
    link = make_link(cfg, pki).start()
    try:
        wait_for(lambda: central.store.submission(sid), 20, what="the booking at central")
        booking = answer_state.Booking(sid, tcn, {}, [], [])
        topic = f"fpagent/v1/{cfg.device.ori}/booking-01/release"
        _, forged, _ = release.notice(booking, released_at="2026-12-02T09:30:00Z", officer="x",
                                      ori=cfg.device.ori, device="booking-01",
                                      signing_key=pki.device_signing["booking-02"], now=1e9)
        with pytest.raises(followups.ReleaseRefused):
            followups.verify_release(central.keys, topic, forged)
        # signed by booking-02 in its own name, but published on booking-01's topic
        _, elsewhere, _ = release.notice(booking, released_at="2026-12-02T09:30:00Z",
                                         officer="x", ori=cfg.device.ori, device="booking-02",
                                         signing_key=pki.device_signing["booking-02"], now=1e9)
        with pytest.raises(followups.ReleaseRefused):
            followups.verify_release(central.keys, topic, elsewhere)
        # genuine, but for a booking central never had from this device
        _, unknown, _ = release.notice(answer_state.Booking("n" * 32, "X", {}, [], []),
                                       released_at="2026-12-02T09:30:00Z", officer="x",
                                       ori=cfg.device.ori, device="booking-01",
                                       signing_key=pki.device_signing["booking-01"], now=1e9)
        with pytest.raises(followups.ReleaseRefused), central.store.transaction() as db:
            followups.record_release(db, followups.verify_release(central.keys, topic, unknown))
        assert central.store.releases() == []
    finally:
        link.stop()
        central.stop()


@needs_mosquitto
def test_central_scripts_an_evolving_answer(tmp_path, pki, broker):
    """A known person's record scripts later answers ("then"): under review, removable
    level 2, then a detainer; they arrive in order and every one validates against the contract."""
    steps = people.KNOWN[6]["immigration"]["then"]

    def screen(opened):
        first = json_screen(opened)
        return dataclasses.replace(first, determination="under-review",
                                   follow_ups=tuple(dict(s, after_s=s["after_s"] / 10) for s in steps))

    cfg = appliance_config(tmp_path, pki, broker.port)
    sid, tcn, env = seal_test_booking(pki, "booking-01", 1)
    with Store(cfg.paths.database(), cfg) as store:
        store.outbox.enqueue(sid, tcn, env, {})
    central = make_central(pki, broker.port, tmp_path / "central.sqlite3", screen=screen).start()
    link = make_link(cfg, pki).start()
    try:
        with Store(cfg.paths.database(), cfg) as store:
            wait_for(lambda: len(_immigration(store, sid)) == 3, 20, what="three versions")
            [booking] = answer_state.fold(store.inbox.list(kind="notification"))
        assert [(a.version, a.body["determination"]) for a in booking.history
                if a.check == "immigration"] == [(1, "under-review"), (2, "removable"),
                                                 (3, "detainer-lodged")]
        [task] = booking.open_tasks()
        assert task.deadline_text() == "notify central 48 h before any release"
        assert reminders.attention_lines([booking])
        note = _contract("Notification")
        for answer in booking.history:
            note.validate({"v": 1, "key_id": "0123456789abcdef", "sig": "AA==",
                           "body": answer.body})
    finally:
        link.stop()
        central.stop()
