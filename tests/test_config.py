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
