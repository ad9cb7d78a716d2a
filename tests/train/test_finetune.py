"""harness.train.finetune: fine-tuning with ``train --init-weights``, the model-defined training
hooks (``training_loss``, ``trainable_parameters``), a GhostSR fine-tune from a base network's
state dict, ClassSR through the trainer, and ``ghost-report``. Tiny synthetic data (the
``data``/``val_root`` fixtures of conftest.py) and a few steps each."""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness import train
from harness.errors import HarnessError
from harness.models import classsr, esr, ghost, resolve

from .helpers import smooth_images

FSRCNN = "FSRCNN_s2_D56_S12_M4"
GHOST = "Ghost-" + FSRCNN
ESPCN = "ESPCN_s2_D0_S3"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    monkeypatch.setenv("HARNESS_NO_PROGRESS", "1")


def settings(data, **kw):
    base = dict(data=[str(data)], steps=4, batch=2, patch=16, threads=1, val_every=0, checkpoint_every=4)
    base.update(kw)
    return train.Settings(**base)


def load(path):
    return torch.load(str(path), map_location="cpu", weights_only=True)


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(argv):
    parser = argparse.ArgumentParser()
    train.add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train"] + [str(a) for a in argv])
    return args.func(args)


def one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, text
    return text


@pytest.fixture
def first_step(monkeypatch):
    """The parameters the optimiser holds when its first step is taken (clones, in its order)."""
    seen = []
    real_step = torch.optim.Adam.step

    def recording(self, *a, **k):
        if not seen:
            seen.extend(p.detach().clone() for g in self.param_groups for p in g["params"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    return seen


# --------------------------------------------------------------------------- --init-weights

@pytest.mark.torch
def test_init_weights_file_is_the_start_and_is_recorded(data, tmp_path, first_step):
    torch.manual_seed(123)
    start = esr.build_module(ESPCN)
    with torch.no_grad():
        for p in start.parameters():
            p.add_(0.05)
    path = tmp_path / "start.pt"
    torch.save(start.state_dict(), path)
    out = tmp_path / "o"
    assert cli([ESPCN, "--data", data, "--steps", 3, "--batch", 2, "--patch", 16, "--threads", 1,
                "--val-every", 0, "--init-weights", path, "--out", out]) == 0
    assert len(first_step) == 4 and all(torch.equal(a, b) for a, b in zip(first_step, start.state_dict().values()))
    rec = json.loads((out / f"{ESPCN}.json").read_text())
    assert rec["init"] == f"weights {path.resolve()} (sha256 {sha256(path)})"
    assert rec["init_state_sha256"] == train.state_sha256(start)
    assert not same_state(load(out / f"{ESPCN}.pt"), start.state_dict())  # and it trained from there

    with pytest.raises(HarnessError) as e:
        train.run([ESPCN], settings(data, init_weights=str(tmp_path / "missing.pt")), out=str(tmp_path / "m"))
    assert "no such file" in one_line(e)
    torch.save(esr.build_module(FSRCNN).state_dict(), tmp_path / "other.pt")  # another network: refused up front
    with pytest.raises(HarnessError) as e:
        train.run([ESPCN], settings(data, init_weights=str(tmp_path / "other.pt")), out=str(tmp_path / "w"))
    assert str(tmp_path / "other.pt") in one_line(e) and not (tmp_path / "w" / "last.pt").exists()
    with pytest.raises(HarnessError) as e:
        train.run([ESPCN, FSRCNN], settings(data, init_weights=str(path)), out=str(tmp_path / "p"), pool=True)
    assert "shipped or official" in one_line(e)


@pytest.mark.torch
def test_ghost_fine_tune_from_a_base_state_dict_learns_directions_exports_and_resumes(data, tmp_path, recwarn):
    from harness.export import export_onnx, verify_onnx

    torch.manual_seed(5)
    base = esr.build_module(FSRCNN)
    base_file = tmp_path / "fsrcnn.pt"
    torch.save(base.state_dict(), base_file)
    init = train.resolve_init(GHOST, str(base_file))
    started = train.load_init(GHOST, train.fresh_model(GHOST), init)  # ghostified: intrinsic = base's first half
    assert torch.equal(started.net[4].conv.weight, base.net[4].weight[:6])
    assert all(float(layer.logits.abs().sum()) == 0 for layer in ghost.ghost_layers(started).values())

    s = settings(data, steps=6, lr=1e-2, init_weights=str(base_file), checkpoint_every=2)
    rec = train.run([GHOST], s, out=str(tmp_path / "straight"))[0]
    final = load(tmp_path / "straight" / f"{GHOST}.pt")
    logits = {k: v for k, v in final.items() if k.endswith("logits")}
    assert len(logits) == 4 and all(float(v.abs().sum()) > 0 for v in logits.values())  # the gradient reached them
    assert rec["init"] == f"weights {base_file.resolve()} (sha256 {sha256(base_file)})"
    assert rec["recipe"]["name"] == "GhostSR" and "annealed exponentially from 1.0 to 0.05" in rec["recipe"]["note"]

    model = resolve(GHOST, weights=str(tmp_path / "straight" / f"{GHOST}.pt"))  # eval: argmax directions
    assert ghost.directions(model.module) == {n: ghost.offset(int(v.argmax())) for n, v in
                                              ((k[:-len(".logits")], v) for k, v in logits.items())}
    path = export_onnx(model.module, tmp_path / "ghost.onnx", channels=1, model_id=GHOST)
    assert verify_onnx(path, model.module, shape=(1, 1, 20, 28), atol=1e-4) <= 1e-4

    # paused and resumed (without repeating --init-weights): bit-identical, the same recorded start
    train.run([GHOST], s, out=str(tmp_path / "split"), stop_at=3)
    from dataclasses import replace

    resumed = train.run([GHOST], replace(s, init_weights=None), out=str(tmp_path / "split"), resume=True)[0]
    assert same_state(final, load(tmp_path / "split" / f"{GHOST}.pt"))
    assert (resumed["init"], resumed["init_state_sha256"]) == (rec["init"], rec["init_state_sha256"])
    assert rec["init_state_sha256"] == train.state_sha256(started)
    assert not [w for w in recwarn if "changed settings" in str(w.message)]


def test_ghost_recipe_takes_rate_loss_and_patch_from_the_base_networks_recipe():
    r = train.recipe_for("GhostSR", "Ghost-FSRCNN_s2_D56_S12_M4")
    # the base member's recipe: FSRCNN_s*_S12_M4 train 60k steps (by_model), the other FSRCNN 15k
    assert (r["lr"], r["loss"], r["steps"]) == (train.RECIPES["FSRCNN"]["lr"], "mse",
                                                train.recipe_for("FSRCNN", "FSRCNN_s2_D56_S12_M4")["steps"])
    assert "lr_patch" not in r  # FSRCNN has none: the default patch
    r = train.recipe_for("GhostSR", "Ghost-EDSR_s2")
    assert (r["lr"], r["lr_patch"], r["steps"]) == (1e-4, 48, 5000) and "loss" not in r
    s = train.for_family(train.Settings(data=["x"]), "GhostSR", "Ghost-EDSR_s2")
    assert (s.lr, s.loss, s.steps) == (1e-4, "l1", 5000)
    assert train.default_patch("GhostSR", 2, "Ghost-EDSR_s2") == 96
    rec = train.recipe_record("GhostSR", 2, "Ghost-ESPCN_s2_D34_S32")
    assert rec["from_base"] == {"family": "ESPCN", "keys": ["lr", "loss", "lr_patch", "betas", "steps", "batch"]}
    assert rec["lr"] == train.RECIPES["ESPCN"]["lr"] and rec["loss"] == "mse"
    assert train.recipe_for("GhostSR")["lr"] == 1e-4  # without an id: the family's own
    assert train.recipe_for("GhostSR")["steps"] == 2000


@pytest.mark.torch
def test_init_weights_shipped_of_a_ghost_id_is_its_base_networks(data, tmp_path, monkeypatch):
    import harness.weights

    base_file = tmp_path / "fsrcnn.pt"
    torch.save(esr.build_module(FSRCNN).state_dict(), base_file)
    asked = []

    def shipped_file(model_id):
        asked.append(model_id)
        if model_id != FSRCNN:
            raise HarnessError(f"no shipped weights for {model_id}")
        return base_file

    monkeypatch.setattr(harness.weights, "shipped_file", shipped_file)
    assert train.init_source(GHOST) == FSRCNN and train.init_source(ESPCN) == ESPCN
    rec = train.run([GHOST], settings(data, steps=1, init_weights="shipped"), out=str(tmp_path / "o"))[0]
    assert set(asked) == {FSRCNN}
    assert rec["init"] == f"weights {base_file} (sha256 {sha256(base_file)}; shipped weights of {FSRCNN})"
    with pytest.raises(HarnessError) as e:
        train.run(["Ghost-EDSR_s2"], settings(data, init_weights="official"), out=str(tmp_path / "e"))
    assert "eSR pool only, not EDSR_s2" in one_line(e)
    monkeypatch.setattr(harness.weights, "official_file", lambda stem: tmp_path / f"{stem}.model")
    official = train.resolve_init(GHOST, "official")  # the imported eSR store's file of the base network
    assert (official.files, official.source) == ((tmp_path / f"{FSRCNN}.model",), FSRCNN)


# --------------------------------------------------------------------------- model-defined hooks

if torch is not None:  # user modules for the tests marked `torch` (they need PyTorch to exist)
    class TinyHooked(torch.nn.Module):
        """A user's module with both hooks: its own loss with two parts, and only ``gain`` trained."""

        def __init__(self, scale: int = 2):
            super().__init__()
            self.body = torch.nn.Conv2d(1, scale * scale, 3, padding=1)
            self.shuffle = torch.nn.PixelShuffle(scale)
            self.gain = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return self.shuffle(self.body(x)) * self.gain

        def training_loss(self, lr, hr):
            sr = self(lr)
            l1 = torch.nn.functional.l1_loss(sr, hr)
            tv = (sr[..., 1:, :] - sr[..., :-1, :]).abs().mean()
            return l1 + 0.1 * tv, {"l1": float(l1.detach()), "tv": float(tv.detach())}

        def trainable_parameters(self):
            return [self.gain]

    class Scheduled(torch.nn.Module):
        """A layer that wants the step (as GhostSR's Gumbel temperature does); records the calls."""

        calls = []

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

        def training_progress(self, step, steps):
            Scheduled.calls.append((step, steps))

    class TinyScheduled(torch.nn.Module):
        def __init__(self, scale: int = 2):
            super().__init__()
            self.body = torch.nn.Sequential(Scheduled(), torch.nn.PixelShuffle(scale))

        def forward(self, x):
            return self.body(x)


@pytest.mark.torch
def test_layers_with_training_progress_are_told_each_step_also_after_a_resume(data, tmp_path):
    mid = f"{__name__}:TinyScheduled"
    Scheduled.calls.clear()
    train.run([mid], settings(data, scale=2, steps=5, checkpoint_every=1), out=str(tmp_path / "o"), stop_at=2)
    train.run([mid], settings(data, scale=2, steps=5, checkpoint_every=1), out=str(tmp_path / "o"), resume=True)
    assert Scheduled.calls == [(k, 5) for k in range(5)]


@pytest.mark.torch
def test_training_loss_and_trainable_parameters_hooks_of_any_module(data, val_root, tmp_path):
    mid = f"{__name__}:TinyHooked"
    rec = train.run([mid], settings(data, scale=2, steps=4, val_every=2, val_data=str(val_root)),
                    out=str(tmp_path / "o"))[0]
    torch.manual_seed(0)  # the trainer's seeded init
    init = TinyHooked().state_dict()
    final = load(tmp_path / "o" / f"{mid}.pt")
    assert torch.equal(final["body.weight"], init["body.weight"]) and torch.equal(final["body.bias"], init["body.bias"])
    assert not torch.equal(final["gain"], init["gain"])
    assert rec["loss"] == "TinyHooked.training_loss" and set(rec["loss_parts"]) == {"l1", "tv"}
    assert [h[0] for h in rec["history"]] == [2, 4] and all(set(h[2]) == {"l1", "tv"} for h in rec["history"])
    assert rec["trained_parameters"] == {"trained": 1, "frozen": 40, "by": "TinyHooked.trainable_parameters"}


# --------------------------------------------------------------------------- ClassSR

@pytest.mark.torch
def test_classsr_trains_its_classifier_with_its_own_loss_from_given_branches(tmp_path, val_root, first_step):
    images = smooth_images(tmp_path / "big", n=2, size=(136, 136))
    files = []
    for i, branch_id in enumerate(classsr.BRANCH_IDS):
        torch.manual_seed(10 + i)
        files.append(tmp_path / f"{branch_id}.pt")
        torch.save(esr.build_module(branch_id).state_dict(), files[-1])
    out = tmp_path / "o"
    mid = classsr.MODEL_ID
    assert cli([mid, "--data", images, "--steps", 3, "--batch", 2, "--threads", 1, "--val-every", 3,
                "--val-data", val_root, "--init-weights", "branches:" + ",".join(map(str, files)), "--out", out]) == 0
    rec = json.loads((out / f"{mid}.json").read_text())
    assert (rec["patch"], rec["lr_patch"], rec["recipe"]["name"]) == (128, 32, "ClassSR")  # 32x32 LR patches
    assert rec["loss"] == classsr.LOSS_NAME and rec["optimizer"] == "Adam (betas 0.9, 0.99)"
    assert set(rec["loss_parts"]) == {"l1", "class", "average", "total"}
    assert len(rec["history"]) == 1 and set(rec["history"][0][2]) == set(rec["loss_parts"])
    assert rec["init"].startswith(f"weights branches:{files[0]},") and sha256(files[2]) in rec["init"]

    final = load(out / f"{mid}.pt")
    for i, path in enumerate(files):  # the branches are frozen: bit-identical to their files
        branch = load(path)
        assert all(torch.equal(final[f"branches.{i}.{k}"], v) for k, v in branch.items())
    classifier = [v for k, v in final.items() if k.startswith("classifier.")]
    assert rec["trained_parameters"]["trained"] == sum(v.numel() for v in classifier)
    assert len(first_step) == len(classifier)  # only the classifier is optimised, and it moved
    assert any(not torch.equal(a, b) for a, b in zip(first_step, classifier))
    assert resolve(mid, weights=str(out / f"{mid}.pt")).weights == str(out / f"{mid}.pt")

    with pytest.raises(HarnessError) as e:  # two files for three branches
        resolve(mid, weights=f"branches:{files[0]},{files[1]}")
    assert "give 3 comma-separated branch weights" in one_line(e)


# --------------------------------------------------------------------------- ghost-report

@pytest.mark.torch
def test_ghost_report_prints_finite_figures_and_one_line_errors(tmp_path, capsys):
    from harness.cli import main

    torch.manual_seed(0)
    base = esr.build_module(FSRCNN)
    torch.save(base.state_dict(), tmp_path / "base.pt")
    tuned = ghost.build_module(GHOST, base=base)
    for i, layer in enumerate(ghost.ghost_layers(tuned).values()):
        with torch.no_grad():
            layer.logits[(2 * i + 1) % 9] = 1.0
    torch.save(tuned.state_dict(), tmp_path / "ghost.pt")
    smooth_images(tmp_path / "sets" / "Set5" / "HR", n=2, size=(32, 32), seed=3)
    args = ["ghost-report", "--model", GHOST, "--weights", str(tmp_path / "ghost.pt"), "--base-weights",
            str(tmp_path / "base.pt"), "--data", str(tmp_path / "sets"), "--sets", "Set5", "--frame-size", "64x48",
            "--runs", "1", "--threads", "1"]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("base", "ghost"):
        r = report[key]
        assert r["params"] > 0 and r["macs"] > 0 and np.isfinite(r["ms"]) and r["ms"] > 0
        assert np.isfinite(r["quality"]["Set5"]["psnr"]) and np.isfinite(r["quality"]["Set5"]["ssim"])
    c = report["change"]
    assert -0.3 < c["params"] < -0.1 and -0.3 < c["macs"] < -0.1 and np.isfinite(c["ms"])
    assert np.isfinite(c["quality"]["Set5"]["psnr_db"]) and report["timing"]["frame"] == "64x48"
    assert len(report["directions"]) == 4

    assert main(args) == 0
    text = capsys.readouterr().out
    assert FSRCNN in text and GHOST in text and "change" in text and "%" in text and "Set5 PSNR" in text

    bad = list(args)
    bad[bad.index("--weights") + 1] = str(tmp_path / "missing.pt")
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --weights") and "missing.pt" in err and "\n" not in err
    bad = list(args)
    bad[bad.index("--sets") + 1] = "Set14"
    assert main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Set14" in err and "\n" not in err

    # --sets none: structure and speed of untrained networks (EDSR before any training), no PSNR
    untrained = ["ghost-report", "--model", GHOST, "--weights", "init", "--base-weights", "init", "--sets", "none",
                 "--frame-size", "64x48", "--runs", "1", "--threads", "1"]
    assert main(untrained + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["base"]["quality"] == {} and report["change"]["quality"] == {} and report["ghost"]["ms"] > 0
    assert report["ghost"]["weights"] == "init" and -0.3 < report["change"]["macs"] < -0.1
    assert main(untrained) == 0
    text = capsys.readouterr().out
    assert "PSNR/SSIM not measured (--sets none)" in text and "PSNR " not in text.splitlines()[0]
