"""Set a new model against the pool and bicubic: measured exactly like the pool.

The candidate (an ONNX file, a ``module:Class``, or any zoo id) gets the same quality
protocol and the same speed/power measurement as the pool, goes into the same results
store (so it appears on the plots), and one line says whether it beats bicubic on the same
backend in quality and in speed and which measured pool models dominate it. Quality is set against
``Bicubic_s<scale>``; speed against the bicubic of the candidate's colour space on the same device,
backend, precision and scale (Y: ``Bicubic_s<scale>``; RGB: ``bicubic-opencv``, else, named as such,
``Bicubic_s<scale>``).
"""
from __future__ import annotations

import math
from typing import Dict, List

from .results.pareto import dominators
from .results.table import speed_baseline_name


def _mean(values) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def verdict(candidate: Dict, points: List[Dict]) -> Dict:
    """Compare a collected point with the others of its device/backend/precision/scale, on the
    PSNR averaged over the sets the candidate was measured on."""
    sets = sorted(candidate["psnr"])
    group = [p for p in points if (p["device"], p["backend"], p["precision"], p["scale"]) ==
             (candidate["device"], candidate["backend"], candidate["precision"], candidate["scale"])
             and p["model"] != candidate["model"] and all(s in p["psnr"] for s in sets)]
    q = [_mean(p["psnr"][s] for s in sets) for p in group]
    f = [p["fhd_per_s"] for p in group]
    cq, cf = _mean(candidate["psnr"][s] for s in sets), candidate["fhd_per_s"]
    bic = next((i for i, p in enumerate(group) if p["family"] == "Bicubic"), None)
    out = {"model": candidate["model"], "scale": candidate["scale"], "colour_space": candidate.get("colour_space"),
           "sets": sets, "psnr": cq, "fhd_per_s": cf,
           "dominated_by": [group[i]["model"] for i in dominators((cq, cf), q, f)], "compared_with": len(group)}
    if bic is not None:
        out.update(bicubic=group[bic]["model"], bicubic_psnr=q[bic], bicubic_fhd_per_s=f[bic],
                   beats_bicubic_quality=cq > q[bic], beats_bicubic_speed=cf > f[bic], speed_bicubic=group[bic]["model"])
    speed_base = _speed_baseline(candidate, points)  # its speed needs no quality on the candidate's sets
    if speed_base is not None:
        out.update(speed_bicubic=speed_base["model"], bicubic_fhd_per_s=speed_base["fhd_per_s"],
                   beats_bicubic_speed=cf > speed_base["fhd_per_s"])
    return out


def _speed_baseline(candidate: Dict, points: List[Dict]):
    """The bicubic of the candidate's colour space timed on its device/backend/precision/scale, or None."""
    name = speed_baseline_name(candidate.get("colour_space"), candidate["scale"])
    where = ("device", "backend", "precision", "scale")
    return next((p for p in points if p["model"] == name and p["model"] != candidate["model"]
                 and all(p[k] == candidate[k] for k in where) and math.isfinite(p["fhd_per_s"] or math.nan)), None)


def verdict_line(v: Dict) -> str:
    where = "/".join(v["sets"])
    line = f"{v['model']} x{v['scale']}: {v['psnr']:.2f} dB ({where}), {v['fhd_per_s']:.2f} FHD/s"
    if "bicubic" in v:
        q = "beats" if v["beats_bicubic_quality"] else "does not beat"
        s = "beats" if v["beats_bicubic_speed"] else "does not beat"
        other = v.get("speed_bicubic", v["bicubic"]) != v["bicubic"]  # an RGB model: against RGB bicubic
        if other:
            against = f"{v['speed_bicubic']} (the RGB bicubic)"
        elif v.get("colour_space") == "rgb":
            against = f"it (no {speed_baseline_name('rgb', v['scale'])} timed here to compare an RGB model with)"
        else:
            against = "it"
        line += (f"; {q} bicubic in quality ({v['bicubic_psnr']:.2f} dB) and {s} {against} in speed "
                 f"({v['bicubic_fhd_per_s']:.2f} FHD/s)")
    if v["dominated_by"]:
        line += f"; dominated by {len(v['dominated_by'])} of {v['compared_with']} measured models: " \
                f"{', '.join(v['dominated_by'][:8])}{' ...' if len(v['dominated_by']) > 8 else ''}"
    else:
        line += f"; dominated by none of the {v['compared_with']} measured models"
    return line
