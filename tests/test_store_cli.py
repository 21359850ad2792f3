"""`fpagent queue ...` on a real database: counts, list, show (header only), check."""

from __future__ import annotations

import json
import sqlite3

import pytest

from fpagent import cli
from fpagent.sealing import envelope
from fpagent.sealing import keys
from fpagent.storage.store import Store


@pytest.fixture
def setup(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[paths]\nstate_dir = "{tmp_path}"\n')
    central = keys.generate_central_hpke_keys(suites=("x25519",)).public()
    dev = keys.generate_signing_key()
    s = Store(tmp_path / "agent.sqlite3")
    sids = []
    for i in range(3):
        env = envelope.seal(b"SECRET-PAYLOAD" * 50, device_id="booking-01", ori="XX0000000",
                            sequence=i, central_public_key=central, device_signing_key=dev)
        sid = envelope.inspect(env).submission_id
        s.outbox.enqueue(sid, f"TCN-{i}", env, {"booking_number": f"B-{i}", "seq": i})
        sids.append(sid)
    s.outbox.mark_sent(sids[0])
    s.outbox.mark_acknowledged(sids[1], {"central_tcn": "C-1"})
    s.close()
    return str(cfg), sids, tmp_path


def _run(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr()


def test_counts_list_show(setup, capsys):
    cfg, sids, _ = setup
    code, out = _run(capsys, "--config", cfg, "queue", "counts")
    assert code == 0
    assert "pending" in out.out and "oldest unacknowledged:" in out.out
    code, out = _run(capsys, "--config", cfg, "queue", "counts", "--json")
    doc = json.loads(out.out)
    assert doc["counts"]["pending"] == 1 and doc["counts"]["sent"] == 1
    assert doc["counts"]["acknowledged"] == 1 and doc["oldest_unacknowledged_s"] >= 0
    code, out = _run(capsys, "--config", cfg, "queue", "list")
    assert code == 0 and all(sid in out.out for sid in sids)
    code, out = _run(capsys, "--config", cfg, "queue", "list", "--state", "acknowledged", "--json")
    rows = [json.loads(line) for line in out.out.splitlines()]
    assert [r["submission_id"] for r in rows] == [sids[1]] and rows[0]["central_tcn"] == "C-1"
    code, out = _run(capsys, "--config", cfg, "queue", "show", sids[0], "--json")
    doc = json.loads(out.out)
    assert doc["header"]["submission_id"] == sids[0] and doc["header"]["suite"] == "x25519"
    assert "envelope" not in doc and "SECRET" not in out.out
    code, out = _run(capsys, "--config", cfg, "queue", "show", sids[0])
    assert "signed header" in out.out and "device_key_id" in out.out


def test_show_unknown_and_no_database(setup, tmp_path, capsys):
    cfg, _, _ = setup
    code, out = _run(capsys, "--config", cfg, "queue", "show", "no-such-id")
    assert code != 0 and "fpagent queue list" in out.err
    other = tmp_path / "other.toml"
    other.write_text(f'[paths]\nstate_dir = "{tmp_path / "empty"}"\n')
    code, out = _run(capsys, "--config", str(other), "queue", "counts")
    assert code == 0 and "no queue yet" in out.out
    assert not (tmp_path / "empty" / "agent.sqlite3").exists()  # looking never creates


def test_check_finds_a_tampered_row(setup, capsys):
    cfg, sids, tmp_path = setup
    code, out = _run(capsys, "--config", cfg, "queue", "check")
    assert code == 0 and "consistent" in out.out
    conn = sqlite3.connect(tmp_path / "agent.sqlite3")
    conn.execute("UPDATE outbox_envelope SET envelope = x'00' WHERE submission_id = ?", (sids[2],))
    conn.commit()
    conn.close()
    code, out = _run(capsys, "--config", cfg, "queue", "check")
    assert code == 1 and f"PROBLEM: {sids[2]}" in out.out


def test_purge_command(setup, capsys):
    cfg, sids, tmp_path = setup
    code, out = _run(capsys, "--config", cfg, "queue", "purge")
    assert code == 0 and "purged 0" in out.out  # retention not reached
    code, out = _run(capsys, "--config", cfg, "queue", "purge", "--acknowledged")
    assert code == 0 and "purged 1" in out.out
    with Store(tmp_path / "agent.sqlite3") as s:
        assert s.outbox.get(sids[1]).state == "purged"
        assert s.outbox.get(sids[0]).state == "sent"  # unacknowledged untouched
        assert s.audit.list(action="outbox.purged")[0].actor == "technician"
