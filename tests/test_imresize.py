"""MATLAB-faithful bicubic: synthetic properties, and the MATLAB reference LR images of Set5."""
from pathlib import Path

import numpy as np
import pytest

from harness import imresize as imresize_module
from harness.imageio import load_rgb
from harness.imresize import _resize_axis, contributions, cubic, downscale, modcrop, upscale


def test_cubic_kernel_is_keys_a_minus_half():
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(cubic(x), [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0])
    # partition of unity at any phase
    for d in (0.0, 0.1, 0.37, 0.5):
        assert cubic(d - np.arange(-3, 4)).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("in_len,out_len,scale", [(12, 4, 1 / 3), (10, 5, 0.5), (8, 2, 0.25), (5, 15, 3.0), (7, 14, 2.0)])
def test_contribution_weights_normalised_and_indices_in_range(in_len, out_len, scale):
    w, idx = contributions(in_len, out_len, scale)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert idx.min() >= 0 and idx.max() < in_len
    # antialiased shrinking stretches the kernel: more than the 4 taps of plain bicubic
    assert (w.shape[1] > 4) == (scale < 1)


def test_symmetric_border_repeats_the_edge_pixel():
    # Output pixel 1 of a x2 enlargement samples left of pixel 1: MATLAB mirrors as [1, 1, 2, ...].
    w, idx = contributions(6, 12, 2.0)
    assert list(idx[0][:2]) == [1, 0] or list(idx[0][:2]) == [0, 0]
    assert 0 in idx[0]


def test_constant_image_stays_constant_uint8_and_float():
    img = np.full((24, 36, 3), 117, np.uint8)
    for s in (2, 3, 4):
        assert np.all(downscale(img, s) == 117)
        assert np.all(upscale(img, s) == 117)
    f = np.full((24, 36), 0.3)
    np.testing.assert_allclose(downscale(f, 3), 0.3)
    np.testing.assert_allclose(upscale(f, 4), 0.3)


def test_x3_upscale_centre_phase_reproduces_input(rng):
    # At x3 the middle phase lands exactly on the LR pixel (offset 0): no interpolation there.
    lr = rng.random((9, 11))
    hr = upscale(lr, 3)
    np.testing.assert_allclose(hr[1::3, 1::3], lr, atol=1e-12)


def test_linear_ramp_is_reproduced_away_from_borders():
    ramp = np.tile(np.arange(48, dtype=np.float64), (6, 1))
    down = downscale(ramp, 2)
    # pixel j of the x2 result covers input pixels 2j, 2j+1: centre 2j + 0.5
    np.testing.assert_allclose(down[:, 2:-2], np.tile(np.arange(48)[::2] + 0.5, (3, 1))[:, 2:-2], atol=1e-9)


def test_uint8_rounding_after_each_pass_rows_first(rng):
    img = rng.integers(0, 256, (30, 42, 3), dtype=np.uint8)
    out = downscale(img, 3)
    assert out.dtype == np.uint8
    # rows (height) first, rounded to uint8, then columns
    rows = np.clip(np.floor(_resize_axis(img.astype(np.float64), 0, 10, 1 / 3, True) + 0.5), 0, 255)
    both = np.clip(np.floor(_resize_axis(rows, 1, 14, 1 / 3, True) + 0.5), 0, 255)
    np.testing.assert_array_equal(out, both.astype(np.uint8))
    cols = np.clip(np.floor(_resize_axis(img.astype(np.float64), 1, 14, 1 / 3, True) + 0.5), 0, 255)
    cols_first = np.clip(np.floor(_resize_axis(cols, 0, 10, 1 / 3, True) + 0.5), 0, 255)
    assert not np.array_equal(out, cols_first.astype(np.uint8))  # the order matters, and ours is rows first
    # and the float path without intermediate rounding differs somewhere (rounding really happens)
    assert not np.array_equal(downscale(img.astype(np.float64), 3), out.astype(np.float64))


def test_float_round_trip_stays_close(rng):
    # smooth image: down then up by 2 stays close to the original
    y, x = np.mgrid[0:64, 0:64] / 64.0
    img = 0.5 + 0.25 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y)
    back = upscale(downscale(img, 2), 2)
    assert np.abs(back - img)[4:-4, 4:-4].max() < 0.01


