"""The export forms of issue 22 (``lean``, ``pad``, ``subpix``; harness/models/fast.py): each computes
the naive network's function (PyTorch, ONNX Runtime, the official weights' parity data), PReLU keeps
its exact value for every slope, and ``--form auto`` keeps a form only when it timed faster."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import MODEL_FILES, OFFICIAL, PARITY

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness.errors import HarnessError
from harness.models import esr, resolve
from harness.models.fast import BASE_FORMS, FORM_REVISION, FORMS, candidate_forms, form_module

NEW_FORMS = tuple(f for f in FORMS if f not in BASE_FORMS)

# model -> the forms its family has (one small model per family and rule; all three scales below)
EXPECTED = {
    "eSR-MAX_s{s}_K3_C1": ("fast", "lean", "naive"),
    "eSR-MAX_s{s}_K5_C3": ("fast", "lean", "naive"),
    "eSR-TM_s{s}_K3_C1": ("fast", "lean", "naive"),
    "eSR-TM_s{s}_K5_C2": ("fast", "lean", "naive"),
    "eSR-TR_s{s}_K3_C1": ("fast", "lean", "naive"),
    "eSR-TR_s{s}_K3_C2": ("fast", "lean", "naive"),
    "eSR-TM_s{s}_K3_C4": ("fast", "lean", "naive"),   # C >= 3: one conv per group, channels last
    "eSR-TR_s{s}_K3_C4": ("fast", "lean", "naive"),
    "eSR-CNN_s{s}_C1_D3_S3": ("fast", "lean", "naive"),
    "eSR-CNN_s{s}_C2_D3_S6": ("fast", "lean", "naive"),
    "eSR-CNN_s{s}_C4_D3_S6": ("fast", "lean", "naive"),
    "ESPCN_s{s}_D0_S3": ("lean", "naive"),
    "ESPCN_s{s}_D22_S18": ("lean", "pad", "naive"),   # 22 -> 32, 18 -> 32
    "FSRCNN_s{s}_D6_S1_M1": ("lean", "subpix", "naive"),
    "FSRCNN_s{s}_D19_S12_M1": ("lean", "pad", "subpix", "naive"),  # 19 -> 32, 12 -> 16
    "eSR-Bicubic_s{s}": ("subpix", "naive"),
    "Bicubic_s{s}": ("lean", "naive"),
}
CASES = [(t.format(s=s), forms) for s in (2, 3, 4) for t, forms in EXPECTED.items()]

pytestmark = pytest.mark.usefixtures("one_thread")


def module_of(model_id: str, seed: int = 0, scale: float = 0.3):
    """The network with random weights (init weights are near-identity and would hide mistakes), scaled so
    that outputs stay O(1) and 1e-5 is a fair fp32 tolerance; Bicubic_s* keeps its fixed kernels."""
    module = resolve(model_id).module
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return module.eval()


def lr(shape=(2, 1, 19, 27), seed: int = 3):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# --- which family has which form ------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("model_id,forms", CASES, ids=[c[0] for c in CASES])
def test_every_family_has_its_forms_and_each_is_the_same_function(model_id, forms):
    module = module_of(model_id)
    assert tuple(candidate_forms(module)) == forms
    x = lr()
    with torch.no_grad():
        want = module(x)
        assert want.abs().max().item() > 0.05  # a real output, not a degenerate one
        for form in forms:
            got = form_module(module, form)(x)
            assert got.shape == want.shape
            assert (got - want).abs().max().item() <= 1e-5, form
    for form in set(NEW_FORMS) - set(forms):
        assert form_module(module, form) is None


@pytest.mark.torch
@pytest.mark.parametrize("model_id,forms", [("Ghost-FSRCNN_s2_D19_S12_M1", ["lean", "subpix", "naive"]),
                                            ("Ghost-ESPCN_s3_D22_S18", ["lean", "naive"])])
def test_ghost_networks_get_the_rewrites_that_leave_their_ghost_convs_alone(model_id, forms):
    """GhostSR's convs consume the hidden widths: no ``pad`` (it would feed them padded channels)."""
    module = resolve(model_id).module.eval()
    assert candidate_forms(module) == forms
    x = lr()
    with torch.no_grad():
        want = module(x)
        for form in forms:
            assert (form_module(module, form)(x) - want).abs().max().item() <= 1e-5, form


@pytest.mark.torch
def test_other_families_keep_their_one_graph_and_unknown_forms_are_refused():
    module = resolve("ABPN_s2").module
    assert candidate_forms(module) == ["naive"]
    with pytest.raises(ValueError, match="quick"):
        form_module(module, "quick")
    assert candidate_forms(module_of("FSRCNN_s2_D19_S12_M1"), ("naive", "fast")) == ["naive"]  # HARNESS_FORMS=naive,fast


# --- what each form really rewrites ---------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("model_id, joint", [
    # separate convs: the Split would copy more than the repeated neighbourhood gathers save ((n - 1) K^2 C_in
    # against 2.5 n s^2 values per LR pixel: 9 < 20, 18 < 67.5, 45 < 60), or s*s = 16 (2-D convs, no gathers)
    ("eSR-MAX_s2_K3_C2", None), ("eSR-TM_s3_K3_C2", None), ("eSR-TR_s2_K3_C2", None), ("eSR-CNN_s4_C2_D3_S3", None),
    # one conv and a Split: 81 > 40 (16 filters fill a block: 2-D), 162 > 90, 245 > 60, 50 > 30, 25 > 20 (3-D)
    ("eSR-CNN_s2_C2_D3_S3", "2d"), ("eSR-CNN_s3_C2_D3_S6", "3d"), ("eSR-TR_s2_K7_C2", "3d"), ("eSR-TM_s2_K5_C2", "3d"),
    ("eSR-MAX_s2_K5_C2", "3d")])
