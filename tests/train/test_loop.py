"""harness.train.loop: training itself (the loss falls, seeds reproduce), the files and provenance
of a run, eSR runs bit-identical to before, RGB models (ABPN, BSRN) and a user's module.

Everything runs on tiny synthetic folders made in tmp_path with a handful of steps; the
one test on T91/Set5 needs ../shared and skips without it."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness import train
from harness.errors import HarnessError
from harness.models import resolve
from harness.train import loop

from .helpers import ABPN, BSRN, ESPCN, SHARED, TM, cli, one_line, same_state, settings, weights


@pytest.mark.torch
def test_loss_decreases_on_a_learnable_set(data, monkeypatch):
    losses = []

    def recording(output, target):
        loss = torch.nn.functional.l1_loss(output, target)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(loop, "l1_loss", recording)
    train.run([TM], settings(data, steps=100, batch=8, lr=3e-3, checkpoint_every=100), out=str(data.parent / "o"))
    assert len(losses) == 100
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:10]), (losses[:10], losses[-20:])


@pytest.mark.torch
def test_same_seed_same_weights_other_seed_other_weights(data, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train.run([ESPCN], settings(data, seed=seed), out=str(tmp_path / name))
    a, b, c = (weights(tmp_path / n / f"{ESPCN}.pt") for n in "abc")
    assert same_state(a, b)
    assert not same_state(a, c)


@pytest.mark.torch
def test_provenance_and_weights_load_through_the_registry(data, val_root, tmp_path):
    out = tmp_path / "o"
    code = cli([ESPCN, "--data", str(data), "--steps", "6", "--batch", "4", "--patch", "16", "--seed", "5",
                "--threads", "1", "--val-every", "4", "--val-data", str(val_root), "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([train.LOCK_NAME, "last.pt", "best.pt", f"{ESPCN}.pt",
                                                            f"{ESPCN}.json"])
    rec = json.loads((out / f"{ESPCN}.json").read_text())
    assert rec["model"] == ESPCN and rec["status"] == "finished" and rec["scale"] == 2
    assert rec["data"] == [dict(rec["data"][0], folder=str(data), images=4, used=4)]
    assert (rec["steps"], rec["batch"], rec["patch"], rec["seed"], rec["threads"]) == (6, 4, 16, 5, 1)
    assert rec["lr_schedule"] == {"type": "cosine", "lr": 1e-3, "min_lr": 1e-5, "steps": 6}
    assert rec["wall_time_s"] > 0 and rec["cpu_time_s"] > 0
    assert rec["validation"]["name"] == "Set5" and rec["validation"]["images"] == 2
    assert [s for s, _ in rec["history"]] == [4, 6] and rec["final_psnr"] == rec["history"][-1][1]
    assert rec["best_psnr"] == max(p for _, p in rec["history"])
    assert rec["torch_version"] == torch.__version__ and rec["harness_version"]
    # the final state dict loads strictly through the registry and is the trained network
    model = resolve(ESPCN, weights=str(out / f"{ESPCN}.pt"))
    assert model.weights == str(out / f"{ESPCN}.pt")
    assert same_state(model.module.state_dict(), weights(out / f"{ESPCN}.pt"))
    assert not same_state(model.module.state_dict(), resolve(ESPCN).module.state_dict())
    # the validation PSNR is the harness's own protocol on those weights
    from harness.datasets import find_set
    from harness.protocol import QualityEvaluator

    psnr = QualityEvaluator(show_progress=False).evaluate(model, find_set(val_root, "Set5")).psnr
    assert psnr == pytest.approx(rec["final_psnr"], abs=1e-9)
    resolve(ESPCN, weights=str(out / "best.pt"))


def state_digest(state) -> str:
    """sha256 of a state dict's names, dtypes, shapes and bytes (independent of torch.save's container)."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().contiguous().cpu()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# Recorded with the trainer as it was before it took RGB models (commit 81dd5bc), torch 2.13.0+cpu on
