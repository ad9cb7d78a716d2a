"""Checkpoints: exact resume from last.pt, resuming with changed settings or after the end, and
divergence (NaN/inf loss or weights) that never replaces the last good checkpoint."""
from __future__ import annotations

import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness import train
from harness.errors import HarnessError
from harness.train import loop

from .helpers import TM, cli, load, one_line, same_state, settings, weights


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


@pytest.mark.torch
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    calls = []

    def nan_at_step_7(output, target):
        calls.append(1)
        loss = torch.nn.functional.l1_loss(output, target)
        return loss * float("nan") if len(calls) == 7 else loss

    monkeypatch.setattr(loop, "l1_loss", nan_at_step_7)
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
