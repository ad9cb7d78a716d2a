"""ONNX export of the model zoo, its verification against PyTorch, and the export cache.

Export uses the TorchScript exporter (``dynamo=False``): it needs no onnxscript and behaves
the same on the old torch of JetPack 5. Every file has one input ``lr`` (N, C, H, W) and
one output ``sr`` with batch, height and width dynamic, so one file serves every scale's
Full-HD input and any test image. ``metadata_props`` records the model id, the form
(``naive``: the published graph; ``fast``, ``lean``, ``pad``, ``subpix``: the rewrites of
:mod:`harness.models.fast`), the scale and the harness version, so a file found on a device
says what it is. ClassSR's routed model exports as its parts (:func:`export_classsr_parts`).
:func:`exported_onnx` is the cache of exported files the backends and reports share (by id,
weights and form).

This module sits above :mod:`harness.models` (it builds the export forms and ClassSR's classifier);
no module of :mod:`harness.models` imports it. Checks of a user's ONNX file (its inputs and
outputs) are :mod:`harness.models.onnx_file`'s.
"""
from __future__ import annotations

import hashlib
import inspect
import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .cachefile import atomic_path, check_record, file_lock, load_or_build, verified, warn_damaged, write_record
from .errors import HarnessError
from .ortsession import ort_session

FORMS = ("naive", "fast", "lean", "pad", "subpix")  # harness.models.fast.FORMS, naive first
INPUT_NAME, OUTPUT_NAME = "lr", "sr"


def harness_version() -> str:
    """The installed package version (``unknown`` when running from a bare checkout)."""
    try:
        from importlib.metadata import version
        return version("sr-edge-harness")
    except Exception:  # noqa: BLE001 - not installed, or Python without importlib.metadata
        return "unknown"


def _infer_channels(module) -> int:
    """Input channels of the first conv (every zoo network starts with one); 1 if none found."""
    from torch import nn

    if isinstance(getattr(module, "in_channels", None), int):  # models that say so (BSRN repeats its input)
        return int(module.in_channels)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return int(m.in_channels)
    return 1


def _trace(net, dummy, path: Path, output_name: str, output_axes: Dict[int, str], opset: int,
           props: Dict[str, str]) -> Path:
    """``torch.onnx.export`` of ``net`` in eval mode (input ``lr`` with batch/H/W dynamic, one output),
    then ``props`` written into the file's ``metadata_props`` and the ONNX checker run on it."""
    import onnx
    import torch

    kwargs = dict(input_names=[INPUT_NAME], output_names=[output_name], opset_version=opset, do_constant_folding=True,
                  dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, output_name: output_axes})
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # torch >= 2.1; absent on JetPack 5
        kwargs["dynamo"] = False
    was_training = net.training
    net.eval()
    with atomic_path(path) as tmp:  # a killed export leaves no half file under the real name
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the legacy-exporter deprecation and tracer warnings
                torch.onnx.export(net, (dummy,), str(tmp), **kwargs)
        finally:
            net.train(was_training)
        model = onnx.load(str(tmp))
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp))
    return path


def export_onnx(module, path: Union[str, Path], channels: int = 1, opset: int = 17, form_name: str = "naive",
                model_id: Optional[str] = None) -> Path:
    """Export ``module`` to ``path`` (input ``lr``, output ``sr``, dynamic N/H/W), check it, tag it."""
    import torch

    # H != W and neither a multiple of the other, so the tracer cannot conflate the two axes.
    dummy = torch.rand(1, channels, 24, 36)
    props = {"model_id": model_id or type(module).__name__, "form": form_name,
             "scale": str(getattr(module, "scale", "")), "harness_version": harness_version()}
    return _trace(module, dummy, Path(path), OUTPUT_NAME, {0: "batch", 2: "sr_height", 3: "sr_width"}, opset, props)


def verify_onnx(path: Union[str, Path], module, shape: Tuple[int, ...] = (1, 1, 40, 52), atol: float = 1e-4) -> float:
    """Max abs difference of ONNX Runtime (CPU) vs PyTorch eager on a seeded random input.

    Raises HarnessError naming ``path`` when the shapes differ or the difference exceeds ``atol``.
    """
    import torch

    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    sess = ort_session(path)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
    finally:
        module.train(was_training)
    if got.shape != want.shape:
        raise HarnessError(f"{path}: ONNX Runtime output shape {got.shape} != PyTorch {want.shape} for input "
                           f"{tuple(shape)}; re-export the model (or use the naive form)")
    diff = float(np.abs(got.astype(np.float64) - want).max())
    if not diff <= atol:  # also catches NaN
        raise HarnessError(f"{path}: ONNX Runtime differs from PyTorch by {diff:.3g} > {atol:g} on input "
                           f"{tuple(shape)}; re-export the model (or use the naive form)")
    return diff


def form_net(module, form: str, model_id: str = "") -> Tuple[object, str]:
    """``(module in export form form, the form written)``: a family without that form exports its
    naive graph (``naive``), as ``fast`` always did. An unknown form is a HarnessError."""
    from .models.fast import form_module

    if form not in FORMS:
        raise HarnessError(f"unknown export form '{form}' for {model_id or type(module).__name__}; "
                           f"use one of: {', '.join(FORMS)}")
    net = form_module(module, form)
    return (module, "naive") if net is None else (net, form)


def export_model(model_id: str, module, out_dir: Union[str, Path], form: str = "fast",
                 opset: int = 17) -> Tuple[Path, str]:
    """Write ``<out_dir>/<model_id>.<form>.onnx``; a form the family lacks falls back to naive.

    Returns (path, the form actually written).
    """
    net, form = form_net(module, form, model_id)
    path = Path(out_dir) / f"{model_id}.{form}.onnx"
    export_onnx(net, path, channels=_infer_channels(module), opset=opset, form_name=form, model_id=model_id)
    return path, form

