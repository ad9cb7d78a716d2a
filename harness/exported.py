"""Exported model folders: export on a workstation, measure on a device without PyTorch.

The standard edge workflow: a machine with PyTorch writes every model of a sweep as ONNX
files plus a ``manifest.json`` (``python -m harness export --out DIR``); the folder is
copied to the device, whose Python needs only ONNX Runtime, NumPy and the light
dependencies, and ``run-all``/``bench``/``quality`` measure the files (``--onnx-dir DIR``).

For each model the folder holds:

* the graph in each export form asked for (``naive``, and ``fast``, ``lean``, ``pad`` or ``subpix``
  where the family has it; :mod:`harness.models.fast`), each
  verified against PyTorch when it was written; with ``--precision int8`` also the QDQ
  INT8 graph of each form; a routed model (ClassSR) has its four graphs (``parts``);
* what the runner would otherwise compute from the PyTorch module: family, scale, input
  space, weights, parameters, MACs and bytes moved per Full-HD frame;
* a *probe*: a real 32x48 LR crop and the PyTorch fp32 output for it, so the device checks
  its own backend's output against PyTorch without PyTorch (the runner's reference check).

The manifest records each file's SHA-256; a file that does not match is refused with a
one-line error (a half-copied folder must not be measured).
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .cachefile import sha256_of
from .errors import HarnessError
from .models.base import Upscaler
from .models.onnx_file import OnnxFileUpscaler

MANIFEST_NAME = "manifest.json"
FORMAT = "sr-edge-harness/export"
FORMAT_VERSION = 1
PROBE_HW = (32, 48)   # LR probe (H, W): a real image crop, small enough for 1185 models
PRECISIONS = ("fp32", "int8")


def file_slug(model_id: str, scale: int) -> str:
    """A folder name for a model id (ids of user modules hold ':' and dots)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", model_id) + f"_x{scale}"


def probe_input(scale: int, input_space: str) -> np.ndarray:
    """The probe LR input, (1, C, 32, 48) float32 in [0, 1]: the most detailed crop of the
    first embedded image's MATLAB-bicubic LR at ``scale`` (a real image, not noise)."""
    from .color import rgb_to_y
    from .datasets import embedded_set
    from .imresize import downscale, modcrop

    _, rgb = next(iter(embedded_set()))
    lr = downscale(modcrop(rgb, scale), scale)
    h, w = PROBE_HW
    top, left = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
    crop = lr[top:top + h, left:left + w]
    if input_space == "y":
        return (rgb_to_y(crop) / 255.0).astype(np.float32)[None, None]
    return np.ascontiguousarray(np.transpose(crop.astype(np.float32) / 255.0, (2, 0, 1))[None])


# --------------------------------------------------------------------------- writing (needs torch)

def _module_output(model, x: np.ndarray) -> np.ndarray:
    import torch

    module = model.module
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()
    finally:
        module.train(was_training)


def _export_network(model, folder: Path, forms: Sequence[str], precisions: Sequence[str],
                    calib_data: Optional[List[str]]) -> Dict[str, object]:
    """The files of one network: each form verified against PyTorch, INT8 QDQ where asked."""
    from .export import export_model, verify_onnx
    from .models.fast import form_module
    from .quantize import int8_onnx

    files: Dict[str, str] = {}
    verified: Dict[str, float] = {}
    calibration = None
    for form in forms:
        if form != "naive" and form_module(model.module, form) is None:
            continue  # the family has no such form: its naive graph stands for it
        path, got = export_model(model.id, model.module, folder, form=form)
        verified[got] = verify_onnx(path, model.module, shape=(1, model.channels, 40, 52))
        files[got] = path.name
        if "int8" in precisions:
            qpath, calibration = int8_onnx(model, path, calib_data)
            files[f"{got}.int8"] = qpath.name
    return {"kind": "network", "files": files, "verified_max_abs": verified,
            **({"calibration": calibration} if calibration else {})}


def _export_pipeline(model, folder: Path) -> Dict[str, object]:
    """A routed model (ClassSR): its classifier and branch graphs."""
    from .export import export_classsr_parts
    from .models.classsr.routing import macs_table

    paths = export_classsr_parts(model.module, folder)
    return {"kind": "pipeline", "files": {part: Path(p).name for part, p in paths.items()},
            "routing_macs": macs_table()}


