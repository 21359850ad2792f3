import pytest

from fpagent import config
from fpagent.errors import ConfigError


def test_defaults_without_any_file():
    cfg = config.load()
    assert cfg.source == "<defaults>"
    assert cfg.sensor.url.startswith("emulated://")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[device]\nnosuch = 1\n", "[device] nosuch"),
        ("[nosuch]\n", "[nosuch]"),
        ("[mqtt]\nport = 'x'\n", "[mqtt] port"),
        ("[envelope]\nsuite = 'rot13'\n", "[envelope] suite"),
        ("[device]\nori = 'short'\n", "[device] ori"),
        ("not toml at all =", "not valid TOML"),
    ],
)
def test_bad_files_name_the_key(tmp_path, text, fragment):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert fragment in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "none.toml")


def test_round_trip_through_toml(tmp_path):
    cfg = config.Config()
    cfg.mqtt.port = 8883
    path = tmp_path / "a.toml"
    path.write_text(config.to_toml(cfg))
    again = config.load(path)
    assert again.mqtt.port == 8883 and again.booking.descriptive_fields == cfg.booking.descriptive_fields


def test_runtime_dir_defaults_under_the_state_dir(tmp_path):
    cfg = config.from_dict({"paths": {"state_dir": str(tmp_path / "state")}})
    assert cfg.paths.runtime() == tmp_path / "state" / "run"
    cfg = config.from_dict({"paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": "/run/fpagent"}})
    assert str(cfg.paths.runtime()) == "/run/fpagent"


# ------------------------------------------------------------------ strict values (hostile config)

import math as _math  # noqa: E402

import pytest as _pytest  # noqa: E402

from fpagent import config as _config  # noqa: E402
from fpagent.errors import ConfigError as _ConfigError  # noqa: E402


@_pytest.mark.parametrize("section,key,value", [
    ("envelope", "freshness_s", _math.nan),
    ("envelope", "freshness_s", _math.inf),
    ("mqtt", "ack_timeout_s", _math.inf),
    ("device", "device_id", "booking-01/../+/#"),
    ("device", "device_id", "booking+01"),
    ("device", "device_id", "booking\x1b01"),
    ("device", "device_id", ""),
    ("device", "ori", "XX00000\u0661\u0662"),  # Unicode digits are not an ORI
    ("mqtt", "root", "#"),
    ("mqtt", "root", "a/b"),
])
def test_hostile_values_are_refused(section, key, value):
    with _pytest.raises(_ConfigError) as err:
        _config.from_dict({section: {key: value}})
    assert f"[{section}] {key}" in str(err.value)


def test_nan_in_a_toml_file_is_refused(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[envelope]\nfreshness_s = nan\n")
    with _pytest.raises(_ConfigError, match="finite"):
        _config.load(path)


def test_plaintext_or_ca_less_tls_only_to_loopback():
    with _pytest.raises(_ConfigError, match="tls = false"):
        _config.from_dict({"mqtt": {"host": "broker.example.org", "port": 8883}})
    with _pytest.raises(_ConfigError, match="ca_file"):
        _config.from_dict({"mqtt": {"host": "10.0.0.5", "port": 8883, "tls": True}})
    ok = _config.from_dict({"mqtt": {"host": "10.0.0.5", "port": 8883, "tls": True,
                                     "ca_file": "/etc/fpagent/ca.crt"}})
    assert ok.mqtt.tls
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert not _config.from_dict({"mqtt": {"host": host, "port": 1883}}).mqtt.tls