# x86_64, one thread: generalising the trainer must not move a single bit of an eSR-pool run.
ESR_BEFORE = {
    "torch": "2.13.0+cpu", "machine": "x86_64",
    TM: "bcd92c1b9c12448160553a34b3bb18295efdd892ec9e382407a1b076c89a84a8",
    ESPCN: "b62e466118f906f08238a720ad1fb7ce781d06451cbd594e3704aff4bed26a81",
    "eSR-TM_s2_K5_C2": "871f9d36345533481042fac8b31f7de623c29cdfcf7ee2c90556875902d2c1bf",
    "eSR-TM_s2_K5_C2 history": [[4, 24.38376041833476], [8, 25.052323817455203], [12, 25.795439573471498]],
}


@pytest.mark.torch
def test_esr_runs_are_bit_identical_to_before_the_generalisation(data, val_root, tmp_path):
    import platform

    if (torch.__version__, platform.machine()) != (ESR_BEFORE["torch"], ESR_BEFORE["machine"]):
        pytest.skip(f"digests recorded with torch {ESR_BEFORE['torch']} on {ESR_BEFORE['machine']}; other "
                    f"builds may round differently")
    for mid in (TM, ESPCN):
        train.run([mid], settings(data, loss_border="off"), out=str(tmp_path / mid))
        assert state_digest(weights(tmp_path / mid / f"{mid}.pt")) == ESR_BEFORE[mid], mid
    mid = "eSR-TM_s2_K5_C2"  # with validation: the Validator's new Upscaler path scores exactly as before
    rec = train.run([mid], settings(data, val_every=4, val_data=str(val_root), loss_border="off"),
                    out=str(tmp_path / mid))[0]
    assert state_digest(weights(tmp_path / mid / f"{mid}.pt")) == ESR_BEFORE[mid]
    assert rec["history"] == ESR_BEFORE[f"{mid} history"]
    assert rec["input_space"] == "y" and rec["recipe"]["name"] == "eSR-TM"
    assert rec["init"].startswith("authors' initialisation")


@pytest.mark.torch
def test_abpn_trains_on_rgb_patches_and_the_loss_decreases(data, monkeypatch):
    losses, shapes = [], set()

    def recording(output, target):
        shapes.add((tuple(output.shape), tuple(target.shape), target.dtype))
        loss = torch.nn.functional.l1_loss(output, target)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(loop, "l1_loss", recording)
    rec = train.run([ABPN], settings(data, steps=100, batch=8, lr=3e-3, checkpoint_every=100),
                    out=str(data.parent / "o"))[0]
    assert shapes == {((8, 3, 16, 16), (8, 3, 16, 16), torch.float32)}
    assert len(losses) == 100
    # ABPN starts as nearest-neighbour upsampling (its anchor), already close on smooth images
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:10]), (losses[:10], losses[-20:])
    assert rec["input_space"] == "rgb" and rec["family"] == "ABPN"
    assert rec["degradation"].endswith("RGB in [0, 1]")


