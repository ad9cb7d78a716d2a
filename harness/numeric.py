"""Numbers as the harness treats them everywhere: finite checks, absent figures, strict JSON.

A figure that was not measured is NaN (or None) and an exact reconstruction's PSNR is inf; strict
JSON has neither. These helpers are the one place that decides what such values become. No
imports from the rest of the package (every layer may use them).
"""
from __future__ import annotations

import math
from typing import Optional


def is_finite(value) -> bool:
    """True for an int or float that is neither NaN nor infinite; False for None and non-numbers."""
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def number_or_none(value) -> Optional[float]:
    """``float(value)`` (infinities kept), or None for an absent, NaN, boolean or non-numeric value."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def parses_as_number(text: str) -> bool:
    """Whether ``text`` reads as a float (a table cell to right-align, a CSV row that is not a header)."""
    try:
        float(text)
        return True
    except ValueError:
        return False


def json_safe(obj, inf_as_text: bool = False):
    """A copy of ``obj`` that strict JSON can hold: NaN becomes null, and so do infinities unless
    ``inf_as_text`` (the results store keeps them as ``"inf"``/``"-inf"``); NumPy (and other) scalars
    with ``item()`` become Python numbers, tuples become lists, dict keys become strings."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v, inf_as_text) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, inf_as_text) for v in obj]
    if callable(getattr(obj, "item", None)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        if inf_as_text and not math.isnan(obj):
            return "inf" if obj > 0 else "-inf"
        return None
    return obj
