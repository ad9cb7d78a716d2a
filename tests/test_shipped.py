"""Shipped weights: ``zoo ship`` (copy, SHA-256, provenance, acceptance) and the committed pool.

The committed manifest is checked for completeness and consistency here; its Set14 figures
are re-measured for a few models when ../shared is present (they must be real measurements).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness import train, weights
from harness.errors import HarnessError
from harness.models import pools, resolve
from harness.models.registry import family_name
from harness.train import ship
from train.helpers import settings, smooth_images

SHARED = Path(__file__).resolve().parents[2] / "shared"
MID = "eSR-MAX_s2_K3_C2"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty shipped store in tmp_path (the committed one is never written by tests)."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_NO_PROGRESS", "1")
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setattr(weights, "SHIPPED_MANIFEST", tmp_path / "shipped" / "manifest.json")
    return tmp_path / "shipped"


@pytest.mark.torch
def test_ship_copies_weights_with_provenance_and_they_load(store, tmp_path):
    data = smooth_images(tmp_path / "T91")
    train.run([MID], settings(data), out=str(tmp_path / "runs"), pool=True)
    manifest = ship.ship(tmp_path / "runs", log=lambda m: None)
    entry = manifest["models"][MID]
    assert (store / entry["file"]).is_file() and entry["bytes"] == (store / entry["file"]).stat().st_size
    prov = entry["provenance"]
    assert prov["steps"] == 12 and prov["seed"] == 0 and prov["cpu_time_s"] > 0
    assert prov["data"][0]["folder"] == "T91" and prov["data"][0]["images"] == 4  # a name, not this machine's path
    assert json.loads((store / "manifest.json").read_text())["totals"]["models"] == 1

    model = resolve(MID, weights="shipped")
    assert model.weights == "shipped"
    trained = torch.load(tmp_path / "runs" / MID / f"{MID}.pt")
    assert all(torch.equal(model.module.state_dict()[k], v) for k, v in trained.items())

    (store / entry["file"]).write_bytes(b"tampered")
    with pytest.raises(HarnessError, match="SHA-256"):
        resolve(MID, weights="shipped")
    with pytest.raises(HarnessError, match="no shipped weights for eSR-TM_s2_K7_C4.*--weights official"):
        resolve("eSR-TM_s2_K7_C4", weights="shipped")


@pytest.mark.torch
def test_ship_measures_quality_and_records_absent_official_weights(store, tmp_path):
    data = smooth_images(tmp_path / "T91")
    smooth_images(tmp_path / "sets" / "Set14" / "HR", n=2, size=(32, 40), seed=3)
    train.run([MID], settings(data), out=str(tmp_path / "runs"), pool=True)
    logged = []
    manifest = ship.ship(tmp_path / "runs", data=str(tmp_path / "sets"), sets=["Set14"], log=logged.append)
    entry = manifest["models"][MID]
    assert math.isfinite(entry["quality"]["Set14"]["psnr"]) and entry["params"] > 0
    assert entry["official"] is None and entry["acceptance"]["passes"] is None
    assert "import-esr" in entry["acceptance"]["reason"] and any("official weights not measured" in m for m in logged)


@pytest.mark.torch
def test_ship_reads_a_method_without_official_weights_against_its_base(store, tmp_path):
    """GhostSR has no official weights: the entry says why, and carries its base network's shipped figures."""
    base, ghost_id = "FSRCNN_s2_D56_S12_M4", "Ghost-FSRCNN_s2_D56_S12_M4"
    data = smooth_images(tmp_path / "T91")
    smooth_images(tmp_path / "sets" / "Set14" / "HR", n=2, size=(32, 40), seed=3)
    train.run([base], settings(data, steps=4), out=str(tmp_path / "runs"), pool=True)
    ship.ship(tmp_path / "runs", [base], data=str(tmp_path / "sets"), sets=["Set14"], log=lambda m: None)
    base_file = tmp_path / "runs" / base / f"{base}.pt"
    train.run([ghost_id], settings(data, steps=4, init_weights=str(base_file)), out=str(tmp_path / "runs"), pool=True)
    logged = []
    manifest = ship.ship(tmp_path / "runs", [ghost_id], data=str(tmp_path / "sets"), sets=["Set14"],
                         log=logged.append)
    entry = manifest["models"][ghost_id]
    assert entry["official"] is None and entry["acceptance"]["passes"] is None
    assert "has no official weights" in entry["acceptance"]["reason"]  # the loader's reason, not "import-esr"
    assert entry["reference"]["model"] == base and entry["reference"]["weights"] == "shipped"
    assert entry["reference"]["quality"] == manifest["models"][base]["quality"]  # the same measurement
    assert any(f"{base} (shipped)" in m for m in logged)
    prov = entry["provenance"]  # the start: the base's file by name and hash, and the run behind it
    assert prov["init"].startswith(f"weights {base}.pt (sha256 ") and str(tmp_path) not in json.dumps(entry)
    assert prov["init_runs"] == [{"sha256": manifest["models"][base]["sha256"], "shipped": base}]
    row = {r["model"]: r for r in ship.acceptance_rows(manifest)}[ghost_id]
    assert row["reference"] == base and row["reference_psnr"] == entry["reference"]["quality"]["Set14"]["psnr"]
    assert ship.reference_id("ClassSR-FSRCNN_s4") == "FSRCNN_s4_D56_S12_M4" and ship.reference_id(MID) is None


