"""ONNX export of ClassSR's parts: the classifier and each branch as separate graphs.

Tracing the routed module as one graph would freeze one routing into it, so the classifier
(with its softmax, output ``probs`` (N, 3)) and the three branches (through
:func:`harness.export.export_onnx`: input ``lr``, output ``sr``) are exported apart, each with a
dynamic batch; :class:`harness.backends.classsr_onnx.ClassSROnnx` runs the routing between them.

This module sits above the rest of the package (it uses :mod:`harness.export`, which resolves zoo
models): no other module of the package imports it, so importing :mod:`harness.models` does not
load it. Only the package's lazy ``harness.models.classsr.export_parts`` alias (kept for existing
callers) points here; import :func:`export_parts` from this module instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

from .spec import MODEL_ID, PROBS_NAME, part_files


def _export_classifier(module, path: Path, opset: int) -> Path:
    """The classifier + softmax: input ``lr`` (N, 1, H, W), output ``probs`` (N, 3), batch/H/W dynamic."""
    import inspect
    import warnings

    import onnx
    import torch

    from ...export import INPUT_NAME, harness_version
    from .classifier import ClassifierProbs

    net = ClassifierProbs(module.classifier).eval()
    dummy = torch.rand(2, 1, module.patch, module.patch)
    kwargs = dict(input_names=[INPUT_NAME], output_names=[PROBS_NAME], opset_version=opset, do_constant_folding=True,
                  dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, PROBS_NAME: {0: "batch"}})
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # torch >= 2.1; absent on JetPack 5
        kwargs["dynamo"] = False
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (dummy,), str(path), **kwargs)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"model_id": f"{MODEL_ID}/classifier", "form": "naive", "scale": "1",
                                        "harness_version": harness_version()})
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    return path


def export_parts(model, out_dir: Union[str, Path], opset: int = 17) -> Dict[str, Path]:
    """Write ``<out_dir>/ClassSR-FSRCNN_s4.{classifier,branch0,branch1,branch2}.onnx``; returns part -> path.

    The branches go through :func:`harness.export.export_onnx` (input ``lr``, output ``sr``,
    dynamic N/H/W); the classifier outputs the softmax ``probs`` (N, 3).
    """
    from ...export import export_onnx

    module = getattr(model, "module", model)
    was_training = module.training
    module.eval()
    files = part_files(out_dir)
    try:
        paths = {"classifier": _export_classifier(module, files["classifier"], opset)}
        for i, (branch, branch_id) in enumerate(zip(module.branches, module.branch_ids)):
            paths[f"branch{i}"] = export_onnx(branch, files[f"branch{i}"], channels=1, opset=opset,
                                              form_name="naive", model_id=f"{MODEL_ID}/{branch_id}")
    finally:
        module.train(was_training)
    return paths
