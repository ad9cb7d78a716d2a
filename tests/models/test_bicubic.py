"""The bicubic baselines: classical MATLAB, OpenCV, and the Bicubic_s* network."""
import numpy as np
import pytest

from harness.errors import HarnessError
from harness.imresize import upscale
from harness.models import resolve
from harness.models.bicubic import bicubic_phase_kernels, phase_offsets


@pytest.mark.torch
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_network_equals_matlab_float_upscale_everywhere(rng, scale):
    y = rng.random((21, 34))
    net = resolve(f"Bicubic_s{scale}")
    out = net(y.astype(np.float32))
    assert out.shape == (21 * scale, 34 * scale)
    # every pixel, borders included (symmetric padding like MATLAB)
    np.testing.assert_allclose(out, upscale(y, scale), atol=2e-6)


def test_sub_pixel_alignment_at_x3():
    np.testing.assert_allclose(phase_offsets(3), [-1 / 3, 0.0, 1 / 3])
    k = bicubic_phase_kernels(3)
    centre = k[4, 0]  # phase (1, 1): exactly on the LR pixel
    expected = np.zeros((5, 5))
    expected[2, 2] = 1.0
    np.testing.assert_allclose(centre, expected, atol=1e-12)
    # phases are mirror images of each other (no half-pixel shift)
    np.testing.assert_allclose(k[0, 0], k[8, 0][::-1, ::-1], atol=1e-12)


def test_bicubic_matlab_and_opencv_on_rgb(rng):
    import cv2

    lr8 = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    lr = lr8.astype(np.float32) / 255
    m = resolve("bicubic-matlab", 2)(lr)
    np.testing.assert_array_equal(np.round(m * 255).astype(np.uint8), upscale(lr8, 2))
    o = resolve("bicubic-opencv", 2)(lr)
    np.testing.assert_array_equal(np.round(o * 255).astype(np.uint8),
                                  cv2.resize(lr8, (32, 24), interpolation=cv2.INTER_CUBIC))
    assert not np.array_equal(m, o)  # different kernels (a=-0.5 vs -0.75, other grid handling)


def test_registry_errors_are_one_line():
    with pytest.raises(HarnessError, match="needs a scale"):
        resolve("bicubic-matlab")
    with pytest.raises(HarnessError, match="x2 model but --scale 3"):
        resolve("Bicubic_s2", 3)
    with pytest.raises(HarnessError, match="unknown model id 'nope'"):
        resolve("nope", 2)
    with pytest.raises(HarnessError, match="x5 is not supported"):
        resolve("bicubic-matlab", 5)


@pytest.mark.torch
def test_model_rejects_wrong_input_layout():
    with pytest.raises(ValueError, match="HxW Y"):
        resolve("Bicubic_s2")(np.zeros((4, 4, 3), np.float32))
