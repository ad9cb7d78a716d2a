"""harness.train.data: training folders, the LR/HR pairs and their cache (Y and RGB), the patch
sampler, and the one-line errors about the training images."""
from __future__ import annotations

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
from harness.train import data as train_data

from .helpers import ABPN, TM, cli, one_line, settings, smooth_images


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

    monkeypatch.setattr(train_data, "degrade", no_recompute)
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

    monkeypatch.setattr(train_data, "degrade", no_recompute)
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
