"""The edge-SR (eSR) model families of Navarrete Michelini, Lu and Jiang (WACV 2022).

The networks are rebuilt here so that the 1185 published ``<id>.model`` state dicts
(pnavarre/eSR) load with ``strict=True`` and reproduce the official fp32 output to 1e-5:
module attribute names, ``nn.Sequential`` indices, paddings and bias flags all follow the
published files. Ids, state-dict keys and shapes (s = scale):

* ``eSR-MAX_s{s}_K{k}_C{c}``  ``filter.weight`` (s*s*C, 1, K, K), no bias, padding (K-1)//2;
  PixelShuffle(s), then the max over the C channels.
* ``eSR-TM_s{s}_K{k}_C{c}``   ``filter.weight`` (2*s*s*C, 1, K, K); PixelShuffle; value = first C
  channels, key = next C; output sum_C value * softmax_C(key).
* ``eSR-TR_s{s}_K{k}_C{c}``   ``filter.weight`` (3*s*s*C, 1, K, K); value, query, key;
  sum_C value * softmax_C(query * key).
* ``eSR-CNN_s{s}_C{c}_D{d}_S{s2}``  ``filter.{0,2,4}``: Conv 5x5 pad 2 (1->D, bias), Tanh,
  Conv 3x3 pad 1 (D->S, bias), Tanh, Conv 3x3 pad 1 (S->2*s*s*C, no bias), PixelShuffle;
  sum_C value * softmax_C(key * key).
* ``ESPCN_s{s}_D{d}_S{s2}``  ``net.{0,2,4}``: Conv 5x5 pad 2 (1->D), Tanh, Conv 3x3 pad 1 (D->S),
  Tanh, Conv 3x3 pad 1 (S->s*s), PixelShuffle, Sigmoid, all convs with bias; D = 0 drops the
  first conv: ``net.{0,2}`` = Conv 3x3 pad 1 (1->S), Tanh, Conv 3x3 pad 1 (S->s*s), ...
* ``FSRCNN_s{s}_D{d}_S{s2}_M{m}``  ``net.*``: Conv 5x5 pad 2 (1->D), PReLU, Conv 1x1 (D->S),
  PReLU, M x (Conv 3x3 pad 1 (S->S), PReLU), Conv 1x1 (S->D), PReLU, ConvTranspose2d(D->1, 9,
  stride s, padding (9-1-s)//2+1, output_padding (s+1)%2) -- exactly s*H x s*W. Every PReLU
  has one shared slope (``net.{1,3,...}.weight`` of shape (1,)); every conv has a bias.
* ``eSR-Bicubic_s{s}``  ``net.weight`` (1, 1, 4s+3, 4s+3), stored fp16: the official
  ``Bicubic_s{s}.model`` (a ConvTranspose2d, stride s, padding (3s+2)//2+1, output_padding
  (s+1)%2, no bias). Renamed because our own ``Bicubic_s{s}`` (bicubic.py) is on MATLAB's
  grid and this one is not at x3; see :func:`official_bicubic_kernel`.

The Y input is (N, 1, H, W) in [0, 1]; outputs are (N, 1, sH, sW) and never clamped (ESPCN
ends in a sigmoid by design; the others can leave [0, 1]).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np

from ..errors import HarnessError
from .base import TorchUpscaler, load_state_strict, read_state_dict
from .registry import unknown_id_message

# --- design space (the published pool: 395 models per scale with our Bicubic_s{s}) ---------
ATTENTION_KERNELS = (3, 5, 7)
ATTENTION_CHANNELS = tuple(range(1, 17))
CNN_CHANNELS = (2, 4, 6, 8)
CNN_D = (1, 3, 5, 7, 9)
CNN_S = (3, 6, 9, 12, 15)
# ESPCN was published on two (D, S) grids: small first layers with odd S, wide ones with even S.
ESPCN_GRIDS = (
    ((0, 1, 2, 3, 5, 6, 7, 9, 10, 11), (3, 9, 15, 21, 27)),
    ((4, 8, 12, 16, 22, 28, 34, 40, 52, 64), (6, 12, 18, 24, 32)),
)
FSRCNN_D = (6, 19, 32, 44, 56)
FSRCNN_S = (1, 3, 6, 9, 12)
FSRCNN_M = (1, 4)

_POS = r"[1-9]\d*"   # a positive integer without leading zeros
_ODD = r"\d*[13579]"  # odd kernel sizes only: an even K with padding (K-1)//2 shrinks the image
_SCALE = r"s(?P<scale>[1-9]\d*)"

PATTERNS: Dict[str, "re.Pattern"] = {
    "eSR-MAX": re.compile(rf"eSR-MAX_{_SCALE}_K(?P<K>{_ODD})_C(?P<C>{_POS})"),
    "eSR-TM": re.compile(rf"eSR-TM_{_SCALE}_K(?P<K>{_ODD})_C(?P<C>{_POS})"),
    "eSR-TR": re.compile(rf"eSR-TR_{_SCALE}_K(?P<K>{_ODD})_C(?P<C>{_POS})"),
    # D = 0 is not allowed: the authors' D = 0 branch builds a conv with 0 input channels.
    "eSR-CNN": re.compile(rf"eSR-CNN_{_SCALE}_C(?P<C>{_POS})_D(?P<D>{_POS})_S(?P<S>{_POS})"),
    "ESPCN": re.compile(rf"ESPCN_{_SCALE}_D(?P<D>0|{_POS})_S(?P<S>{_POS})"),
    "FSRCNN": re.compile(rf"FSRCNN_{_SCALE}_D(?P<D>{_POS})_S(?P<S>{_POS})_M(?P<M>{_POS})"),
    "eSR-Bicubic": re.compile(rf"eSR-Bicubic_{_SCALE}"),
}

DESCRIPTIONS: Dict[str, str] = {
    "eSR-MAX": "edge-SR max: one KxK conv to s*s*C channels, PixelShuffle, max over C (Y channel)",
    "eSR-TM": "edge-SR template matching: KxK conv, PixelShuffle, value x softmax(key) over C",
    "eSR-TR": "edge-SR transformer: KxK conv, PixelShuffle, value x softmax(query*key) over C",
    "eSR-CNN": "edge-SR CNN: 5x5-3x3-3x3 tanh CNN, PixelShuffle, value x softmax(key^2) over C",
    "ESPCN": "ESPCN (Shi et al. 2016) as retrained by the eSR authors: tanh CNN, PixelShuffle, sigmoid",
    "FSRCNN": "FSRCNN (Dong et al. 2016) as retrained by the eSR authors: PReLU CNN, 9x9 deconvolution",
    "eSR-Bicubic": "the eSR authors' bicubic deconvolution (official Bicubic_s*.model; off MATLAB's grid at x3)",
}


def design_space(family: str, scale: int) -> List[str]:
    """Every published id of ``family`` at ``scale``, in the authors' parameter order."""
    s = scale
    if family in ("eSR-MAX", "eSR-TM", "eSR-TR"):
        return [f"{family}_s{s}_K{k}_C{c}" for k in ATTENTION_KERNELS for c in ATTENTION_CHANNELS]
    if family == "eSR-CNN":
        return [f"eSR-CNN_s{s}_C{c}_D{d}_S{n}" for c in CNN_CHANNELS for d in CNN_D for n in CNN_S]
    if family == "ESPCN":
        return [f"ESPCN_s{s}_D{d}_S{n}" for ds, ns in ESPCN_GRIDS for d in ds for n in ns]
    if family == "FSRCNN":
        return [f"FSRCNN_s{s}_D{d}_S{n}_M{m}" for d in FSRCNN_D for n in FSRCNN_S for m in FSRCNN_M]
    if family == "eSR-Bicubic":
        return [f"eSR-Bicubic_s{s}"]
    raise KeyError(family)


