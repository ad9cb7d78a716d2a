"""The quality protocol, and the acceptance figures of the bicubic baselines on ../shared."""
import numpy as np
import pytest

from conftest import write_png
from harness.datasets import embedded_set, find_set
from harness.errors import HarnessError
from harness.models import resolve
from harness.models.base import Upscaler
from harness.protocol import QualityEvaluator

# Bicubic Y PSNR with the standard protocol on the ../shared copies (its README).
ACCEPTED = {("Set5", 2): 33.67, ("Set5", 3): 30.40, ("Set5", 4): 28.43,
            ("Set14", 2): 30.32, ("Set14", 3): 27.63, ("Set14", 4): 26.09}


@pytest.mark.torch
@pytest.mark.shared
@pytest.mark.parametrize("set_name", ["Set5", "Set14"])
def test_bicubic_acceptance(shared_datasets, set_name):
    image_set = find_set(shared_datasets, set_name)
    evaluator = QualityEvaluator(show_progress=False)
    for scale in (2, 3, 4):
        matlab = evaluator.evaluate(resolve("bicubic-matlab", scale), image_set)
        assert matlab.images == len(image_set)
        assert matlab.psnr == pytest.approx(ACCEPTED[(set_name, scale)], abs=0.01)
        net = evaluator.evaluate(resolve(f"Bicubic_s{scale}"), image_set)
        assert net.psnr == pytest.approx(ACCEPTED[(set_name, scale)], abs=0.05)
        assert 0.6 < matlab.ssim < 1 and abs(net.ssim - matlab.ssim) < 0.002


class Identity(Upscaler):
    def upscale(self, lr):
        return np.repeat(np.repeat(lr, self.scale, 0), self.scale, 1)


class Broken(Upscaler):
    def upscale(self, lr):
        return np.full((lr.shape[0] * 2 + 1, lr.shape[1] * 2), 0.5)


class NaNs(Upscaler):
    def upscale(self, lr):
        return np.full((lr.shape[0] * 2, lr.shape[1] * 2), np.nan)


@pytest.mark.torch
def test_better_models_score_higher_and_outputs_are_clamped(tmp_path):
    image_set = embedded_set()
    image_set.items = image_set.items[:3]
    ev = QualityEvaluator(show_progress=False)
    nearest = ev.evaluate(Identity(id="nearest", family="test", scale=2), image_set)
    bicubic = ev.evaluate(resolve("Bicubic_s2"), image_set)
    assert bicubic.psnr > nearest.psnr > 15
    assert len(bicubic.per_image) == 3


def test_wrong_output_shape_and_nan_are_errors():
    image_set = embedded_set()
    image_set.items = image_set.items[:1]
    ev = QualityEvaluator(show_progress=False)
    with pytest.raises(HarnessError, match="not x2 of its input"):
        ev.evaluate(Broken(id="broken", family="test", scale=2), image_set)
    with pytest.raises(HarnessError, match="NaN"):
        ev.evaluate(NaNs(id="nan", family="test", scale=2), image_set)


def test_tiny_image_is_a_clear_error(tmp_path):
    write_png(tmp_path / "Set5" / "HR" / "tiny.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(HarnessError, match="tiny: 8x8 is too small for x4"):
        QualityEvaluator(show_progress=False).evaluate(resolve("bicubic-matlab", 4), find_set(tmp_path, "Set5"))
