"""Set a new model against the pool and bicubic: measured exactly like the pool.

The candidate (an ONNX file, a ``module:Class``, or any zoo id) gets the same quality
protocol and the same speed/power measurement as the pool, goes into the same results
store (so it appears on the plots), and one line says whether it beats bicubic on the same
backend in quality and in speed and which measured pool models dominate it.
"""
from __future__ import annotations

import math
from typing import Dict, List

from .results.pareto import dominators


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
    out = {"model": candidate["model"], "scale": candidate["scale"], "sets": sets, "psnr": cq, "fhd_per_s": cf,
           "dominated_by": [group[i]["model"] for i in dominators((cq, cf), q, f)], "compared_with": len(group)}
    if bic is not None:
        out.update(bicubic=group[bic]["model"], bicubic_psnr=q[bic], bicubic_fhd_per_s=f[bic],
                   beats_bicubic_quality=cq > q[bic], beats_bicubic_speed=cf > f[bic])
    return out


def verdict_line(v: Dict) -> str:
    where = "/".join(v["sets"])
    line = f"{v['model']} x{v['scale']}: {v['psnr']:.2f} dB ({where}), {v['fhd_per_s']:.2f} FHD/s"
    if "bicubic" in v:
        q = "beats" if v["beats_bicubic_quality"] else "does not beat"
        s = "beats" if v["beats_bicubic_speed"] else "does not beat"
        line += (f"; {q} bicubic in quality ({v['bicubic_psnr']:.2f} dB) and {s} it in speed "
                 f"({v['bicubic_fhd_per_s']:.2f} FHD/s)")
    if v["dominated_by"]:
        line += f"; dominated by {len(v['dominated_by'])} of {v['compared_with']} measured models: " \
                f"{', '.join(v['dominated_by'][:8])}{' ...' if len(v['dominated_by']) > 8 else ''}"
    else:
        line += f"; dominated by none of the {v['compared_with']} measured models"
    return line
