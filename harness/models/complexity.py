"""Model complexity per Full-HD output frame: parameters, multiply-accumulates, memory traffic.

Speed on edge devices is bounded by compute (MACs) or by memory traffic (bytes); reporting
both per frame lets a result be placed on a roofline. Everything is measured on one
forward pass of a meta-device copy of the module (shapes only, no compute, no memory), so
even the largest network costs milliseconds; a real forward is the fallback where an op has
no meta kernel.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Tuple

from ..errors import HarnessError


def lr_shape(scale: int, out_hw: Tuple[int, int], channels: int) -> Tuple[int, int, int, int]:
    h, w = out_hw
    if h % scale or w % scale:
        raise HarnessError(f"x{scale} does not divide the output size {w}x{h}; use scale 2, 3 or 4")
    return (1, channels, h // scale, w // scale)


def _tensors(obj) -> List["object"]:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _hook_macs(module, inputs, output) -> int:
    """MACs of one conv/linear call, for torch without ``FlopCounterMode`` (< 2.1, JetPack 5)."""
    from torch import nn

    x, y = inputs[0], output
    if isinstance(module, nn.ConvTranspose2d):  # every input pixel scatters a Cout x k x k patch
        kh, kw = module.kernel_size
        return x.numel() * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return y.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return y.numel() * module.in_features
    return 0


def _measure(module, shape, device: str):
    """One forward on ``device``: (MACs, elements of leaf outputs other than the final output, final output elements)."""
    import torch

    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # torch < 2.1
        FlopCounterMode = None

    leaves = [m for m in module.modules() if not list(m.children())]
    outputs: Dict[int, int] = {}  # id(tensor) -> numel, so a tensor returned by two leaves counts once
    keep = []  # keep the outputs alive: ids stay unique during the forward
    hook_macs = [0]

    def hook(m, inputs, output):
        for t in _tensors(output):
            outputs[id(t)] = t.numel()
            keep.append(t)
        if FlopCounterMode is None:
            hook_macs[0] += _hook_macs(m, inputs, output)

    handles = [m.register_forward_hook(hook) for m in leaves]
    x = torch.empty(shape, device=device) if device == "meta" else torch.rand(shape)
    try:
        with torch.no_grad():
            if FlopCounterMode is not None:
                with FlopCounterMode(display=False) as counter:
                    y = module(x)
                macs = counter.get_total_flops() // 2
            else:
                y = module(x)
                macs = hook_macs[0]
    finally:
        for h in handles:
            h.remove()
    finals = _tensors(y)
    final_ids = {id(t) for t in finals}
    leaf_elems = sum(n for i, n in outputs.items() if i not in final_ids)
    final_elems = sum(t.numel() for t in finals)
    return int(macs), int(leaf_elems), int(final_elems)


def complexity(module, scale: int, out_hw: Tuple[int, int] = (1080, 1920), channels: int = 1) -> Dict[str, int]:
    """Parameters, MACs and a roofline estimate of memory traffic for one ``out_hw`` output frame.

    ``macs_per_fhd``: multiply-accumulates of convolutions, transposed convolutions and
    matmuls (``FlopCounterMode`` FLOPs / 2) on the LR input of size ``out_hw / scale``;
    elementwise ops, softmax, reductions and pixel shuffles are not counted.

    ``bytes_per_fhd`` (fp32, 4 bytes an element) assumes:

    * the input is read once from DRAM and the final output written once;
    * the weights are read once per frame (they fit in cache and stay there);
    * every leaf module's output is written to DRAM once and read back once by its consumer
      (no layer fusion: a conv's activation, PixelShuffle's copy each cost a round trip);
      a leaf output that is the network's output counts as written once only;
    * work done outside leaf modules (the functional split/softmax/sum of the eSR heads, the
      padding of ``Bicubic_s*``) is assumed fused into its neighbours and costs nothing;
    * nothing is re-read because of cache misses (halo re-reads of convolutions ignored).

    ``bytes_per_fhd_fp16`` is the same traffic with 2-byte elements (exactly half).
    """
    import torch

    params = int(sum(p.numel() for p in module.parameters()))
    shape = lr_shape(scale, out_hw, channels)
    try:
        meta = copy.deepcopy(module).to("meta").eval()
        macs, leaf_elems, final_elems = _measure(meta, shape, "meta")
    except Exception:  # noqa: BLE001 - an op without a meta kernel: pay for one real forward
        real = copy.deepcopy(module).to(torch.device("cpu")).float().eval()
        macs, leaf_elems, final_elems = _measure(real, shape, "cpu")
    in_elems = 1
    for d in shape:
        in_elems *= d
    elems = in_elems + params + 2 * leaf_elems + final_elems
    return {"params": params, "macs_per_fhd": macs, "bytes_per_fhd": 4 * elems, "bytes_per_fhd_fp16": 2 * elems}