def export_classsr_parts(model, out_dir: Union[str, Path], opset: int = 17) -> Dict[str, Path]:
    """Write ``<out_dir>/ClassSR-FSRCNN_s4.{classifier,branch0,branch1,branch2}.onnx``; returns part -> path.

    Tracing the routed module as one graph would freeze one routing into it, so its parts export
    apart, each with a dynamic batch: the classifier with its softmax (input ``lr`` (N, 1, H, W),
    output ``probs`` (N, 3)) and the three branches through :func:`export_onnx` (input ``lr``, output
    ``sr``). :class:`harness.backends.classsr_onnx.ClassSROnnx` runs the routing between them.
    """
    import torch

    from .models.classsr.classifier import ClassifierProbs
    from .models.classsr.spec import MODEL_ID, PROBS_NAME, part_files

    module = getattr(model, "module", model)
    was_training = module.training
    module.eval()
    files = part_files(out_dir)
    try:
        probs = ClassifierProbs(module.classifier).eval()
        dummy = torch.rand(2, 1, module.patch, module.patch)
        props = {"model_id": f"{MODEL_ID}/classifier", "form": "naive", "scale": "1",
                 "harness_version": harness_version()}
        paths = {"classifier": _trace(probs, dummy, files["classifier"], PROBS_NAME, {0: "batch"}, opset, props)}
        for i, (branch, branch_id) in enumerate(zip(module.branches, module.branch_ids)):
            paths[f"branch{i}"] = export_onnx(branch, files[f"branch{i}"], channels=1, opset=opset,
                                              form_name="naive", model_id=f"{MODEL_ID}/{branch_id}")
    finally:
        module.train(was_training)
    return paths


# --- the export cache (the ONNX Runtime and TensorRT backends, the INT8 and GhostSR reports) ------
def module_digest(module) -> str:
    """Short hash of a module's weights: the export cache key (same id, other weights -> other file)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def exported_onnx(model, form: str, workdir: Path) -> Tuple[Path, str]:
    """The model's ONNX file in the requested form, cached in ``<workdir>/<id>.<module_digest>/`` (by id,
    weights, form and the form's revision, :data:`harness.models.fast.FORM_REVISION`, in the file name
    ``<id>.r<revision>.<form>.onnx``); returns (path, the form written: ``naive`` for families without that form).

    A new file is exported under a temporary name, verified against PyTorch (:func:`verify_onnx`)
    and renamed into place with its SHA-256 beside it (``<file>.sha256``), under a lock on the
    entry; a cached file is used only when it matches that record, else it is rebuilt with a warning.
    """
    from .models.fast import FORM_REVISION

    net, form = form_net(model.module, form, model.id)  # families without the form export their naive graph
    folder = Path(workdir) / f"{model.id}.{module_digest(model.module)}"
    cached = folder / f"{model.id}.r{FORM_REVISION[form]}.{form}.onnx"
    channels = _infer_channels(model.module)

    def build(tmp: Path) -> Path:
        export_onnx(net, tmp, channels=channels, form_name=form, model_id=model.id)
        verify_onnx(tmp, model.module, shape=(1, channels, 40, 52))
        write_record(cached, built=tmp)
        prune_revisions(folder, model.id, form, FORM_REVISION[form])
        return cached

    return load_or_build(cached, verified, build), form


def prune_revisions(folder: Path, model_id: str, form: str, revision: int) -> List[Path]:
    """Delete the files of the form's older revisions in ``folder`` (``<id>.r<n>.<form>.onnx`` with
    n < ``revision``, their ``.sha256`` records and ``.lock`` files); returns what it deleted. No run of
    this code reads them again (a newer revision is never deleted: an older checkout sharing the cache
    keeps its own file and rebuilds an older one it needs). A file another process removed first, or
    cannot remove, is left to the next export."""
    pattern = re.compile(rf"{re.escape(model_id)}\.r(\d+)\.{re.escape(form)}\.onnx(\.sha256|\.lock)?")
    gone = []
    for path in sorted(Path(folder).glob(f"{model_id}.r*.{form}.onnx*")):
        match = pattern.fullmatch(path.name)
        if match and int(match.group(1)) < revision:
            try:
                path.unlink()
                gone.append(path)
            except OSError:
                pass
    return gone


def cached_classsr_parts(model, folder: Union[str, Path]) -> Dict[str, Path]:
    """ClassSR's part files in ``folder`` (named after the weights, as :func:`exported_onnx`'s folders):
    used when every part matches its ``.sha256`` record, else (re-)exported, each branch verified
    against PyTorch, under a lock on the folder's parts (a damaged set is rebuilt with a warning)."""
    from .models.classsr.spec import MODEL_ID, part_files

    files = part_files(folder)
    if all(check_record(p) is None for p in files.values()):
        return files
    with file_lock(Path(folder) / f"{MODEL_ID}.parts"):
        damage = {p: check_record(p) for p in files.values()}
        if all(why is None for why in damage.values()):
            return files  # another run exported them while this one waited for the lock
        bad = [(p, why) for p, why in damage.items() if why is not None and p.is_file()]
        if bad:
            warn_damaged(bad[0][0], str(bad[0][1]))
        paths = export_classsr_parts(model, folder)
        module = getattr(model, "module", model)
        for i, branch in enumerate(module.branches):
            verify_onnx(paths[f"branch{i}"], branch)
        for path in paths.values():
            write_record(path)
    return paths
