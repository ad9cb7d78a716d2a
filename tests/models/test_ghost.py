"""GhostSR and EDSR-baseline: shapes of every id, the frozen ghost layer against an explicit
shift reference in all 9 directions, the params/MACs saved, the gradient of the direction
search, ONNX export (parity and no extra Conv nodes), weights files and the one-line errors."""
from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness.errors import HarnessError
from harness.export import export_onnx, verify_onnx
from harness.models import edsr, esr, ghost, resolve

SCALES = (2, 3, 4)
FSRCNN, ESPCN = "FSRCNN_s2_D56_S12_M4", "ESPCN_s2_D34_S32"


def zoo_ids(s: int):
    return [f"EDSR_s{s}", f"Ghost-EDSR_s{s}", f"Ghost-FSRCNN_s{s}_D56_S12_M4", f"Ghost-ESPCN_s{s}_D34_S32"]


def reference(conv, x, n_ghost: int, direction: int) -> np.ndarray:
    """The original conv's first channels, then each ghost channel shifted by hand (zeros outside)."""
    with torch.no_grad():
        full = conv(x).numpy()
    n_intr = conv.out_channels - n_ghost
    intr = full[:, :n_intr]
    dy, dx = ghost.offset(direction)
    h, w = intr.shape[2:]
    shifted = np.zeros((intr.shape[0], n_ghost, h, w), dtype=intr.dtype)
    for c in range(n_ghost):
        for y in range(h):
            for xx in range(w):
                if 0 <= y + dy < h and 0 <= xx + dx < w:
                    shifted[:, c, y, xx] = intr[:, c % n_intr, y + dy, xx + dx]
    return np.concatenate([intr, shifted], axis=1)


def set_direction(layer, direction: int) -> None:
    with torch.no_grad():
        layer.logits.zero_()
        layer.logits[direction] = 3.0


# --- shapes and the registry -----------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("scale", SCALES)
def test_every_id_upscales_y_at_its_scale(scale):
    torch.manual_seed(0)
    lr = np.random.default_rng(0).random((24, 32), dtype=np.float32)
    for model_id in zoo_ids(scale):
        model = resolve(model_id)
        assert model.scale == scale and model.input_space == "y" and model.weights == "init", model_id
        assert model.family == ("EDSR" if model_id.startswith("EDSR") else "GhostSR")
        sr = model(lr)
        assert sr.shape == (24 * scale, 32 * scale) and sr.dtype == np.float32 and np.isfinite(sr).all(), model_id
    assert ghost.ids(scale) == zoo_ids(scale)[1:] and edsr.ids(scale) == [f"EDSR_s{scale}"]


