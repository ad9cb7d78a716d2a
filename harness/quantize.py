"""INT8 post-training static quantization for ONNX Runtime (QDQ format).

Calibration feeds LR patches made exactly like the model's inputs (MATLAB bicubic of HR
crops, Y or RGB in [0, 1]) from training images when folders are given (``--calib-data
DIR[,DIR]``), else from the embedded images; :func:`calibration_source` says which, for the
results and the cache names. Weights are quantized per channel to int8, activations to
uint8, with MinMax calibration.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .color import rgb_to_y
from .errors import HarnessError
from .imresize import downscale

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
        raise HarnessError(f"{fp32_path}: INT8 quantization failed ({str(exc).splitlines()[0][:200]})") from None
    return out_path

