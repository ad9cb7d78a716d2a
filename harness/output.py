"""Printing results: aligned text tables for people, JSON (``--json``) for programs."""
from __future__ import annotations

import json
import math
import sys
from typing import Dict, List, Optional, Sequence

from .numeric import json_safe, parses_as_number


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
        return "  ".join(v.rjust(w) if i and parses_as_number(v) else v.ljust(w)
                         for i, (v, w) in enumerate(zip(r, widths))).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def emit(rows: List[Dict], columns: Sequence[str], as_json: bool, digits=None, headers=None, stream=None) -> None:
    stream = stream or sys.stdout
    if as_json:
        json.dump(json_safe(rows), stream, indent=2)
        stream.write("\n")
    else:
        stream.write(format_table(rows, columns, digits, headers) + "\n")
