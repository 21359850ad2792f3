"""The program's figures: `fpagent central report` and the appliance's `fpagent report`.

After bookings go through the real broker and the reference central, both
tables add up with what was booked.
"""

from __future__ import annotations

import json

from fpagent import cli
from fpagent.booking import figures
from fpagent.sealing import envelope
from fpagent.storage.store import Store
from tests.mqtt_helpers import (  # noqa: F401 - fixtures
    ORI, appliance_config, broker, make_central, make_link, needs_mosquitto, pki,
    seal_test_booking, wait_for)


def _imm(determination, level=None):
    return {"check": "immigration", "determination": determination, "level": level,
            "result": "no-hit" if determination == "no-match" else "hit"}


def test_figures_count_each_question_once_and_take_medians():
    subs = [figures.Submission("a", 100.0, "accepted", [
                (101.0, {"check": "criminal-history", "result": "hit"}),
                (105.0, _imm("removable", 2)),
                (109.0, _imm("removable", 2))]),  # the same answer delivered again
            figures.Submission("b", 200.0, "accepted", [
                (203.0, {"check": "criminal-history", "result": "no-hit"}),
                (None, _imm("citizen-or-lawful-no-action"))]),  # stored, not yet sent
            figures.Submission("c", 300.0, "rejected"),
            figures.Submission("e", 500.0, "accepted", [(501.0, {"check": "reprint",
                                                                  "result": "rejected"})]),
            figures.Submission("d", 400.0, "pending")]
    fig = figures.figures(subs, since=50.0)
    assert (fig["submissions"], fig["accepted"], fig["rejected"], fig["pending"]) == (5, 3, 1, 1)
    assert fig["reprints_requested"] == 1
    assert fig["criminal_history"] == {"answered": 2, "hits": 1, "no_hits": 1}
    imm = fig["immigration"]
    assert (imm["answered"], imm["matches"], imm["removable"], imm["level_2"],
            imm["citizen_or_lawful"], imm["no_match"]) == (2, 2, 1, 1, 1, 0)
    assert fig["median_s"] == {"criminal-history": 2.0, "immigration": 5.0,
                               "immigration-current": 5.0, "reprint": 1.0,
                               "release-notice": None}
    assert fig["since"] == "1970-01-01T00:00:50Z"
    text = figures.render(fig, "T", as_json=False)
    assert "offence level 2" in text and "T, since 1970-01-01T00:00:50Z" in text
    assert json.loads(figures.render(fig, "T", as_json=True)) == fig


def _imm_v(version, determination, level=None, detainer=False):
    body = {**_imm(determination, level), "version": version}
    if detainer:
        body["detainer"] = {"request": "notify-before-release", "hold_until": None,
                            "notify_hours_before": 48}
    return body


def test_an_answer_that_changed_counts_once_as_its_latest_version():
    evolving = figures.Submission("a", 100.0, "accepted", [
        (101.0, {"check": "criminal-history", "result": "no-hit"}),
        (102.0, _imm_v(1, "under-review")),
        (106.0, _imm_v(3, "detainer-lodged", 2, detainer=True)),
        (104.0, _imm_v(2, "removable", 2)),
        (107.0, _imm_v(2, "removable", 2)),  # version 2 delivered again
        (120.0, {"check": "release-notice", "result": "received", "release_id": "r1",
                 "version": 1})],
        releases={"r1": 110.0})
    lifted = figures.Submission("b", 200.0, "accepted", [
        (202.0, _imm_v(1, "detainer-lodged", 1, detainer=True)),
        (230.0, _imm_v(2, "detainer-lifted", 1))])
    waiting = figures.Submission("c", 300.0, "accepted", [
        (303.0, _imm_v(1, "detainer-lodged", 3, detainer=True))], releases={"r2": 310.0})
    reprint = figures.Submission("d", 400.0, "accepted", [
        (401.0, {"check": "criminal-history", "result": "hit"}),
        (402.0, _imm_v(1, "no-match"))], reprint_of="TCN-OF-E")
    fig = figures.figures([evolving, lifted, waiting, reprint])
    imm = fig["immigration"]
    assert imm["answered"] == 4 and imm["matches"] == 3 and imm["no_match"] == 1
    assert (imm["under_review"], imm["removable"], imm["detainer_lodged"],
            imm["detainer_lifted"]) == (0, 0, 2, 1)
    assert [imm[f"level_{n}"] for n in (1, 2, 3)] == [1, 1, 1]
    assert imm["updated"] == 2
    assert fig["detainers"] == {"lodged": 3, "lifted": 1, "open": 1}  # c: not acknowledged yet
    assert fig["release_notices"] == {"sent": 2, "acknowledged": 1}
    assert fig["reprints_submitted"] == 1 and fig["reprints_requested"] == 0
    assert fig["criminal_history"] == {"answered": 2, "hits": 1, "no_hits": 1}
    med = fig["median_s"]
    assert (med["immigration"], med["immigration-current"], med["release-notice"]) == (2.0, 4.5, 10.0)
    text = figures.render(fig, "T", as_json=False)
    assert "detainer lodged" in text and "Release notices" in text


