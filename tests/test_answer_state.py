"""Answers that evolve: the pure fold of a booking's notifications into its current state.

A later version supersedes an earlier one for the same (booking, check); an
equal or older version arriving later stays in the history and changes
nothing; a lodged detainer is an open task until lifted or until central
acknowledges the release notice; messages from before versions count as 1.
"""

from __future__ import annotations

import pytest

from fpagent.booking import answer_state, answers
from fpagent.link import messages

SID, TCN = "s" * 32, "XX-TCN-1"


def _imm(determination: str, version: int, level=None, detainer=None) -> dict:
    body = messages.immigration_body(submission_id=SID, tcr=TCN, central_tcn="C1",
                                     determination=determination, level=level, version=version,
                                     detainer=detainer)
    return messages.message("notification", body, ori="XX0000000", device="booking-01")


def _item(n: int, body: dict, acked_by: str | None = None) -> dict:
    return {"message_id": f"m{n:02d}", "received": 1000.0 + n, "body": body,
            "acknowledged_at": 2000.0 if acked_by else None, "acknowledged_by": acked_by}


HOLD = messages.detainer_fields("hold", hold_until="2026-12-01T12:00:00Z")


def test_a_later_version_supersedes_and_a_stale_one_changes_nothing():
    items = [_item(1, _imm("under-review", 1)), _item(2, _imm("removable", 2, level=2)),
             _item(3, _imm("detainer-lodged", 3, level=2, detainer=HOLD)),
             _item(4, _imm("under-review", 2))]  # older version arriving late
    [booking] = answer_state.fold(list(reversed(items)))  # order of the inbox does not matter
    assert booking.tcr == TCN and booking.submission_id == SID
    now = booking.current["immigration"]
    assert (now.version, now.body["determination"]) == (3, "detainer-lodged")
    assert [a.standing for a in booking.history] == ["superseded", "superseded", "current", "stale"]
    assert answers.severity(now.body) == "critical"
    [task] = booking.open_tasks()
    assert task.request == "hold" and task.hold_until == messages.parse_rfc3339(HOLD["hold_until"])
    assert task.deadline_text() == "hold until 2026-12-01T12:00Z"
    # an equal version arriving again (central re-sent it with a new id) is stale as well
    again = answer_state.fold(items + [_item(5, _imm("detainer-lifted", 3))])[0]
    assert again.history[-1].standing == "stale" and again.open_tasks()


def test_lifting_or_an_acknowledged_release_closes_the_detainer_task():
    notify = messages.detainer_fields("notify-before-release", notify_hours_before=48)
    lodged = [_item(1, _imm("detainer-lodged", 1, detainer=notify))]
    [open_one] = answer_state.fold(lodged)
    assert open_one.open_tasks()[0].deadline_text() == "notify central 48 h before any release"
    [lifted] = answer_state.fold(lodged + [_item(2, _imm("detainer-lifted", 2))])
    assert not lifted.open_tasks() and lifted.tasks[0].closed_by == "lifted"
    assert answers.severity(lifted.current["immigration"].body) == "clear-banner"
    release = messages.message("notification", messages.release_ack_body(
        submission_id=SID, tcr=TCN, release_id="r" * 32, released_at="2026-12-01T09:00:00Z"),
        ori="XX0000000", device="booking-01")
    [released] = answer_state.fold(lodged + [_item(2, release)])
    assert not released.open_tasks() and released.tasks[0].closed_by == "release-acknowledged"
    assert released.current["immigration"].body["determination"] == "detainer-lodged"