def parse(model_id: str) -> Tuple[str, Dict[str, int]]:
    """``'eSR-TM_s2_K7_C3'`` -> ``('eSR-TM', {'scale': 2, 'K': 7, 'C': 3})``; HarnessError if unknown."""
    for family, pattern in PATTERNS.items():
        m = pattern.fullmatch(model_id)
        if m:
            return family, {k: int(v) for k, v in m.groupdict().items()}
    raise HarnessError(unknown_id_message(model_id))


# --- the official bicubic deconvolution ------------------------------------------------------
def official_bicubic_kernel(scale: int) -> np.ndarray:
    """The (4s+3, 4s+3) float64 ConvTranspose2d kernel of the authors' ``Bicubic_s{s}``.

    Re-derived because the init of ``eSR-Bicubic`` must not need the files (this kernel
    rounded to fp16 equals the published ``net.weight`` bit for bit): Keys' cubic (a = -0.5) stretched by s, sampled
    at taps k = 0..4s+1 at distance k - (2s + 1.5) HR pixels from the centre, each 1-D
    kernel normalised to sum s, and a last row/column of zeros. With the padding
    (3s+2)//2+1 this puts LR pixel i at HR coordinate s*i + 1.5 (0-based); MATLAB's grid
    puts it at s*i + (s-1)/2: equal at x2 (0.5) and x4 (1.5), half an HR pixel off at x3
    (1.5 vs 1). Measured with the official fp16 weights on the 48x64 parity crop against
    ``harness.imresize.upscale`` on the float image, 4 LR pixels in from the borders: max abs
    difference 4.9e-5 at x2 and 1.2e-4 at x4 (fp16 weights), 0.047 at x3; resampling MATLAB's
    grid shifted by +0.5 HR pixel (HR j at LR (j + 0.5)/3 - 0.5 - 1/6) brings x3 to 2.4e-5.
    On a horizontal ramp the x3 output is 1/6 LR pixel (half an HR pixel) low. The borders
    are zero-padded (up to 0.4 off MATLAB's mirror at the edge rows/columns).
    """
    from ..imresize import cubic

    s = scale
    taps = np.arange(4 * s + 2) - (2 * s + 1.5)
    w = cubic(taps / s)
    w = w * s / w.sum()
    kernel = np.zeros((4 * s + 3, 4 * s + 3))
    kernel[:-1, :-1] = np.outer(w, w)
    return kernel


