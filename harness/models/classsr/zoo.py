"""The zoo entry of ClassSR-FSRCNN_s4: id pattern, builders, weights and the Upscaler.

Registered in :mod:`harness.models` (``FAMILY``, ``PATTERN``, :func:`build_from_match`, :func:`ids`,
``DESCRIPTION``, :func:`load_weights`). Listing ids needs nothing but this module; building a
model imports :mod:`.networks` (PyTorch).

Weights: a state dict of the whole module (``--weights FILE``), or ``branches:D16,D36,D56``
(three FSRCNN state dicts, ``shipped``, ``official`` or a path each, a fresh classifier: the start
of ClassSR training, after training the three ``BRANCH_IDS`` with ``python -m harness train``).
The authors' branches have the same d/s/m but are RGB FSRCNNs of their own; ours are the eSR
pool's, so a trained pool FSRCNN can be a branch (:func:`load_branches`). d = 16 and 36 are not on
the published eSR grid (6, 19, 32, 44, 56) but the FSRCNN id pattern takes any d, so the branches
are built from their ids. No official weights exist for the whole module.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ...errors import HarnessError
from ..base import TorchUpscaler, load_state_strict, read_state_dict
from .routing import merge_routing
from .spec import BRANCH_IDS, MODEL_ID, ONNX_PARTS, PATCH, SCALE, STRIDE

FAMILY = "ClassSR"
PATTERN = re.compile(r"ClassSR-FSRCNN_s(?P<scale>\d+)")
DESCRIPTION = ("ClassSR (CVPR 2021): 32x32 LR patches classified and routed to one of three FSRCNN "
               "branches (d 16/36/56), x4 only, Y channel")
BRANCHES_PREFIX = "branches:"  # --weights / --init-weights branches:D16,D36,D56 (files, shipped, official, init)
_FIX = f"give a state dict of the whole {MODEL_ID} module (torch.save(model.module.state_dict(), FILE))"


class ClassSRUpscaler(TorchUpscaler):
    """The routed PyTorch pipeline as an :class:`Upscaler`; ``last_routing`` is the last call's record.

    ``onnx_pipeline`` names the graphs its ONNX Runtime pipeline is made of; the backends and the
    exporter take it as the mark of a routed model (several graphs, routing and stitching on the
    host). The pipeline itself is built by the backend layer
    (:meth:`harness.backends.classsr_onnx.ClassSROnnx.of_module`, cached by the weights' digest),
    so that models never import backends.
    """

    onnx_pipeline = ONNX_PARTS
    merge_routing = staticmethod(merge_routing)

    def __init__(self, module, weights: str = "init"):
        super().__init__(module, id=MODEL_ID, family=FAMILY, scale=SCALE, input_space="y", weights=weights,
                         notes={"routing": f"{PATCH}x{PATCH} LR patches, stride {STRIDE}, overlaps averaged; "
                                           f"branches {', '.join(BRANCH_IDS)}",
                                "macs": "static MACs are the worst case (every patch to the largest branch); "
                                        "routed MACs are in last_routing"})

    @property
    def last_routing(self) -> Optional[Dict[str, object]]:
        return getattr(self.module, "last_routing", None)


def build_module(branch_files: Optional[Sequence[Optional[Union[str, Path]]]] = None):
    """A fresh ``ClassSR`` module; ``branch_files``: optional FSRCNN state-dict files for the branches."""
    from .networks import ClassSR

    module = ClassSR()
    if branch_files is not None:
        load_branches(module, branch_files)
    return module.eval()


def build(branch_files: Optional[Sequence[Optional[Union[str, Path]]]] = None) -> ClassSRUpscaler:
    return ClassSRUpscaler(build_module(branch_files), weights="init" if branch_files is None else "branches")


def build_from_match(match: "re.Match", scale: int) -> ClassSRUpscaler:
    """The registry's ``build(match, scale)``: only x4 exists (the authors' configuration)."""
    if int(match.group("scale")) != SCALE:
        raise HarnessError(f"{match.group(0)}: ClassSR-FSRCNN exists at x{SCALE} only (the authors' FSRCNN "
                           f"branches d 16/36/56 at x4); use {MODEL_ID}")
    return build()


def ids(scale: int) -> List[str]:
    return [MODEL_ID] if scale == SCALE else []


def branch_file(branch_id: str, choice: Union[str, Path]) -> Path:
    """The weights file of one branch: ``shipped`` (the project's), ``official`` (the imported eSR
    store, where the authors published that FSRCNN), or a path."""
    if str(choice) == "shipped":
        from ...weights import shipped_file

        return shipped_file(branch_id)
    if str(choice) == "official":
        from ...weights import official_file
        from .. import esr

        return official_file(esr.official_name(branch_id))
    return Path(choice)


def load_branches(module, files: Sequence[Optional[Union[str, Path]]]):
    """Load FSRCNN state-dict files (eSR ``net.*`` keys, e.g. trained by ``harness train``) into the branches.

    ``files`` has one entry per branch (d 16, 36, 56): a path, ``shipped`` or ``official``
    (:func:`branch_file`); None keeps that branch as it is.
    """
    branches = getattr(module, "module", module).branches
    if len(files) != len(branches):
        raise HarnessError(f"{MODEL_ID} has {len(branches)} branches ({', '.join(BRANCH_IDS)}); "
                           f"got {len(files)} weights files")
    for branch, branch_id, choice in zip(branches, BRANCH_IDS, files):
        if choice is None:
            continue
        path = branch_file(branch_id, choice)
        fix = f"give a {branch_id} state dict (e.g. trained with: python -m harness train {branch_id})"
        load_state_strict(branch, read_state_dict(path, branch_id, fix), path, branch_id, fix)
    return module


def parse_branches(choice: str) -> List[Optional[str]]:
    """``branches:A,B,C`` -> one entry per branch (d 16, 36, 56); ``init`` or ``-`` (None) keeps a branch fresh."""
    tokens = [t.strip() for t in choice[len(BRANCHES_PREFIX):].split(",")] if choice.startswith(BRANCHES_PREFIX) \
        else []
    if len(tokens) != len(BRANCH_IDS):
        raise HarnessError(f"'{choice}': give {len(BRANCH_IDS)} comma-separated branch weights after "
                           f"'{BRANCHES_PREFIX}' ({', '.join(BRANCH_IDS)}; each a file, shipped, official or init), "
                           f"e.g. {BRANCHES_PREFIX}d16.pt,d36.pt,d56.pt")
    return [None if t in ("", "init", "-") else t for t in tokens]


def load_weights(model_id: str, choice: str, model=None):
    """The registry's weight loader: a state-dict file of the whole module, or ``branches:A,B,C``
    (trained FSRCNN branches, a fresh classifier: the start of ClassSR training); no official
    weights exist for the whole module."""
    if choice == "official":
        raise HarnessError(f"{model_id} has no official weights (the authors' are RGB nets of their own); "
                           f"pass --weights FILE (a state dict of this module), {BRANCHES_PREFIX}D16,D36,D56 "
                           f"(branch weights, an untrained classifier) or init")
    if str(choice).startswith(BRANCHES_PREFIX):
        module = getattr(model, "module", None)  # the built model's fresh classifier is kept
        return load_branches(module if module is not None else build_module(), parse_branches(choice)).eval()
    module = build_module()
    return load_state_strict(module, read_state_dict(choice, model_id, _FIX), choice, model_id, _FIX)
