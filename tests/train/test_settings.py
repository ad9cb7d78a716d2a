"""harness.train.settings: the patch and device checks, the recipe's loss, and the border of a patch
left out of the loss (receptive radius, auto/off/N)."""
from __future__ import annotations

import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness import train
from harness.errors import HarnessError
from harness.train import loop

from .helpers import ESPCN, TM, cli, load, one_line, settings

if torch is not None:  # a network for the tests marked `torch` (it needs PyTorch to exist)
    class Global(torch.nn.Module):
        """A global mean: every input pixel reaches every output (no finite receptive radius)."""

        def forward(self, x):
            return torch.nn.functional.interpolate(x + x.mean(), scale_factor=2)


def test_patch_must_be_a_multiple_of_the_scale(data):
    with pytest.raises(HarnessError) as e:
        cli(["ESPCN_s3_D0_S3", "--data", str(data), "--patch", "16"])
    assert "--patch 16 is not a multiple of the scale 3 of ESPCN_s3_D0_S3; use --patch 15 or 18" in one_line(e)
    assert train.patch_for(train.Settings(data=[]), "ESPCN_s3_D0_S3", 3) == 63  # the default at x3


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
    real = loop.mse_loss

    def recording(output, target):
        calls.append(1)
        return real(output, target)

    monkeypatch.setattr(loop, "mse_loss", recording)
    (rec,) = train.run([TM], settings(data, loss=None), out=str(tmp_path / "a"))
    assert rec["loss"] == "MSE" and len(calls) == 12
    (rec,) = train.run([ESPCN], settings(data, loss="l1"), out=str(tmp_path / "b"))
    assert rec["loss"] == "L1" and len(calls) == 12
    assert train.for_family(settings(data, loss=None), "ABPN").loss == "l1"  # families without "loss": L1
    with pytest.raises(HarnessError, match="--loss huber: give one of l1, mse"):
        train.run([TM], settings(data, loss="huber"), out=str(tmp_path / "c"))


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

    monkeypatch.setattr(loop, "l1_loss", recording)
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


@pytest.mark.torch
def test_bad_loss_border_is_one_line(data, tmp_path):
    with pytest.raises(HarnessError, match="--loss-border wide: give auto, off or a number"):
        train.run([TM], settings(data, loss_border="wide"), out=str(tmp_path / "a"))
    with pytest.raises(HarnessError, match="--loss-border 8 crops the whole 16-pixel patch"):
        train.run([TM], settings(data, loss_border="8"), out=str(tmp_path / "b"))
