import numpy as np
import pytest

from conftest import write_png
from harness.errors import HarnessError
from harness.frames import FHD_HEIGHT, FHD_WIDTH, N_FRAMES, embedded_frames, folder_frames, load_frames, lr_input
from harness.models import resolve


def test_fourteen_distinct_full_hd_embedded_frames():
    frames = load_frames(None)
    assert len(frames) == N_FRAMES == 14
    for f in frames:
        assert f.rgb.shape == (FHD_HEIGHT, FHD_WIDTH, 3) and f.rgb.dtype == np.uint8
        assert f.source == "embedded"
    digests = {f.rgb.tobytes()[::997] for f in frames}
    assert len(digests) == 14
    # real content, not flat: a healthy spread of values
    assert frames[0].rgb.std() > 30
    # deterministic
    assert np.array_equal(embedded_frames(2)[1].rgb, frames[1].rgb)


@pytest.mark.torch
@pytest.mark.parametrize("scale,shape", [(2, (540, 960)), (3, (360, 640)), (4, (270, 480))])
def test_lr_inputs_give_exactly_full_hd_outputs(scale, shape):
    frame = embedded_frames(1)[0]
    y = lr_input(frame, scale)
    assert y.shape == shape and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
    assert lr_input(frame, scale, "rgb").shape == shape + (3,)
    assert resolve(f"Bicubic_s{scale}")(y).shape == (FHD_HEIGHT, FHD_WIDTH)


def test_folder_frames_centre_crop_and_reuse_with_warning(tmp_path):
    big = np.zeros((1200, 2000, 3), np.uint8)
    big[60:1140, 40:1960] = 200  # the centre Full-HD window
    write_png(tmp_path / "a.png", big)
    write_png(tmp_path / "b.png", np.full((1080, 1920, 3), 7, np.uint8))
    with pytest.warns(UserWarning, match="fewer than 14"):
        frames = folder_frames(tmp_path)
    assert len(frames) == 14
    assert np.all(frames[0].rgb == 200)
    assert np.all(frames[1].rgb == 7) and np.all(frames[2].rgb == 200)


def test_folder_frames_errors(tmp_path):
    with pytest.raises(HarnessError, match="no such folder"):
        folder_frames(tmp_path / "none")
    with pytest.raises(HarnessError, match="no png/bmp/jpg"):
        folder_frames(tmp_path)
    write_png(tmp_path / "small.png", np.zeros((720, 1280, 3), np.uint8))
    with pytest.raises(HarnessError, match="small.png: 1280x720 is smaller than Full-HD"):
        folder_frames(tmp_path)


def test_a_damaged_lr_cache_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    """A truncated cache file (a killed run, a full disk) is rebuilt with one warning, never a BadZipFile."""
    from harness.frames import Frame, lr_inputs

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    frame = Frame(name="f0", source="test", rgb=rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8))
    first = lr_inputs([frame], 4)
    (cached,) = list((tmp_path / "frames").glob("lr_x4_rgb8_*.npz"))
    cached.write_bytes(cached.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged LR-frame cache"):
        again = lr_inputs([frame], 4)
    np.testing.assert_array_equal(again[0], first[0])
    assert list((tmp_path / "frames").glob("*.tmp.npz")) == []  # no stray temp file
    np.testing.assert_array_equal(lr_inputs([frame], 4)[0], first[0])  # and the rebuilt file reads back


def test_both_colour_spaces_share_one_cached_resize_and_match_the_direct_path(tmp_path, monkeypatch):
    """The Y and RGB inputs at a scale come from one cached MATLAB resize (one file), and equal the uncached
    inputs, where each frame is resized on its own and Y taken from that resize (BT.601 of the uint8 LR)."""
    from harness.frames import Frame, lr_inputs

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    rng = np.random.default_rng(1)
    frames = [Frame(name=f"f{i}", source="test", rgb=rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8))
              for i in range(2)]
    ys, rgbs = lr_inputs(frames, 4, "y"), lr_inputs(frames, 4, "rgb")
    assert len(list((tmp_path / "frames").glob("*.npz"))) == 1
    for cached, direct in ((ys, lr_inputs(frames, 4, "y", cache=False)), (rgbs, lr_inputs(frames, 4, "rgb", cache=False))):
        assert all(a.dtype == np.float32 and np.array_equal(a, b) for a, b in zip(cached, direct))
    assert ys[0].shape == (270, 480) and rgbs[0].shape == (270, 480, 3)
