"""``python -m harness train``: data and its LR cache, reproducibility, exact resume,
checkpoints and provenance, divergence handling, pools, and the one-line user errors.

Everything runs on tiny synthetic folders made in tmp_path with a handful of steps; the
one test on T91/Set5 needs ../shared and skips without it.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None
from PIL import Image

from harness import train
from harness.errors import HarnessError
from harness.models import pools, resolve

SHARED = Path(__file__).resolve().parents[2] / "shared"
TM, ESPCN = "eSR-MAX_s2_K3_C2", "ESPCN_s2_D0_S3"
ABPN, BSRN = "ABPN_s2", "BSRN_s2"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    monkeypatch.setenv("HARNESS_NO_PROGRESS", "1")


def smooth_images(folder: Path, n: int = 4, size=(40, 48), seed: int = 0, suffix: str = ".png") -> Path:
    """Smooth random colour fields (bicubic blow-ups of 6x6 noise): an easily learnable SR task."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        small.resize((size[1], size[0]), Image.BICUBIC).save(folder / f"img{i:02d}{suffix}")
    return folder


@pytest.fixture
def data(tmp_path):
    return smooth_images(tmp_path / "train")


@pytest.fixture
def val_root(tmp_path):
    smooth_images(tmp_path / "val" / "Set5" / "HR", n=2, size=(32, 32), seed=7)
    return tmp_path / "val"


def settings(data, **kw):
    base = dict(data=[str(data)], steps=12, batch=4, patch=16, threads=1, val_every=0, checkpoint_every=4, loss="l1")
    base.update(kw)
    return train.Settings(**base)


def load(path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 (JetPack 5) has no weights_only
        return torch.load(str(path), map_location="cpu")


weights = load


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli(argv):
    """Parse ``train`` arguments with the parser harness/cli.py wires in, and run the command."""
    parser = argparse.ArgumentParser()
    train.add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train"] + list(argv))
    return args.func(args)


# --------------------------------------------------------------------------- training itself

@pytest.mark.torch
def test_loss_decreases_on_a_learnable_set(data, monkeypatch):
    losses = []

    def recording(output, target):
        loss = torch.nn.functional.l1_loss(output, target)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(train, "l1_loss", recording)
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
def test_resume_continues_exactly(data, val_root, tmp_path):
    s = dict(steps=16, val_every=4, val_data=str(val_root), checkpoint_every=3)
    straight = train.run([TM], settings(data, **s), out=str(tmp_path / "straight"))[0]
    paused = train.run([TM], settings(data, **s), out=str(tmp_path / "split"), stop_at=8)[0]
    assert paused["status"] == "paused" and paused["steps"] == 8
    assert not (tmp_path / "split" / f"{TM}.pt").exists()
    assert load(tmp_path / "split" / "last.pt")["step"] == 8
    resumed = train.run([TM], settings(data, **s), out=str(tmp_path / "split"), resume=True)[0]
    assert same_state(weights(tmp_path / "straight" / f"{TM}.pt"), weights(tmp_path / "split" / f"{TM}.pt"))
    assert same_state(weights(tmp_path / "straight" / "best.pt"), weights(tmp_path / "split" / "best.pt"))
    assert resumed["history"] == straight["history"] and resumed["best_psnr"] == straight["best_psnr"]
    last = [load(tmp_path / d / "last.pt") for d in ("straight", "split")]
    assert all(torch.equal(last[0]["optimizer"]["state"][0][k], last[1]["optimizer"]["state"][0][k])
               for k in ("exp_avg", "exp_avg_sq"))


@pytest.mark.torch
def test_unfinished_run_needs_resume_or_force(data, tmp_path):
    out = str(tmp_path / "o")
    train.run([TM], settings(data), out=out, stop_at=4)
    with pytest.raises(HarnessError, match=r"unfinished run .*--resume .*--force"):
        train.run([TM], settings(data), out=out)
    with pytest.raises(HarnessError, match="no checkpoint .*last.pt to resume"):
        train.run([TM], settings(data), out=str(tmp_path / "elsewhere"), resume=True)
    assert train.run([TM], settings(data), out=out, force=True)[0]["status"] == "finished"
    assert train.run([TM], settings(data), out=out)[0]["status"] == "skipped"  # finished: nothing to do


HOLD_LOCK = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f.fileno(), fcntl.LOCK_EX)
f.seek(0); f.truncate(); f.write(f"pid {os.getpid()} on test\\n"); f.flush()
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.torch
@pytest.mark.skipif(os.name != "posix", reason="the folder lock is flock (POSIX)")
def test_a_folder_in_training_refuses_a_second_run(data, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "o"
    train.run([TM], settings(data), out=str(out), stop_at=4)  # a paused run: the lock was released at its end
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out / train.LOCK_NAME)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = (out / "last.pt").read_bytes()
        for kw in ({"resume": True}, {"force": True}):
            with pytest.raises(HarnessError, match=rf"{out} is being trained by pid {holder.pid} .*another --out"):
                train.run([TM], settings(data), out=str(out), **kw)
        assert (out / "last.pt").read_bytes() == before  # neither touched the live run's checkpoint
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process, nothing stale stays
        holder.wait()
    assert train.run([TM], settings(data), out=str(out), resume=True)[0]["status"] == "finished"


