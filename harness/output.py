"""Printing results: aligned text tables for people, JSON (``--json``) for programs."""
from __future__ import annotations

import json
import math
import sys
from typing import Dict, List, Optional, Sequence


def _fmt(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def format_table(rows: List[Dict], columns: Sequence[str], digits: Optional[Dict[str, int]] = None,
                 headers: Optional[Dict[str, str]] = None) -> str:
    digits = digits or {}
    headers = headers or {}
    cells = [[headers.get(c, c) for c in columns]]
    for row in rows:
        cells.append([_fmt(row.get(c, ""), digits.get(c, 4)) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]

    def line(r):
        return "  ".join(v.rjust(w) if i and _numeric(v) else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def emit(rows: List[Dict], columns: Sequence[str], as_json: bool, digits=None, headers=None, stream=None) -> None:
    stream = stream or sys.stdout
    if as_json:
        json.dump(_finite(rows), stream, indent=2, default=_json_default)
        stream.write("\n")
    else:
        stream.write(format_table(rows, columns, digits, headers) + "\n")


def _finite(obj):
    """Strict JSON has no NaN/inf: an absent or unbounded figure becomes null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