# --- torch modules: harness.models.nets.esr, imported when a network is built ----------------
_NET_NAMES = ("EdgeSRMax", "EdgeSRTM", "EdgeSRTR", "EdgeSRCNN", "ESPCN", "FSRCNN", "OfficialBicubic")


def __getattr__(name: str):
    """The network classes (PyTorch), from :mod:`harness.models.nets.esr` on first access (PEP 562):
    listing ids stays light, and modules pickled as ``harness.models.esr.<Class>`` still load."""
    if name in _NET_NAMES:
        from .nets import esr as nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _new_module(model_id: str):
    from .nets import esr as nets

    family, p = parse(model_id)
    s = p["scale"]
    if family == "eSR-MAX":
        return nets.EdgeSRMax(s, p["K"], p["C"])
    if family == "eSR-TM":
        return nets.EdgeSRTM(s, p["K"], p["C"])
    if family == "eSR-TR":
        return nets.EdgeSRTR(s, p["K"], p["C"])
    if family == "eSR-CNN":
        return nets.EdgeSRCNN(s, p["C"], p["D"], p["S"])
    if family == "ESPCN":
        return nets.ESPCN(s, p["D"], p["S"])
    if family == "FSRCNN":
        return nets.FSRCNN(s, p["D"], p["S"], p["M"])
    return nets.OfficialBicubic(s)


