"""The one way the harness opens an ONNX Runtime session.

Every caller (the export check, the ONNX Runtime backend and ClassSR's routed pipeline, a user's
ONNX file, the INT8 and GhostSR reports, the QAT export check) gets the same options: all graph
optimisations, warnings and errors only, on the CPU provider alone no memory pattern, and with
``threads`` (else ``$HARNESS_ORT_THREADS``, which a process running beside others sets) that many
intra-op threads and one inter-op thread (ONNX Runtime's defaults otherwise). No imports from the
rest of the package but the error type, and ``onnxruntime`` only when called.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

from .errors import HarnessError, first_line

CPU = "CPUExecutionProvider"

_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .*? failed:)?")
_SOURCE = re.compile(r"\S*onnxruntime_src/\S+:\d+ ")
_IR = re.compile(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)")


def ort_reason(exc: BaseException, limit: int = 200) -> str:
    """ONNX Runtime's error as a reader needs it: without the status prefix, the file name (the caller names
    it) and the C++ source location and function signature that precede the reason; at most ``limit`` characters.
    A file newer than this ONNX Runtime reads gets the fix."""
    text = first_line(exc, 10_000)
    text = _PREFIX.sub("", text)
    found = _SOURCE.search(text)
    if found:  # "<file>:<line> <signature>(<arguments>) <reason>": skip the signature, parentheses balanced
        rest, depth, i = text[found.end():], 0, 0
        opened = rest.find("(")
        if opened >= 0 and "::" in rest[:opened]:
            for i in range(opened, len(rest)):
                depth += {"(": 1, ")": -1}.get(rest[i], 0)
                if depth == 0:
                    break
            rest = rest[i + 1:].lstrip()
        text = text[:found.start()] + rest
    ir = _IR.search(text)
    if ir:
        text += (f": save it with IR version {ir.group(2)} or lower (onnx: model.ir_version = {ir.group(2)}), or "
                 f"upgrade onnxruntime")
    return text.strip()[:limit] or type(exc).__name__


def ort_session(path: Union[str, Path], threads: Optional[int] = None, providers: Optional[Sequence] = None,
                spin_stop: bool = False):
    """An ``onnxruntime.InferenceSession`` of ``path`` on ``providers`` (default: the CPU provider).

    With ``spin_stop``, the session's pool threads stop spinning as soon as a run returns
    (``session.force_spinning_stop``), so the next run of another session in this process finds the
    cores free: the form trial's sessions, which take turns. A session timed frame after frame keeps
    ONNX Runtime's default (its threads spin between runs: a fast model runs up to a third faster).
    A graph ONNX Runtime cannot load is a one-line HarnessError naming the file.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if list(providers or [CPU]) == [CPU]:
        # without the memory pattern a CPU session is warm from its second run: with it, the first run records
        # the pattern and the second allocates it, page faults over hundreds of MB for a wide model (eSR-TM_s2_K7_C16
        # lean: 203, 176, then 98 ms; 231, then 93 ms without), and the runs after are as fast either way
        opts.enable_mem_pattern = False
    if spin_stop:
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    if not threads and os.environ.get("HARNESS_ORT_THREADS", "").isdigit():
        threads = int(os.environ["HARNESS_ORT_THREADS"])
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers or [CPU]))
    except Exception as exc:  # noqa: BLE001 - ORT raises several types for a bad graph
        raise HarnessError(f"{path}: ONNX Runtime cannot load it ({ort_reason(exc, 300)})") from None