def test_since_takes_a_date_or_a_time():
    assert figures.parse_since(None) == 0.0
    assert figures.parse_since("1970-01-02") == 86400.0
    assert figures.parse_since("1970-01-01T00:01:00Z") == 60.0
    import pytest
    from fpagent.errors import UserError
    with pytest.raises(UserError):
        figures.parse_since("last tuesday")


BOOKED = [  # what each booking's central answers are
    {"criminal": True, "determination": "removable", "level": 1},
    {"determination": "citizen-or-lawful-no-action"},
    {"determination": "under-review"},
    {"determination": "removable", "level": 2},
    {"criminal": True, "determination": "removable", "level": 3},
    {"criminal": True},
    {},
]


def _last_json(capsys, argv) -> dict:
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@needs_mosquitto
def test_reports_add_up_with_what_was_booked(tmp_path, pki, broker, capsys):
    db = tmp_path / "central.sqlite3"
    cfg = appliance_config(tmp_path, pki, broker.port)
    with Store(cfg.paths.database(), cfg) as store:
        for n, fields in enumerate(BOOKED):
            sid, tcn, env = seal_test_booking(pki, "booking-01", n, **fields)
            store.outbox.enqueue(sid, tcn, env, {})
        bad = envelope.seal(b"\x00not a transaction", device_id="booking-01", ori=ORI,
                            sequence=99, central_public_key=pki.hpke.public(),
                            device_signing_key=pki.device_signing["booking-01"])
        store.outbox.enqueue(envelope.inspect(bad).submission_id, "BAD", bad, {})
    central = make_central(pki, broker.port, db).start()
    link = make_link(cfg, pki).start()
    try:
        answers = 2 * len(BOOKED)
        wait_for(lambda: central.store.counts()["notifications_sent"] >= answers, 30,
                 what="every answer sent")
        with Store(cfg.paths.database(), cfg) as store:
            wait_for(lambda: len(store.inbox.list(kind="notification", limit=100)) >= answers
                     and store.outbox.counts()["acknowledged"] == len(BOOKED)
                     and store.outbox.counts()["rejected"] == 1, 30,
                     what="every answer on the appliance")
    finally:
        link.stop()
        central.stop()

    hits = sum(1 for b in BOOKED if b.get("criminal"))
    levels = [b.get("level") for b in BOOKED]
    config_file = tmp_path / "agent.toml"
    config_file.write_text(f'[paths]\nstate_dir = "{cfg.paths.state_dir}"\n')
    central_fig = _last_json(capsys, ["central", "report", "--db", str(db), "--since",
                                      "2020-01-01", "--json"])
    jail_fig = _last_json(capsys, ["--config", str(config_file), "report", "--json"])
    for fig in (central_fig, jail_fig):
        assert fig["submissions"] == len(BOOKED) + 1
        assert (fig["accepted"], fig["rejected"], fig["pending"]) == (len(BOOKED), 1, 0)
        assert fig["criminal_history"] == {"answered": len(BOOKED), "hits": hits,
                                           "no_hits": len(BOOKED) - hits}
        imm = fig["immigration"]
        assert imm["answered"] == len(BOOKED)
        assert [imm[f"level_{n}"] for n in (1, 2, 3)] == [levels.count(n) for n in (1, 2, 3)]
        assert imm["removable"] == 3 and imm["citizen_or_lawful"] == 1
        assert imm["under_review"] == 1 and imm["no_match"] == 2
        assert imm["matches"] == imm["removable"] + imm["citizen_or_lawful"] + imm["under_review"]
        assert 0 <= fig["median_s"]["criminal-history"] <= fig["median_s"]["immigration"] < 30
    assert cli.main(["central", "report", "--db", str(db)]) == 0
    table = capsys.readouterr().out
    assert "Central: all appliances, all recorded" in table
    assert "offence level 1" in table and "rejected" in table
    future = _last_json(capsys, ["central", "report", "--db", str(db), "--since", "2999-01-01",
                                 "--json"])
    assert future["submissions"] == 0 and future["median_s"]["immigration"] is None
