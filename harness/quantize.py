"""INT8 for the harness: post-training static quantization (ONNX Runtime, QDQ) and
quantization-aware training (PyTorch ``torch.ao.quantization``, exported to QDQ ONNX).

Calibration (and QAT fine-tuning) feeds LR patches made exactly like the model's inputs
(MATLAB bicubic of HR crops, Y or RGB in [0, 1]) from training images when folders are given
(``--calib-data DIR[,DIR]``), else from the embedded images; :func:`calibration_source` says
which, for the results and the cache names (:func:`int8_onnx` keeps the post-training graph beside
the FP32 file it came from). Post-training: weights per channel to int8,
activations to uint8, MinMax calibration. QAT: per-channel symmetric int8 weight fake-quant
and uint8 affine activation fake-quant, fine-tuned with an L1 loss, exported with
QuantizeLinear/DequantizeLinear pairs (opset 17). Both graphs are what ONNX Runtime runs;
TensorRT builds its INT8 engines from the FP32 ONNX with an entropy calibrator fed by the same
patches (:mod:`harness.backends.tensorrt_backend`), since it takes only signed, zero-point-0
QDQ.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .cachefile import atomic_path, load_or_build, verified, write_record
from .color import rgb_to_y
from .errors import HarnessError, first_line
from .imresize import downscale
from .ortsession import ort_reason, ort_session

MAX_CALIBRATION_IMAGES = 64  # images read from calibration folders (evenly spread over the sorted list)


def calibration_files(folders: Sequence[str]) -> List[Path]:
    """The image files of ``folders`` (recursively, sorted), at most MAX_CALIBRATION_IMAGES evenly spread."""
    from .imageio import is_image_file

    for f in folders:
        if not Path(f).is_dir():
            raise HarnessError(f"calibration folder {f} does not exist; give --calib-data a folder of training "
                               f"images (e.g. DIV2K/DIV2K_train_HR)")
    files = [p for f in folders for p in sorted(Path(f).rglob("*")) if p.is_file() and is_image_file(p)]
    if not files:
        raise HarnessError(f"no calibration images in {', '.join(map(str, folders))}; give a folder of images")
    if len(files) > MAX_CALIBRATION_IMAGES:
        step = len(files) / MAX_CALIBRATION_IMAGES
        files = [files[int(i * step)] for i in range(MAX_CALIBRATION_IMAGES)]
    return files


def calibration_source(folders: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """What calibrates INT8 (recorded with the results): ``embedded`` or the folders, with a key
    that changes with the images used (their paths, sizes and modification times)."""
    from .datasets import EMBEDDED_IMAGES

    if not folders:
        return {"source": "embedded", "images": len(EMBEDDED_IMAGES), "key": "embedded"}
    files = calibration_files(folders)
    digest = hashlib.sha256()
    for p in files:
        st = p.stat()
        digest.update(json.dumps([str(p.resolve()), st.st_size, st.st_mtime_ns]).encode())
    return {"source": "folders", "folders": [str(Path(f).resolve()) for f in folders], "images": len(files),
            "key": digest.hexdigest()[:12]}


def _images(folders: Optional[Sequence[str]]) -> List[np.ndarray]:
    from .datasets import embedded_set
    from .imageio import load_rgb

    if folders:
        return [load_rgb(p) for p in calibration_files(folders)]
    return [img for _, img in embedded_set()]


def _to_input(rgb: np.ndarray, input_space: str) -> np.ndarray:
    """uint8 HxWx3 -> float32 CxHxW in [0, 1] (Y: BT.601 luma)."""
    if input_space == "y":
        return (rgb_to_y(rgb) / 255.0)[None].astype(np.float32)
    return np.transpose(rgb.astype(np.float32) / 255.0, (2, 0, 1))


def calibration_inputs(scale: int, input_space: str, count: int = 32, patch: int = 96,
                       folders: Optional[Sequence[str]] = None, seed: int = 0) -> List[np.ndarray]:
    """``count`` LR patches (1xCxhxw float32) from ``folders`` or the embedded images."""
    images = _images(folders)
    patch -= patch % scale
    rng = np.random.default_rng(seed)
    usable = [img for img in images if img.shape[0] >= patch and img.shape[1] >= patch]
    if not usable:
        raise HarnessError(f"calibration images are all smaller than the {patch}-pixel patch")
    out = []
    for i in range(count):
        img = usable[i % len(usable)]
        top = rng.integers(0, img.shape[0] - patch + 1)
        left = rng.integers(0, img.shape[1] - patch + 1)
        lr = downscale(np.ascontiguousarray(img[top:top + patch, left:left + patch]), scale)
        if input_space == "y":
            x = (rgb_to_y(lr) / 255.0)[None, None]
        else:
            x = np.transpose(lr.astype(np.float64) / 255.0, (2, 0, 1))[None]
        out.append(np.ascontiguousarray(x, dtype=np.float32))
    return out


def quantize_qdq(fp32_path, out_path, inputs: List[np.ndarray]) -> Path:
    """Static INT8 QDQ quantization of an ONNX file, calibrated on ``inputs``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{name: x} for x in inputs])

        def get_next(self):
            return next(self._it, None)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    source = Path(fp32_path)
    try:  # ORT's recommended pre-processing (shape inference, graph cleanup); optional
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepped = out_path.with_name(out_path.stem + ".prep.onnx")
        quant_pre_process(str(fp32_path), str(prepped))
        source = prepped
    except Exception:  # noqa: BLE001 - quantization works without it, only less tidily
        pass
    try:
        quantize_static(str(source), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    except Exception as exc:  # noqa: BLE001 - ORT's quantizer raises many types
        raise HarnessError(f"{fp32_path}: INT8 quantization failed ({first_line(exc, 200)})") from None
    finally:
        if source != Path(fp32_path):  # the pre-processed intermediate is not kept
            source.unlink(missing_ok=True)
    return out_path


def int8_onnx(model, fp32_path: Path, folders=None) -> Tuple[Path, Dict[str, object]]:
    """The QDQ INT8 version of an exported file, cached beside it, and what calibrated it.

    Calibrated on LR patches of the images in ``folders`` (training images: ``--calib-data``),
    else of the embedded images; the file name carries the calibration key
    (``<form>.int8.onnx`` for the embedded images, ``<form>.int8-<key>.onnx`` for folders).
    """
    source = calibration_source(folders)
    suffix = ".int8.onnx" if source["source"] == "embedded" else f".int8-{source['key']}.onnx"
    fp32_path = Path(fp32_path)
    target = fp32_path.with_name(fp32_path.stem + suffix)

    def build(tmp: Path) -> Path:  # quantized under a temporary name, checked, recorded, then renamed
        import onnx

        quantize_qdq(fp32_path, tmp, calibration_inputs(model.scale, model.input_space, folders=folders))
        onnx.checker.check_model(str(tmp))
        write_record(target, built=tmp, sources=[fp32_path])  # the FP32 file's digest too: a new one invalidates it
        return target

    # used only while it and its FP32 source match its .sha256 record; built under a lock
    return load_or_build(target, verified, build), dict(source, method="ort-minmax-qdq")


# --------------------------------------------------------------------------- QAT
QAT_OPSET = 17


class PatchPairs:
    """Random (LR, HR) patch batches for fine-tuning: HR crops of the calibration images
    (``folders``, else the embedded images) with one of the 8 flips/rotations, LR = MATLAB
    bicubic of each crop, as float32 tensors (B, C, p/s, p/s) and (B, C, p, p) in [0, 1]."""

    def __init__(self, scale: int, input_space: str = "rgb", folders: Optional[Sequence[str]] = None,
                 patch: int = 96, batch: int = 16, seed: int = 0):
        self.scale, self.input_space, self.batch = scale, input_space, batch
        self.patch = patch - patch % scale
        self.images = [img for img in _images(folders) if min(img.shape[:2]) >= self.patch]
        if not self.images:
            raise HarnessError(f"the fine-tuning images are all smaller than the {self.patch}-pixel patch")
        self.rng = np.random.default_rng(seed)

    def next(self):
        import torch

        p, s = self.patch, self.scale
        lrs, hrs = [], []
        for _ in range(self.batch):
            img = self.images[int(self.rng.integers(len(self.images)))]
            top = int(self.rng.integers(0, img.shape[0] - p + 1))
            left = int(self.rng.integers(0, img.shape[1] - p + 1))
            hr = np.rot90(img[top:top + p, left:left + p], int(self.rng.integers(4)))
            if self.rng.integers(2):
                hr = hr[:, ::-1]
            hr = np.ascontiguousarray(hr)
            lrs.append(_to_input(downscale(hr, s), self.input_space))
            hrs.append(_to_input(hr, self.input_space))
        return torch.from_numpy(np.stack(lrs)), torch.from_numpy(np.stack(hrs))

    __next__ = next

    def __iter__(self):
        return self


@contextlib.contextmanager
def _quiet_ao():
    """torch's eager-mode QAT calls warn that torch.ao.quantization is deprecated (in favour of
    torchao); it still works (torch 2.13 here) and is what this module uses, so the notice is
    not printed on every command."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*torch\.ao\.quantization is deprecated")
        yield


def _require_ao() -> None:
    try:
        import torch.ao.quantization  # noqa: F401
        from torch.ao.nn.quantized import FloatFunctional  # noqa: F401
    except ImportError as exc:
        import torch

        raise HarnessError(f"torch {torch.__version__} has no eager-mode torch.ao.quantization ({exc}); QAT needs "
                           f"a torch that still ships it") from None


def qat_qconfig():
    """Per-channel symmetric int8 weights, per-tensor affine uint8 activations, as plain
    ``FakeQuantize`` modules (the fused variant has no ONNX export); ONNX export maps them to
    QuantizeLinear/DequantizeLinear."""
    import torch
    from torch.ao.quantization import (
        FakeQuantize,
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
        QConfig,
    )

    activation = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                        dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False)
    weight = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
                                    dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0,
                                    reduce_range=False)
    return QConfig(activation=activation, weight=weight)


def _is_abpn(module) -> bool:
    from torch import nn

    body = getattr(module, "body", None)
    return (isinstance(body, nn.Sequential) and isinstance(getattr(module, "shuffle", None), nn.PixelShuffle)
            and isinstance(getattr(module, "scale", None), int)
            and all(isinstance(m, (nn.Conv2d, nn.ReLU)) for m in body))


def qat_prepare(module):
    """A QAT copy of an ABPN network (the original is left untouched): input QuantStub, conv+ReLU
    fused, the anchor add through ``FloatFunctional`` (so its output is quantized as in the
    deployed INT8 model), PixelShuffle and the final clamp kept, DeQuantStub at the end."""
    import copy

    import torch
    from torch import nn
    from torch.ao.nn.quantized import FloatFunctional
    from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules_qat, prepare_qat

    _require_ao()
    if not _is_abpn(module):
        raise HarnessError(f"quantization-aware training is implemented for ABPN networks (plain conv/ReLU body, "
                           f"anchor, PixelShuffle); {type(module).__name__} is not one")

    class QATWrapper(nn.Module):
        input_space = "rgb"

        def __init__(self, net):
            super().__init__()
            self.scale = net.scale
            self.in_channels = net.body[0].in_channels
            self.quant = QuantStub()
            self.body = copy.deepcopy(net.body)
            self.add = FloatFunctional()
            self.shuffle = nn.PixelShuffle(net.scale)
            self.dequant = DeQuantStub()

        def forward(self, x):
            x = self.quant(x)
            anchor = torch.repeat_interleave(x, self.scale * self.scale, dim=1)
            y = self.add.add(self.body(x), anchor)
            return self.dequant(torch.clamp(self.shuffle(y), 0.0, 1.0))

    net = QATWrapper(module).train()
    body = net.body
    pairs = [[str(i), str(i + 1)] for i in range(len(body) - 1)
             if isinstance(body[i], nn.Conv2d) and isinstance(body[i + 1], nn.ReLU)]
    with _quiet_ao():
        net.body = fuse_modules_qat(body, pairs)
        net.qconfig = qat_qconfig()
        prepare_qat(net, inplace=True)
    return net


def _batch_source(batches):
    """A callable returning one (lr, hr) pair of float tensors from a sampler (``.next()``), a
    callable, an iterator, or a sequence of pairs (cycled)."""
    import itertools

    import torch

    if hasattr(batches, "next") and callable(batches.next):
        draw = batches.next
    elif callable(batches):
        draw = batches
    elif isinstance(batches, (list, tuple)):
        if not batches:
            raise HarnessError("qat_finetune needs at least one (lr, hr) batch")
        draw = itertools.cycle(batches).__next__
    else:
        draw = iter(batches).__next__

    def get():
        lr, hr = draw()
        return (torch.as_tensor(np.asarray(lr) if not torch.is_tensor(lr) else lr, dtype=torch.float32),
                torch.as_tensor(np.asarray(hr) if not torch.is_tensor(hr) else hr, dtype=torch.float32))

    return get


def qat_finetune(model_id: str, module, batches, steps: int, lr: float = 5e-5, out: Optional[Union[str, Path]] = None,
                 observe_batches: int = 4, freeze_observers: float = 0.8, seed: int = 0) -> Dict[str, object]:
    """Quantization-aware fine-tuning of ``module`` (an FP32 ABPN; left untouched) for ``steps``
    Adam steps of L1 loss on (lr, hr) batches, then export to a QDQ ONNX at ``out`` when given.

    ``batches``: a :class:`PatchPairs` (or the trainer's PatchSampler for RGB), a callable, an
    iterator or a list of (lr, hr) tensor pairs. The first ``observe_batches`` batches only set
    the observers' ranges (a calibration pass, so ``steps=0`` is fake-quantized PTQ); the ranges
    are frozen after ``freeze_observers`` of the steps, so the last steps train against fixed
    quantization grids. Returns ``{"module", "onnx", "losses", "steps", "lr"}``.
    """
    import torch
    from torch.ao.quantization import disable_observer

    if steps < 0:
        raise HarnessError(f"QAT steps must be >= 0, got {steps}")
    torch.manual_seed(seed)
    net = qat_prepare(module)
    draw = _batch_source(batches)
    with torch.no_grad():
        for _ in range(max(1, observe_batches)):
            net(draw()[0])
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    freeze_at = int(steps * freeze_observers)
    losses: List[float] = []
    for step in range(steps):
        if step == freeze_at:
            net.apply(disable_observer)
        x, y = draw()
        loss = torch.nn.functional.l1_loss(net(x), y)
        if not torch.isfinite(loss):
            raise HarnessError(f"{model_id}: QAT loss became {float(loss)} at step {step}; lower --qat-lr")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    net.apply(disable_observer)
    net.eval()
    path = export_qat_onnx(model_id, net, out) if out is not None else None
    return {"module": net, "onnx": path, "losses": losses, "steps": steps, "lr": lr}


def qdq_ops(path) -> Dict[str, int]:
    """Op-type counts of an ONNX graph."""
    import collections

    import onnx

    return dict(collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node))


def export_qat_onnx(model_id: str, net, out: Union[str, Path]) -> Path:
    """Export a QAT network (observers disabled) to a QDQ ONNX (input ``lr``, output ``sr``,
    dynamic N/H/W), checked to hold QuantizeLinear/DequantizeLinear, the anchor Add and the
    final Clip, and to run in ONNX Runtime."""
    from torch.ao.quantization import disable_observer

    out = Path(out)
    net.apply(disable_observer)
    with atomic_path(out) as tmp:  # a name of its own, renamed onto ``out`` once checked, removed on failure
        _export_checked_qat(model_id, net, tmp)
    return out


def _export_checked_qat(model_id: str, net, tmp: Path) -> None:
    from .export import export_onnx

    export_onnx(net, tmp, channels=net.in_channels, opset=QAT_OPSET, form_name="qat", model_id=model_id)
    ops = qdq_ops(tmp)
    missing = [op for op in ("QuantizeLinear", "DequantizeLinear", "Add", "Clip", "DepthToSpace") if op not in ops]
    if missing:
        raise HarnessError(f"{model_id}: the QAT export lacks {', '.join(missing)} nodes (ops: "
                           f"{', '.join(sorted(ops))}); this torch's ONNX exporter is not supported for QAT")
    try:
        session = ort_session(tmp)
        y = session.run(None, {"lr": np.full((1, net.in_channels, 8, 10), 0.5, np.float32)})[0]
    except Exception as exc:  # noqa: BLE001 - ORT raises several types
        raise HarnessError(f"{model_id}: ONNX Runtime cannot run the QAT export ({ort_reason(exc, 200)})") from None
    if y.shape != (1, net.in_channels, 8 * net.scale, 10 * net.scale) or not np.all(np.isfinite(y)):
        raise HarnessError(f"{model_id}: the QAT export gives output {y.shape} (or NaN) for an 8x10 input")