def test_what_needs_an_officer_until_acknowledged():
    level1 = _imm("removable", 1, level=1)
    chr_hit = messages.message("notification", messages.criminal_body(
        submission_id=SID, tcr=TCN, hit=True, central_tcn="C1"), ori="XX0000000",
        device="booking-01")
    [(booking, unread, tasks)] = answer_state.attention(answer_state.fold(
        [_item(1, chr_hit), _item(2, level1)]))
    assert [a.message_id for a in unread] == ["m02"] and tasks == []
    assert answer_state.attention(answer_state.fold([_item(1, chr_hit),
                                                     _item(2, level1, acked_by="officer-7")])) == []
    # a superseded level-1 alert no longer asks for anything: the banner follows the current state
    assert answer_state.attention(answer_state.fold(
        [_item(1, level1), _item(2, _imm("citizen-or-lawful-no-action", 2))])) == []
    # an open detainer stays in view after it is acknowledged
    [(_, unread, tasks)] = answer_state.attention(answer_state.fold(
        [_item(1, _imm("detainer-lodged", 1, detainer=HOLD), acked_by="officer-7")]))
    assert unread == [] and len(tasks) == 1
    assert answer_state.find(answer_state.fold([_item(1, level1)]), TCN).submission_id == SID
    assert answer_state.find(answer_state.fold([_item(1, level1)]), SID[:8]).tcr == TCN
    assert answer_state.find(answer_state.fold([_item(1, level1)]), "nope") is None


def test_messages_without_a_version_are_version_1():
    old = _imm("under-review", 1)
    del old["version"]
    messages.validate_body("notification", old)
    assert messages.version_of(old) == 1
    [booking] = answer_state.fold([_item(1, old), _item(2, _imm("removable", 2, level=3))])
    assert booking.current["immigration"].body["level"] == 3


def test_the_contract_refuses_bad_versions_and_detainers():
    good = _imm("detainer-lodged", 2, detainer=HOLD)
    messages.validate_body("notification", good)
    for bad in ({"version": 0}, {"version": True}, {"version": "2"}, {"version": 2 ** 31},
                {"detainer": {**HOLD, "request": "deport"}},
                {"detainer": {**HOLD, "hold_until": "tomorrow"}},
                {"detainer": {**HOLD, "notify_hours_before": 4}},
                {"detainer": {"request": "notify-before-release", "hold_until": None,
                              "notify_hours_before": 10_000}},
                {"determination": "under-review"}, {"level": 4}):
        with pytest.raises(messages.MessageError):
            messages.validate_body("notification", {**good, **bad})
    no_detainer = dict(good)
    del no_detainer["detainer"]
    with pytest.raises(messages.MessageError):
        messages.validate_body("notification", no_detainer)
    with pytest.raises(ValueError):
        _imm("removable", 1)  # a removable determination needs its level
    lines = answers.booking_lines(answer_state.fold([_item(1, good)])[0])
    assert any("DETAINER LODGED - HOLD" in line for line in lines)
    assert any("task   detainer: hold until 2026-12-01T12:00Z  [OPEN]" in line for line in lines)


def test_each_question_has_its_own_timeout_and_under_review_is_an_answer(tmp_path):
    """A missing immigration answer is asked for after [answers] immigration_timeout_s; a
    criminal-history one is not yet due; "under review" stops the asking (it may last weeks)."""
    import time

    from fpagent import config as config_mod
    from fpagent.link.outbound import Outbound
    from fpagent.link.status import LinkStats
    from fpagent.sealing import envelope, keys
    from fpagent.storage.store import Store

    cfg = config_mod.from_dict({
        "paths": {"state_dir": str(tmp_path)}, "store": {"min_free_mb": 1.0},
        "answers": {"criminal_history_timeout_s": 3600.0, "immigration_timeout_s": 0.01,
                    "ask_again_times": 2}})
    assert cfg.answers.timeout_for("criminal-history", 99.0) == 3600.0
    assert config_mod.from_dict({}).answers.timeout_for("immigration", 99.0) == 99.0
    with pytest.raises(config_mod.ConfigError):
        config_mod.from_dict({"answers": {"reannounce_s": -1}})
    central_hpke, _ = keys.create_central_keys(tmp_path / "central")
    device_key = keys.generate_signing_key()
    sids = [envelope.make_submission_id() for _ in range(2)]
    with Store(cfg.paths.database(), cfg) as store:
        for n, sid in enumerate(sids):
            store.outbox.enqueue(sid, f"T{n}", envelope.seal(
                b"{}", device_id="booking-01", ori="XX0000000", sequence=n,
                central_public_key=central_hpke.public(), device_signing_key=device_key,
                submission_id=sid), {})
            store.outbox.mark_acknowledged(sid, {"id": f"a{n}", "result": "accepted"})
            store.inbox.add(f"c{n}", "notification", {"submission_id": sid,
                                                      "check": "criminal-history"})
        store.inbox.add("i1", "notification", {"submission_id": sids[1], "check": "immigration",
                                               "determination": "under-review"})
        time.sleep(0.05)
        outbound = Outbound(cfg, LinkStats(), "fpagent/v1/XX0000000/booking-01/submission")
        outbound.check_missing_answers(store)
        assert outbound._resync == {sids[0]: "answers missing: immigration"}


