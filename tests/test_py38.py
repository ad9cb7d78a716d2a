"""Python 3.8 (JetPack 5's Python) stays supported: a static check with vermin over the package and
the tests, and an import of every module with PyTorch unimportable (a device venv). The runtime side, every
torch-free test under CPython 3.8, is scripts/test-py38.sh; see docs/python38.md."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGET = "3.8"
# Annotations in a module with this import are strings, never evaluated at run time, so `list[int]`
# or `X | None` there are fine on 3.8; in a module without it they are evaluated at definition time.
POSTPONED = re.compile(r"^from __future__ import [^\n]*\bannotations\b", re.MULTILINE)
VERMIN = "import sys, vermin; sys.exit(vermin.main())"  # vermin has no __main__; this is its console script


def checked_files() -> List[Path]:
    """The package's Python files, any Python under scripts/, and the tests (on a Jetson with NVIDIA's
    torch wheel for 3.8 the tests marked `torch` run under 3.8 too)."""
    return [f for folder in ("harness", "scripts", "tests") for f in sorted((ROOT / folder).rglob("*.py"))]


def vermin_violations(files: List[Path], target: str = TARGET) -> List[str]:
    """vermin's own lines for each construct in ``files`` that needs a Python newer than ``target``
    (empty when there is none). A file is judged by the interpreter running this (its parser) with
    --pessimistic, so syntax it cannot parse counts as a violation, not as a skipped file."""
    try:
        import vermin  # noqa: F401
    except ImportError:
        pytest.fail("vermin is not installed: pip install -e '.[test]' (or pip install vermin)", pytrace=False)
    lines: List[str] = []
    postponed = [f for f in files if POSTPONED.search(f.read_text(encoding="utf-8"))]
    evaluated = [f for f in files if f not in postponed]
    for group, eval_flag in ((postponed, "--no-eval-annotations"), (evaluated, "--eval-annotations")):
        if not group:
            continue
        res = subprocess.run([sys.executable, "-c", VERMIN, f"--target={target}-", "--violations", "--quiet",
                              "--no-tips", "--pessimistic", eval_flag, "--no-make-paths-absolute"]
                             + [_shown(f) for f in group],
                             cwd=str(ROOT), capture_output=True, text=True)
        out = (res.stdout + res.stderr).strip()
        if res.returncode != 0 or out:
            lines += out.splitlines() or [f"vermin exited with {res.returncode} and printed nothing"]
    return lines


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (shorter lines in a failure)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def test_no_python_39_syntax_or_stdlib_in_the_package_or_tests():
    files = checked_files()
    assert any(f.parent.name == "harness" for f in files), "harness/ has no Python files?"
    violations = vermin_violations(files)
    assert not violations, (f"needs a Python newer than {TARGET} (JetPack 5 ships 3.8; see docs/python38.md; "
                            "'# novm' on a line guarded by a version check exempts it):\n" + "\n".join(violations))


def test_the_check_catches_39_only_code(tmp_path):
    """The check itself works: 3.9+ stdlib, and builtin generics in evaluated annotations, are caught;
    the same annotations postponed by ``from __future__ import annotations`` are not."""
    new_stdlib = tmp_path / "new_stdlib.py"
    new_stdlib.write_text('import functools\n\n\n@functools.cache\ndef f():\n    return "ab".removeprefix("a")\n')
    evaluated = tmp_path / "evaluated.py"
    evaluated.write_text("def f(x: list[int]) -> int:\n    return len(x)\n")
    postponed = tmp_path / "postponed.py"
    postponed.write_text("from __future__ import annotations\n\n\ndef f(x: list[int]) -> int:\n    return len(x)\n")
    found = "\n".join(vermin_violations([new_stdlib, evaluated, postponed]))
    assert "'functools.cache' member requires" in found and "'str.removeprefix' member requires" in found
    assert "evaluated.py" in found and "builtin generic type annotation (list[..])" in found
    assert "postponed.py" not in found


def test_every_module_imports_without_torch():
    """The package imports on a device venv: every module, with torch made unimportable (in a child)."""
    code = ("import importlib, pkgutil, sys\n"
            "sys.modules['torch'] = None  # import torch now raises ImportError, as where it is not installed\n"
            "import harness\n"
            "bad = []\n"
            "for m in pkgutil.walk_packages(harness.__path__, 'harness.'):\n"
            "    if m.name == 'harness.__main__':\n"
            "        continue  # runs the CLI\n"
            "    try:\n"
            "        importlib.import_module(m.name)\n"
            "    except Exception as e:\n"
            "        bad.append(f'{m.name}: {type(e).__name__}: {e}')\n"
            "print('\\n'.join(bad))\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", "modules that do not import without PyTorch:\n" + res.stdout
