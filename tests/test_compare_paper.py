"""compare places a new model on the eSR paper's AGX and RPi figures as predicted (harness.predict), from the
paper's table in the store: a synthetic table whose speeds follow a known law, so the prediction is known."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

pytestmark = pytest.mark.torch

HELD_OUT = "eSR-TM_s2_K5_C4"


def _law(macs: float, rate: float) -> float:
    """FHD/s of a device that spends 2 ms a frame plus ``rate`` MACs per second."""
    return 1.0 / (0.002 + macs / rate)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    from harness.models.complexity import complexity
    from harness.models.pools import pool_ids
    from harness.predict.features import build_module

    ids = [m for m in pool_ids("all") if m.startswith(("eSR-TM_s2_", "eSR-MAX_s2_")) and m != HELD_OUT][::2]
    table = {}
    for model in ids:
        macs = complexity(build_module(model, 2)[0], 2)["macs_per_fhd"]
        row = {f"psnr_{s}": np.float64(30.0) for s in ("Set5", "Set14", "BSDS100", "Urban100", "Manga109")}
        row.update(parameters=np.int64(100), speed_AGX=np.float64(_law(macs, 4e11)), power_AGX=np.float64(3000),
                   speed_MaxQ=np.float64(_law(macs, 4e12)), power_MaxQ=np.float64(60),
                   speed_RPI=np.float64(_law(macs, 2e10)), usage_RPI=np.float64(350))
        table[model] = row
    path = tmp_path_factory.mktemp("esr") / "tests.pkl"
    path.write_bytes(pickle.dumps(table))
    return path, len(ids)


def test_a_new_model_is_placed_on_the_agx_and_rpi_figures_as_predicted(table_path, tmp_path):
    from harness.api import import_paper, paper_predictions
    from harness.models import resolve
    from harness.models.complexity import complexity

    path, n = table_path
    assert n >= 40
    import_paper(path, out=tmp_path / "results")
    model = resolve(HELD_OUT, 2, "init")
    got = paper_predictions(tmp_path / "results", model, 2, {"Set14": 31.0}, plots=tmp_path / "plots")
    macs = complexity(model.module, 2)["macs_per_fhd"]
    for device, rate in (("agx", 4e11), ("rpi", 2e10)):
        p = got[device]
        truth = _law(macs, rate)
        assert p["fhd_per_s"] == pytest.approx(truth, rel=0.10)  # the law, held out: within 10 %
        assert p["low"] <= p["fhd_per_s"] <= p["high"] and p["basis"] == "family" and p["warnings"] == []
        assert any(f.endswith(f"paper_{device}_x2_Set14.png") for f in p["files"])
    assert "maxq" not in got  # compare places a model on the edge devices only


def test_without_the_table_or_a_module_nothing_is_predicted_and_says_why(table_path, tmp_path):
    from types import SimpleNamespace

    from harness.api import import_paper, paper_predictions
    from harness.results.store import ResultStore

    with ResultStore(tmp_path / "results" / "harness.db"):
        pass
    got = paper_predictions(tmp_path / "results", SimpleNamespace(id="x", module=None), 2, {})
    assert "no eSR paper table" in got["reason"] and "zoo import-esr" in got["reason"]
    import_paper(table_path[0], out=tmp_path / "results")
    got = paper_predictions(tmp_path / "results", SimpleNamespace(id="my.onnx", module=None), 2, {})
    assert got == {"reason": "my.onnx has no PyTorch module to compute the predictor's features from"}


def test_compare_prints_the_predictions_and_the_unlike_pool_warnings():
    from harness.cli.measure import paper_lines

    lines = paper_lines({"agx": {"fhd_per_s": 21.04, "low": 18.0, "high": 25.0, "band_share": 0.9, "basis": "features",
                                 "warnings": ["layer kind GELU absent from the pool"],
                                 "files": ["plots/paper_agx_x2_Set14.png", "plots/paper_agx_x2_Set14.svg"]}})
    assert lines[0] == ("predicted on Jetson AGX Xavier: 21 FHD/s (90% band 18-25; from the eSR authors' measurements, "
                        "the features alone (its family is not in the table)); figure: plots/paper_agx_x2_Set14.png")
    assert lines[1] == "warning: unlike the predictor's pool on Jetson AGX Xavier: layer kind GELU absent from the pool"
    assert paper_lines({"reason": "no table"}) == ["not placed on the eSR paper's figures: no table"]
