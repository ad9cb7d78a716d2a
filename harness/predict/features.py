"""Per-model features for the speed predictor: what a network costs per Full-HD output frame.

Every feature comes from one shapes-only forward pass on PyTorch's meta device (no weights, no
compute), so the 1185 models of the eSR pool take well under a minute and are cached:

* from :func:`harness.models.complexity.complexity`: ``params``, ``macs`` (multiply-accumulates
  of convolutions and matmuls per Full-HD output frame) and ``bytes`` (the fp32 roofline traffic);
* from the ATen operators the forward dispatches (so functional code, ``torch.softmax`` inside a
  ``forward``, counts as well as modules): ``ops`` (kernels that write a tensor: every
  operator except views), and, per kind of operator, the elements it writes per frame:
  ``conv_elems``, ``elementwise_elems`` (activations, products, sums of tensors),
  ``softmax_elems``, ``reduce_elems`` (its input: max/sum over channels), ``copy_elems``
  (pixel shuffle, cat, contiguous), ``matmul_elems``, ``norm_elems``, ``other_elems``;
* from the leaf modules and PyTorch's own composite layers (``nn.MultiheadAttention``): the count of
  each module class (``layers``), the largest kernel side
  (``max_kernel``) and the widest layer in channels (``max_width``); ``op_kinds`` lists the ATen
  operator names seen (the "unlike the pool" check compares them with the fitted pool's).

Ids in the eSR authors' table name their bicubic deconvolution ``Bicubic_s*``; here it is
``eSR-Bicubic_s*`` (:func:`harness.models.esr.official_id`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

from ..cachefile import load_or_build, verified, write_record

#: bump when the definition of a feature changes (part of the cache key)
FEATURE_VERSION = 2
FHD = (1080, 1920)

#: ATen operators that only re-view a tensor (no kernel, no memory traffic)
VIEW_OPS = {"view", "_unsafe_view", "reshape", "split", "split_with_sizes", "unbind", "select", "slice", "narrow",
            "permute", "transpose", "t", "expand", "squeeze", "unsqueeze", "alias", "as_strided", "detach",
            "lift_fresh", "empty", "empty_like", "new_empty", "view_as", "chunk", "flatten", "unflatten",
            "_reshape_alias", "numpy_T", "movedim", "empty_strided", "zeros", "ones", "full", "scalar_tensor",
            "_to_copy", "to", "_local_scalar_dense", "sym_size", "sym_stride"}
KINDS = ("conv", "elementwise", "softmax", "reduce", "copy", "matmul", "norm", "other")
_CONV = {"convolution", "_convolution", "conv2d", "conv_transpose2d", "cudnn_convolution", "mkldnn_convolution"}
_SOFTMAX = {"_softmax", "softmax", "_log_softmax", "log_softmax", "_safe_softmax"}
_REDUCE = {"max", "amax", "sum", "mean", "min", "amin", "argmax", "prod", "var", "std", "logsumexp"}
_COPY = {"pixel_shuffle", "pixel_unshuffle", "cat", "clone", "contiguous", "copy_", "copy", "stack", "constant_pad_nd",
         "reflection_pad2d", "replication_pad2d", "pad", "upsample_nearest2d", "upsample_bilinear2d",
         "upsample_bicubic2d", "roll", "index", "gather", "repeat"}
_MATMUL = {"mm", "bmm", "addmm", "matmul", "baddbmm", "linear", "_scaled_dot_product_flash_attention",
           "_scaled_dot_product_efficient_attention", "scaled_dot_product_attention",
           "_scaled_dot_product_flash_attention_for_cpu", "einsum"}
_NORM = {"native_layer_norm", "layer_norm", "native_batch_norm", "_native_batch_norm_legit_no_training",
         "_native_batch_norm_legit", "batch_norm", "native_group_norm", "group_norm"}
_ELEMENTWISE = {"tanh", "sigmoid", "relu", "relu_", "gelu", "silu", "hardswish", "hardsigmoid", "leaky_relu",
                "prelu", "_prelu_kernel", "elu", "mul", "mul_", "add", "add_", "sub", "div", "neg", "exp", "log",
                "clamp", "clamp_min", "clamp_max", "hardtanh", "where", "abs", "pow", "sqrt", "rsqrt", "erf",
                "maximum", "minimum", "round", "floor", "sign", "addcmul", "lerp", "mish", "softplus", "threshold"}


def op_kind(name: str) -> Optional[str]:
    """The kind of an ATen operator (``aten.tanh.default`` -> ``tanh`` -> ``elementwise``); None for a view."""
    if name in VIEW_OPS:
        return None
    for kind, names in (("conv", _CONV), ("softmax", _SOFTMAX), ("reduce", _REDUCE), ("copy", _COPY),
                        ("matmul", _MATMUL), ("norm", _NORM), ("elementwise", _ELEMENTWISE)):
        if name in names:
            return kind
    return "other"


def _aten_pass(module, shape) -> Tuple[Dict[str, int], Dict[str, int]]:
    """One meta forward under a dispatch mode: (elements written per kind, count of each operator name)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    elems = {k: 0 for k in KINDS}
    names: Dict[str, int] = {}

    def numel(obj) -> int:
        if isinstance(obj, torch.Tensor):
            return obj.numel()
        if isinstance(obj, (list, tuple)):
            return sum(numel(o) for o in obj)
        return 0

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            kind = op_kind(name)
            if kind is not None:
                names[name] = names.get(name, 0) + 1
                if kind == "reduce":  # a reduction reads its whole input: that is its cost
                    elems[kind] += numel(args[0]) if args else numel(out)
                elif name in ("max", "min") and isinstance(out, tuple):
                    elems[kind] += numel(out[0])
                else:
                    elems[kind] += numel(out)
            return out

    x = torch.empty(shape, device="meta")
    with torch.no_grad(), Count():
        module(x)
    return elems, names


