"""The Python API: the example of docs/api.md (and the README) run as written, against the CLI's figures."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import write_png
from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _example(path: Path) -> str:
    text = path.read_text()
    block = re.search(r"```python\n(import harness\n.*?)```", text, re.S)
    assert block, f"{path} lost its API example"
    return block.group(1)


def test_import_harness_is_light():
    code = ("import sys, harness; harness.run_all; harness.load_results; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_and_docs_show_the_same_example():
    assert _example(ROOT / "README.md") == _example(ROOT / "docs" / "api.md")


@pytest.mark.torch
def test_the_documented_example_runs(tmp_path, monkeypatch, rng, capsys):
    data = tmp_path / "DATA"
    for i in range(2):
        write_png(data / "Set5" / "HR" / f"im{i}.png", rng.integers(0, 255, (48, 60, 3), dtype=np.uint8))
    quick = tmp_path / "quick.toml"  # the cpu profile with one timed pass, so the example runs in seconds
    quick.write_text((ROOT / "harness" / "profiles" / "cpu.toml").read_text().replace("repeats = 5", "repeats = 1")
                     .replace("max_time_s = 8", "max_time_s = 1"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_DATA", str(data))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    code = _example(ROOT / "docs" / "api.md").replace('device="cpu"', f'device="{quick}"')
    scope: dict = {}
    exec(compile(code, "docs/api.md", "exec"), scope)  # noqa: S102 - the documentation's own example
    q, r, run, df = scope["q"], scope["r"], scope["run"], scope["df"]

    assert list(q["set"]) == ["Set5"] and list(q["model"]) == ["eSR-TM_s2_K7_C4"]
    assert main(["quality", "--model", "eSR-TM_s2_K7_C4", "--data", str(data), "--sets", "Set5", "--json"]) == 0
    assert q["psnr"].iloc[0] == pytest.approx(json.loads(capsys.readouterr().out)[0]["psnr"], abs=1e-9)

    assert r.model == "eSR-TM_s2_K7_C4" and r.status == "ok" and r.fhd_per_s > 0
    assert r.latency.median_ms == pytest.approx(1000.0 / r.fhd_per_s) and r.latency.n >= 14
    assert set(r.to_dict()) >= {"fhd_per_s", "latency", "status"} and "record" not in r.to_dict()

    table = run.table
    assert set(table["model"]) == {"bicubic-matlab", "bicubic-opencv", "Bicubic_s2", "eSR-MAX_s2_K3_C1"}
    assert (table["status"] == "ok").all() and table["psnr:Set5"].notna().all() and (table["fhd_per_s"] > 0).all()
    assert set(run.front["model"]) <= set(table["model"]) and len(run.front) >= 1
    assert Path("results/harness.db").is_file() and run.db == Path("results") / "harness.db"
    assert run.figures and {Path(f).parent for f in run.figures} == {Path("plots")}  # beside out, not in the checkout
    same = df.set_index("model").loc[table["model"], ["psnr:Set5", "fhd_per_s"]].to_numpy()
    assert np.allclose(same, table[["psnr:Set5", "fhd_per_s"]].to_numpy())


def test_api_names_are_not_shadowed_by_submodules():
    """``harness.<name>`` must stay the API function even after a submodule of that name was imported."""
    import importlib
    import pkgutil

    import harness

    modules = {m.name for m in pkgutil.iter_modules(harness.__path__)}
    assert not modules & set(harness.__all__)
    for name in ("protocol", "results.table", "api"):
        importlib.import_module(f"harness.{name}")
    assert callable(harness.quality) and callable(harness.bench) and callable(harness.run_all)


def test_figures_go_beside_the_results_unless_given():
    from harness.api import PROJECT_ROOT, plots_beside

    assert plots_beside(PROJECT_ROOT / "results") == PROJECT_ROOT / "plots"
    assert plots_beside("run/results") == Path("run/plots")
    assert plots_beside("results") == Path("plots")
    assert plots_beside("run/results", "elsewhere") == Path("elsewhere")
