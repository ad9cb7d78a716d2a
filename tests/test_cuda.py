"""CUDA paths, run for real on a machine with an NVIDIA GPU (skipped elsewhere, with the reason).

CI has no GPU; these are run on a lent GPU machine before a CUDA change lands."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch (not installed here; pip install -e '.[torch]')")

from harness import train
from harness.backends.torch_backend import TorchBackend
from harness.models import resolve

pytestmark = [pytest.mark.torch,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none here)")]

FSRCNN = "FSRCNN_s2_D6_S1_M1"


def _smooth_images(folder, n=3, size=(40, 40)):
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        base = rng.random((size[0] // 4, size[1] // 4, 3))
        img = np.asarray(Image.fromarray((base * 255).astype(np.uint8)).resize(size[::-1], Image.BICUBIC))
        Image.fromarray(img).save(folder / f"{i}.png")
    return folder


def _weights(path):
    return torch.load(str(path), map_location="cpu", weights_only=True)


def test_train_on_cuda_is_recorded_and_its_weights_load_on_the_cpu(tmp_path):
    """--device cuda: the record names the card; the shipped-format weights are CPU tensors close to a CPU run."""
    data = _smooth_images(tmp_path / "train")
    kw = dict(data=[str(data)], steps=12, batch=4, patch=16, threads=1, val_every=0, checkpoint_every=4)
    (gpu,) = train.run([FSRCNN], train.Settings(device="cuda", **kw), out=str(tmp_path / "gpu"))
    (cpu,) = train.run([FSRCNN], train.Settings(**kw), out=str(tmp_path / "cpu"))
    assert gpu["status"] == cpu["status"] == "finished"
    assert gpu["device"].startswith("cuda (") and cpu["device"] == "cpu"
    a, b = _weights(tmp_path / "gpu" / f"{FSRCNN}.pt"), _weights(tmp_path / "cpu" / f"{FSRCNN}.pt")
    assert a.keys() == b.keys() and all(t.device.type == "cpu" for t in a.values())
    # Same seed, same batches: only the arithmetic differs (cuDNN algorithms, TF32), 12 small Adam steps apart.
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 5e-2
    resolve(FSRCNN, weights=str(tmp_path / "gpu" / f"{FSRCNN}.pt"))  # loads into the CPU model


def test_train_resume_on_cuda_continues_from_the_checkpoint(tmp_path):
    data = _smooth_images(tmp_path / "train")
    kw = dict(data=[str(data)], batch=4, patch=16, threads=1, val_every=0, checkpoint_every=4, device="cuda")
    (whole,) = train.run([FSRCNN], train.Settings(steps=12, **kw), out=str(tmp_path / "whole"))
    train.run([FSRCNN], train.Settings(steps=12, **kw), out=str(tmp_path / "split"), stop_at=8)
    (resumed,) = train.run([FSRCNN], train.Settings(steps=12, **kw), out=str(tmp_path / "split"), resume=True)
    assert resumed["status"] == "finished" and resumed["steps"] == whole["steps"] == 12
    a = _weights(tmp_path / "whole" / f"{FSRCNN}.pt")
    b = _weights(tmp_path / "split" / f"{FSRCNN}.pt")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-2


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_torch_backend_on_cuda_matches_the_cpu_reference(precision, tol):
    model = resolve("eSR-TM_s2_K7_C16")
    lr = np.random.default_rng(1).random((1, 1, 60, 80), dtype=np.float32)
    ref = TorchBackend(precision="fp32", device="cpu").prepare(model, [lr.shape]).infer(lr)
    session = TorchBackend(precision=precision, device="cuda").prepare(model, [lr.shape])
    out = session.infer(lr)
    assert out.shape == ref.shape == (1, 1, 120, 160) and out.dtype == np.float32
    assert float(np.abs(out - ref).max()) < tol
    assert session.device_memory_bytes() > 0


def test_torch_cuda_session_times_compute_with_cuda_events():
    """The GPU time of one forward pass (CUDA events) is positive and within the host's clock around the same
    synchronised call; a CPU session has none."""
    import time

    model = resolve("eSR-TM_s2_K7_C16")
    lr = np.random.default_rng(2).random((1, 1, 540, 960), dtype=np.float32)
    session = TorchBackend(precision="fp16", device="cuda").prepare(model, [lr.shape])
    session.load(lr)
    session.compute()
    walls, gpus = [], []
    for _ in range(20):
        t = time.perf_counter()
        session.compute()
        walls.append((time.perf_counter() - t) * 1e3)
        gpus.append(session.last_gpu_ms)
    assert all(0 < g <= w + 0.05 for g, w in zip(gpus, walls)), list(zip(gpus, walls))
    cpu = TorchBackend(precision="fp32", device="cpu").prepare(model, [(1, 1, 60, 80)])
    cpu.infer(lr[..., :60, :80])
    assert getattr(cpu, "last_gpu_ms", None) is None


def test_bench_on_cuda_keeps_compute_gpu_and_end_to_end_apart(tmp_path):
    """A bench row on the CUDA profile with PyTorch fp16: the GPU's event time within the host's compute time,
    the end-to-end time (host->device copy of a 540x960 input, device->host of the 1080x1920 output) above it,
    device memory and the GPU's NVML state recorded, power either measured or NaN with NVML's reason."""
    import math

    import harness

    r = harness.bench("eSR-TM_s2_K7_C16", device="cuda", backend="torch", precision="fp16", duration=1.0, weights="init",
                      isolate=False)
    rec = r.record
    assert r.status == "ok", r.reason
    assert rec["runtime"] == "torch" and rec["input_shape"] == [1, 1, 540, 960]
    assert 0 < rec["gpu_median_ms"] <= rec["median_ms"] * 1.05
    assert rec["e2e"]["median_ms"] > rec["median_ms"]
    assert rec["device_memory_bytes"] > 540 * 960 * 2
    assert "gpu" in rec["before"] and rec["before"]["gpu"]
    if math.isnan(r.mean_w):
        assert "nvml" in rec["power_reason"].lower() or "nvidia" in rec["power_reason"].lower(), rec["power_reason"]
    else:
        assert 10 < r.mean_w < 1500 and r.mj_per_frame > 0
