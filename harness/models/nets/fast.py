"""The export forms' PyTorch parts (:mod:`harness.models.fast` explains each form and builds it).

:class:`FastESRHead` is the ``fast`` eSR attention head; :class:`LeanESRHead`, :class:`ConvView`,
:class:`ConvParts`, :class:`Flat3d`, :class:`ShuffleT`, :class:`SymmetricPad` and :class:`SeparablePhases`
are the pieces of the ``lean``, ``pad`` and ``subpix`` forms. Each computes exactly what the layer it stands
for computes; only the ONNX graph differs.
"""
from __future__ import annotations

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError:  # no PyTorch (a device venv): the module imports, building a network raises (torchless)
    from . import torchless as nn
    torch = F = None


def shuffle_t(y, scale: int):
    """PixelShuffle(s) of a (N, s*s, H, W) tensor to (N, 1, sH, sW): s Slices, one Concat, one Gather.

    The column phases px go innermost by a Concat along a new last axis of the s channel slices
    ``y[:, px::s]`` ((N, py, H, W, px)): ONNX Runtime's Concat writes each slice's elements with a
    stride, several times faster than a Transpose that moves an axis of s elements innermost (0.6
    against 2.2 ms for the 2M floats of a Full-HD frame; its DepthToSpace walks a 6-D index per
    element: 7.3 ms). That leaves the rows phase-major (row py*H + q of (N, 1, s*H, s*W), a free view);
    :func:`interleave_rows` then writes them in order, whole rows at a time: the same permutation,
    element for element.
    """
    s = scale
    n, h, w = y.shape[0], y.shape[2], y.shape[3]
    y = concat_columns([y[:, px::s] for px in range(s)])  # n, py, h, w, px
    return interleave_rows(y.reshape(n, 1, s * h, s * w), h, s)


def concat_columns(phases):
    """The s column phases (each (..., W)) interleaved into (..., W, s): one Concat along a new last axis, which
    ONNX Runtime writes with a stride (the column half of :func:`shuffle_t`; :class:`SeparablePhases` too)."""
    return torch.cat([p.unsqueeze(-1) for p in phases], dim=-1)


def interleave_rows(y, h, s: int):
    """(N, C, s*h, W) with row p*h + q holding output row q*s + p -> rows in output order.

    One Gather of whole rows straight into the result: a Transpose of the row phase followed by the
    reshape to the output shape costs ONNX Runtime a second full copy (a Reshape that makes a graph
    output copies). The row indices are computed from ``h`` in the graph (Range, Mul, Add), so the
    height stays dynamic.
    """
    rows = torch.arange(h).unsqueeze(1) + torch.arange(s).unsqueeze(0) * h  # (h, s): q + p*h
    return torch.index_select(y, 2, rows.reshape(-1))


class ShuffleT(nn.Module):
    """``nn.PixelShuffle(scale)`` for one output channel, exported as Slices, a Concat and a Gather (:func:`shuffle_t`)."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, y):
        return shuffle_t(y, self.scale)


class ConvView(nn.Module):
    """A view of a ``Conv2d`` (its parameters shared, not copied): only the filters ``rows`` (default
    all, in order), with ``other`` the filters ``rows + sign * other`` (weights and biases: the conv of
    a sum of filters is the sum of their convs, one output instead of two and a Sub or Add), and with
    ``three_d`` the same 1xKxK convolution over 5-D (N, C, 1, H, W) tensors (inside :class:`Flat3d`).
    The filters export as one constant (the exporter folds the indexing and the sum).
    """

    def __init__(self, conv, rows=None, three_d: bool = False, other=None, sign: int = -1):
        super().__init__()
        self.conv = conv
        self.rows = None if rows is None else [int(r) for r in rows]
        self.other = None if other is None else [int(r) for r in other]
        self.sign = sign
        self.three_d = three_d

    def filters(self):
        """(weight, bias) of this view (bias None where the conv has none)."""
        c = self.conv
        weight = c.weight if self.rows is None else c.weight[self.rows]
        bias = None if c.bias is None else (c.bias if self.rows is None else c.bias[self.rows])
        if self.other is not None:  # filters rows + sign * other: the conv of a sum is the sum of the convs
            weight = weight + self.sign * c.weight[self.other]
            bias = None if bias is None else bias + self.sign * c.bias[self.other]
        return weight, bias

    def forward(self, x):
        weight, bias = self.filters()
        return conv_as(self.conv, x, weight, bias, self.three_d)


def conv_as(c, x, weight, bias, three_d: bool):
    """``c``'s convolution (stride, padding, ...) with other filters; ``three_d``: as the 1xKxK 3-D conv of a 5-D x."""
    if not three_d:
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)
    return F.conv3d(x, weight.unsqueeze(2), bias, (1,) + tuple(c.stride), (0,) + tuple(c.padding),
                    (1,) + tuple(c.dilation), c.groups)


