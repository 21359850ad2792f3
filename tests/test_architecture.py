"""The shape of the package: one import name, layers import-linter enforces,
no private names used across modules, modules of a readable size."""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIR = PYPROJECT["tool"]["setuptools"]["package-dir"]  # import name -> folder
SOURCE_FOLDERS = [ROOT / folder for folder in PACKAGE_DIR.values()]
LONGEST_MODULE = 600
# Modules allowed past LONGEST_MODULE lines, each with the reason.
LONG_MODULES: dict[str, str] = {}


def _sources(*folders: pathlib.Path):
    for folder in folders:
        yield from sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: pathlib.Path) -> str:
    for name, folder in sorted(PACKAGE_DIR.items(), key=lambda kv: -len(kv[0])):
        base = ROOT / folder
        if base in path.parents:
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([name, *parts])
    raise AssertionError(path)


def installed_layout(dest: pathlib.Path) -> pathlib.Path:
    """The tree a wheel installs (fpagent/, fpagent/hal/, fpagent/drivers/), made
    from the source folders the way setuptools' package-dir mapping does."""
    for name, folder in PACKAGE_DIR.items():
        target = dest.joinpath(*name.split("."))
        for src in _sources(ROOT / folder):
            rel = src.relative_to(ROOT / folder)
            if rel.parts[0] in {"hal", "drivers"} and folder == "agent":
                continue
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    return dest


def test_every_package_folder_is_installed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {_module_name(p) for p in _sources(*SOURCE_FOLDERS) if p.name == "__init__.py"}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "listed in pyproject.toml but no such package folder"


@pytest.mark.parametrize("bare", ["agent", "hal", "drivers"])
def test_bare_top_level_names_are_not_importable(bare, tmp_path):
    run = subprocess.run([sys.executable, "-c", f"import {bare}"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode != 0 and "ModuleNotFoundError" in run.stderr


def test_nothing_imports_a_bare_agent_hal_or_drivers():
    offenders = []
    for path in _sources(*SOURCE_FOLDERS, ROOT / "tests"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in {"agent", "hal", "drivers"}:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    for path in _sources(ROOT / "tests"):
        if path.name == pathlib.Path(__file__).name:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if '"-m", "agent"' in line or "'-m', 'agent'" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: python -m agent")
    for path in (ROOT / "scripts").iterdir():
        if path.is_file():
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if " -m agent" in line or "import agent" in line or "from agent" in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == []


def test_import_linter_contracts_hold(tmp_path):
    layout = installed_layout(tmp_path / "site")
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
         "sys.exit(lint_imports_command())", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, env={"PYTHONPATH": str(layout), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=240,
    )
    report = run.stdout + run.stderr
    assert "Contracts: " in report, report
    assert run.returncode == 0, report
    assert " 0 broken" in report, report


def _fpagent_aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound to our modules: {alias: module}."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fpagent.") and a.asname:
                    bound[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("fpagent"):
            for a in node.names:
                bound[a.asname or a.name] = f"{node.module}.{a.name}"
    return bound


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_module_uses_another_modules_private_names():
    offenders = []
    for path in _sources(*SOURCE_FOLDERS):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("fpagent"):
                # a private module may be used inside its own package (import-linter checks that)
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name}"
                              for a in node.names if _private(a.name)]
        aliases = _fpagent_aliases(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _private(node.attr)):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    assert offenders == []


def test_modules_stay_readable():
    long = {}
    for path in _sources(*SOURCE_FOLDERS):
        lines = path.read_text().count("\n")
        if lines > LONGEST_MODULE and _module_name(path) not in LONG_MODULES:
            long[_module_name(path)] = lines
    assert long == {}, f"split these by job (or say why in LONG_MODULES): {long}"


def test_no_internal_labels_in_code():
    import re
    label = re.compile(r"\bH\d{1,2}\b")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _sources(*SOURCE_FOLDERS)
                 for n, line in enumerate(p.read_text().splitlines(), 1) if label.search(line)]
    assert offenders == []


def test_a_wheel_installs_one_import_name(tmp_path):
    """Built as a wheel and installed away from the source tree: fpagent, fpagent.hal and
    fpagent.drivers import from there, the drivers' entry points are found, and no bare
    agent, hal or drivers is installed."""
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".numba-cache", ".pytest_cache"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(tmp_path / "dist"), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("fpagent-*.whl"))
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                              "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    packages = sorted(p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith(".dist-info"))
    assert packages == ["bin", "fpagent"]  # bin/: the fpagent command
    probe = ("import importlib.metadata as md, fpagent, fpagent.hal, fpagent.drivers; "
             "print(fpagent.__file__); print(fpagent.hal.__file__); "
             "print(sorted(e.name for e in md.entry_points(group='fpagent.sensors')))")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    main_file, hal_file, sensors = run.stdout.strip().splitlines()
    assert main_file.startswith(str(site)) and hal_file.startswith(str(site / "fpagent" / "hal"))
    assert {"synthetic", "zfm", "emulated"} <= set(eval(sensors))