def init_weights(module) -> None:
    """Initialise ``module`` for training the way the eSR authors did, in place.

    eSR-MAX/TM/TR and eSR-CNN: Xavier-normal (gain 1) on every conv weight, then the centre
    tap of input channel 0 set to 1 in every output channel, so that at the start each
    filter passes the LR pixel through (a nearest-neighbour-like start instead of noise).
    eSR-CNN does this for all three convs, as the authors' code does. ESPCN and FSRCNN keep
    PyTorch's default init (the authors add none). eSR-Bicubic gets its fixed bicubic kernel.
    """
    import torch
    from torch import nn

    from .nets import esr as nets

    if isinstance(module, nets.OfficialBicubic):
        with torch.no_grad():
            module.net.weight.copy_(torch.from_numpy(official_bicubic_kernel(module.scale))[None, None])
        return
    if isinstance(module, (nets.EdgeSRMax, nets.EdgeSRTM, nets.EdgeSRTR)):
        convs = [module.filter]
    elif isinstance(module, nets.EdgeSRCNN):
        convs = [m for m in module.filter if isinstance(m, nn.Conv2d)]
    else:
        return
    with torch.no_grad():
        for conv in convs:
            nn.init.xavier_normal_(conv.weight, gain=1.0)
            k = conv.weight.shape[-1] // 2
            conv.weight[:, 0, k, k] = 1.0


def build_module(model_id: str):
    """The raw ``nn.Module`` of ``model_id`` with fresh (authors') initial weights."""
    module = _new_module(model_id)
    init_weights(module)
    return module.eval()


def load_official(model_id: str, path: Union[str, Path]):
    """The ``nn.Module`` of ``model_id`` with the official weights at ``path`` (strict load)."""
    path = Path(path)
    module = _new_module(model_id)
    state = read_state_dict(path, model_id, f"give the {model_id}.model file from pnavarre/eSR")
    return load_state_strict(module, state, path, model_id, f"give the file {model_id}.model or the id that matches this file")


def _notes(model_id: str) -> Dict[str, str]:
    family, p = parse(model_id)
    if family != "eSR-Bicubic":
        return {}
    notes = {"borders": "zero-padded (transposed conv), not MATLAB's mirror: edge rows/columns up to 0.4 off"}
    if p["scale"] == 3:
        notes["alignment"] = ("half an HR pixel off MATLAB's grid at x3 (LR pixel i lands at HR 3i+1.5, "
                              "not 3i+1); use Bicubic_s3 for the bicubic baseline")
    return notes


def wrap(model_id: str, module, weights: str) -> TorchUpscaler:
    """A ``TorchUpscaler`` for ``module`` (the Y-channel interface every eSR-pool model has)."""
    family, p = parse(model_id)
    return TorchUpscaler(module, id=model_id, family=family, scale=p["scale"], input_space="y",
                         weights=weights, notes=_notes(model_id))


def build(model_id: str) -> TorchUpscaler:
    """``model_id`` with freshly initialised weights (``weights='init'``); loading comes later."""
    return wrap(model_id, build_module(model_id), weights="init")


def build_from_match(match: "re.Match", scale: int) -> TorchUpscaler:
    """The registry's ``build(match, scale)``; every eSR id fixes its scale, so ``scale`` agrees."""
    return build(match.group(0))


def official_name(model_id: str) -> str:
    """The published file stem of ``model_id``: the authors call their bicubic ``Bicubic_s{s}``."""
    family, p = parse(model_id)
    return f"Bicubic_s{p['scale']}" if family == "eSR-Bicubic" else model_id


def official_id(file_stem: str) -> str:
    """Inverse of :func:`official_name`: ``Bicubic_s3`` (a published file) -> ``eSR-Bicubic_s3``."""
    return "eSR-" + file_stem if re.fullmatch(r"Bicubic_s\d+", file_stem) else file_stem


FAMILIES = tuple(PATTERNS)


def load_weights(model_id: str, choice: str, model=None):
    """The registry's weight loader: ``official`` (the imported store) or a path to a ``.model`` file."""
    if choice == "official":
        from ..weights import official_file

        return load_official(model_id, official_file(official_name(model_id)))
    return load_official(model_id, choice)