def export_models(pairs: Sequence[Tuple[str, int]], out: Union[str, Path], weights: str = "shipped",
                  weights_of: Optional[Dict[Tuple[str, int], str]] = None,
                  forms: Sequence[str] = ("naive", "fast"), precisions: Sequence[str] = ("fp32",),
                  calib_data: Optional[List[str]] = None,
                  log: Optional[Callable[[str], None]] = None) -> Dict[str, object]:
    """Write every (model id, scale) of ``pairs`` into ``out`` and its manifest; returns the manifest.

    Models that run without a network (``bicubic-matlab``, ``bicubic-opencv``) need no file and
    are left out. An existing folder is updated: entries of other models are kept, so several
    exports (other scales, other weights) can share one folder.
    """
    from .export import harness_version
    from .models import resolve
    from .models.complexity import complexity

    for p in precisions:
        if p not in PRECISIONS:
            raise HarnessError(f"--precision {p}: export writes fp32 and int8 graphs (fp16 is built on the device "
                               f"by TensorRT from the fp32 file); give fp32 or fp32,int8")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out) if (out / MANIFEST_NAME).is_file() else _new_manifest()
    entries = {(e["id"], int(e["scale"])): e for e in manifest["models"]}
    written = 0
    for i, (mid, scale) in enumerate(pairs, 1):
        model = resolve(mid, scale, (weights_of or {}).get((mid, scale), weights))
        if getattr(model, "module", None) is None and not getattr(model, "onnx_path", None):
            continue  # classical code: runs natively everywhere
        t0 = time.perf_counter()
        slug = file_slug(model.id, model.scale)
        folder = out / slug
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        entry: Dict[str, object] = {"id": model.id, "scale": model.scale, "family": model.family,
                                    "input_space": model.input_space, "weights": model.weights, "folder": slug}
        if getattr(model, "onnx_path", None):  # a user's ONNX file: copied as it is
            shutil.copyfile(model.onnx_path, folder / "model.onnx")
            entry.update(kind="network", files={"onnx": "model.onnx"})
        elif hasattr(model, "onnx_pipeline"):
            entry.update(_export_pipeline(model, folder))
        else:
            entry.update(_export_network(model, folder, forms, precisions, calib_data))
        if getattr(model, "module", None) is not None:
            entry["complexity"] = complexity(model.module, model.scale, channels=model.channels)
            x = probe_input(model.scale, model.input_space)
            np.savez_compressed(folder / "probe.npz", lr=x, sr=_module_output(model, x).astype(np.float32))
            entry["probe"] = "probe.npz"
        keep = set(dict(entry["files"]).values()) | ({entry["probe"]} if entry.get("probe") else set())
        for name in os.listdir(folder):  # intermediates (ORT's quantization pre-processing) are not kept
            if name not in keep:
                (folder / name).unlink()
        entry["sha256"] = {name: sha256_of(folder / name) for name in sorted(keep)}
        entries[(model.id, model.scale)] = entry
        written += 1
        if log:
            log(f"[{i}/{len(pairs)}] {model.id} x{model.scale}: {', '.join(entry['files'])} "
                f"({time.perf_counter() - t0:.1f} s)")
    manifest["models"] = sorted(entries.values(), key=lambda e: (e["scale"], e["id"]))
    manifest.update(harness_version=harness_version(), written_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    written_on=_host(), versions=_export_versions())
    _write_manifest(out, manifest)
    return manifest


def _new_manifest() -> Dict[str, object]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "models": []}


def _host() -> Dict[str, str]:
    return {"hostname": platform.node(), "machine": platform.machine(), "python": sys.version.split()[0]}


def _export_versions() -> Dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _write_manifest(out: Path, manifest: Dict[str, object]) -> None:
    tmp = out / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, out / MANIFEST_NAME)


def _read_manifest(folder: Path) -> Dict[str, object]:
    path = folder / MANIFEST_NAME
    fix = "write it with: python -m harness export --out DIR (on a machine with PyTorch), then copy DIR here"
    if not path.is_file():
        raise HarnessError(f"{path}: no export manifest; {fix}")
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: unreadable export manifest ({str(exc).splitlines()[0][:120]}); {fix}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("models"), list):
        raise HarnessError(f"{path} is not a harness export manifest; {fix}")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise HarnessError(f"{path}: written by a newer harness (format {manifest.get('format_version')}); "
                           f"update the harness on this device")
    return manifest


# --------------------------------------------------------------------------- reading (no torch)

class ExportedModel(OnnxFileUpscaler):
    """A model read from an export folder: runs its files on ONNX Runtime, no PyTorch.

    ``onnx_forms``: form -> fp32 file; ``onnx_int8_forms``: form -> QDQ INT8 file; ``onnx_path``
    (the naive fp32 file) serves quality and ``upscale``; ``complexity`` and ``probe`` stand in
    for what the runner reads from the PyTorch module.
    """

    onnx_forms: Dict[str, str] = {}
    onnx_int8_forms: Dict[str, str] = {}
    complexity: Dict[str, object] = {}
    probe: Optional[str] = None
    export_dir: str = ""
    calibration: Optional[Dict[str, object]] = None


class ExportedPipeline(Upscaler):
    """A routed model (ClassSR) read from an export folder: four graphs and host-side routing."""

    onnx_parts: Dict[str, str] = {}
    routing_macs: Optional[Dict[str, object]] = None
    complexity: Dict[str, object] = {}
    probe: Optional[str] = None
    export_dir: str = ""
    _pipeline = None

    @staticmethod
    def merge_routing(records):
        from .models.classsr.routing import merge_routing

        return merge_routing(records)

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        if self._pipeline is None:
            from .backends.classsr_onnx import ClassSROnnx

            self._pipeline = ClassSROnnx(dict(self.onnx_parts), macs=self.routing_macs)
        return self._pipeline(lr)


