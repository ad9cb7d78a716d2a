"""The layout of harness/train/: imports flow one way, no private name crosses a module, no module
grows back into a room of its own, and ``import harness.train`` stays free of torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from harness import train

PACKAGE = Path(train.__file__).resolve().parent
# The order imports flow in: a module imports only modules before it (cli imports cluster lazily).
ORDER = ("files", "data", "targets", "finetune", "recipes", "settings", "checkpoint", "validation", "loop",
         "planning", "cluster", "ship", "cli")
MAX_LINES = 500


def sibling_imports(path: Path):
    """(module, name) of every ``from .module import name`` in the file (lazy ones included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                yield (node.module or alias.name), alias.name


def test_every_module_is_in_the_order_and_imports_only_modules_before_it():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert sorted(ORDER) == modules
    for name in ORDER:
        allowed = set(ORDER[:ORDER.index(name)])
        used = {module for module, _ in sibling_imports(PACKAGE / f"{name}.py")}
        assert used <= allowed, f"{name} imports {sorted(used - allowed)}, which come after it"


def test_no_private_name_is_imported_across_modules():
    for path in sorted(PACKAGE.glob("*.py")):
        private = [f"{module}.{name}" for module, name in sibling_imports(path) if name.startswith("_")]
        assert not private, f"{path.name} imports {private}"


def test_no_module_is_over_the_size_limit():
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert max(sizes.values()) <= MAX_LINES, sizes


def test_importing_the_package_imports_neither_torch_nor_ray():
    code = ("import sys, harness.train, harness.train.cluster, harness.train.ship; "
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(PACKAGE.parents[1])).stdout
    assert out.strip() == "[]"