@pytest.mark.torch
def test_edsr_baseline_architecture():
    module = edsr.build_module("EDSR_s2")
    names = {n for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert {"head.0", "body.0.body.0", "body.15.body.2", "body.16", "tail.0.0", "tail.1"} <= names
    assert len(names) == 1 + 32 + 1 + 1 + 1
    assert sum(p.numel() for p in module.parameters()) == 1367553
    x4 = edsr.build_module("EDSR_s4")  # two x2 stages, as EDSR does
    assert [type(m).__name__ for m in x4.tail[0]] == ["Conv2d", "PixelShuffle"] * 2


@pytest.mark.torch
def test_default_selection_keeps_head_upsampler_and_tail():
    net = ghost.build_module("Ghost-EDSR_s3")
    layers = set(ghost.ghost_layers(net))
    assert layers == {f"body.{i}.body.{j}" for i in range(16) for j in (0, 2)} | {"body.16"}
    assert set(ghost.ghost_layers(ghost.build_module(f"Ghost-{FSRCNN}"))) == {f"net.{i}" for i in (4, 6, 8, 10)}
    assert set(ghost.ghost_layers(ghost.build_module(f"Ghost-{ESPCN}"))) == {"net.2"}


# --- the ghost layer ---------------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("ratio", (0.5, 0.75))
@pytest.mark.parametrize("direction", range(9))
def test_frozen_layer_is_intrinsic_conv_plus_shifted_copies(direction, ratio):
    torch.manual_seed(direction)
    conv = torch.nn.Conv2d(5, 8, 3, padding=1)
    layer = ghost.GhostConv2d(conv, ratio=ratio)
    n_ghost = 4 if ratio == 0.5 else 6
    assert (layer.n_intrinsic, layer.n_ghost) == (8 - n_ghost, n_ghost)
    assert torch.equal(layer.conv.weight, conv.weight[:8 - n_ghost])  # the fine-tune starts from the original
    set_direction(layer, direction)
    x = torch.rand(2, 5, 6, 7)
    want = reference(conv, x, n_ghost, direction)
    layer.eval()
    with torch.no_grad():
        got_eval = layer(x).numpy()
    layer.train()
    layer.freeze()  # fixed in training mode too
    with torch.no_grad():
        got_frozen = layer(x).numpy()
    assert layer.direction == direction and not layer.logits.requires_grad
    np.testing.assert_allclose(got_eval, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_frozen, want, rtol=0, atol=1e-6)


@pytest.mark.torch
def test_gumbel_search_is_differentiable_in_the_logits():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    x = torch.rand(1, 4, 5, 6)
    soft = ghost.GhostConv2d(conv).train()
    soft(x).square().sum().backward()
    assert soft.logits.grad is not None and torch.isfinite(soft.logits.grad).all()
    assert soft.logits.grad.abs().sum() > 0

    hard = ghost.GhostConv2d(conv, hard=True).train()  # straight-through: a one-hot forward, a gradient back
    out = hard(x)
    out.square().sum().backward()
    assert hard.logits.grad is not None and hard.logits.grad.abs().sum() > 0
    refs = [reference(conv, x, 3, k) for k in range(9)]
    assert any(np.abs(out.detach().numpy() - r).max() < 1e-5 for r in refs)

    net = ghost.build_module(f"Ghost-{FSRCNN}").train()  # a whole network: every layer's logits learn
    net(torch.rand(2, 1, 8, 9)).mean().backward()
    assert all(layer.logits.grad is not None for layer in ghost.ghost_layers(net).values())


@pytest.mark.torch
def test_gumbel_temperature_anneals_from_tau_to_tau_end():
    layer = ghost.GhostConv2d(torch.nn.Conv2d(4, 6, 3, padding=1))
    taus = []
    for step in range(11):
        layer.training_progress(step, 11)
        taus.append(layer.tau)
    assert taus[0] == pytest.approx(1.0) and taus[-1] == pytest.approx(ghost.TAU_END)
    assert all(a > b for a, b in zip(taus, taus[1:]))
    assert taus[5] == pytest.approx((1.0 * ghost.TAU_END) ** 0.5)  # exponential: the geometric mean halfway
    layer.training_progress(0, 1)  # a one-step run stays at the start
    assert layer.tau == pytest.approx(1.0)
    with pytest.raises(ValueError, match="temperatures must be > 0"):
        ghost.GhostConv2d(torch.nn.Conv2d(4, 6, 3, padding=1), tau_end=0)


@pytest.mark.torch
def test_ghostify_is_a_general_transform():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                              torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.Conv2d(8, 8, 1),
                              torch.nn.Conv2d(8, 3, 3, padding=1))
    out = ghost.ghostify(net, select=lambda name, conv: True)  # every ghostable conv: 3x3, stride 1, groups 1
    assert set(ghost.ghost_layers(out)) == {"0", "2", "5"} and not ghost.ghost_layers(net)  # a copy
    assert set(ghost.ghost_layers(ghost.ghostify(net))) == {"2"}  # default: hidden convs only
    again = ghost.ghostify(out, select=lambda name, conv: True)
    assert set(ghost.ghost_layers(again)) == {"0", "2", "5"}  # intrinsic convs are not ghosted again
    with pytest.raises(ValueError):
        ghost.ghostify(net, ratio=1.0)