def test_init_runs_finds_the_runs_behind_a_start(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "b.json").write_text(json.dumps({"model": "b", "status": "finished", "weights_sha256": "1" * 64,
                                                        "steps": 9, "device": "cpu", "cpu_time_s": 5.0,
                                                        "wall_time_s": 4.0}))
    record = {"init": f"weights branches:/x/a.pt,/y/b.pt,shipped (sha256 {'0' * 64}, {'1' * 64}, {'2' * 64})"}
    runs = ship.init_runs(record, tmp_path, {"models": {"c": {"sha256": "2" * 64}}})
    assert runs[0] == {"sha256": "0" * 64, "run": None}
    assert runs[1]["model"] == "b" and runs[1]["steps"] == 9 and runs[1]["cpu_time_s"] == 5.0
    assert runs[2] == {"sha256": "2" * 64, "shipped": "c"}
    assert ship.init_runs({"init": "authors' initialisation"}, tmp_path, {"models": {}}) == []


def test_the_methods_pool_is_the_shipped_non_esr_models_and_pools_join(store):
    store.mkdir(parents=True)
    models = {m: {} for m in ("eSR-MAX_s2_K3_C2", "Ghost-FSRCNN_s2_D56_S12_M4", "ABPN_s3", "ClassSR-FSRCNN_s4")}
    (store / "manifest.json").write_text(json.dumps({"models": models}))
    assert pools.pool_ids("methods") == ["Ghost-FSRCNN_s2_D56_S12_M4", "ABPN_s3", "ClassSR-FSRCNN_s4"]  # by scale
    joined = pools.pool_ids("default, methods")
    assert joined == pools.pool_ids("default") + pools.pool_ids("methods")
    assert pools.pool_ids("default,default") == pools.pool_ids("default")  # a union: no repeats
    with pytest.raises(HarnessError, match="unknown model pool 'nope'.*methods"):
        pools.pool_ids("default,nope")


