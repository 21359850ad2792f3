"""`fpagent bench outbox` runs end to end and its JSON line holds the agreed keys
(a smoke test: the figures themselves are for the benchmark, not for tests)."""

from __future__ import annotations

import json

from fpagent import cli


def test_bench_outbox_json_last_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert cli.main(["bench", "outbox", "--bookings", "2", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["bookings"] == 2
    assert result["bookings_per_s"] > 0 and result["cpu_s_per_booking"] > 0
    assert set(result["seal_ms"]) == {"x25519", "mlkem768-x25519"}
    assert result["wsq_ratio"] > 1
    assert any("durable enqueue" in line for line in out[:-1])
    assert not list((tmp_path / "state").rglob("*.sqlite3"))  # cleaned up after itself