def test_the_banner_follows_the_current_answer_only(tmp_path, capsys):
    """`fpagent notifications list`: a level-1 alert superseded by "U.S. citizen, no action"
    raises no banner any more; `bookings --json` says what is current."""
    import json

    from fpagent import cli
    from fpagent import config as config_mod
    from fpagent.storage.store import Store

    cfg = config_mod.from_dict({"paths": {"state_dir": str(tmp_path)}})
    toml = tmp_path / "agent.toml"
    toml.write_text(config_mod.to_toml(cfg))
    with Store(cfg.paths.database(), cfg) as store:
        store.inbox.add("m-level1", "notification", _imm("removable", 1, level=1), now=1000.0)
        assert cli.main(["--config", str(toml), "notifications", "list"]) == 0
        assert "#" * 72 in capsys.readouterr().out  # the level-1 banner while it is current
        store.inbox.add("m-citizen", "notification", _imm("citizen-or-lawful-no-action", 2),
                        now=1001.0)
    assert cli.main(["--config", str(toml), "notifications", "list", "--all"]) == 0
    out = capsys.readouterr().out
    assert "#" * 72 not in out and "[superseded]" in out
    # without an action: the bookings that wait for an officer (this one no longer does)
    assert cli.main(["--config", str(toml), "notifications"]) == 0
    assert capsys.readouterr().out.strip() == "no booking waits for an officer"
    assert cli.main(["--config", str(toml), "notifications", "bookings", "--all", "--json"]) == 0
    [booking] = json.loads(capsys.readouterr().out)
    assert booking["current"]["immigration"]["version"] == 2
    assert [h["standing"] for h in booking["history"]] == ["superseded", "current"]


def test_the_service_loop_announces_an_unacknowledged_level_1_alert_again(tmp_path, caplog):
    """The daemon's main loop: a level-1 alert not acknowledged for reannounce_s is logged
    again (TCN, no names) and the hook gets a "reminder"; after the officer's ack, silence."""
    import json
    import logging
    import time

    from fpagent import config as config_mod
    from fpagent.service import daemon, sdnotify
    from fpagent.storage.store import Store

    hook_file = tmp_path / "hook.jsonl"
    cfg = config_mod.from_dict({
        "paths": {"state_dir": str(tmp_path / "state"), "cache_dir": str(tmp_path / "cache")},
        "service": {"clock_check": "off", "watchdog": False},
        "notifications": {"hook": f"cat >> {hook_file}; echo >> {hook_file}"},
        "answers": {"reannounce_s": 10.0}})
    svc = daemon.Service(cfg, notifier=sdnotify.Notifier(None), warmups=[], parts=[],
                         store=Store(cfg.paths.database(), cfg))
    try:
        svc.start()
        svc.store.inbox.add("m-level1", "notification", _imm("removable", 1, level=1),
                            now=time.time() - 60)
        svc.reminders.wake()  # the start-up tick looked before the answer was there
        with caplog.at_level(logging.WARNING, logger="fpagent.service"):
            svc.tick()
        assert any(r.getMessage() == "answer not acknowledged by an officer" for r in caplog.records)
        deadline = time.monotonic() + 10
        while not (hook_file.exists() and hook_file.read_text().endswith("\n")) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        [event] = [json.loads(line) for line in hook_file.read_text().splitlines() if line.strip()]
        assert (event["event"], event["tcr"]) == ("reminder", TCN)
        assert "SYNTHETIC" not in hook_file.read_text()
        svc.store.inbox.acknowledge("m-level1", "officer-7")
        svc.reminders.wake()
        assert svc.reminders.step(now=time.time() + 3600) == []
    finally:
        svc.shutdown()