class ConvParts(nn.Module):
    """Several :class:`ConvView` s of one ``Conv2d`` computed as one conv (their filters stacked, in order,
    one constant) and split again: one output per view. The input is read once, and a 3-D conv (``three_d``,
    on (N, C, H, W), as :class:`Flat3d` runs it) gathers its KxK neighbourhoods once, not once per view;
    the Split copies the output."""

    def __init__(self, views, three_d: bool = False):
        super().__init__()
        self.views = nn.ModuleList(views)
        self.three_d = three_d

    def forward(self, x):
        filters = [v.filters() for v in self.views]
        weight = torch.cat([w for w, _ in filters])
        bias = None if filters[0][1] is None else torch.cat([b for _, b in filters])
        y = conv_as(self.views[0].conv, x.unsqueeze(2) if self.three_d else x, weight, bias, self.three_d)
        y = y.squeeze(2) if self.three_d else y
        return list(torch.split(y, [w.shape[0] for w, _ in filters], dim=1))


class Flat3d(nn.Module):
    """Runs ``layers`` (3-D :class:`ConvView` s and elementwise activations) on (N, C, 1, H, W).

    A 1xKxK 3-D convolution is the same sum, in the same order of taps, as the KxK 2-D one; ONNX
    Runtime's x86 NCHWc pass, which pads every 2-D conv's output to 16 channels (and reorders around
    it), leaves a 5-D Conv alone, and the activations stay fused into their convs (no reshape between).
    """

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, x):
        return self.layers(x.unsqueeze(2)).squeeze(2)