# --- params and MACs ---------------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("model_id", ("EDSR_s2", FSRCNN))
def test_compare_ghost_counts_what_the_transformed_layers_save(model_id):
    report = ghost.compare_ghost(model_id)
    s = edsr.scale_of(model_id) if model_id.startswith("EDSR") else esr.parse(model_id)[1]["scale"]
    layers = ghost.ghost_layers(ghost.build_module("Ghost-" + model_id))
    assert report["ghost_layers"] == len(layers) > 0
    saved_params = sum(g.n_ghost * (g.in_channels * 9 + 1) - 9 for g in layers.values())  # 9 logits stay
    saved_macs = sum(g.n_ghost * g.in_channels * 9 for g in layers.values()) * (1080 // s) * (1920 // s)
    assert report["params_before"] - report["params_after"] == saved_params
    assert report["macs_before"] - report["macs_after"] == saved_macs
    for g in layers.values():  # each transformed layer keeps (1 - ratio) of its weights
        assert g.conv.weight.numel() == pytest.approx(0.5 * g.out_channels * g.in_channels * 9)
    assert report["params_change"] < -0.15 and report["macs_change"] < -0.15
    assert report["summary"].endswith("MACs") and report["summary"].startswith("-")
    assert ghost.compare_ghost("Ghost-" + model_id)["macs_after"] == report["macs_after"]


# --- ONNX ---------------------------------------------------------------------------------------
def _op_counts(path):
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.mark.torch
@pytest.mark.parametrize("base", (FSRCNN, "EDSR_s2"))
def test_frozen_ghost_exports_to_onnx_without_extra_convs(base, tmp_path):
    torch.manual_seed(0)
    original = ghost.base_module(base)
    net = ghost.build_module("Ghost-" + base, base=original)
    for i, layer in enumerate(ghost.ghost_layers(net).values()):
        set_direction(layer, (i + 1) % 9)  # every direction somewhere in EDSR's 33 layers
    ghost.freeze(net)
    path = export_onnx(net, tmp_path / "ghost.onnx", channels=1, model_id="Ghost-" + base)
    assert verify_onnx(path, net, shape=(1, 1, 20, 28), atol=1e-4) <= 1e-4  # not the 24x36 export size
    ops = _op_counts(path)
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in original.modules())
    assert ops["Conv"] == n_convs
    assert not any(ops[k] for k in ("MatMul", "Gemm", "Mul", "Einsum"))
    if base == FSRCNN:  # the original's own graph: the same Conv and ConvTranspose nodes
        ref = _op_counts(export_onnx(original, tmp_path / "orig.onnx", channels=1))
        assert (ops["Conv"], ops["ConvTranspose"]) == (ref["Conv"], ref["ConvTranspose"])


# --- weights and errors -----------------------------------------------------------------------
@pytest.mark.torch
def test_weights_files_load_and_official_is_refused(tmp_path):
    torch.manual_seed(0)
    model_id = f"Ghost-{FSRCNN}"
    trained = ghost.build_module(model_id)
    for i, layer in enumerate(ghost.ghost_layers(trained).values()):
        set_direction(layer, i + 5)
    trained.eval()
    torch.save(trained.state_dict(), tmp_path / "ghost.pt")
    loaded = resolve(model_id, weights=str(tmp_path / "ghost.pt"))
    assert ghost.directions(loaded.module) == ghost.directions(trained) and loaded.weights.endswith("ghost.pt")
    x = torch.rand(1, 1, 9, 11)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), trained(x))

    base = esr.build_module(FSRCNN)  # the base network's weights: ghostified, the start of a fine-tune
    torch.save(base.state_dict(), tmp_path / "base.pt")
    started = resolve(model_id, weights=str(tmp_path / "base.pt")).module
    assert torch.equal(started.net[4].conv.weight, base.net[4].weight[:6])

    torch.save(edsr.build_module("EDSR_s2").state_dict(), tmp_path / "edsr.pt")
    assert resolve("EDSR_s2", weights=str(tmp_path / "edsr.pt")).weights.endswith("edsr.pt")
    for mid in ("EDSR_s2", model_id):
        with pytest.raises(HarnessError) as err:
            resolve(mid, weights="official")
        assert "\n" not in str(err.value) and "no official weights" in str(err.value)
    with pytest.raises(HarnessError) as err:
        resolve(model_id, weights=str(tmp_path / "edsr.pt"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("model_id", ("Ghost-eSR-TM_s2_K7_C4", "Ghost-Bicubic_s2",
                                      # these two build the base network to find its convolutions
                                      pytest.param("Ghost-ESPCN_s2_D0_S9", marks=pytest.mark.torch),
                                      pytest.param("Ghost-FSRCNN_s2_D56_S1_M4", marks=pytest.mark.torch),
                                      "Ghost-nothing", "Ghost-EDSR", "EDSR_s5"))
def test_unknown_or_untransformable_ids_are_one_line_errors(model_id):
    with pytest.raises(HarnessError) as err:
        resolve(model_id)
    assert "\n" not in str(err.value)
    with pytest.raises(HarnessError):
        ghost.compare_ghost("eSR-MAX_s2_K3_C1")


@pytest.mark.torch
def test_modules_pickle():
    for model_id in (f"Ghost-{FSRCNN}", "EDSR_s2"):
        module = resolve(model_id).module
        clone = pickle.loads(pickle.dumps(module))
        x = torch.rand(1, 1, 6, 7)
        with torch.no_grad():
            assert torch.equal(clone(x), module(x))