def test_ship_refuses_missing_runs(store, tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(HarnessError, match="no finished training runs"):
        ship.ship(tmp_path / "runs")
    with pytest.raises(HarnessError, match="no finished training run for eSR-TM_s2_K7_C4"):
        ship.ship(tmp_path / "runs", ["eSR-TM_s2_K7_C4"])


def test_acceptance_tolerance_per_family_and_x3_note():
    ours, official = {"Set14": {"psnr": 31.0}}, {"Set14": {"psnr": 31.25}}
    assert ship.acceptance("eSR-TM_s2_K7_C4", ours, official)["passes"] is True       # -0.25 within 0.3
    assert ship.acceptance("eSR-TM_s2_K7_C4", ours, {"Set14": {"psnr": 31.31}})["passes"] is False
    assert ship.acceptance("FSRCNN_s2_D56_S12_M4", ours, {"Set14": {"psnr": 31.45}})["passes"] is True
    assert ship.acceptance("FSRCNN_s2_D56_S12_M4", ours, {"Set14": {"psnr": 31.51}})["passes"] is False
    better = ship.acceptance("eSR-TM_s3_K7_C4", {"Set14": {"psnr": 28.6}}, {"Set14": {"psnr": 28.45}})
    assert better["delta_db"] == pytest.approx(0.15) and "+0.15 dB" in better["note"]
    assert "note" not in ship.acceptance("eSR-TM_s2_K7_C4", {"Set14": {"psnr": 31.6}}, official)


# --------------------------------------------------------------------------- the committed store

def trainable_default_ids():
    return [m for m in pools.pool_ids("default") if not m.startswith("Bicubic_")]


def test_the_default_pool_is_shipped_complete_and_consistent():
    manifest = weights.shipped_manifest()
    methods = pools.pool_ids("methods")  # the other methods' shipped weights, beside the default pool's
    assert sorted(m for m in manifest["models"] if m not in methods) == sorted(trainable_default_ids())
    for mid in methods:
        e = manifest["models"][mid]
        assert e["official"] is None and e["acceptance"]["passes"] is None and e["acceptance"]["reason"]
        assert e["provenance"]["steps"] > 0 and e["quality"]["Set14"]["psnr"] > 0
        ref = ship.reference_id(mid)
        if ref:  # read against the base network's shipped weights, measured in the same pass
            assert e["reference"]["model"] == ref
            assert e["reference"]["quality"] == manifest["models"][ref]["quality"]
    for mid, e in manifest["models"].items():
        if mid in methods:
            continue
        prov = e["provenance"]
        assert prov["steps"] == prov["lr_schedule"]["steps"] > 0 and prov["cpu_time_s"] > 0, mid
        assert {d["folder"] for d in prov["data"]} and all(not d["folder"].startswith("/") for d in prov["data"])
        acc = e["acceptance"]
        assert acc["set"] == "Set14" and acc["tolerance_db"] == ship.TOLERANCE_DB[family_name(mid)]
        if e["official"] is not None:
            delta = e["quality"]["Set14"]["psnr"] - e["official"]["Set14"]["psnr"]
            assert acc["delta_db"] == pytest.approx(delta, abs=1e-3)
            assert acc["passes"] == (delta >= -acc["tolerance_db"])
    totals = manifest["totals"]
    assert totals["models"] == len(manifest["models"])
    split = [ship.time_split(e["provenance"]) for e in manifest["models"].values()]
    behind = {r["sha256"]: r for e in manifest["models"].values() for r in e["provenance"].get("init_runs", [])
              if r.get("model")}  # runs shipped only inside another model (ClassSR's D16/D36 branches)
    split += [(r["cpu_time_s"], r["gpu_time_s"]) for r in behind.values()]
    assert totals["cpu_hours"] == pytest.approx(sum(c for c, _ in split) / 3600, abs=1e-2)
    assert totals["gpu_hours"] == pytest.approx(sum(g for _, g in split) / 3600, abs=1e-2)
    for e in manifest["models"].values():  # every second of a run is counted once, on its device
        p = e["provenance"]
        cpu, gpu = ship.time_split(p)
        assert (cpu == pytest.approx(p["cpu_time_s"]) and gpu == 0) or gpu > 0


@pytest.mark.torch
def test_every_shipped_file_loads_strictly():
    for mid in weights.shipped_ids():
        assert resolve(mid, weights="shipped").weights == "shipped"


@pytest.mark.torch
@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "datasets" / "Set14").is_dir(), reason="needs ../shared/datasets/Set14")
def test_shipped_quality_figures_are_measurements():
    from harness.datasets import find_set
    from harness.protocol import QualityEvaluator

    manifest = weights.shipped_manifest()["models"]
    image_set = find_set(SHARED / "datasets", "Set14")
    for mid in ("eSR-MAX_s2_K3_C1", "eSR-TM_s3_K7_C3", "ESPCN_s4_D0_S3"):
        psnr = QualityEvaluator(show_progress=False).evaluate(resolve(mid, weights="shipped"), image_set).psnr
        assert psnr == pytest.approx(manifest[mid]["quality"]["Set14"]["psnr"], abs=1e-3), mid


def test_time_split_counts_each_segment_on_its_device():
    """A run started on a GPU and resumed on a CPU: CPU seconds of the CPU part, wall of the GPU part."""
    gpu = "cuda (NVIDIA H100 80GB HBM3)"
    mixed = {"device": "cpu", "cpu_time_s": 999.0, "wall_time_s": 999.0,
             "segments": [{"from_step": 0, "to_step": 20, "device": gpu, "wall_s": 30.0, "cpu_s": 29.0},
                          {"from_step": 20, "to_step": 60, "device": "cpu", "wall_s": 200.0, "cpu_s": 190.0}]}
    assert ship.time_split(mixed) == (190.0, 30.0)
    assert ship.time_split({"device": "cpu", "cpu_time_s": 12.0, "wall_time_s": 15.0}) == (12.0, 0.0)
    assert ship.time_split({"device": gpu, "cpu_time_s": 12.0, "wall_time_s": 15.0, "segments": []}) == (0.0, 15.0)