def test_modcrop_and_size_checks():
    img = np.zeros((101, 77, 3), np.uint8)
    assert modcrop(img, 4).shape == (100, 76, 3)
    with pytest.raises(ValueError, match="multiple of the scale"):
        downscale(img, 4)


# Reference LR images made by MATLAB imresize (../shared): x3 must be bit-exact, x4 >= 99.9% of
# pixels equal, x2 >= 99.4%, never more than 2 grey levels off.
@pytest.mark.shared
@pytest.mark.parametrize("scale,min_equal", [(2, 0.994), (3, 1.0), (4, 0.999)])
def test_matches_matlab_reference_lr(shared_datasets, scale, min_equal):
    equal = total = worst = 0
    for hr_path in sorted((shared_datasets / "Set5" / "HR").glob("*.png")):
        ref_path = shared_datasets / "Set5" / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
        ref = load_rgb(ref_path)
        ours = downscale(modcrop(load_rgb(hr_path), scale), scale)
        assert ours.shape == ref.shape
        diff = np.abs(ours.astype(int) - ref.astype(int))
        equal += int((diff == 0).sum())
        total += diff.size
        worst = max(worst, int(diff.max()))
    assert total > 0
    assert equal / total >= min_equal
    assert worst <= 2


# The same reference, on any clone: crops of Set5 and of MATLAB's LR images committed by
# scripts/make-test-fixtures.py (sources in tests/fixtures/matlab/SOURCES.json). Pixels within
# 3 LR pixels of a crop's border are left out: there the antialiased kernel reaches outside it.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "matlab"


@pytest.mark.parametrize("scale,min_equal", [(2, 0.994), (3, 1.0), (4, 0.999)])
def test_matches_matlab_reference_lr_on_committed_crops(scale, min_equal):
    equal = total = worst = 0
    for path in sorted(FIXTURES.glob("set5_*.npz")):
        with np.load(path) as f:
            hr, ref = f["hr"], f[f"lr_x{scale}"]
        ours = downscale(hr, scale)
        assert ours.shape == ref.shape
        diff = np.abs(ours.astype(int) - ref.astype(int))[3:-3, 3:-3]
        equal += int((diff == 0).sum())
        total += diff.size
        worst = max(worst, int(diff.max()))
    assert total == 5 * 3 * (96 // scale - 6) ** 2
    assert equal / total >= min_equal and worst <= 2


def _matlab_loop(img: np.ndarray, out_hw, scale: float) -> np.ndarray:
    """imresizemex's loop written out: per output value, float64 w0*x0 + w1*x1 + ... in tap order, rows first,
    each pass stored in the image's type (a uint8 pass rounded half away from zero and saturated)."""
    out = img
    for axis in (0, 1):
        weights, indices = contributions(out.shape[axis], out_hw[axis], scale)
        src = np.moveaxis(out.astype(np.float64), axis, 0)
        res = np.zeros((out_hw[axis],) + src.shape[1:])
        for i in range(out_hw[axis]):
            acc = weights[i, 0] * src[indices[i, 0]]
            for k in range(1, weights.shape[1]):
                acc = acc + weights[i, k] * src[indices[i, k]]
            res[i] = acc
        if img.dtype == np.uint8:
            res = np.minimum(np.maximum(np.floor(res + 0.5), 0), 255)
        out = np.moveaxis(res, 0, axis).astype(img.dtype)
    return out


@pytest.mark.parametrize("block", [7, 64, 1 << 15])  # blocks of one row, of several with a short last one, whole
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_blocked_resize_is_matlabs_loop_bit_for_bit(rng, monkeypatch, block, factor):
    monkeypatch.setattr(imresize_module, "BLOCK_VALUES", block)
    img = rng.integers(0, 256, (12 * factor, 20 * factor, 3), dtype=np.uint8)
    lr = downscale(img, factor)
    np.testing.assert_array_equal(lr, _matlab_loop(img, lr.shape[:2], 1 / factor))
    np.testing.assert_array_equal(upscale(lr, factor), _matlab_loop(lr, img.shape[:2], factor))
    y = rng.random((12 * factor, 20 * factor)).astype(np.float32)
    small = downscale(y, factor)
    assert small.dtype == np.float32
    np.testing.assert_array_equal(small, _matlab_loop(y, small.shape, 1 / factor))