class ExportFolder:
    """An export folder opened for reading: ``get(id, scale)`` builds the model from its files."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_dir():
            raise HarnessError(f"--onnx-dir {path}: no such folder; copy the folder written by "
                               f"'python -m harness export --out DIR' here")
        self.manifest = _read_manifest(self.path)
        self.digest = sha256_of(self.path / MANIFEST_NAME)[:16]
        self.entries = {(e["id"], int(e["scale"])): e for e in self.manifest["models"]}
        self._checked: Dict[Tuple[str, int], bool] = {}

    def pairs(self) -> List[Tuple[str, int]]:
        return list(self.entries)

    def scales(self) -> List[int]:
        return sorted({s for _, s in self.entries})

    def find(self, model_id: str, scale: Optional[int]) -> Optional[Dict[str, object]]:
        if scale is not None:
            return self.entries.get((model_id, int(scale)))
        found = [e for (mid, _), e in self.entries.items() if mid == model_id]
        return found[0] if len(found) == 1 else None

    def _verified(self, entry: Dict[str, object]) -> Path:
        """The entry's folder, every file present with its recorded SHA-256 (checked once)."""
        folder = self.path / str(entry["folder"])
        key = (entry["id"], int(entry["scale"]))
        if not self._checked.get(key):
            for name, want in dict(entry.get("sha256", {})).items():
                f = folder / name
                if not f.is_file():
                    raise HarnessError(f"{f} is missing (listed in {self.path / MANIFEST_NAME}); copy the whole "
                                       f"export folder again")
                if sha256_of(f) != want:
                    raise HarnessError(f"{f} does not match its SHA-256 in {self.path / MANIFEST_NAME} (damaged or "
                                       f"half-copied); copy the export folder again or re-export the model")
            self._checked[key] = True
        return folder

    def get(self, model_id: str, scale: Optional[int]) -> Optional[Upscaler]:
        entry = self.find(model_id, scale)
        if entry is None:
            return None
        folder = self._verified(entry)
        files = {k: str(folder / v) for k, v in dict(entry["files"]).items()}
        common = dict(id=entry["id"], family=entry["family"], scale=int(entry["scale"]),
                      input_space=entry["input_space"], weights=entry["weights"])
        model: Upscaler
        if entry["kind"] == "pipeline":
            model = ExportedPipeline(**common)
            model.onnx_parts = files
            model.routing_macs = entry.get("routing_macs")
        else:
            model = ExportedModel(**common)
            forms = {k: v for k, v in files.items() if not k.endswith(".int8")}
            model.onnx_forms = forms
            model.onnx_int8_forms = {k[:-len(".int8")]: v for k, v in files.items() if k.endswith(".int8")}
            model.onnx_path = forms.get("naive") or forms.get("onnx") or next(iter(forms.values()))
            model.calibration = entry.get("calibration")
        model.complexity = dict(entry.get("complexity") or {})
        model.probe = str(folder / entry["probe"]) if entry.get("probe") else None
        model.export_dir = str(self.path)
        return model


_OPEN: Dict[str, ExportFolder] = {}


def open_folder(path: Union[str, Path]) -> ExportFolder:
    key = str(Path(path).expanduser().resolve())
    if key not in _OPEN:
        _OPEN[key] = ExportFolder(path)
    return _OPEN[key]


def resolve_model(model_id: str, scale: Optional[int] = None, weights: Optional[str] = None,
                  onnx_dir: Optional[Union[str, Path]] = None) -> Upscaler:
    """The model for ``model_id``: from the export folder ``onnx_dir`` when given (the device
    path: no PyTorch), else built by the model registry. With a folder, a model that needs a
    network and is not in it is a one-line error saying how to export it; classical models
    (``bicubic-matlab``, ``bicubic-opencv``) and ONNX files run as they are."""
    from .models import resolve

    if not onnx_dir:
        try:
            return resolve(model_id, scale, weights)
        except ImportError as exc:
            if getattr(exc, "name", None) != "torch" and "torch" not in str(exc):
                raise
            raise HarnessError(needs_torch(model_id)) from None
    folder = open_folder(onnx_dir)
    model = folder.get(model_id, scale)
    if model is not None:
        return model
    try:
        model = resolve(model_id, scale, None)
    except ImportError:  # a network family on a device without PyTorch
        model = None
    if model is None or getattr(model, "module", None) is not None:
        at = f" x{scale}" if scale else ""
        raise HarnessError(f"{model_id}{at} is not in {folder.path / MANIFEST_NAME} ({len(folder.entries)} models); "
                           f"export it on a machine with PyTorch: python -m harness export --models {model_id}"
                           f"{f' --scale {scale}' if scale else ''} --out DIR, then copy DIR here")
    return model


def needs_torch(what: str) -> str:
    """The one-line advice when ``what`` needs PyTorch and this Python has none (a device venv)."""
    return (f"{what} needs PyTorch, which this environment does not have (a device setup); export on a machine "
            f"with PyTorch (python -m harness export --models ... --out DIR), copy DIR here and give --onnx-dir "
            f"DIR, or install the [torch] extra")