@pytest.mark.torch
def test_abpn_provenance_validation_and_weights_through_the_registry(data, val_root, tmp_path):
    from harness.datasets import find_set
    from harness.protocol import QualityEvaluator

    out = tmp_path / "o"
    assert cli([ABPN, "--data", str(data), "--steps", "6", "--batch", "4", "--patch", "16", "--threads", "1",
                "--val-every", "3", "--val-data", str(val_root), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([train.LOCK_NAME, "last.pt", "best.pt", f"{ABPN}.pt", f"{ABPN}.json"])
    rec = json.loads((out / f"{ABPN}.json").read_text())
    assert (rec["model"], rec["family"], rec["status"], rec["scale"], rec["input_space"]) == \
        (ABPN, "ABPN", "finished", 2, "rgb")
    assert (rec["steps"], rec["batch"], rec["patch"], rec["lr_patch"]) == (6, 4, 16, 8)
    assert rec["recipe"] == {"name": "ABPN", "lr": 1e-3, "batch": 16, "steps": 20000, "patch": 128}
    assert rec["lr_schedule"]["lr"] == 1e-3 and rec["init"].startswith("module default (PyTorch)")
    assert "_rgb_" in Path(rec["data"][0]["cache"]).name
    assert [s for s, _ in rec["history"]] == [3, 6]
    model = resolve(ABPN, weights=str(out / f"{ABPN}.pt"))
    assert same_state(model.module.state_dict(), weights(out / f"{ABPN}.pt"))
    assert not same_state(model.module.state_dict(), resolve(ABPN).module.state_dict())
    # validation is the harness's protocol on the RGB model (PSNR on Y)
    psnr = QualityEvaluator(show_progress=False).evaluate(model, find_set(val_root, "Set5")).psnr
    assert psnr == pytest.approx(rec["final_psnr"], abs=1e-9)


@pytest.mark.torch
def test_bsrn_trains_two_steps(data, val_root, tmp_path):
    rec = train.run([BSRN], settings(data, steps=2, batch=2, patch=32, val_every=2, val_data=str(val_root)),
                    out=str(tmp_path / "o"))[0]
    assert rec["status"] == "finished" and rec["input_space"] == "rgb" and rec["recipe"]["patch"] == 96
    assert rec["final_psnr"] is not None
    model = resolve(BSRN, weights=str(tmp_path / "o" / f"{BSRN}.pt"))
    assert same_state(model.module.state_dict(), weights(tmp_path / "o" / f"{BSRN}.pt"))


@pytest.mark.torch
def test_a_patch_too_small_for_the_network_is_one_line(data, tmp_path):
    # BSRN's attention downsamples 16x (strided conv, 7x7 max-pool): 8 LR pixels are too few
    with pytest.raises(HarnessError) as e:
        train.run([BSRN], settings(data, steps=2, batch=2, patch=16), out=str(tmp_path / "o"))
    assert one_line(e).startswith(f"{BSRN} failed on (2, 3, 8, 8) LR patches at step 1 (")
    assert one_line(e).endswith("try a bigger --patch")


if torch is not None:  # a user module for the test marked `torch` (it needs PyTorch to exist)
    class TinyRGB(torch.nn.Module):
        """A user's RGB model for the package.module:Class path (a conv and a PixelShuffle)."""

        input_space = "rgb"

        def __init__(self, scale: int = 2):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
            self.shuffle = torch.nn.PixelShuffle(scale)

        def forward(self, x):
            return self.shuffle(self.conv(x))


@pytest.mark.torch
def test_a_user_module_trains_with_the_generic_recipe(data, tmp_path):
    mid = f"{__name__}:TinyRGB"
    out = tmp_path / "o"
    assert cli([mid, "--scale", "2", "--data", str(data), "--steps", "3", "--batch", "2", "--patch", "16",
                "--val-every", "0", "--out", str(out)]) == 0
    rec = json.loads((out / f"{mid}.json").read_text())
    assert (rec["family"], rec["scale"], rec["input_space"]) == ("custom", 2, "rgb")
    assert rec["recipe"] == dict(train.GENERIC_RECIPE, name="generic", patch=64)
    model = resolve(mid, scale=2, weights=str(out / f"{mid}.pt"))
    assert same_state(model.module.state_dict(), weights(out / f"{mid}.pt"))
    with pytest.raises(HarnessError) as e:
        cli([mid, "--data", str(data), "--steps", "3", "--out", str(tmp_path / "p")])
    assert "needs a scale: add --scale 2, 3 or 4" in one_line(e)


@pytest.mark.torch
@pytest.mark.shared
def test_t91_with_set5_validation():
    datasets = SHARED / "datasets"
    if not (SHARED.is_dir() and (datasets / "T91").is_dir() and (datasets / "Set5" / "HR").is_dir()):
        pytest.skip(f"needs T91 and Set5 in {datasets} (development data, absent here)")
    rec = train.run(["eSR-MAX_s2_K3_C1"], settings(datasets / "T91", steps=30, batch=16, patch=32, lr=1e-2,
                                                   val_every=15, val_data=str(datasets), checkpoint_every=30),
                    out=os.path.join(os.environ["HARNESS_CACHE"], "t91"))[0]
    assert rec["data"][0]["images"] == 91 and rec["validation"]["name"] == "Set5"
    assert len(rec["history"]) == 2 and 10 < rec["final_psnr"] < 40
