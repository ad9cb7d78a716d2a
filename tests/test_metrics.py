import numpy as np
import pytest

from harness.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from harness.metrics import psnr, shave, ssim


def test_bt601_y_range_and_coefficients():
    assert rgb_to_y(np.array([[[0, 0, 0]]], np.uint8))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0)
    assert rgb_to_y(np.array([[[1.0, 0.0, 0.0]]]))[0, 0] == pytest.approx(16 + 65.481)
    grey = np.full((1, 1, 3), 100, np.uint8)
    assert rgb_to_y(grey)[0, 0] == pytest.approx(16 + 219 * 100 / 255)


def test_ycbcr_round_trip(rng):
    rgb = rng.random((8, 9, 3))
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-9)


def test_psnr_known_values():
    a = np.zeros((10, 10))
    assert psnr(a, a + 1.0) == pytest.approx(10 * np.log10(255.0 ** 2))
    assert psnr(a, a) == float("inf")
    b = a.copy()
    b[0, :] = 100.0  # only the border row differs: cropped away
    assert psnr(a, b, crop=1) == float("inf")
    with pytest.raises(ValueError):
        psnr(a, np.zeros((9, 10)))


def test_ssim_matlab_settings(rng):
    from skimage.metrics import structural_similarity

    ref = rng.random((40, 50)) * 255
    noisy = ref + rng.normal(0, 10, ref.shape)
    assert ssim(ref, ref) == pytest.approx(1.0)
    value = ssim(ref, noisy, crop=2)
    assert 0.0 < value < 1.0
    expected = structural_similarity(shave(ref, 2), shave(noisy, 2), data_range=255, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert value == pytest.approx(expected)
    # an 11x11 window: a change farther than 5 px from every window centre changes nothing
    # (valid-region SSIM), so altering only the outermost 5-px frame of a 40x50 image leaves it at 1
    framed = ref.copy()
    framed[:5] += 30
    assert ssim(ref, framed) < 1.0
