"""Imports point inwards only (DESIGN.md section 5): cli -> serve -> master -> worker ->
framework. The contracts are in pyproject.toml ([tool.importlinter]); `lint-imports` checks
them, and this test runs it, so a layering break fails the suite."""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The outer layers; every other module of the package is the framework.
OUTER = {"cli", "stats_command", "__main__", "serve", "testclient", "master", "asgi", "worker"}


def _lint_imports(cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    command = shutil.which("lint-imports")
    if command is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {"PATH": str(pathlib.Path(sys.executable).parent) + ":/usr/bin:/bin",
           "PYTHONPATH": str(cwd), "HOME": str(cwd)}
    return subprocess.run([command, "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_import_contracts_are_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout, result.stdout


def test_every_framework_module_is_under_the_contract():
    """A new module of the framework is checked too: the forbidden contract lists them all."""
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    forbidden = next(c for c in config["contracts"] if c["type"] == "forbidden")
    listed = {name.removeprefix("catzilla.") for name in forbidden["source_modules"]}
    package = ROOT / "catzilla"
    present = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    present |= {path.parent.name for path in package.glob("*/__init__.py")}
    assert present - OUTER - listed == set(), "add them to source_modules in pyproject.toml"
    assert listed - present == set(), "modules listed that no longer exist"


def test_an_outward_import_breaks_the_contract(tmp_path):
    """The check has teeth: the framework importing the worker is reported (on a copy of the
    package, so the working tree is never touched)."""
    shutil.copytree(ROOT / "catzilla", tmp_path / "catzilla",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    routing = tmp_path / "catzilla" / "routing.py"
    routing.write_text(routing.read_text() + "\nfrom .worker import server as _server  # outward\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "catzilla.routing -> catzilla.worker" in result.stdout, result.stdout
