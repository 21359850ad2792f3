"""One error base, one table from error kinds to exit codes."""

from __future__ import annotations

import ast
import pathlib

import pytest

from fpagent import errors, hal
from fpagent.cli import main
from fpagent.commands import EXIT_CODES, exit_code_for
from fpagent.records.fmr import FmrError
from fpagent.sealing.keys import KeyFileError
from fpagent.storage.store import StoreError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_error_class_of_ours_derives_from_the_base():
    """Every exception class defined in the package is an FpagentError (the HAL's too)."""
    import importlib
    import pkgutil

    import fpagent
    import fpagent.drivers

    modules = [m for package in (fpagent, hal, fpagent.drivers)
               for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    loose = []
    for info in modules:
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, BaseException)
                    and value.__module__ == info.name and not issubclass(value, errors.FpagentError)):
                loose.append(f"{info.name}.{value.__name__}")
    assert loose == []


def test_no_class_carries_its_own_exit_code():
    carriers = []
    for path in sorted((ROOT / "agent").rglob("*.py")) + sorted((ROOT / "hal").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "exit_code" for t in stmt.targets):
                        carriers.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert carriers == []


@pytest.mark.parametrize("exc, code", [
    (errors.ConfigError("x"), 78), (errors.StorageFull("x"), 75), (errors.NoUsableFingerprint("x"), 65),
    (KeyFileError("x"), 77), (StoreError("x"), 74), (errors.StartupError("x"), 1),
    (hal.NoFinger("x"), 3), (errors.UserError("x"), 2), (FmrError("x"), 1), (RuntimeError("x"), 1),
])
def test_the_table_maps_each_kind(exc, code):
    assert exit_code_for(exc) == code
    assert EXIT_CODES[-1][0] is errors.FpagentError  # the catch-all comes last


def test_cli_turns_an_error_into_one_line_and_its_code(tmp_path, capsys):
    bad = tmp_path / "agent.toml"
    bad.write_text("[store]\nretention_days = 'many'\n")
    assert main(["--config", str(bad), "config", "check"]) == 78
    err = capsys.readouterr().err
    assert err.startswith("fpagent: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