@pytest.mark.torch
def test_resume_with_more_steps_warns_and_extends(data, tmp_path):
    out = str(tmp_path / "o")
    train.run([TM], settings(data, steps=8), out=out)
    with pytest.warns(UserWarning, match=r"changed settings \(steps 8 -> 12\)"):
        rec = train.run([TM], settings(data, steps=12), out=out, resume=True)[0]
    assert rec["status"] == "finished" and rec["steps"] == 12
    assert load(tmp_path / "o" / "last.pt")["step"] == 12


@pytest.mark.torch
def test_resume_of_a_finished_run_changes_nothing(data, tmp_path):
    out = tmp_path / "o"
    first = train.run([TM], settings(data, steps=4), out=str(out))[0]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = train.run([TM], settings(data, steps=4), out=str(out), resume=True)[0]
    assert again["finished"] == first["finished"] and again["weights_sha256"] == first["weights_sha256"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --------------------------------------------------------------------------- data and cache

def test_cache_key_follows_contents_not_mtimes(data, tmp_path):
    """A folder copied elsewhere (new mtimes) keeps its key, so a run resumes on another machine;
    changed pixels make a new key."""
    import shutil

    _, files = train.image_files(data)
    key = train.cache_key(files, 2)
    copy = tmp_path / "copied"
    shutil.copytree(data, copy, copy_function=shutil.copyfile)  # no metadata: fresh mtimes
    _, copied = train.image_files(copy)
    os.utime(copied[0], ns=(1, 1))
    assert train.cache_key(copied, 2) == key
    img = np.asarray(Image.open(copied[0])).copy()
    img[0, 0] ^= 1
    Image.fromarray(img).save(copied[0])
    assert train.cache_key(copied, 2) != key


def test_lr_pairs_are_cached_and_reused(data, monkeypatch):
    first = train.load_folder(data, 2)
    assert first.cache.is_file() and first.cache.parent == Path(os.environ["HARNESS_CACHE"]) / "train"
    stamp = first.cache.stat().st_mtime_ns

    def no_recompute(*a, **k):
        raise AssertionError("the LR pairs were recomputed although the cache is valid")

    monkeypatch.setattr(train, "_degrade", no_recompute)
    again = train.load_folder(data, 2)
    assert first.cache.stat().st_mtime_ns == stamp
    assert all(np.array_equal(a, b) for a, b in zip(first.lr, again.lr))
    assert all(np.array_equal(a, b) for a, b in zip(first.hr, again.hr))
    assert again.hr[0].dtype == np.float32 and again.hr[0].shape == (40, 48) and again.lr[0].shape == (20, 24)
    with pytest.raises(AssertionError, match="recomputed"):  # another scale is another cache
        train.load_folder(data, 4)
    smooth_images(data, n=1, seed=9)  # new content: new key
    with pytest.raises(AssertionError, match="recomputed"):
        train.load_folder(data, 2)


def test_pairs_follow_the_quality_protocol(data):
    from harness.color import rgb_to_y
    from harness.imageio import load_rgb
    from harness.imresize import downscale, modcrop

    folder = train.load_folder(data, 3)
    rgb = modcrop(load_rgb(data / "img00.png"), 3)
    np.testing.assert_allclose(folder.hr[0], rgb_to_y(rgb) / 255, atol=1e-6)
    np.testing.assert_allclose(folder.lr[0], rgb_to_y(downscale(rgb, 3)) / 255, atol=1e-6)


@pytest.mark.torch
def test_patches_are_aligned_and_augmented(data):
    folder = train.load_folder(data, 2)
    sampler = train.PatchSampler([folder], 2, 16, 64, seed=0)
    lr, hr = sampler.next()
    assert lr.shape == (64, 1, 8, 8) and hr.shape == (64, 1, 16, 16)
    # Each HR patch, box-averaged over 2x2 blocks, is close to its LR patch only if aligned.
    pooled = torch.nn.functional.avg_pool2d(hr, 2)
    assert (pooled - lr).abs().mean() < 0.01
    assert (pooled - torch.flip(lr, dims=[3])).abs().mean() > 2 * (pooled - lr).abs().mean()


@pytest.mark.torch
def test_hr_subfolder_and_several_folders(tmp_path):
    smooth_images(tmp_path / "A" / "HR", n=2)
    smooth_images(tmp_path / "B", n=3, suffix=".bmp")
    rec = train.run([TM], settings(f"{tmp_path / 'A'},{tmp_path / 'B'}", steps=2), out=str(tmp_path / "o"))[0]
    assert [(d["folder"], d["images"]) for d in rec["data"]] == [(str(tmp_path / "A"), 2), (str(tmp_path / "B"), 3)]


@pytest.mark.torch
def test_small_images_are_skipped_with_a_warning(data):
    smooth_images(data, n=1, size=(12, 40), seed=5)  # overwrites img00 with a 12-pixel-high image
    with pytest.warns(UserWarning, match=r"1 of 4 images .* smaller than the 16-pixel patch .*img00"):
        rec = train.run([TM], settings(data, steps=2), out=str(data.parent / "o"))[0]
    assert rec["data"][0]["used"] == 3 and rec["images"] == 3


# --------------------------------------------------------------------------- user errors

def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError) as e:
        cli([TM, "--data", str(tmp_path / "empty"), "--steps", "2"])
    assert f"{tmp_path / 'empty'} holds no png/bmp/jpg images" in one_line(e)


