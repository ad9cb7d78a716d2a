"""ClassSR (Kong, Zhao, Qiao and Dong, CVPR 2021) over three eSR-pool FSRCNN branches, x4, Y channel.

One id, ``ClassSR-FSRCNN_s4``. The LR image is cut into 32x32 patches (stride 28); a small
classifier gives every patch three probabilities (easy / medium / hard) and the patch is
super-resolved by the branch of its argmax: the eSR pool's FSRCNN with d = 16, 36, 56, s = 12,
m = 4. On ONNX Runtime the same routing runs in NumPy around four graphs, so end-to-end time
(classifier and stitching included) can be measured there.

The package, one module per concern, imports flowing one way (spec <- classifier <- routing <-
networks <- zoo, loss beside them; the exporter and the backend above the package):

- :mod:`.spec`: the id, scale, branch ids, patch geometry and ONNX part names (plain values);
- :mod:`.routing`: the patch grid, the MAC counts and the routing records (NumPy; the MAC
  counts build the networks, so they import PyTorch when called);
- :mod:`.classifier`, :mod:`.networks`: the ``nn.Module`` classes (PyTorch at their top; imported
  only when a network is built; :mod:`harness.models.nets.torchless` stands in where PyTorch is absent);
- :mod:`.zoo`: the registry entry (id pattern, builders, weights, :class:`~.zoo.ClassSRUpscaler`);
- :mod:`.loss`: the authors' loss and the classifier's training step;
- :func:`harness.export.export_classsr_parts`: the classifier and branch graphs (the exporter
  imports from here, never the other way);
- :mod:`harness.backends.classsr_onnx`: the ONNX Runtime pipeline ``ClassSROnnx``; it imports
  from here, never the other way.

Importing the package (as :mod:`harness.models` does to register the family) loads spec,
routing, zoo and loss only: no PyTorch. Their public names are re-exported here. The network
classes (``Classifier``, ``ClassifierProbs``, ``ClassSR``) resolve on first
access (PEP 562), which also keeps modules pickled before the split under
``harness.models.classsr.<Class>`` loadable.
"""
from __future__ import annotations

from .loss import (
    DIVERGED_LOSS,
    LOSS_NAME,
    LOSS_WEIGHTS,
    average_loss,
    class_loss,
    classifier_optimizer,
    classsr_loss,
    train_step,
)
from .routing import (
    coverage,
    grid_starts,
    macs_table,
    merge_routing,
    padded_hw,
    patch_grid,
    patch_macs,
    routing_stats,
    whole_image_macs,
)
from .spec import BRANCH_IDS, MODEL_ID, ONNX_PARTS, PATCH, PROBS_NAME, SCALE, STRIDE, part_files
from .zoo import (
    BRANCHES_PREFIX,
    DESCRIPTION,
    FAMILY,
    PATTERN,
    ClassSRUpscaler,
    branch_file,
    build,
    build_from_match,
    build_module,
    ids,
    load_branches,
    load_weights,
    parse_branches,
)


def __getattr__(name: str):
    """The network classes (PyTorch), from their modules on first access
    (PEP 562): listing the zoo stays light, and names pickled before the split still resolve."""
    if name in ("Classifier", "ClassifierProbs", "CLASSIFIER_FEATURES", "CLASSIFIER_SQUEEZE"):
        from . import classifier

        return getattr(classifier, name)
    if name == "ClassSR":
        from .networks import ClassSR

        return ClassSR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BRANCHES_PREFIX", "BRANCH_IDS", "DESCRIPTION", "DIVERGED_LOSS", "FAMILY", "LOSS_NAME", "LOSS_WEIGHTS",
           "MODEL_ID", "ONNX_PARTS", "PATCH", "PATTERN", "PROBS_NAME", "SCALE", "STRIDE", "ClassSRUpscaler",
           "average_loss", "branch_file", "build", "build_from_match", "build_module", "class_loss",
           "classifier_optimizer", "classsr_loss", "coverage", "grid_starts", "ids", "load_branches", "load_weights",
           "macs_table", "merge_routing", "padded_hw", "parse_branches", "part_files", "patch_grid", "patch_macs",
           "routing_stats", "train_step", "whole_image_macs"]
