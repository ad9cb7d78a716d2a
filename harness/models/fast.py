"""Export forms: the same function as the network as written, in ONNX graphs that run faster.

Every form computes the network's function (checked against the PyTorch fp32 output when it is
exported, :func:`harness.export.exported_onnx`); only the graph differs. The backends time the
forms a model has and keep the fastest (``--form auto``), so a form that is slower on some
runtime costs a brief trial there, never a slower measurement. The forms (docs/models.md, "ONNX
export forms", has the measured effect of each):

``naive``
    The network as written.

``fast`` (eSR-MAX/TM/TR/CNN)
    The published heads apply PixelShuffle to the whole k*C*s*s-channel filter output and then
    reduce over the C channels of an HR tensor: the runtime moves every channel through a
    DepthToSpace (a 6-D transpose) before throwing C-1 of them away. The reduction does not care
    where a pixel sits, so it can run first: filter channel ``c*s*s + phase`` reshaped (a free,
    contiguous view) to (N, k*C, s*s*H, W) puts channel c on dim 1 and the phase next to the rows;
    reducing over dim 1 leaves (N, 1, s*s*H, W), i.e. the s*s phase planes of the single output
    channel, which one PixelShuffle(s) of 1 channel interleaves. Only 4-D tensors appear, so every
    backend (ONNX Runtime, TensorRT 8 on JetPack 5) takes it as is. The softmax is written as
    exp(key - max_C key) with the normalisation done once per output pixel
    (``sum(value * e) / sum(e)``) instead of once per channel: stable for any key magnitude, and
    one division instead of C.

``lean`` (every eSR-pool family but eSR-Bicubic, and Bicubic_s*)
    Rewrites that add no arithmetic:

    * PixelShuffle of the one output channel as one Concat of the s column phases along a new last
      axis and a Gather of whole rows (:func:`~harness.models.nets.fast.shuffle_t`): the same
      permutation, which ONNX Runtime's Concat and Gather move in strides and blocks where its
      Transpose of a small axis is several times slower and its DepthToSpace walks a 6-D index per
      element;
    * convolutions with fewer than 16 input and output channels as 1xKxK 3-D convolutions
      (:class:`~harness.models.nets.fast.Flat3d`): the same sum, which ONNX Runtime's x86 NCHWc
      pass leaves alone instead of padding the output to 16 channels and reordering around it;
    * eSR heads reduced at LR resolution as in ``fast``, and: with C = 1 without any reduction (a
      max over one channel is that channel and a softmax over one channel is exactly 1, so the
      output is the s*s value filters; the key/query filters are not computed); with C = 2 without
      reduce operators (the max of two is an elementwise Max, and a softmax over two is the
      logistic of the difference: ``v0*w0 + v1*w1 = v1 + (v0 - v1) * sigmoid(l0 - l1)``, where each
      difference linear in the filters is one conv of the filters' difference: v0 - v1, TM's
      k0 - k1 with the sigmoid fused into its conv, CNN's k0^2 - k1^2 as (k0 - k1)(k0 + k1); the
      same sums up to rounding, within 1e-6; at s*s < 16 the parts as one conv and a Split where the
      neighbourhood gathers of separate 3-D convs cost more than the Split); with
      C >= 3 channels last (:class:`~harness.models.nets.fast.LeanESRHead`): the filters reordered
      so that the C channels of one phase are innermost, where one Softmax and one ReduceSum (or one
      ReduceMax) reduce them, with one conv per row phase and group (value, key, query; no Split
      of a joint output, no transpose of the result) where that wastes little of ONNX Runtime's
      16-channel blocks;
    * ``Bicubic_s*`` one axis at a time (:class:`~harness.models.nets.fast.SeparablePhases`): its
      phase kernels are outer products of 1-D taps, so a 1xT conv to the column phases, their
      Concat into the columns, a Tx1 conv to the row phases and the row Gather compute the same sums in another
      order (within 1e-6);
    * ESPCN's final sigmoid before the shuffle instead of after it (an elementwise function
      commutes with a permutation), so the runtime fuses it into the last conv;
    * FSRCNN's PReLUs (one shared slope a each) as LeakyRelu(alpha=a): the very same function for
      every a (x if x >= 0 else a*x), which ONNX Runtime fuses into the preceding conv while it runs
      PRelu as a separate broadcasting pass. (``Max(x, a*x)`` equals it only for a <= 1 and ran
      slower than the fused LeakyRelu here, so it is not used.)

``pad`` (ESPCN and FSRCNN with a hidden width over 8 that is not a multiple of 16)
    ``lean`` with those widths zero-padded to the next multiple of 16: the extra filters have zero
    weights and bias, so they output exactly 0 (tanh(0) = LeakyRelu(0) = 0) and the next layer's
    weights for them are 0. ONNX Runtime's x86 blocked (NCHWc) convolutions take only widths that
    are multiples of 16, so the padded chain runs blocked end to end without reorders.

``subpix`` (FSRCNN, eSR-Bicubic)
    ``lean`` (or the network, for eSR-Bicubic) with the final stride-s transposed convolution
    written as a convolution to s*s phases at LR resolution plus the shuffle: output pixel
    s*q + r receives x[q + j] * w[r + p - s*j] (p: the padding), so phase r's taps are those of
    the kernel at r + p - s*j; the same products, summed in another order (within 1e-6).

Forms that build on the network's modules share their parameters (``fast``, ``lean``'s views);
``pad`` and ``subpix`` copy the weights they rearrange, so they are built right before export.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

if TYPE_CHECKING:  # pragma: no cover - the type only; torch is imported where a network is built
    import torch

#: every export form, in the order the backends try them (naive last: the fallback)
FORMS = ("fast", "lean", "pad", "subpix", "naive")
#: each form's definition revision: raise a form's number whenever the graph it exports changes, so that
#: the export cache (:func:`harness.export.exported_onnx`) builds and verifies it again instead of reusing a
#: file of the old definition (the weights alone key the cache folder)
FORM_REVISION = {"fast": 1, "lean": 8, "pad": 3, "subpix": 3, "naive": 1}
#: the forms that existed before issue 22 (bench-forms.py --forms naive,fast times only these)
BASE_FORMS = ("fast", "naive")
NARROW = 16   # a conv with fewer input and output channels runs as a 3-D conv in ``lean`` (ORT's x86 NCHWc block)
PAD_TO = 16   # ``pad`` rounds hidden widths over PAD_MIN up to a multiple of this
PAD_MIN = 8


def __getattr__(name: str):
    """``FastESRHead`` (PyTorch) from :mod:`harness.models.nets.fast` on first access (PEP 562), so that
    importing this module does not import torch, and modules pickled as ``harness.models.fast.FastESRHead`` load."""
    if name == "FastESRHead":
        from .nets.fast import FastESRHead

        return FastESRHead
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_HEAD_KINDS = (("EdgeSRMax", "max"), ("EdgeSRTM", "tm"), ("EdgeSRTR", "tr"))


def _head(module, lean: bool):
    """The fast (or lean) head of an eSR-MAX/TM/TR/CNN ``module``, else None."""
    from torch import nn

    from .nets import esr
    from .nets.fast import FastESRHead, LeanESRHead

    s = getattr(module, "scale", None)
    for name, kind in _HEAD_KINDS:
        if type(module) is getattr(esr, name):
            body, conv, head = [], module.filter, kind
            break
    else:
        if type(module) is not esr.EdgeSRCNN:
            return None
        body, conv, head = list(module.filter[:4]), module.filter[4], "cnn"
    if not lean:
        # filter[:5] is a new Sequential holding the very same conv/tanh modules.
        return FastESRHead(module.filter if head != "cnn" else module.filter[:5], s, module.channels, head)
    return LeanESRHead(nn.Sequential(*_chain(body)), conv, s, module.channels, head, narrow=NARROW)


def _chain(layers):
    """Layers rewritten for ``lean``: a PReLU with one slope as LeakyReLU; each run of convs with fewer
    than NARROW input and output channels, with the activations between and after them, as one
    :class:`Flat3d` (wider convs run faster blocked: measured on ESPCN_s2_D34_S32, 161 vs 168 ms)."""
    from torch import nn

    from .nets.fast import ConvView, Flat3d

    out, run = [], []

    def flush():
        if run:
            out.append(Flat3d(nn.Sequential(*run)))
            run.clear()

    for layer in layers:
        if type(layer) is nn.PReLU and layer.weight.numel() == 1:
            layer = nn.LeakyReLU(_prelu_slope(layer))
        if type(layer) is nn.Conv2d and layer.out_channels < NARROW and layer.in_channels < NARROW:
            run.append(ConvView(layer, three_d=True))
        elif run and type(layer) in (nn.Tanh, nn.Sigmoid, nn.LeakyReLU):
            run.append(layer)
        else:
            flush()
            out.append(layer)
    flush()
    return out


def fast_form(module) -> "Optional[torch.nn.Module]":
    """The ``fast`` form of an eSR-MAX/TM/TR/CNN ``module`` (same function, shared weights), else None.

    ESPCN, FSRCNN and the bicubic networks have no C-channel reduction to move, so they
    have no fast form.
    """
    fast = _head(module, lean=False)
    return None if fast is None else fast.train(module.training)


def _prelu_slope(layer) -> float:
    """The one shared slope of an ``nn.PReLU(1)`` as a Python float (exactly its float32 value)."""
    return float(layer.weight.detach().reshape(-1)[0])


def lean_form(module) -> "Optional[torch.nn.Module]":
    """The ``lean`` form of ``module`` (see the module docstring), else None (no such form for its family)."""
    from torch import nn

    from .nets import esr
    from .nets.bicubic import BicubicNet
    from .nets.fast import SeparablePhases, ShuffleT, SymmetricPad

    net = _head(module, lean=True)
    if net is None and type(module) is esr.ESPCN:
        layers = list(module.net)  # ..., Conv(S -> s*s), PixelShuffle, Sigmoid
        net = nn.Sequential(*_chain(layers[:-2] + [nn.Sigmoid()]), ShuffleT(module.scale))
    elif net is None and type(module) is esr.FSRCNN:
        net = nn.Sequential(*_chain(module.net))
    elif net is None and type(module) is BicubicNet:
        taps = separable_taps(module.conv.weight.detach(), module.scale)
        if taps is not None:
            net = SeparablePhases(*taps, module.scale)
        else:
            net = nn.Sequential(SymmetricPad(module.pad), *_chain([module.conv]), ShuffleT(module.scale))
    if net is None:
        return None
    net.scale = module.scale
    return net.train(module.training)


def separable_taps(weight, scale: int, tol: float = 1e-7):
    """(row_taps, col_taps), each (s, T) float64, whose outer products give the (s*s, 1, T, T) phase
    kernels ``weight`` within ``tol``, when every phase's taps sum to 1 (the bicubic kernels); else None.

    Phase py*s + px = row_taps[py] (x) col_taps[px]; with taps summing to 1, a phase kernel's row sums
    are its row taps and its column sums its column taps.
    """
    import numpy as np

    k = weight.double().cpu().numpy()
    s, taps = scale, k.shape[-1]
    if k.shape != (s * s, 1, taps, taps):
        return None
    k = k.reshape(s, s, taps, taps)
    rows, cols = k[:, 0].sum(axis=2), k[0, :].sum(axis=1)  # (s, T) each
    if not np.allclose(rows.sum(axis=1), 1.0, atol=tol) or not np.allclose(cols.sum(axis=1), 1.0, atol=tol):
        return None
    if np.abs(rows[:, None, :, None] * cols[None, :, None, :] - k).max() > tol:
        return None
    return rows, cols


def _padded_chain(layers, multiple: int = PAD_TO, minimum: int = PAD_MIN):
    """``layers`` (Conv2d/ConvTranspose2d and elementwise activations mapping 0 to 0) with every hidden
    width over ``minimum`` zero-padded to a multiple of ``multiple``; None when no width changes or a
    layer is of another kind."""
    import torch
    from torch import nn

    layers = list(layers)
    known = (nn.Conv2d, nn.ConvTranspose2d, nn.PReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.PixelShuffle)
    if any(type(m) not in known for m in layers):
        return None  # e.g. GhostSR's convs: a width they consume cannot be padded here
    if any(type(m) is nn.PReLU and m.weight.numel() != 1 for m in layers):
        return None  # a per-channel slope would need padding too
    convs = [i for i, m in enumerate(layers) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    changed = False
    for a, b in zip(convs, convs[1:]):
        first, second = layers[a], layers[b]
        width = first.out_channels
        target = -(-width // multiple) * multiple
        if width <= minimum or target == width:
            continue
        extra = target - width
        with torch.no_grad():
            grown = nn.Conv2d(first.in_channels, target, first.kernel_size, stride=first.stride, padding=first.padding,
                              dilation=first.dilation, bias=first.bias is not None)
            grown.weight.copy_(torch.cat([first.weight, first.weight.new_zeros((extra,) + first.weight.shape[1:])]))
            if first.bias is not None:
                grown.bias.copy_(torch.cat([first.bias, first.bias.new_zeros(extra)]))
            w = second.weight
            if isinstance(second, nn.ConvTranspose2d):  # weight (in, out, k, k)
                wider = nn.ConvTranspose2d(target, second.out_channels, second.kernel_size, stride=second.stride,
                                           padding=second.padding, output_padding=second.output_padding,
                                           bias=second.bias is not None)
                wider.weight.copy_(torch.cat([w, w.new_zeros((extra,) + w.shape[1:])], dim=0))
            else:  # Conv2d: weight (out, in, k, k)
                wider = nn.Conv2d(target, second.out_channels, second.kernel_size, stride=second.stride,
                                  padding=second.padding, dilation=second.dilation, bias=second.bias is not None)
                wider.weight.copy_(torch.cat([w, w.new_zeros((w.shape[0], extra) + w.shape[2:])], dim=1))
            if second.bias is not None:
                wider.bias.copy_(second.bias)
        layers[a], layers[b] = grown, wider
        changed = True
    return layers if changed else None


def pad_form(module) -> "Optional[torch.nn.Module]":
    """The ``pad`` form of an ESPCN/FSRCNN ``module`` (see the module docstring), else None (no width to pad)."""
    from torch import nn

    from .nets import esr
    from .nets.fast import ShuffleT

    if type(module) is esr.ESPCN:
        layers = _padded_chain(list(module.net)[:-2])
        if layers is None:
            return None
        net = nn.Sequential(*_chain(layers + [nn.Sigmoid()]), ShuffleT(module.scale))
    elif type(module) is esr.FSRCNN:
        layers = _padded_chain(list(module.net))
        if layers is None:
            return None
        net = nn.Sequential(*_chain(layers))
    else:
        return None
    net.scale = module.scale
    return net.train(module.training)


def deconv_phases(deconv):
    """A stride-s ``ConvTranspose2d`` (one output channel, square kernel and stride, output exactly s
    times the input) as ``(Conv2d to s*s phases at LR resolution, s)``: shuffling the conv's output
    gives the transposed conv's output (weights copied and rearranged, bias repeated per phase)."""
    import torch
    from torch import nn

    (s,) = set(deconv.stride)
    (pad,) = set(deconv.padding)
    (k,) = set(deconv.kernel_size)
    if deconv.out_channels != 1 or deconv.groups != 1 or set(deconv.dilation) != {1}:
        raise ValueError("deconv_phases: one output channel, no groups, no dilation")

    def taps(r: int) -> List[int]:
        # output pixel s*q + r takes x[q + j] * w[r + pad - s*j] for the j that index the kernel
        return [j for j in range(-k, k + 1) if 0 <= r + pad - s * j < k]

    reach = max(max(abs(j) for j in taps(r)) for r in range(s))
    size = 2 * reach + 1
    w = deconv.weight.detach()  # (in, 1, k, k)
    weight = torch.zeros(s * s, w.shape[0], size, size, dtype=w.dtype)
    for ry in range(s):
        for rx in range(s):
            for jy in taps(ry):
                for jx in taps(rx):
                    weight[ry * s + rx, :, jy + reach, jx + reach] = w[:, 0, ry + pad - s * jy, rx + pad - s * jx]
    conv = nn.Conv2d(w.shape[0], s * s, size, padding=reach, bias=deconv.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if deconv.bias is not None:
            conv.bias.copy_(deconv.bias.detach().expand(s * s))
    return conv, s


def subpix_form(module) -> "Optional[torch.nn.Module]":
    """The ``subpix`` form of an FSRCNN or eSR-Bicubic ``module`` (see the module docstring), else None."""
    from torch import nn

    from .nets import esr
    from .nets.fast import ShuffleT

    if type(module) is esr.FSRCNN:
        layers = _padded_chain(list(module.net)) or list(module.net)  # as ``pad`` where it pads
        conv, s = deconv_phases(layers[-1])
        net = nn.Sequential(*_chain(layers[:-1] + [conv]), ShuffleT(s))
    elif type(module) is esr.OfficialBicubic:
        conv, s = deconv_phases(module.net)
        net = nn.Sequential(*_chain([conv]), ShuffleT(s))
    else:
        return None
    net.scale = module.scale
    return net.train(module.training)


_BUILDERS = {"fast": fast_form, "lean": lean_form, "pad": pad_form, "subpix": subpix_form}


def form_module(module, form: str) -> "Optional[torch.nn.Module]":
    """``module`` in export form ``form`` (the same function), or None where its family has no such form."""
    if form == "naive":
        return module
    if form not in _BUILDERS:
        raise ValueError(f"unknown export form {form!r}; one of {', '.join(FORMS)}")
    return _BUILDERS[form](module)


def candidate_forms(module, allowed=FORMS) -> List[str]:
    """The forms ``module`` has among ``allowed`` (in :data:`FORMS` order), and ``naive`` always: what
    ``--form auto`` exports and times."""
    return [f for f in FORMS if f == "naive" or (f in allowed and form_module(module, f) is not None)]
