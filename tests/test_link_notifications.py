"""Officer-facing results: what `fpagent notifications` shows, and the hook."""

from __future__ import annotations

import json

from fpagent.link import messages
from fpagent.booking import answers as view
from fpagent.cli import main
from fpagent.link.hook import NotificationHook
from fpagent.storage.store import Store


def _imm(determination, level=None, tcr="XX0000000-20261128-00000002-3"):
    return messages.message("notification", messages.immigration_body(
        submission_id="s-2", tcr=tcr, central_tcn="C2", determination=determination, level=level),
        ori="XX0000000", device="booking-01")


def _crim(hit):
    return messages.message("notification", messages.criminal_body(
        submission_id="s-1", tcr="T-1", hit=hit, central_tcn="C1",
        record={"sid": "SID-9"} if hit else None), ori="XX0000000", device="booking-01")


def test_level_one_is_a_banner_impossible_to_miss():
    body = _imm("removable", 1)
    text = view.render({"message_id": body["id"], "received": 0, "body": body})
    first = text.splitlines()[:7]
    assert first[0] == "#" * view.WIDTH and first[1] == "#" * view.WIDTH
    assert any("REMOVABLE, OFFENCE LEVEL 1" in line for line in first)
    assert view.severity(body) == "critical"
    assert view.severity(_imm("removable", 2)) == "alert"


def test_citizen_no_action_is_shown_as_plainly_as_a_hit():
    hit = view.banner(_imm("removable", 2))
    citizen = view.banner(_imm("citizen-or-lawful-no-action"))
    review = view.banner(_imm("under-review"))
    assert citizen and review  # a banner, like a hit
    assert len(citizen) >= len(hit)  # at least as big
    assert any("U.S. CITIZEN OR LAWFUL STATUS - NO ACTION" in line for line in citizen)
    assert any("NOT a finding of removability" in line for line in citizen)
    body = _imm("citizen-or-lawful-no-action")
    text = view.render({"message_id": body["id"], "received": 0, "body": body})
    assert "not a finding of removability" in text
    assert view.banner(_imm("no-match")) == [] and view.banner(_crim(False)) == []


def test_notifications_cli_list_show_ack(tmp_path, capsys):
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n')
    from fpagent.config import load
    cfg = load(cfg_file)
    l1, crim = _imm("removable", 1), _crim(True)
    with Store(cfg.paths.database(), cfg) as store:
        store.inbox.add(l1["id"], "notification", l1)
        store.inbox.add(crim["id"], "notification", crim)
        store.inbox.add("cmd-1", "command", {"kind": "command", "action": "purge"})
    assert main(["--config", str(cfg_file), "notifications", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("NEW") == 2 and "#" * view.WIDTH in out and "CRIMINAL HISTORY: HIT" in out
    assert "purge" not in out  # commands are not notifications
    assert main(["--config", str(cfg_file), "notifications", "show", l1["id"][:10]]) == 0
    assert "REMOVABLE, OFFENCE LEVEL 1" in capsys.readouterr().out
    assert main(["--config", str(cfg_file), "notifications", "ack", l1["id"][:10],
                 "--operator", "officer-7"]) == 0
    assert "by officer-7" in capsys.readouterr().out
    assert main(["--config", str(cfg_file), "notifications", "list"]) == 0
    assert capsys.readouterr().out.count("NEW") == 1
    assert main(["--config", str(cfg_file), "notifications", "list", "--all", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert {i["acknowledged_by"] for i in items} == {"officer-7", None}
    with Store(cfg.paths.database(), cfg) as store:  # the officer's ack is audited
        assert [e.actor for e in store.audit.list(action="notification.acknowledged")] == ["officer-7"]
    assert main(["--config", str(cfg_file), "notifications", "show", "nosuchid"]) != 0


def test_hook_timeout_and_missing_command_are_logged_not_fatal(tmp_path):
    slow = NotificationHook("sleep 5", timeout_s=0.3)
    assert slow.run_one({"check": "immigration"}) is False and slow.failures == 1
    missing = NotificationHook(str(tmp_path / "no-such-hook"), timeout_s=2)
    assert missing.run_one({}) is False and missing.failures == 1
    out = tmp_path / "got.json"
    ok = NotificationHook(f"cat > {out}", timeout_s=5)
    body = _imm("under-review")
    assert ok.run_one(body) is True
    assert json.loads(out.read_text()) == body