def _leaf_layers(module) -> Tuple[Dict[str, int], int, int]:
    """(count of each leaf module class, largest kernel side, widest layer in channels)."""
    from torch import nn

    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    layers: Dict[str, int] = {}
    max_kernel, max_width = 0, 0
    for m in module.modules():
        # the leaves, and PyTorch's own composite layers (nn.MultiheadAttention, nn.TransformerEncoderLayer...)
        if list(m.children()) and (not type(m).__module__.startswith("torch.nn.") or m is module
                                   or isinstance(m, containers)):
            continue
        name = type(m).__name__
        layers[name] = layers.get(name, 0) + 1
        k = getattr(m, "kernel_size", None)
        if isinstance(k, (tuple, list)) and k and all(isinstance(v, int) for v in k):
            max_kernel = max(max_kernel, max(k))
        elif isinstance(k, int):
            max_kernel = max(max_kernel, k)
        for attr in ("in_channels", "out_channels", "in_features", "out_features", "embed_dim", "num_features"):
            v = getattr(m, attr, None)
            if isinstance(v, int):
                max_width = max(max_width, v)
        shape = getattr(m, "normalized_shape", None)
        if isinstance(shape, (tuple, list)) and shape:
            max_width = max(max_width, int(shape[-1]))
    return layers, max_kernel, max_width


def module_features(module, scale: int, channels: Optional[int] = None, out_hw=FHD) -> Dict:
    """The features of ``module`` (an ``nn.Module``) producing one ``out_hw`` frame at ``scale``.

    ``channels``: its input channels (1 for the Y-channel eSR pool, 3 for RGB models); None reads it
    from the first convolution (1 when there is none).
    """
    import copy

    from ..models.complexity import complexity, lr_shape

    if channels is None:
        channels = next((m.in_channels for m in module.modules() if hasattr(m, "in_channels")
                         and type(m).__name__.startswith("Conv") and not type(m).__name__.startswith("ConvTranspose")),
                        None) or next((m.in_channels for m in module.modules() if hasattr(m, "in_channels")), 1)
    c = complexity(module, scale, out_hw, channels)
    meta = copy.deepcopy(module).to("meta").eval()
    elems, names = _aten_pass(meta, lr_shape(scale, out_hw, channels))
    layers, max_kernel, max_width = _leaf_layers(module)
    out = {"scale": int(scale), "channels": int(channels), "params": c["params"], "macs": c["macs_per_fhd"],
           "bytes": c["bytes_per_fhd"], "ops": int(sum(names.values())), "layers": layers,
           "max_kernel": int(max_kernel), "max_width": int(max_width), "op_kinds": sorted(names)}
    out.update({f"{k}_elems": int(v) for k, v in elems.items()})
    return out


def paper_to_zoo_id(model: str) -> str:
    """The zoo id of a model id of the eSR authors' table (``Bicubic_s2`` -> ``eSR-Bicubic_s2``)."""
    from ..models.esr import official_id

    return official_id(model)


def build_module(model_id: str, scale: Optional[int] = None):
    """The ``nn.Module`` of a zoo id (fresh weights: features need shapes only) and its scale."""
    from ..models import esr
    from ..models.registry import id_scale, resolve

    model_id = paper_to_zoo_id(model_id)
    try:
        family, p = esr.parse(model_id)
        return esr.build_module(model_id), p["scale"]
    except Exception:  # noqa: BLE001 - not an eSR-pool id: the registry builds it
        model = resolve(model_id, scale)
        module = getattr(model, "module", None)
        if module is None:
            from ..errors import HarnessError

            raise HarnessError(f"{model_id}: not a PyTorch model; the speed predictor needs its network")
        return module, int(model.scale if getattr(model, "scale", None) else (id_scale(model_id) or scale))


def model_features(model_id: str, scale: Optional[int] = None) -> Dict:
    module, s = build_module(model_id, scale)
    feats = module_features(module, s)
    feats["model"] = model_id
    return feats


# --- the pool's features, cached ---------------------------------------------------------------

def _sources_digest() -> str:
    """What the features depend on besides the ids: this module, the complexity count, the eSR nets, torch."""
    import torch

    from ..models import complexity as cx
    from ..models import esr
    from ..models.nets import esr as nets

    h = hashlib.sha256(f"v{FEATURE_VERSION} torch {torch.__version__}".encode())
    for mod in (__import__(__name__, fromlist=["x"]), cx, esr, nets):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()


def cache_path(models: Sequence[str], folder: Optional[Path] = None) -> Path:
    from ..weights import cache_dir

    key = hashlib.sha256((_sources_digest() + "\n" + "\n".join(sorted(models))).encode()).hexdigest()[:16]
    return Path(folder or cache_dir() / "predict") / f"features-{key}.json"


def pool_features(models: Iterable[str], folder: Optional[Path] = None) -> Dict[str, Dict]:
    """model id -> features for every id of ``models`` (ids of the eSR table or zoo ids), cached in
    ``$HARNESS_CACHE/predict/`` under a key of the ids, this module, the nets' sources and torch's version."""
    models = sorted(set(models))
    path = cache_path(models, folder)

    def load(p: Path) -> Dict[str, Dict]:
        data = json.loads(verified(p).read_text())
        if sorted(data) != models:
            raise ValueError("the cached ids differ")
        return data

    def build(tmp: Path) -> Dict[str, Dict]:
        data = {m: model_features(m) for m in models}
        tmp.write_text(json.dumps(data, sort_keys=True))
        write_record(path, built=tmp)
        return data

    return load_or_build(path, load, build, what="predictor feature cache")