def test_missing_folder(tmp_path):
    with pytest.raises(HarnessError) as e:
        cli([TM, "--data", str(tmp_path / "nowhere"), "--steps", "2"])
    assert "nowhere does not exist" in one_line(e)


def test_unreadable_image(data):
    (data / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(HarnessError) as e:
        cli([TM, "--data", str(data), "--steps", "2", "--val-every", "0"])
    assert "broken.png: cannot read this image" in one_line(e)


@pytest.mark.torch
def test_all_images_too_small(data):
    with pytest.raises(HarnessError) as e:
        cli([TM, "--data", str(data), "--steps", "2", "--val-every", "0", "--patch", "64"])
    assert one_line(e) == (f"all 4 images in {data} are smaller than the 64-pixel patch; "
                           f"use --patch 40 or bigger images")


def test_patch_must_be_a_multiple_of_the_scale(data):
    with pytest.raises(HarnessError) as e:
        cli(["ESPCN_s3_D0_S3", "--data", str(data), "--patch", "16"])
    assert "--patch 16 is not a multiple of the scale 3 of ESPCN_s3_D0_S3; use --patch 15 or 18" in one_line(e)
    assert train.patch_for(train.Settings(data=[]), "ESPCN_s3_D0_S3", 3) == 63  # the default at x3


@pytest.mark.torch
def test_fixed_and_unknown_ids(data):
    with pytest.raises(HarnessError, match="Bicubic_s2 is not trainable"):
        cli(["Bicubic_s2", "--data", str(data)])
    with pytest.raises(HarnessError, match="unknown model id"):
        cli(["nonsense", "--data", str(data)])


# --------------------------------------------------------------------------- divergence

@pytest.mark.torch
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    calls = []

    def nan_at_step_7(output, target):
        calls.append(1)
        loss = torch.nn.functional.l1_loss(output, target)
        return loss * float("nan") if len(calls) == 7 else loss

    monkeypatch.setattr(train, "l1_loss", nan_at_step_7)
    out = tmp_path / "o"
    with pytest.raises(HarnessError) as e:
        train.run([TM], settings(data, steps=20, checkpoint_every=2, lr=1e-2), out=str(out))
    assert one_line(e).startswith("loss became NaN at step 7; lower --lr (was 0.01)")
    ckpt = load(out / "last.pt")
    assert ckpt["step"] == 6
    assert all(torch.isfinite(v).all() for v in ckpt["module"].values())
    assert not (out / f"{TM}.pt").exists()


@pytest.mark.torch
def test_exploding_learning_rate_is_reported(data, tmp_path):
    with pytest.raises(HarnessError) as e:
        cli([TM, "--data", str(data), "--lr", "1e30", "--min-lr", "0", "--steps", "20", "--batch", "4",
             "--patch", "16", "--val-every", "0", "--checkpoint-every", "1", "--out", str(tmp_path / "o")])
    assert "lower --lr (was 1e+30)" in one_line(e)
    ckpt = load(tmp_path / "o" / "last.pt")
    assert all(torch.isfinite(v).all() for v in ckpt["module"].values())


@pytest.mark.torch
def test_nan_weights_are_never_saved(data, tmp_path, monkeypatch):
    """A finite loss with NaN weights (a broken optimiser step) must not reach last.pt either."""
    real_step = torch.optim.Adam.step

    def poisoning_step(self, *a, **k):
        out = real_step(self, *a, **k)
        if self.state[self.param_groups[0]["params"][0]]["step"] >= 5:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", poisoning_step)
    out = tmp_path / "o"
    with pytest.raises(HarnessError, match="weights became NaN/inf at step 5"):
        train.run([TM], settings(data, steps=12, checkpoint_every=2), out=str(out))
    ckpt = load(out / "last.pt")
    assert ckpt["step"] == 4 and all(torch.isfinite(v).all() for v in ckpt["module"].values())


# --------------------------------------------------------------------------- outputs

@pytest.mark.torch
def test_provenance_and_weights_load_through_the_registry(data, val_root, tmp_path):
    out = tmp_path / "o"
    code = cli([ESPCN, "--data", str(data), "--steps", "6", "--batch", "4", "--patch", "16", "--seed", "5",
                "--threads", "1", "--val-every", "4", "--val-data", str(val_root), "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([train.LOCK_NAME, "last.pt", "best.pt", f"{ESPCN}.pt", f"{ESPCN}.json"])
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
    from harness.quality import QualityEvaluator

    psnr = QualityEvaluator(show_progress=False).evaluate(model, find_set(val_root, "Set5")).psnr
    assert psnr == pytest.approx(rec["final_psnr"], abs=1e-9)
    resolve(ESPCN, weights=str(out / "best.pt"))


@pytest.mark.torch
def test_default_out_and_embedded_validation_fallback(data, monkeypatch):
    monkeypatch.setattr(train.Validator, "psnr", lambda self, mid, module: 20.0)  # skip the big embedded images
    rec = train.run([TM], settings(data, steps=2, val_every=2))[0]
    assert Path(rec["out"]) == Path(os.environ["HARNESS_CACHE"]) / "train" / TM
    assert rec["validation"]["name"] == "embedded" and rec["final_psnr"] == 20.0


@pytest.mark.torch
def test_pool_trains_each_model_and_skips_finished_ones(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(pools.POOLS, "tiny", lambda: ["Bicubic_s2", TM, ESPCN])
    out = tmp_path / "pool"
    args = ["--pool", "tiny", "--data", str(data), "--steps", "3", "--batch", "2", "--patch", "16",
            "--val-every", "0", "--out", str(out), "--json"]
    assert cli(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in first] == ["skipped", "finished", "finished"]
    assert (out / TM / f"{TM}.pt").is_file() and (out / ESPCN / f"{ESPCN}.pt").is_file()
    stamp = (out / TM / f"{TM}.pt").stat().st_mtime_ns
    cli(args)
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["skipped", "skipped", "skipped"]
    assert (out / TM / f"{TM}.pt").stat().st_mtime_ns == stamp
    cli(args + ["--force", "--scale", "2"])
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["skipped", "finished", "finished"]


# --------------------------------------------------------------------------- real data

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


@pytest.mark.torch
def test_parallel_jobs_match_sequential_and_isolate_failures(data, tmp_path):
    """--jobs: each model in its own single-threaded process gives the very weights a sequential
    run gives; a model that fails there is reported while the others finish."""
    ids = [TM, ESPCN]
    seq = train.run(ids, settings(data), out=str(tmp_path / "seq"), pool=True)
    par = train.run(ids, settings(data), out=str(tmp_path / "par"), pool=True, jobs=2)
    assert sorted(r["model"] for r in par) == sorted(ids)
    for mid in ids:
        a = torch.load(tmp_path / "seq" / mid / f"{mid}.pt")
        b = torch.load(tmp_path / "par" / mid / f"{mid}.pt")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {r["model"]: r["steps"] for r in seq} == {r["model"]: r["steps"] for r in par}

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / ESPCN).write_text("not a folder")  # the child cannot create its output folder
    records = {r["model"]: r for r in train.run(ids, settings(data), out=str(tmp_path / "bad"), pool=True, jobs=2)}
    assert records[ESPCN]["status"] == "failed" and records[ESPCN]["reason"]
    assert records[TM]["status"] == "finished" and (tmp_path / "bad" / TM / f"{TM}.pt").is_file()


def test_a_jobs_worker_exits_when_its_parent_is_killed(tmp_path):
    """No orphan goes on training (and writing its run folder) after the run is killed, even by SIGKILL."""
    import subprocess
    import sys
    import time

    import psutil

    worker = ("import os, time; from harness import train; train._exit_with_parent(os.getppid(), 0.05); "
              "print('ready', flush=True); time.sleep(60)")
    parent_code = ("import subprocess, sys, time; "
                   f"c = subprocess.Popen([sys.executable, '-c', {worker!r}], stdout=subprocess.PIPE, text=True); "
                   "print(c.pid, flush=True); c.stdout.readline(); print('go', flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                              cwd=str(Path(train.__file__).resolve().parents[1]))
    try:
        child_pid = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "go"
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        else:
            psutil.Process(child_pid).kill()
            pytest.fail("the worker outlived its killed parent by 10 s")
    finally:
        parent.kill()


def test_family_recipe_fills_unset_settings():
    s = train.for_family(train.Settings(data=["x"]), "eSR-TM")
    assert (s.steps, s.batch, s.lr) == (train.RECIPES["eSR-TM"]["steps"], train.RECIPES["eSR-TM"]["batch"],
                                        train.RECIPES["eSR-TM"]["lr"])
    s = train.for_family(train.Settings(data=["x"], steps=7, batch=3, lr=0.1), "FSRCNN")
    assert (s.steps, s.batch, s.lr) == (7, 3, 0.1)


# --------------------------------------------------------------------------- RGB pairs, eSR runs unchanged

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
def test_rgb_pairs_are_cached_apart_from_the_y_pairs_and_reused(data, tmp_path, monkeypatch):
    from harness.imageio import load_rgb
    from harness.imresize import downscale, modcrop

    y = train.load_folder(data, 2)
    y_stamp = y.cache.stat().st_mtime_ns
    rgb = train.load_folder(data, 2, space="rgb")
    assert rgb.cache != y.cache and rgb.cache.is_file() and "_rgb_" in rgb.cache.name and rgb.key != y.key
    assert rgb.space == "rgb" and y.space == "y" and y.cache.stat().st_mtime_ns == y_stamp
    assert rgb.hr[0].dtype == np.uint8 and rgb.hr[0].shape == (40, 48, 3) and rgb.lr[0].shape == (20, 24, 3)
    hr = modcrop(load_rgb(data / "img00.png"), 2)  # exactly the quality protocol's pair
    assert np.array_equal(rgb.hr[0], hr) and np.array_equal(rgb.lr[0], downscale(hr, 2))

    def no_recompute(*a, **k):
        raise AssertionError("the LR pairs were recomputed although the cache is valid")

    monkeypatch.setattr(train, "_degrade", no_recompute)
    again = train.load_folder(data, 2, space="rgb")
    assert all(np.array_equal(a, b) for a, b in zip(rgb.lr + rgb.hr, again.lr + again.hr))
    assert train.load_folder(data, 2).cache == y.cache  # the Y cache is still valid
    rec = train.run([ABPN], settings(data, steps=2), out=str(tmp_path / "o"))[0]  # a training run reuses it
    assert rec["data"][0]["cache"] == str(rgb.cache)
    with pytest.raises(AssertionError, match="recomputed"):
        train.load_folder(data, 3, space="rgb")


@pytest.mark.torch
def test_rgb_patches_take_the_same_draws_as_y_patches(data):
    from harness.color import rgb_to_y

    y = train.PatchSampler([train.load_folder(data, 2)], 2, 16, 32, seed=3)
    rgb = train.PatchSampler([train.load_folder(data, 2, space="rgb")], 2, 16, 32, seed=3)
    for _ in range(2):
        (ly, hy), (lc, hc) = y.next(), rgb.next()
        assert lc.shape == (32, 3, 8, 8) and hc.shape == (32, 3, 16, 16) and lc.dtype == torch.float32
        assert 0 <= float(lc.min()) and float(hc.max()) <= 1
        # the same position, flip and rotation: BT.601 Y of the RGB patches is the Y patches
        for yb, cb in ((ly, lc), (hy, hc)):
            as_y = rgb_to_y(cb.permute(0, 2, 3, 1).double().numpy()) / 255
            np.testing.assert_allclose(as_y, yb[:, 0].numpy(), atol=1e-5)
    pooled = torch.nn.functional.avg_pool2d(hc, 2)
    assert (pooled - lc).abs().mean() < 0.01


def test_rgb_train_folder_pickles(data):
    import pickle

    folder = train.load_folder(data, 2, space="rgb")
    back = pickle.loads(pickle.dumps(folder))
    assert back.space == "rgb" and back.key == folder.key and back.cache == folder.cache
    assert all(np.array_equal(a, b) for a, b in zip(folder.hr + folder.lr, back.hr + back.lr))


# --------------------------------------------------------------------------- any learnable model (RGB too)

@pytest.mark.torch
def test_abpn_trains_on_rgb_patches_and_the_loss_decreases(data, monkeypatch):
    losses, shapes = [], set()

    def recording(output, target):
        shapes.add((tuple(output.shape), tuple(target.shape), target.dtype))
        loss = torch.nn.functional.l1_loss(output, target)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(train, "l1_loss", recording)
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
    from harness.quality import QualityEvaluator

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
def test_greyscale_folder_trains_an_rgb_model(tmp_path):
    grey = tmp_path / "grey"
    grey.mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        small = Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8), mode="L")
        small.resize((48, 40), Image.BICUBIC).save(grey / f"g{i}.png")
    folder = train.load_folder(grey, 2, space="rgb")
    assert folder.hr[0].shape == (40, 48, 3) and np.array_equal(folder.hr[0][..., 0], folder.hr[0][..., 2])
    assert train.run([ABPN], settings(grey, steps=2), out=str(tmp_path / "o"))[0]["status"] == "finished"


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
def test_fixed_weight_ids_are_refused_and_skipped_in_pools(data, tmp_path, monkeypatch, capsys):
    for mid in ("Bicubic_s3", "eSR-Bicubic_s2", "bicubic-matlab"):
        with pytest.raises(train.NotTrainable) as e:
            cli([mid, "--data", str(data)])
        assert "nothing to train" in one_line(e)
    monkeypatch.setitem(pools.POOLS, "mixed", lambda: ["Bicubic_s2", TM, ABPN])
    assert cli(["--pool", "mixed", "--data", str(data), "--steps", "2", "--batch", "2", "--patch", "16",
                "--val-every", "0", "--out", str(tmp_path / "pool"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["status"]) for r in records] == [("Bicubic_s2", "skipped"), (TM, "finished"),
                                                           (ABPN, "finished")]
    assert [r.get("input_space") for r in records] == [None, "y", "rgb"]


def test_recipes_for_rgb_families_and_the_generic_fallback():
    s = train.for_family(train.Settings(data=["x"]), "ABPN")
    assert (s.steps, s.batch, s.lr) == (20000, 16, 1e-3)
    assert train.patch_for(train.Settings(data=[]), ABPN, 2) == 128  # the authors' 64 LR pixels
    assert train.patch_for(train.Settings(data=[]), "BSRN_s3", 3) == 144  # BasicSR's 48 LR pixels
    assert train.patch_for(train.Settings(data=[], patch=32), BSRN, 2) == 32
    s = train.for_family(train.Settings(data=["x"], lr=0.1), "SomeNewFamily")
    assert (s.steps, s.batch, s.lr) == (15000, 16, 0.1)
    assert train.patch_for(train.Settings(data=[]), "x:Y", 3, "SomeNewFamily") == 63


@pytest.mark.torch
def test_parallel_jobs_train_rgb_and_y_models_alike(data, tmp_path):
    """--jobs with an RGB and a Y model: each child loads its own space's pairs; the weights equal a
    sequential run's. The longest (by MACs on its own channels) starts first."""
    s = settings(data, steps=4)
    assert train.training_cost(ABPN, s) > train.training_cost(TM, s) > 0
    assert train.training_cost(BSRN, settings(data, patch=32)) > train.training_cost(ABPN, settings(data, patch=32))
    assert train.training_cost(BSRN, s) == 0  # 8 LR pixels are too few for BSRN: it fails at once, one line
    train.run([ABPN, TM], s, out=str(tmp_path / "seq"), pool=True)
    par = train.run([ABPN, TM], s, out=str(tmp_path / "par"), pool=True, jobs=2)
    assert sorted((r["model"], r["status"]) for r in par) == [(ABPN, "finished"), (TM, "finished")]
    for mid in (ABPN, TM):
        assert same_state(weights(tmp_path / "seq" / mid / f"{mid}.pt"), weights(tmp_path / "par" / mid / f"{mid}.pt"))


@pytest.mark.torch
def test_device_is_checked_before_any_work_and_recorded(data, tmp_path):
    """--device: a device torch cannot use here is one line before training; cpu is recorded."""
    with pytest.raises(HarnessError, match="--device tpu: give cpu, cuda or cuda:N"):
        train.run([TM], settings(data, device="tpu"), out=str(tmp_path / "a"))
    if not torch.cuda.is_available():
        with pytest.raises(HarnessError, match="sees no CUDA device here.*--device cpu"):
            train.run([TM], settings(data, device="cuda"), out=str(tmp_path / "b"))
    (record,) = train.run([TM], settings(data), out=str(tmp_path / "c"))
    assert record["device"] == "cpu"


@pytest.mark.torch
def test_recipe_loss_mse_for_the_one_layer_ess_models(data, tmp_path, monkeypatch):
    """The eSR pool trains on MSE by its recipes (recorded); --loss overrides; other families stay on L1."""
    calls = []
    real = train.mse_loss

    def recording(output, target):
        calls.append(1)
        return real(output, target)

    monkeypatch.setattr(train, "mse_loss", recording)
    (rec,) = train.run([TM], settings(data, loss=None), out=str(tmp_path / "a"))
    assert rec["loss"] == "MSE" and len(calls) == 12
    (rec,) = train.run([ESPCN], settings(data, loss="l1"), out=str(tmp_path / "b"))
    assert rec["loss"] == "L1" and len(calls) == 12
    assert train.for_family(settings(data, loss=None), "ABPN").loss == "l1"  # families without "loss": L1
    with pytest.raises(HarnessError, match="--loss huber: give one of l1, mse"):
        train.run([TM], settings(data, loss="huber"), out=str(tmp_path / "c"))


# --------------------------------------------------------------------------- loss border

@pytest.mark.torch
def test_receptive_radius_of_the_esr_nets_and_of_a_global_net():
    from harness.models import esr

    def radius(mid, p=16):
        m = esr.build_module(mid)
        return train.receptive_radius(m, 1, p, m.scale)

    assert radius("eSR-MAX_s2_K3_C3") == 1
    assert radius("eSR-TM_s3_K7_C4") == 3
    assert radius("eSR-CNN_s2_C8_D9_S15") == 4  # 5x5, 3x3, 3x3
    assert radius("ESPCN_s2_D0_S3") == 2 and radius("ESPCN_s4_D34_S32") == 4

    class Global(torch.nn.Module):  # a global mean: every input pixel reaches every output
        def forward(self, x):
            return torch.nn.functional.interpolate(x + x.mean(), scale_factor=2)

    assert train.receptive_radius(Global(), 1, 16, 2) is None
    record = train.loss_border("auto", Global(), 1, 16, 2)
    assert record["hr_pixels"] == 0 and "spans" in record["why"]


@pytest.mark.torch
def test_the_loss_leaves_out_the_zero_padded_rim(data, tmp_path, monkeypatch):
    """auto: the output and target lose radius x scale HR pixels a side before the loss; recorded."""
    shapes = []

    def recording(output, target):
        assert output.shape == target.shape
        shapes.append(tuple(output.shape[-2:]))
        return torch.nn.functional.l1_loss(output, target)

    monkeypatch.setattr(train, "l1_loss", recording)
    (rec,) = train.run([TM], settings(data), out=str(tmp_path / "auto"))  # K3 at x2: 1 LR pixel = 2 HR
    assert set(shapes) == {(12, 12)}
    assert rec["loss_border"] == {"hr_pixels": 2, "how": "auto", "receptive_radius_lr": 1}
    assert load(tmp_path / "auto" / "last.pt")["config"]["loss_border"] == 2
    shapes.clear()
    (rec,) = train.run([TM], settings(data, loss_border="off"), out=str(tmp_path / "off"))
    assert set(shapes) == {(16, 16)} and rec["loss_border"]["hr_pixels"] == 0
    assert "loss_border" not in load(tmp_path / "off" / "last.pt")["config"]
    shapes.clear()
    train.run([TM], settings(data, loss_border="4"), out=str(tmp_path / "four"))
    assert set(shapes) == {(8, 8)}


def test_loss_border_comes_from_the_recipe():
    """auto for eSR-MAX and eSR-TR; eSR-TM and the CNNs (measured worse cropped) and the rest: off."""
    base = train.Settings(data=["x"])
    for family in ("eSR-MAX", "eSR-TR"):
        assert train.for_family(base, family).loss_border == "auto", family
    for family in ("eSR-TM", "eSR-CNN", "ESPCN", "FSRCNN", "ABPN", "BSRN", "no-such-family"):
        assert train.for_family(base, family).loss_border == "off", family
    assert train.for_family(train.Settings(data=["x"], loss_border="3"), "eSR-TM").loss_border == "3"
    assert train.recipe_record("eSR-TR", 2)["loss_border"] == "auto"


@pytest.mark.torch
def test_bad_loss_border_is_one_line(data, tmp_path):
    with pytest.raises(HarnessError, match="--loss-border wide: give auto, off or a number"):
        train.run([TM], settings(data, loss_border="wide"), out=str(tmp_path / "a"))
    with pytest.raises(HarnessError, match="--loss-border 8 crops the whole 16-pixel patch"):
        train.run([TM], settings(data, loss_border="8"), out=str(tmp_path / "b"))


def test_by_model_recipe_overrides_match_ids_and_are_recorded():
    """Recipes may set keys per member (the largest ESPCN/FSRCNN train 60k steps); others keep the family's."""
    assert train.recipe_for("ESPCN", "ESPCN_s2_D34_S32")["steps"] == 60000
    assert train.recipe_for("ESPCN", "ESPCN_s2_D34_S32")["matched"] == "ESPCN_s*_D34_S32"
    assert train.recipe_for("ESPCN", "ESPCN_s2_D0_S3")["steps"] == 15000
    assert "matched" not in train.recipe_for("ESPCN", "ESPCN_s2_D0_S3")
    assert "by_model" not in train.recipe_for("FSRCNN", "FSRCNN_s4_D16_S12_M4")
    for mid in ("FSRCNN_s4_D16_S12_M4", "FSRCNN_s4_D36_S12_M4", "FSRCNN_s3_D56_S12_M4"):  # ClassSR's branches too
        assert train.recipe_for("FSRCNN", mid)["steps"] == 60000
    assert train.recipe_for("FSRCNN", "FSRCNN_s2_D6_S1_M1")["steps"] == 15000
    assert train.recipe_for("FSRCNN")["steps"] == 15000  # no id: the family's own keys
    assert train.recipe_for("eSR-CNN", "eSR-CNN_s4_C2_D1_S3")["steps"] == 60000
    assert train.recipe_for("eSR-CNN", "eSR-CNN_s4_C8_D9_S15")["steps"] == 15000
    s = train.Settings(data=["x"])
    assert train.for_family(s, "FSRCNN", "FSRCNN_s2_D56_S12_M4").steps == 60000
    assert train.for_family(s, "FSRCNN", "FSRCNN_s2_D6_S1_M1").steps == 15000
    assert train.for_family(train.Settings(data=["x"], steps=7), "FSRCNN", "FSRCNN_s2_D56_S12_M4").steps == 7
    # a Ghost fine-tune takes its base member's schedule
    assert train.recipe_for("GhostSR", "Ghost-FSRCNN_s2_D56_S12_M4")["steps"] == 60000
