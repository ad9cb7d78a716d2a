"""What ClassSR-FSRCNN_s4 is made of, shared by every part of the package and by its ONNX Runtime
pipeline (:mod:`harness.backends.classsr_onnx`): the id and scale, the three branch ids, the patch
geometry and the names of the exported graphs. Plain values: importing this needs nothing."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

SCALE = 4
MODEL_ID = f"ClassSR-FSRCNN_s{SCALE}"
BRANCH_IDS = tuple(f"FSRCNN_s{SCALE}_D{d}_S12_M4" for d in (16, 36, 56))
PATCH, STRIDE = 32, 28
ONNX_PARTS = ("classifier",) + tuple(f"branch{i}" for i in range(len(BRANCH_IDS)))
PROBS_NAME = "probs"


def part_files(folder: Union[str, Path]) -> Dict[str, Path]:
    """Where :func:`harness.export.export_classsr_parts` writes each part in ``folder``
    (``<folder>/ClassSR-FSRCNN_s4.<part>.onnx``), by part name."""
    return {part: Path(folder) / f"{MODEL_ID}.{part}.onnx" for part in ONNX_PARTS}
