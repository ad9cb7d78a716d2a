"""Imports flow one way through the package: no cycles, no layer importing a higher one, no private
names imported across modules. The graph is read from the source (``ast``), function-level imports
included: an import deferred into a function is still a dependency.

The layers, lowest first (a module may import its own layer and those below it, never above):

- ``base``: cross-cutting helpers that know nothing of models or backends: errors, cachefile (locks
  and atomic cache writes), numeric (finite checks, strict JSON), stats (the median's interval),
  output, ortsession (the one ONNX Runtime session factory), timing (the one clock), color,
  imresize, imageio, metrics, progress, datasets, weights (the weight files and the cache folder,
  which the model families load from), devices, environment.
- ``models``: ``harness.models`` and its families (a user's ONNX file runs through ortsession).
- ``artifacts``: what is made from a model: ``export`` (ONNX export, ClassSR's parts, the export
  cache) and ``quantize`` (INT8 graphs).
- ``backends``: ``harness.backends`` and ``exported``: an export folder's models run ClassSR's
  routed graphs through the backends' ONNX Runtime pipeline, so reading a folder sits with them.
- ``bench``: measuring and running models: ``worker`` (child processes for model code), ``runner``
  (timing, isolation, the reference checks), ``pipeline`` (the full-colour application path),
  ``selfcheck``, ``frames``, ``protocol`` (quality), ``power``, ``upscale``, the INT8 and GhostSR
  reports, ``doctor``.
- ``train``: ``harness.train`` (it validates with the quality protocol and exports checkpoints).
- ``results``: ``harness.results`` (store, table, plots, report, pareto, visual, the eSR paper's table), ``compare``
  and ``predict`` (the speed predictor fitted on the paper's table).
- ``api``: ``harness.api`` and the package's lazy exports (``harness/__init__.py``).
- ``cli``: ``harness.cli`` and ``harness/__main__.py``.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"

LAYERS: List[Tuple[str, Tuple[str, ...]]] = [
    ("base", ("errors", "children", "cachefile", "numeric", "stats", "output", "ortsession", "timing", "color", "imresize",
              "imageio", "metrics", "progress", "datasets", "weights", "devices", "environment")),
    ("models", ("models",)),
    ("artifacts", ("export", "quantize")),
    ("backends", ("backends", "exported")),
    ("bench", ("worker", "runner", "pipeline", "selfcheck", "frames", "protocol", "power", "upscale", "int8_report",
               "ghost_report", "doctor")),
    ("train", ("train",)),
    ("results", ("results", "compare", "predict")),
    ("api", ("api", "")),  # "": the package itself (harness/__init__.py)
    ("cli", ("cli", "__main__")),
]
# Cycles that must stay, each with the reason; none today.
ALLOWED_CYCLES: List[Set[str]] = []


def module_files() -> Dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def _owner(name: str) -> str:
    """The module that defines ``name`` (a dotted path that may end in a function or class name)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str) -> List[Tuple[str, str, int]]:
    """(imported module, imported name or '', line) for each harness import in ``module``, anywhere in it."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(_owner(a.name), "", node.lineno) for a in node.names if a.name.split(".")[0] == "harness"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "harness":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # `from . import api`: the submodule itself
                    found.append((sub, "", node.lineno))
                else:
                    found.append((_owner(target), alias.name, node.lineno))
    return found


def graph() -> Dict[str, Set[str]]:
    return {m: {t for t, _, _ in imports_of(m) if t != m} for m in MODULES}


def layer_of(module: str) -> int:
    rest = module[len("harness."):] if module.startswith("harness.") else ""
    for rank, (_, names) in enumerate(LAYERS):
        for name in names:
            if rest == name or (name and rest.startswith(name + ".")):
                return rank
    raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py (and its docstring)")


def cycles(edges: Dict[str, Set[str]]) -> List[Set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[Set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    """The reader sees relative, function-level and submodule imports (so an empty result means something)."""
    edges = graph()
    assert "harness.errors" in edges["harness.runner"]  # module level, relative
    assert "harness.exported" in edges["harness.runner"]  # inside measure()
    assert "harness.api" in edges["harness"]  # `from . import api` inside __getattr__
    assert "harness.models.classsr.spec" in edges["harness.export"]  # two dots down, inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles():
    found = [c for c in cycles(graph()) if c not in ALLOWED_CYCLES]
    assert not found, "import cycles (break each by moving code down a layer):\n" + "\n".join(
        " <-> ".join(sorted(c)) for c in found)


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_layer_imports_a_higher_one():
    bad = []
    for module in MODULES:
        for target, _, line in imports_of(module):
            if layer_of(target) > layer_of(module):
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} ({LAYERS[layer_of(module)][0]}) "
                           f"imports {target} ({LAYERS[layer_of(target)][0]})")
    assert not bad, "imports against the layer order (see this file's docstring):\n" + "\n".join(sorted(set(bad)))


def test_no_private_names_imported_across_modules():
    bad = []
    for module in MODULES:
        for target, name, line in imports_of(module):
            if name.startswith("_") and not name.startswith("__") and target != module:
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {name} from {target}")
    assert not bad, "private names imported from another module (make them public or move them):\n" + "\n".join(bad)
