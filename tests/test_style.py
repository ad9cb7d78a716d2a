"""The habits of a kept project, in the test command: ruff (lint and import order, configured in
pyproject.toml) over the package and the tests, and mypy over the public API."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str):
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed here (the [test] extra installs it)")


def test_ruff_is_clean():
    _tool("ruff")
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "harness", "tests"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


def test_the_public_api_type_checks():
    _tool("mypy")
    if sys.version_info < (3, 10):
        pytest.skip("mypy's current releases run on Python >= 3.10 (the check does not depend on the runtime)")
    res = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