def test_lean_with_two_channels_has_no_reduce_operator(model_id, joint, tmp_path):
    """C = 2: no reduce operator, and one conv per part, or, where separate 3-D convs would repeat more work
    than a Split copies, one conv of the parts (2-D where its filters fill ONNX Runtime's 16-channel blocks)
    split apart. The differences that are linear in the filters are convs of filter differences: v0 - v1
    (filters 0..s*s-1 minus filters s*s..), TM's k0 - k1 (with separate convs its sigmoid right after that
    conv: ONNX Runtime fuses the two), CNN's k0 - k1 and k0 + k1."""
    import onnx
    from onnx import numpy_helper

    from harness.export import export_model

    module = module_of(model_id)
    path, form = export_model(model_id, module, tmp_path, form="lean")
    graph = onnx.load(str(path)).graph
    nodes = graph.node
    ops = {n.op_type for n in nodes}
    kind = model_id.split("_")[0]
    s2 = module.scale ** 2
    n = {"eSR-MAX": 2, "eSR-TM": 3, "eSR-TR": 6, "eSR-CNN": 4}[kind]
    assert form == "lean" and not {o for o in ops if o.startswith("Reduce")} and "Split" not in ops
    last = [node for node in nodes if node.op_type == "Conv"][-1].output[0]
    after = [node for node in nodes if last in node.input]
    if after[0].op_type == "Squeeze":  # the 3-D conv's (N, C, 1, H, W) back to 4-D
        after = [node for node in nodes if after[0].output[0] in node.input]
    assert [node.op_type for node in after] == (["Slice"] * n if joint else [after[0].op_type])  # its parts apart
    assert ("Max" in ops) == model_id.startswith("eSR-MAX") and ("Sigmoid" in ops) != model_id.startswith("eSR-MAX")
    body = 2 if kind == "eSR-CNN" else 0
    assert sum(node.op_type == "Conv" for node in nodes) == body + (1 if joint else n)
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [weights[node.input[1]] for node in nodes if node.op_type == "Conv"]
    conv_weights = [cw.reshape(cw.shape[0], -1) for cw in convs]
    if joint:  # the parts' filters stacked in one conv (a 2-D or a 1xKxK 3-D weight): split them back
        assert convs[-1].ndim == {"2d": 4, "3d": 5}[joint]
        conv_weights = [part for cw in conv_weights[-1:] for part in np.split(cw, n)]
    w = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.detach().numpy()  # the head's
    w = w.reshape(w.shape[0], -1)
    filt = [w[i * s2:(i + 1) * s2] for i in range(w.shape[0] // s2)]  # v0, v1, k0, k1, (q0, q1)

    def exported(want):
        return any(cw.shape == want.shape and np.allclose(cw, want, atol=1e-7) for cw in conv_weights)

    assert exported(filt[0] - filt[1]) == (kind != "eSR-MAX")
    if kind != "eSR-MAX":
        assert exported(filt[2] - filt[3]) == (kind in ("eSR-TM", "eSR-CNN"))
        assert exported(filt[2] + filt[3]) == (kind == "eSR-CNN")
    if kind == "eSR-TM":
        producer = {o: node for node in nodes for o in node.output}
        (sigmoid,) = [node for node in nodes if node.op_type == "Sigmoid"]
        assert producer[sigmoid.input[0]].op_type == ("Slice" if joint else "Conv")


@pytest.mark.torch
@pytest.mark.parametrize("model_id", ["eSR-MAX_s2_K3_C1", "eSR-TR_s3_K5_C1", "eSR-CNN_s4_C1_D3_S3"])
def test_lean_with_one_channel_computes_the_value_filters_only(model_id, tmp_path):
    """C = 1: no reduction, and the exported graph's last conv has s*s filters, not k*s*s."""
    import onnx

    from harness.export import export_model

    module = module_of(model_id)
    s = module.scale
    path, form = export_model(model_id, module, tmp_path, form="lean")
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert form == "lean" and not ops & {"ReduceMax", "Softmax", "Exp", "DepthToSpace", "Transpose"}
    assert "Concat" in ops and graph.node[-1].op_type == "Gather"  # the shuffle: column Concat, row Gather
    dims = {i.name: list(i.dims) for i in graph.initializer}
    last = [n for n in graph.node if n.op_type == "Conv"][-1]
    assert dims[last.input[1]][0] == s * s


@pytest.mark.torch
@pytest.mark.parametrize("model_id", ["eSR-TM_s3_K3_C2", "eSR-TR_s2_K3_C2", "eSR-CNN_s4_C2_D3_S3", "eSR-TM_s2_K3_C3"])
def test_lean_softmax_is_stable_for_huge_keys(model_id):
    """Keys in the hundreds overflow a plain exp in fp32: lean (logistic of the difference for C = 2, the
    fast head's max-shifted exp otherwise) stays finite and equals the naive output."""
    module = module_of(model_id)
    s, c = module.scale, module.channels
    conv = module.filter if isinstance(module.filter, torch.nn.Conv2d) else module.filter[4]
    with torch.no_grad():
        conv.weight[c * s * s:].mul_(400.0)  # key (and query) channels only; values stay O(1)
    x = lr((1, 1, 16, 18), seed=5)
    with torch.no_grad():
        naive, lean = module(x), form_module(module, "lean")(x)
    assert torch.isfinite(naive).all() and torch.isfinite(lean).all()
    assert (lean - naive).abs().max().item() <= 1e-5 * max(1.0, naive.abs().max().item())


@pytest.mark.torch
def test_lean_fsrcnn_runs_leakyrelu_with_the_prelu_slopes(tmp_path):
    import onnx

    from harness.export import export_model

    module = module_of("FSRCNN_s2_D6_S3_M1")
    slopes = [float(m.weight.detach()) for m in module.net if isinstance(m, torch.nn.PReLU)]
    path, _ = export_model("FSRCNN_s2_D6_S3_M1", module, tmp_path, form="lean")
    graph = onnx.load(str(path)).graph
    alphas = [a.f for n in graph.node if n.op_type == "LeakyRelu" for a in n.attribute if a.name == "alpha"]
    assert not any(n.op_type == "PRelu" for n in graph.node)
    assert alphas == pytest.approx(slopes, abs=0) and len(alphas) == 4


@pytest.mark.torch
@pytest.mark.parametrize("slope", [-0.7, 0.0, 0.25, 1.0, 1.6, 3.0])
def test_prelu_keeps_its_exact_value_for_every_slope(slope, tmp_path):
    """``lean`` writes PReLU(a) as LeakyRelu(alpha=a): x if x >= 0 else a*x, for every a, in PyTorch and ONNX
    Runtime alike. ``Max(x, a*x)`` is PReLU only for a <= 1 (the issue's 0 <= a <= 1 is on the safe side;
    checked here: for a > 1 it returns a*x where x > 0), so it is not used."""
    from harness.export import export_model
    from harness.ortsession import ort_session

    module = module_of("FSRCNN_s3_D6_S3_M1")
    with torch.no_grad():
        for m in module.net:
            if isinstance(m, torch.nn.PReLU):
                m.weight.fill_(slope)
    x = lr((1, 1, 16, 20))
    with torch.no_grad():
        want = module(x)
        for form in ("lean", "pad", "subpix"):
            net = form_module(module, form)
            if net is not None:
                assert (net(x) - want).abs().max().item() <= 1e-5, form
        v = torch.linspace(-3, 3, 61)
        as_max = torch.maximum(v, slope * v)
        assert torch.equal(as_max, torch.nn.functional.prelu(v, torch.tensor([slope]))) == (slope <= 1.0)
    path, _ = export_model("FSRCNN_s3_D6_S3_M1", module, tmp_path, form="lean")
    session = ort_session(path)
    got = session.run(None, {"lr": x.numpy()})[0]
    assert np.abs(got - want.numpy()).max() <= 1e-5


@pytest.mark.torch
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pad_widens_hidden_layers_to_multiples_of_16_with_zeros(scale):
    module = module_of(f"ESPCN_s{scale}_D34_S21")
    padded = form_module(module, "pad")
    convs = [m for m in padded.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [48, 32, scale * scale]
    assert torch.count_nonzero(convs[0].weight[34:]) == 0 and torch.count_nonzero(convs[1].weight[:, 34:]) == 0
    assert torch.count_nonzero(convs[2].weight[:, 21:]) == 0
    x = lr()
    with torch.no_grad():
        assert (padded(x) - module(x)).abs().max().item() <= 1e-5


@pytest.mark.torch
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("kernel,padding,output_padding", [(9, None, None), ("bicubic", None, None)])
def test_a_strided_deconvolution_is_a_conv_to_phases_and_a_shuffle(scale, kernel, padding, output_padding):
    """FSRCNN's 9x9 and the official bicubic's (4s+3)x(4s+3) transposed convs, with several input channels."""
    from harness.models.fast import deconv_phases

    s = scale
    if kernel == "bicubic":
        deconv = torch.nn.ConvTranspose2d(3, 1, 4 * s + 3, stride=s, padding=(3 * s + 2) // 2 + 1,
                                          output_padding=(s + 1) % 2, bias=False)
    else:
        deconv = torch.nn.ConvTranspose2d(3, 1, 9, stride=s, padding=(9 - 1 - s) // 2 + 1, output_padding=(s + 1) % 2)
    with torch.no_grad():
        deconv.weight.copy_(torch.randn(deconv.weight.shape, generator=torch.Generator().manual_seed(1)))
    conv, got_scale = deconv_phases(deconv)
    assert got_scale == s and conv.out_channels == s * s
    x = lr((2, 3, 11, 13))
    with torch.no_grad():
        want = deconv(x)
        got = torch.nn.functional.pixel_shuffle(conv(x), s)
    assert got.shape == want.shape == (2, 1, 11 * s, 13 * s)
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.torch
def test_shuffle_t_is_pixel_shuffle():
    from harness.models.nets.fast import shuffle_t

    for s in (2, 3, 4):
        y = torch.arange(2 * s * s * 5 * 7, dtype=torch.float32).reshape(2, s * s, 5, 7)
        assert torch.equal(shuffle_t(y, s), torch.nn.functional.pixel_shuffle(y, s))


@pytest.mark.torch
@pytest.mark.parametrize("model_id,convs,splits", [("eSR-TM_s2_K3_C4", 2, 0),    # 16 filters a group: a conv each
                                                   ("eSR-TR_s4_K3_C4", 12, 0),   # 16 a row phase and group: a conv each
                                                   ("eSR-MAX_s4_K3_C4", 4, 0),   # 16 a row phase
                                                   ("eSR-TM_s3_K3_C4", 1, 1),    # 36 (48 blocked): one conv, a Split
                                                   ("eSR-MAX_s3_K3_C3", 1, 0),   # 27 (32 blocked), one group: no Split
                                                   ("eSR-CNN_s2_C6_D3_S6", 1, 1)])  # 24 (32 blocked)
def test_lean_heads_split_their_conv_only_where_the_blocks_are_full(model_id, convs, splits, tmp_path):
    import onnx

    from harness.export import export_model

    path, _ = export_model(model_id, module_of(model_id), tmp_path, form="lean")
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    body = 2 if model_id.startswith("eSR-CNN") else 0  # the CNN's first convs
    assert ops.count("Conv") - body == convs and ops.count("Split") == splits


@pytest.mark.torch
def test_bicubic_kernels_split_into_their_one_dimensional_taps():
    """Keys' cubic (a = -0.5) at x2 puts the phases at -1/4 and +1/4 (hand-computed taps, /128); a kernel
    that is no outer product, or whose taps do not sum to 1, has no separable form."""
    from harness.models.fast import separable_taps

    near = np.array([-3, 29, 111, -9, 0]) / 128.0  # offsets -2..2 from -1/4: W(1.75), W(0.75), W(0.25), W(1.25), 0
    taps = np.stack([near, near[::-1]])           # phase +1/4 is the mirror image
    module = resolve("Bicubic_s2").module
    rows, cols = separable_taps(module.conv.weight.detach(), 2)
    assert np.allclose(rows, taps, atol=1e-7) and np.allclose(cols, taps, atol=1e-7)
    kernel = torch.from_numpy(np.einsum("ai,bj->abij", taps, taps).reshape(4, 1, 5, 5))
    assert separable_taps(kernel, 2) is not None
    bent = kernel.clone()
    bent[0, 0, 2, 2] += 0.01                         # no longer rank one
    assert separable_taps(bent, 2) is None
    assert separable_taps(kernel * 1.1, 2) is None  # taps summing to 1.1


@pytest.mark.torch
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lean_bicubic_runs_two_one_dimensional_convs(scale, tmp_path):
    import onnx

    from harness.export import exported_onnx

    model = resolve(f"Bicubic_s{scale}")
    path, _ = exported_onnx(model, "lean", tmp_path)
    graph = onnx.load(str(path)).graph
    kernels = [tuple(n.dims) for n in graph.initializer if len(n.dims) == 5]
    assert sorted(kernels) == sorted([(scale, 1, 1, 1, 5), (scale, 1, 1, 5, 1)])
    ops = [n.op_type for n in graph.node]
    assert ops.count("Conv") == 2 and "Transpose" not in ops and ops[-1] == "Gather"


# --- through the export path: cached, verified, refused when wrong ------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("model_id", ["eSR-TM_s3_K3_C2", "ESPCN_s2_D22_S18", "FSRCNN_s4_D19_S12_M1", "eSR-Bicubic_s3",
                                      "Bicubic_s2"])
def test_exported_forms_run_in_onnx_runtime_like_the_naive_graph(model_id, tmp_path):
    from harness.export import exported_onnx
    from harness.ortsession import ort_session

    model = resolve(model_id)
    model.module = module_of(model_id)
    x = lr((1, 1, 21, 30)).numpy()
    outputs = {}
    for form in candidate_forms(model.module):
        path, written = exported_onnx(model, form, tmp_path)
        assert written == form and path.name == f"{model_id}.r{FORM_REVISION[form]}.{form}.onnx"  # its revision named
        assert Path(str(path) + ".sha256").is_file()  # verified against PyTorch and recorded
        outputs[form] = ort_session(path).run(None, {"lr": x})[0]
    for form, out in outputs.items():
        assert np.abs(out - outputs["naive"]).max() <= 1e-5, form


@pytest.mark.torch
def test_a_form_that_computes_something_else_is_refused(tmp_path, monkeypatch):
    """The export check compares every form with the PyTorch module itself: a wrong rewrite never lands."""
    import harness.models.fast as fast
    from harness.export import exported_onnx, module_digest

    model = resolve("ESPCN_s2_D0_S3")
    model.module = module_of("ESPCN_s2_D0_S3")
    real = fast.lean_form

    def wrong(module):
        net = real(module)
        return torch.nn.Sequential(net, torch.nn.Hardtanh(0.0, 0.5)) if net is not None else None

    monkeypatch.setitem(fast._BUILDERS, "lean", wrong)
    with pytest.raises(HarnessError, match="differs from PyTorch"):
        exported_onnx(model, "lean", tmp_path)
    assert not list((tmp_path / f"{model.id}.{module_digest(model.module)}").glob("*.onnx"))  # nothing kept


@pytest.mark.torch
def test_a_new_form_revision_is_exported_again_not_taken_from_the_cache(tmp_path, monkeypatch):
    """A changed form definition (its revision raised) must not reuse the verified file of the old one."""
    import harness.models.fast as fast
    from harness.export import exported_onnx

    model = resolve("ESPCN_s2_D0_S3")
    model.module = module_of("ESPCN_s2_D0_S3")
    first, _ = exported_onnx(model, "lean", tmp_path)
    assert exported_onnx(model, "lean", tmp_path)[0] == first  # the same revision: the cached file
    revision = fast.FORM_REVISION["lean"] + 1
    monkeypatch.setitem(fast.FORM_REVISION, "lean", revision)
    second, written = exported_onnx(model, "lean", tmp_path)
    assert written == "lean" and second != first and second.name == f"ESPCN_s2_D0_S3.r{revision}.lean.onnx"
    assert Path(str(second) + ".sha256").is_file()  # built and verified again


@pytest.mark.torch
def test_a_new_form_revision_deletes_the_older_revisions_files_only(tmp_path, monkeypatch):
    """The export cache keeps one file per form: a new revision's export deletes that form's older
    revisions (file, record, lock), not the other forms' files, not a newer revision an older checkout
    sharing the cache would leave, nor another model's."""
    import harness.models.fast as fast
    from harness.export import exported_onnx, module_digest

    model = resolve("ESPCN_s2_D0_S3")
    model.module = module_of("ESPCN_s2_D0_S3")
    old_lean, _ = exported_onnx(model, "lean", tmp_path)
    naive, _ = exported_onnx(model, "naive", tmp_path)
    folder = tmp_path / f"ESPCN_s2_D0_S3.{module_digest(model.module)}"
    revision = fast.FORM_REVISION["lean"]
    newer = folder / f"ESPCN_s2_D0_S3.r{revision + 2}.lean.onnx"  # left by a newer checkout
    other = folder / f"ESPCN_s2_D0_S30.r{revision}.lean.onnx"   # another id with this id as its prefix
    for path in (newer, other):
        path.write_bytes(b"x")
    assert Path(str(old_lean) + ".sha256").is_file() and Path(str(old_lean) + ".lock").is_file()
    monkeypatch.setitem(fast.FORM_REVISION, "lean", revision + 1)
    new_lean, _ = exported_onnx(model, "lean", tmp_path)
    left = sorted(p.name for p in folder.iterdir())
    assert not [name for name in left if name.startswith(old_lean.name)]  # the older revision: file, record, lock
    assert new_lean.name in left and f"{new_lean.name}.sha256" in left
    assert naive.name in left and f"{naive.name}.sha256" in left and newer.name in left and other.name in left


@pytest.mark.torch
def test_auto_leaves_out_a_refused_form_and_says_why(tmp_path, monkeypatch):
    """--form auto never runs a refused rewrite, and the model still runs (an explicit --form lean fails)."""
    import harness.models.fast as fast
    from harness.backends import make_backend

    monkeypatch.delenv("HARNESS_FORMS", raising=False)
    real = fast.lean_form
    monkeypatch.setitem(fast._BUILDERS, "lean", lambda m: torch.nn.Sequential(real(m), torch.nn.Hardtanh(0.0, 0.5)))
    tried = fake_timer(monkeypatch, {"naive": 0.02, "lean": 0.001})
    model = resolve("ESPCN_s2_D0_S3")
    session = make_backend("onnxruntime", threads=1, workdir=str(tmp_path), form="auto").prepare(model, [(1, 1, 9, 11)])
    assert session.form == "naive" and tried == [] and "differs from PyTorch" in session.details["form_refused"]["lean"]
    with pytest.raises(HarnessError, match="differs from PyTorch"):
        make_backend("onnxruntime", threads=1, workdir=str(tmp_path), form="lean").prepare(model, [(1, 1, 9, 11)])


# --- the official weights ------------------------------------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.shared
@pytest.mark.parametrize("fixture", PARITY or [None], ids=[p.stem for p in PARITY] or ["no-shared"])
def test_every_form_reproduces_the_official_output(fixture):
    if fixture is None or not MODEL_FILES.is_dir():
        pytest.skip(f"official eSR weights and parity fixtures not found under {OFFICIAL} (../shared)")
    model_id = esr.official_id(fixture.stem)
    module = esr.load_official(model_id, MODEL_FILES / f"{esr.official_name(model_id)}.model")
    data = np.load(fixture)
    x = torch.from_numpy(data["lr"][None, None])
    with torch.no_grad():
        for form in candidate_forms(module):
            sr = form_module(module, form)(x)[0, 0].numpy()
            assert np.abs(sr - data["sr"]).max() <= 1e-5, form


@pytest.mark.torch
@pytest.mark.shared
@pytest.mark.parametrize("stem", ["eSR-MAX_s2_K3_C1", "ESPCN_s2_D0_S3", "FSRCNN_s2_D6_S1_M1"])
def test_the_new_forms_of_the_slow_official_models_in_onnx_runtime(stem, tmp_path):
    fixture = OFFICIAL / "parity" / f"{stem}.npz"
    if not fixture.is_file() or not MODEL_FILES.is_dir():
        pytest.skip(f"official eSR weights and parity fixtures not found under {OFFICIAL} (../shared)")
    from harness.export import export_model
    from harness.ortsession import ort_session

    module = esr.load_official(stem, MODEL_FILES / f"{stem}.model")
    data = np.load(fixture)
    for form in candidate_forms(module):
        if form in BASE_FORMS:
            continue
        path, written = export_model(stem, module, tmp_path, form=form)
        assert written == form
        sr = ort_session(path).run(None, {"lr": data["lr"][None, None]})[0][0, 0]
        assert np.abs(sr - data["sr"]).max() <= 1e-5, form


# --- the auto choice -----------------------------------------------------------------------------------------------------
def fake_timer(monkeypatch, times):
    """ONNX Runtime's brief form trial returns ``times[form]`` seconds instead of timing (each trial
    appends its form to the list returned)."""
    import harness.backends.onnxruntime_backend as ob

    tried = []

    def quick_time(session, shape, runs=3, warm=True):
        tried.append(session.form)
        return times[session.form]

    monkeypatch.setattr(ob, "quick_time", quick_time)
    return tried


@pytest.mark.torch
@pytest.mark.parametrize("fastest", ["naive", "lean", "pad"])
def test_auto_keeps_a_form_only_when_it_is_faster(fastest, tmp_path, monkeypatch):
    from harness.backends import make_backend

    monkeypatch.delenv("HARNESS_FORMS", raising=False)
    times = {"naive": 0.012, "lean": 0.013, "pad": 0.014}  # all within the trial's cuts: three full rounds
    times[fastest] = 0.010
    tried = fake_timer(monkeypatch, times)
    model = resolve("ESPCN_s2_D22_S18")
    session = make_backend("onnxruntime", threads=1, workdir=str(tmp_path), form="auto").prepare(model, [(1, 1, 12, 16)])
    # the first form's priming run, a first run each, then three interleaved rounds
    assert sorted(tried) == ["lean"] * 5 + ["naive"] * 4 + ["pad"] * 4 and tried[0] == "lean"
    assert sorted(tried[1:4]) == sorted(tried[4:7]) == sorted(tried[10:]) == ["lean", "naive", "pad"]
    assert session.form == fastest and session.details["onnx"].endswith(f".{fastest}.onnx")
    assert session.details["form_trial_ms"] == {f: pytest.approx(t * 1e3) for f, t in times.items()}
    assert session.details["form_trial_runs"] == {"naive": 3, "lean": 3, "pad": 3}


def test_a_form_screened_out_in_a_row_is_left_out_then_rechecked():
    """Three models in a row whose trials screen naive out by its first runs: the fourth model of the
    same family and scale does not try it, and says why; another family or scale still does; every 10th
    model left out tries it again, and a form that survives a trial starts counting from zero."""
    from harness.backends.onnxruntime_backend import ScreenedForms

    memory = ScreenedForms(skip_after=3, recheck=10)
    tm2, tm3 = ("eSR-TM", 2, "fp32", "cpu"), ("eSR-TM", 3, "fp32", "cpu")
    screened = {"naive": {"first": 0.40, "second": 0.30, "runs": [], "screened": True},
                "fast": {"first": 0.09, "second": 0.08, "runs": [0.08]}, "lean": {"first": 0.10, "second": 0.07, "runs": [0.07]}}
    close = {"naive": {"first": 0.20, "second": 0.15, "runs": [0.09]}, "fast": {"first": 0.09, "second": 0.08, "runs": [0.08]},
             "lean": {"first": 0.10, "second": 0.07, "runs": [0.07]}}  # naive timed, not screened
    forms = ["fast", "lean", "naive"]
    for _ in range(2):
        memory.record(tm2, screened)
    assert memory.skipped(tm2, forms) == {}  # two in a row: not yet
    memory.record(tm2, screened)
    why = memory.skipped(tm2, forms)
    assert list(why) == ["naive"] and "last 3 eSR-TM x2 models" in why["naive"]
    assert memory.skipped(tm3, forms) == {} and memory.skipped(("ESPCN", 2, "fp32", "cpu"), forms) == {}
    assert memory.skipped(tm2, ["naive"]) == {}  # never every form
    left_out = [bool(memory.skipped(tm2, forms)) for _ in range(19)]  # the 2nd .. 20th model left out
    assert left_out.count(False) == 2 and not left_out[8] and not left_out[18]  # the 10th and 20th: a recheck
    memory.record(tm2, close)  # the recheck's trial timed naive: the streak starts again
    assert memory.skipped(tm2, forms) == {}


@pytest.mark.torch
def test_a_sweep_stops_exporting_a_form_its_family_always_screens_out(tmp_path, monkeypatch):
    """Through the backend: after three models of ESPCN x2 whose naive graph was over 3x the fastest second run,
    the fourth exports and tries lean and pad only, and records the form it skipped."""
    from harness.backends import make_backend

    monkeypatch.delenv("HARNESS_FORMS", raising=False)
    tried = fake_timer(monkeypatch, {"naive": 0.05, "lean": 0.010, "pad": 0.011})
    backend = make_backend("onnxruntime", threads=1, workdir=str(tmp_path), form="auto")
    for _ in range(3):
        session = backend.prepare(resolve("ESPCN_s2_D22_S18"), [(1, 1, 12, 16)])
        assert "form_skipped" not in session.details and session.details["form_trial_runs"]["naive"] == 0
    tried.clear()
    session = backend.prepare(resolve("ESPCN_s2_D22_S18"), [(1, 1, 12, 16)])
    assert "naive" not in tried and sorted(set(tried)) == ["lean", "pad"]
    assert list(session.details["form_skipped"]) == ["naive"] and "naive" not in session.details["form_trial_ms"]
    tried.clear()
    session = backend.prepare(resolve("ESPCN_s3_D22_S18"), [(1, 1, 12, 16)])  # another scale: tried
    assert "naive" in tried and "form_skipped" not in session.details


def _scripted_trial(monkeypatch, samples, prime: bool = False):
    """Run :func:`trial_times` (no pauses; by default no priming run) on fake sessions whose successive trial
    runs take ``samples[form]`` seconds; returns (the order of the runs, whether each run was a warm one, the
    trial's result)."""
    import types

    import harness.backends.onnxruntime_backend as ob

    runs_of = {form: iter(values) for form, values in samples.items()}
    order, warm_runs = [], []

    def quick_time(session, shape, runs=3, warm=True):
        assert runs == 1  # one run at a time: the first (warm-up) run, then one per round
        order.append(session.form)
        warm_runs.append(warm)
        return next(runs_of[session.form])

    monkeypatch.setattr(ob, "quick_time", quick_time)
    sessions = {f: types.SimpleNamespace(form=f) for f in samples}
    return order, warm_runs, ob.trial_times(sessions, (1, 1, 4, 4), prime=prime, pause=0.0)


def _shape_aware_timer(monkeypatch, strip_s, full_s):
    """``quick_time`` faked: ``strip_s[form]`` seconds on a strip (fewer rows than the full shape), else
    ``full_s[form]``; returns the list of (form, rows) runs."""
    import harness.backends.onnxruntime_backend as ob

    order = []

    def quick_time(session, shape, runs=1, warm=True):
        order.append((session.form, shape[2]))
        return strip_s[session.form] if shape[2] < FULL_ROWS else full_s[session.form]

    monkeypatch.setattr(ob, "quick_time", quick_time)
    return order


FULL_ROWS = 135  # the test's "Full-HD" input: 135 rows, so a strip of 135 // 8 = 16 rows


def test_a_form_over_4x_on_the_strip_never_runs_at_full_size(monkeypatch):
    """naive takes 4.2x the fastest form's better strip run: screened out by the strip (two runs of 16 rows), never
    run at 135 rows; pad at 3.9x on the strip stays in and runs the full-size trial."""
    import types

    import harness.backends.onnxruntime_backend as ob

    assert ob.strip_shape((1, 1, FULL_ROWS, 240)) == (1, 1, 16, 240)
    assert ob.strip_shape((1, 1, 127, 240)) is None  # under 16 rows of strip: no strip runs
    runs = _shape_aware_timer(monkeypatch, {"lean": 0.010, "pad": 0.039, "naive": 0.042},
                              {"lean": 0.080, "pad": 0.090, "naive": 0.300})
    sessions = {f: types.SimpleNamespace(form=f) for f in ("lean", "pad", "naive")}
    trial = ob.trial_times(sessions, (1, 1, FULL_ROWS, 240), pause=0.0, strip=(1, 1, 16, 240))
    assert runs[:6] == [("lean", 16)] * 2 + [("pad", 16)] * 2 + [("naive", 16)] * 2  # two strip runs each
    assert ("naive", FULL_ROWS) not in runs and trial["naive"]["screened"] == "strip"
    assert trial["naive"]["strip"] == [0.042, 0.042] and trial["naive"]["runs"] == [] and "first" not in trial["naive"]
    assert not trial["pad"].get("screened") and trial["pad"]["first"] == 0.090 and trial["pad"]["runs"]


@pytest.mark.torch
def test_the_cpu_backend_screens_on_a_strip_and_records_it(tmp_path, monkeypatch):
    from harness.backends import make_backend

    monkeypatch.delenv("HARNESS_FORMS", raising=False)
    import harness.backends.onnxruntime_backend as ob

    runs = _shape_aware_timer(monkeypatch, {"lean": 0.002, "pad": 0.0025, "naive": 0.0085},
                              {"lean": 0.012, "pad": 0.010, "naive": 0.050})
    opened = []
    real = ob.ort_session
    monkeypatch.setattr(ob, "ort_session", lambda path, **kw: opened.append((Path(path).name.split(".")[-2],
                                                                             kw["spin_stop"])) or real(path, **kw))
    model = resolve("ESPCN_s2_D22_S18")
    session = make_backend("onnxruntime", threads=1, workdir=str(tmp_path), form="auto").prepare(
        model, [(1, 1, FULL_ROWS, 240)])
    assert session.form == "pad" and ("naive", FULL_ROWS) not in runs
    assert session.details["form_strip_ms"] == {"lean": 2.0, "pad": 2.5, "naive": 8.5}
    assert session.details["form_strip_rows"] == 16 and set(session.details["form_trial_ms"]) == {"lean", "pad"}
    assert "naive" not in session.details["form_first_run_ms"] and session.details["form_trial_runs"]["naive"] == 0
    # the trial's sessions stopped spinning after each run; pad is timed in a fresh session that spins as usual
    assert sorted(opened[:3]) == [("lean", True), ("naive", True), ("pad", True)] and opened[3:] == [("pad", False)]
    assert session.details["fresh_after_trial"]
    with pytest.raises(RuntimeError, match="force_spinning_stop"):
        session.session.get_session_options().get_session_config_entry("session.force_spinning_stop")


def test_the_trial_takes_the_median_of_interleaved_rounds(monkeypatch):
    """Each form's first run (its warm-up) is timed apart; one slow timed run (a hiccup, within the first cut
    of 2x) does not decide: the median of the rounds does."""
    order, warm, trial = _scripted_trial(monkeypatch, {"naive": [0.030, 0.010, 0.011, 0.012],
                                                       "lean": [0.040, 0.015, 0.008, 0.009]})
    assert order == ["naive", "lean"] * 4  # the first runs, then three interleaved rounds
    assert warm == [False] * 8  # the first run is the warm-up: no hidden extra run
    assert trial == {"naive": {"first": 0.030, "runs": [0.010, 0.011, 0.012]},
                     "lean": {"first": 0.040, "runs": [0.015, 0.008, 0.009]}}  # medians 11 ms and 9 ms


def test_the_trial_primes_its_first_form_and_pauses_between_sessions(monkeypatch):
    """The first form runs once untimed before the first runs (the first run after the exports is slow by
    itself), and each run of another session than the one before waits the pause (the pool threads of the
    session just run spin on): between the first runs and between forms in a round, not before a repeat."""
    import harness.backends.onnxruntime_backend as ob

    order, _, trial = _scripted_trial(monkeypatch, {"lean": [0.150, 0.030, 0.010, 0.011, 0.012],
                                                    "naive": [0.050, 0.012, 0.013, 0.014]}, prime=True)
    assert order == ["lean"] * 2 + ["naive"] + ["lean", "naive"] * 3
    assert trial["lean"] == {"primed": 1, "first": 0.030, "runs": [0.010, 0.011, 0.012]}  # 150 ms: the prime
    assert trial["naive"]["first"] == 0.050  # 1.7x the primed first run: timed (unprimed, 150 ms would cut lean)
    slept, ran = [], []
    monkeypatch.setattr(ob.time, "sleep", lambda s: slept.append((len(ran), s)))
    monkeypatch.setattr(ob, "quick_time", lambda session, shape, runs=1, warm=True: ran.append(session.form) or 0.01)
    import types
    sessions = {f: types.SimpleNamespace(form=f) for f in ("lean", "naive")}
    ob.trial_times(sessions, (1, 1, 4, 4), rounds=1)
    assert ran == ["lean", "lean", "naive", "lean", "naive"]
    assert slept == [(2, ob.TRIAL_PAUSE_S), (3, ob.TRIAL_PAUSE_S), (4, ob.TRIAL_PAUSE_S)]  # before each switch


def test_a_clearly_slower_form_leaves_the_trial_early(monkeypatch):
    """A first run over 5x the fastest first run: never run again; over 3x (within 5x): run once more, and
    not timed when that run too is over 3x; 3x slower after one round (over the first cut, 2x): not run
    again; 1.7x after two rounds (over 1.5x): out before the third; the trial stops when one form is left."""
    order, _, trial = _scripted_trial(monkeypatch, {"naive": [0.110], "subpix": [0.020, 0.030],
                                                    "fast": [0.020, 0.010, 0.010, 0.011],
                                                    "lean": [0.025, 0.011, 0.023, 0.012],
                                                    "pad": [0.080, 0.070]})
    # first runs: naive 110 ms > 5 x 20 ms -> out; pad 80 ms (4x) runs again, 70 ms > 3 x 20 ms -> out;
    # round 1: subpix 30 ms > 2 x 10 ms -> out; round 2: lean median 17 ms > 1.5 x fast's 10 ms -> out; fast alone
    assert order == ["naive", "subpix", "fast", "lean", "pad", "pad", "subpix", "fast", "lean", "fast", "lean"]
    assert trial["naive"] == {"first": 0.110, "runs": [], "screened": True}
    assert trial["pad"] == {"first": 0.080, "second": 0.070, "runs": [], "screened": True}
    assert trial["subpix"]["runs"] == [0.030] and not trial["subpix"].get("screened")
    assert trial["fast"]["runs"] == [0.010, 0.010] and trial["lean"]["runs"] == [0.011, 0.023]
    order, _, trial = _scripted_trial(monkeypatch, {"naive": [0.050, 0.019, 0.020, 0.021],
                                                    "fast": [0.020, 0.010, 0.010, 0.010]})
    # a first run 2.5x (within 3x) is timed; 1.9x after round 1 (within 2x) stays; 1.95x after round 2 leaves
    assert order == ["naive", "fast"] * 3 and len(trial["fast"]["runs"]) == 2


def test_a_form_whose_first_run_pays_for_its_memory_is_still_timed(monkeypatch):
    """eSR-TM_s2_K7_C16 as measured with ONNX Runtime's memory pattern on: lean's first run 6x its later ones,
    3.06x fast's first run; its second run is within 3x, so the rounds time it, and it wins."""
    order, _, trial = _scripted_trial(monkeypatch, {"fast": [0.187, 0.175, 0.176, 0.175],
                                                    "lean": [0.573, 0.194, 0.092, 0.093, 0.092]})
    assert order == ["fast", "lean", "lean", "fast", "lean", "fast", "lean"]
    assert trial["lean"] == {"first": 0.573, "second": 0.194, "runs": [0.092, 0.093]}
    assert trial["fast"]["runs"] == [0.175, 0.176]  # 1.9x after round 1, 1.9x after round 2 (over 1.5x): out


@pytest.mark.torch
def test_a_slower_new_form_is_not_kept_and_harness_forms_limits_the_trial(tmp_path, monkeypatch):
    from harness.backends import make_backend

    tried = fake_timer(monkeypatch, {"naive": 0.020, "fast": 0.015, "lean": 0.016})
    model = resolve("eSR-TM_s2_K3_C2")
    be = make_backend("onnxruntime", threads=1, workdir=str(tmp_path), form="auto")
    assert be.prepare(model, [(1, 1, 12, 16)]).form == "fast"  # lean timed, slower by a hair: not kept
    assert sorted(set(tried)) == ["fast", "lean", "naive"]
    tried.clear()
    monkeypatch.setenv("HARNESS_FORMS", "naive,fast")
    assert be.prepare(model, [(1, 1, 12, 16)]).form == "fast" and sorted(set(tried)) == ["fast", "naive"]
    monkeypatch.setenv("HARNESS_FORMS", "naive,quick")
    with pytest.raises(HarnessError, match="HARNESS_FORMS.*quick"):
        be.prepare(model, [(1, 1, 12, 16)])


@pytest.mark.torch
def test_an_explicit_form_runs_that_form_alone(tmp_path, monkeypatch):
    from harness.backends import make_backend

    tried = fake_timer(monkeypatch, {})
    model = resolve("FSRCNN_s2_D6_S1_M1")
    for form in ("subpix", "lean", "pad"):  # FSRCNN D6 has no width to pad: its naive graph runs
        session = make_backend("onnxruntime", threads=1, workdir=str(tmp_path), form=form).prepare(model, [(1, 1, 9, 11)])
        assert session.form == (form if form != "pad" else "naive") and "form_trial_ms" not in session.details
    assert tried == []


@pytest.mark.torch
def test_an_export_folder_holds_the_new_forms_and_the_device_path_chooses_among_them(tmp_path, monkeypatch):
    """export_models writes each form the family has (a form it lacks is left out, not written as a copy of
    naive); an ONNX Runtime session on the folder's files (no PyTorch needed) times them all and keeps the fastest."""
    from harness.backends import make_backend
    from harness.exported import export_models, resolve_model

    out = tmp_path / "onnx"
    manifest = export_models([("FSRCNN_s2_D6_S1_M1", 2)], out, weights="init", forms=FORMS)
    (entry,) = manifest["models"]
    assert set(entry["files"]) == {"naive", "lean", "subpix"}
    model = resolve_model("FSRCNN_s2_D6_S1_M1", 2, onnx_dir=out)
    assert set(model.onnx_forms) == {"naive", "lean", "subpix"}
    monkeypatch.delenv("HARNESS_FORMS", raising=False)
    tried = fake_timer(monkeypatch, {"naive": 0.03, "lean": 0.02, "subpix": 0.01})
    session = make_backend("onnxruntime", threads=1, form="auto").prepare(model, [(1, 1, 9, 11)])
    assert session.form == "subpix" and sorted(set(tried)) == ["lean", "naive", "subpix"]
    x = lr((1, 1, 9, 11)).numpy()
    want = make_backend("onnxruntime", threads=1, form="naive").prepare(model, [(1, 1, 9, 11)]).infer(x)
    assert np.abs(session.infer(x) - want).max() <= 1e-5