class SymmetricPad(nn.Module):
    """MATLAB's symmetric border (the edge pixel mirrored too) of ``pad`` pixels, as BicubicNet pads."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        p = self.pad
        x = torch.cat([x[:, :, :p].flip(2), x, x[:, :, -p:].flip(2)], dim=2)
        return torch.cat([x[:, :, :, :p].flip(3), x, x[:, :, :, -p:].flip(3)], dim=3)


class SeparablePhases(nn.Module):
    """A separable s*s-phase filter and its PixelShuffle, one axis at a time (``lean`` of ``Bicubic_s*``).

    ``row_taps`` and ``col_taps`` are (s, T) arrays whose outer products are the (s*s, 1, T, T) phase
    kernels (phase py*s + px has row_taps[py] (x) col_taps[px]). After the symmetric pad of T // 2: a
    1xT convolution to the s column phases at LR height, interleaved into the columns as in
    :func:`shuffle_t` (Slices and a Concat along a new last axis), a Tx1 convolution to the s row
    phases, and :func:`interleave_rows`. The products of the 2-D kernel, summed in another order
    (within 1e-6); 2T instead of T*T multiplies per phase, and the column interleave moves half the
    output's elements.
    """

    def __init__(self, row_taps, col_taps, scale: int):
        super().__init__()
        s, taps = scale, row_taps.shape[1]
        self.scale = s
        self.pad = SymmetricPad(taps // 2)
        self.register_buffer("col", torch.as_tensor(col_taps, dtype=torch.float32).reshape(s, 1, 1, 1, taps))
        self.register_buffer("row", torch.as_tensor(row_taps, dtype=torch.float32).reshape(s, 1, 1, taps, 1))

    def forward(self, x):
        s = self.scale
        n, h, w = x.shape[0], x.shape[2], x.shape[3]
        x = self.pad(x)
        hp = x.shape[2]
        x = x.unsqueeze(2)  # 3-D convs, as in Flat3d
        v = F.conv3d(x, self.col)  # (n, px, 1, h + 2p, w)
        v = concat_columns([v[:, px:px + 1] for px in range(s)]).reshape(n, 1, 1, hp, s * w)  # columns in order
        out = F.conv3d(v, self.row)  # (n, py, 1, h, s*w)
        return interleave_rows(out.reshape(n, 1, s * h, s * w), h, s)


class FastESRHead(nn.Module):
    """filter -> reshape (N, k*C, s*s*H, W) -> reduce over C -> reshape -> PixelShuffle(s).

    ``kind`` is ``'max'`` (eSR-MAX), ``'tm'`` (value x softmax(key)), ``'tr'``
    (value x softmax(query*key)) or ``'cnn'`` (value x softmax(key*key)).
    """

    def __init__(self, filter_module, scale: int, channels: int, kind: str):
        super().__init__()
        self.filter = filter_module  # the original's conv(s): shared, not copied
        self.scale, self.channels, self.kind = scale, channels, kind
        self.groups = {"max": 1, "tm": 2, "tr": 3, "cnn": 2}[kind]
        self.pixel_shuffle = nn.PixelShuffle(scale)

    def reduce(self, y):
        """(N, k*C*s*s, H, W) filter output -> (N, s*s, H, W): the s*s phase planes of the output."""
        s, c = self.scale, self.channels
        n, h, w = y.shape[0], y.shape[2], y.shape[3]  # channel index c*s*s + phase
        y = y.reshape(n, self.groups * c, s * s * h, w)
        if self.kind == "max":
            out = torch.amax(y, dim=1, keepdim=True)
        else:
            value = y[:, :c]
            if self.kind == "tm":
                logits = y[:, c:2 * c]
            elif self.kind == "tr":
                logits = y[:, c:2 * c] * y[:, 2 * c:3 * c]
            else:  # cnn
                key = y[:, c:2 * c]
                logits = key * key
            e = torch.exp(logits - torch.amax(logits, dim=1, keepdim=True))
            out = torch.sum(value * e, dim=1, keepdim=True) / torch.sum(e, dim=1, keepdim=True)
        return out.reshape(n, s * s, h, w)

    def forward(self, x):
        return self.pixel_shuffle(self.reduce(self.filter(x)))


#: LeanESRHead, C = 2 at s*s < 16: its n parts run as one 3-D (or 2-D) conv and a Split when the KxK
#: neighbourhood gathers that the n separate 3-D convs repeat, (n - 1) * K * K * C_in values per LR pixel, exceed
#: this many times the n * s * s values per pixel the Split copies. Measured on Full-HD frames (ms, separate ->
#: one): above it eSR-TR_s2_K7_C2 27.0 -> 16.5, eSR-TM_s2_K5_C2 11.8 -> 8.4, eSR-MAX_s2_K5_C2 5.6 -> 4.8,
#: eSR-TM_s3_K7_C2 10.2 -> 8.8, eSR-CNN_s2_C2_D3_S15 73 -> 28; below it eSR-TR_s3_K3_C2 6.9 -> 10.5, eSR-TM_s3_K5_C2
#: 5.9 -> 7.3, eSR-TR_s2_K3_C2 9.3 -> 11.6, eSR-MAX_s3_K5_C2 6.0 -> 6.3, and within 5 % near it.
JOINT_SPLIT_COST = 2.5


def _maybe_3d(view, act=None):
    """``view`` (then ``act``, if any), run in :class:`Flat3d` where the view is 3-D."""
    layers = nn.Sequential(view) if act is None else nn.Sequential(view, act)
    return Flat3d(layers) if view.three_d else (view if act is None else layers)


class LeanESRHead(nn.Module):
    """The ``lean`` eSR head (:mod:`harness.models.fast`): ``body`` (the CNN's first layers; empty for
    MAX/TM/TR), then the last conv ``conv`` (shared, not copied) in one of three layouts, and the
    shuffle of :func:`shuffle_t` (or, channels last, its row half :func:`interleave_rows`):

    * C = 1: no reduction at all, only the s*s value filters run (a max over one channel is that
      channel; a softmax over one channel is exactly 1, so the output is the value);
    * C = 2: no reduce operator: one conv per part gives v0, v1, k0, ... apart (no split of a joint
      output), the max of two is an elementwise Max, and a softmax over two is the logistic of the
      difference, ``v0*w0 + v1*w1 = v1 + (v0 - v1) * sigmoid(l0 - l1)``. Differences that are linear in
      the filters are convs of filter differences (:class:`ConvView` ``other``): v0 - v1; TM's k0 - k1,
      its sigmoid fused into that conv; CNN's k0^2 - k1^2 as (k0 - k1)(k0 + k1). Each saves a full-size
      pass (eSR-CNN: 7 elementwise passes over the output's size become 4; TM: 5 become 2). At s*s < 16
      the parts are 3-D convs, each of which gathers every pixel's KxK neighbourhood (of each input
      channel: S for eSR-CNN) again; where that repeated work outweighs a Split of the parts' outputs
      (:data:`JOINT_SPLIT_COST`), the parts run as one conv and a Split (:class:`ConvParts`; 2-D where
      their n*s*s filters fill the blocks, else 3-D; TM's sigmoid then runs after the Split);
    * C >= 3: channels last. The filters reordered (group, phase, c) and the conv output transposed
      to (N, H, W, s*s, C) per group, which ONNX Runtime writes straight from its blocked conv (one
      reorder), so that the reduction over C runs over the innermost, contiguous axis: one Softmax
      (max-shifted, stable) and one ReduceSum, or one ReduceMax. Where the s*C filters of one row
      phase py fill ONNX Runtime's blocks of ``narrow`` (16) channels to within 1/8: one conv per
      (py, group), each reduced to (N, H, W, px), which is output rows py*H .. as (N, 1, H, s*W); one
      Concat of the row phases and :func:`interleave_rows` put them in order (eSR-MAX_s4_K7_C8: 17
      against 22 ms a Full-HD frame, where the (N, H, W, s, s) result took a Transpose to
      (N, H, s, W, s) and a copying Reshape to the output). Else that Transpose, after one conv per
      group (value, key, query) where there is one group (eSR-MAX) or a group's s*s*C filters fill
      the blocks, else one conv for all groups and a Split of its output: the Split is a full extra
      copy (eSR-TM_s2_K7_C16, 64 filters a group: 129 against 105 ms), a group of 24 filters padded
      to 32 costs more (eSR-CNN_s2_C6_D3_S15: two 23 ms convs against one of 32 ms).
    """

    def __init__(self, body, conv, scale: int, channels: int, kind: str, narrow: int = 16):
        super().__init__()
        self.body = body
        self.scale, self.channels, self.kind = scale, channels, kind
        self.groups = {"max": 1, "tm": 2, "tr": 3, "cnn": 2}[kind]
        s2, c, g = scale * scale, channels, self.groups
        self.per_row = self.joint = False

        def fills(filters: int) -> bool:  # ONNX Runtime's x86 blocked conv pads its output to blocks of
            return -(-filters // narrow) * narrow * 8 <= filters * 9  # `narrow`: at most 1/8 wasted

        if c == 1:  # the value filters: channels 0 .. s*s-1
            self.last = _maybe_3d(ConvView(conv, rows=range(s2), three_d=s2 < narrow))
        elif c == 2:  # one output per part, each (N, s*s, H, W): filters i*s*s.. are value 0, value 1, key 0, ...
            def view(i, other=None, sign=-1):
                return ConvView(conv, rows=range(i * s2, (i + 1) * s2), three_d=s2 < narrow,
                                other=None if other is None else range(other * s2, (other + 1) * s2), sign=sign)

            views = {"max": [view(0), view(1)],  # v0, v1
                     "tm": [view(1), view(0, 1), view(2, 3)],  # v1, v0 - v1, k0 - k1
                     "cnn": [view(1), view(0, 1), view(2, 3), view(2, 3, sign=1)],  # ..., k0 + k1
                     "tr": [view(1), view(0, 1), view(2), view(4), view(3), view(5)]}[kind]  # ..., k0, q0, k1, q1
            n, gathers = len(views), conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            self.joint = s2 < narrow and (n - 1) * gathers > JOINT_SPLIT_COST * n * s2
            if self.joint:
                self.last = ConvParts(views, three_d=not fills(n * s2))
            else:  # TM's sigmoid(k0 - k1) fused into its conv
                self.last = nn.ModuleList([_maybe_3d(v, nn.Sigmoid() if kind == "tm" and i == 2 else None)
                                           for i, v in enumerate(views)])
        else:  # group k's filters (k, c, phase) -> rows (phase, c)
            self.per_row = fills(scale * c)
            if self.per_row:  # one conv per (row phase py, group): filters (px, c)
                self.last = nn.ModuleList([nn.ModuleList([
                    ConvView(conv, rows=[(k * c + ch) * s2 + py * scale + px for px in range(scale) for ch in range(c)])
                    for k in range(g)]) for py in range(scale)])
                return
            rows = [[(k * c + ch) * s2 + ph for ph in range(s2) for ch in range(c)] for k in range(g)]
            if g == 1 or fills(s2 * c):  # one conv per group
                self.last = nn.ModuleList([ConvView(conv, rows=r) for r in rows])
            else:
                self.last = ConvView(conv, rows=[i for r in rows for i in r])

    def forward(self, x):
        s, c = self.scale, self.channels
        n, h, w = x.shape[0], x.shape[2], x.shape[3]  # every conv keeps H and W (same padding)
        z = self.body(x)
        if c == 2:
            parts = self.last(z) if self.joint else [conv(z) for conv in self.last]
            if self.kind == "max":
                out = torch.maximum(parts[0], parts[1])
            else:
                if self.kind == "tm":
                    w0 = torch.sigmoid(parts[2]) if self.joint else parts[2]  # else the sigmoid ran in the conv
                elif self.kind == "tr":
                    w0 = torch.sigmoid(parts[2] * parts[3] - parts[4] * parts[5])
                else:  # cnn
                    w0 = torch.sigmoid(parts[2] * parts[3])
                out = parts[0] + parts[1] * w0  # v1 + (v0 - v1) * w0
            return shuffle_t(out, s)
        if c == 1:
            return shuffle_t(self.last(z), s)
        if self.per_row:  # row phase py's (N, H, W, px) is (N, 1, H, s*W): rows py*H + q, then in order
            rows = [self.reduce([conv(z).permute(0, 2, 3, 1).reshape(n, h, w, s, c) for conv in convs])
                    for convs in self.last]
            return interleave_rows(torch.cat([r.reshape(n, 1, h, s * w) for r in rows], dim=2), h, s)
        if isinstance(self.last, nn.ModuleList):
            parts = [conv(z).permute(0, 2, 3, 1).reshape(n, h, w, s * s, c) for conv in self.last]
        else:  # one conv, one Split of its channels-last output
            y = self.last(z).permute(0, 2, 3, 1).reshape(n, h, w, self.groups, s * s, c)
            parts = [p.squeeze(3) for p in torch.split(y, 1, dim=3)]
        out = self.reduce(parts).reshape(n, h, w, s, s).permute(0, 1, 3, 2, 4)  # n, h, py, w, px
        return out.reshape(n, 1, s * h, s * w)

    def reduce(self, parts):
        """The groups' channels-last filter outputs (value, key, query; (..., C) each) reduced over C."""
        if self.kind == "max":
            return torch.amax(parts[0], dim=-1)
        if self.kind == "tm":
            logits = parts[1]
        elif self.kind == "tr":
            logits = parts[1] * parts[2]
        else:  # cnn
            logits = parts[1] * parts[1]
        return torch.sum(parts[0] * torch.softmax(logits, dim=-1), dim=-1)
