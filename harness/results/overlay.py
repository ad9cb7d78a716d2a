"""Your device beside the eSR paper: the harness's own measurements set against the authors' published table.

For each device/backend/precision group of the store (the harness's own rows, weights ``official``;
the bicubic baselines, which have no weights, count too) and each scale, over the models measured
on both sides (same model id and scale):

* **PSNR difference** per model and set: the harness protocol's PSNR minus the paper's
  (``BSDS100`` is the harness's ``BSD100``), and its mean per set;
* **speed rank correlation**: Spearman's rho between your FHD/s and the paper device's FHD/s
  (1: the same order, -1: the reverse); :func:`spearman` uses ``scipy.stats.spearmanr``, else pandas;
* **front agreement**: the quality-speed Pareto front of the common models by the paper's numbers,
  and by yours (:func:`harness.results.pareto.front_with_ties`, the harness's front rule: a speed
  difference within the measured intervals never decides), and how many of each are on the other;
* a one-line **verdict** (:func:`verdict_line`).

The paper device compared is the one named (``--device agx|maxq|rpi``), else the one that matches:
a Jetson or TensorRT device against the AGX Xavier, a Raspberry Pi against the Pi 400, another GPU
(CUDA) against the GTX 1080 Max-Q, and a CPU against the Pi 400 (the paper's only CPU).
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..numeric import is_finite
from .paper import DEVICES, WEIGHTS, device_key, is_paper_device

OWN_WEIGHTS = (WEIGHTS, "none")  # the official weights, and the fixed-weight baselines (bicubic)


def paper_device_for(device: str, backend: str = "") -> str:
    """The paper device (``agx``, ``maxq``, ``rpi``) a device of the harness is compared with."""
    name, backend = str(device or "").lower(), str(backend or "").lower()
    if any(k in name for k in ("jetson", "agx", "xavier", "orin")):
        return "agx"
    if any(k in name for k in ("rpi", "raspberry")) or name.startswith("pi"):
        return "rpi"
    if backend == "tensorrt":
        return "agx" if "cuda" not in name else "maxq"
    if any(k in name for k in ("cuda", "gpu", "nvidia")):
        return "maxq"
    return "rpi"


def spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Spearman's rank correlation of the pairs where both are finite (None for fewer than 2 pairs or a
    constant side). ``scipy.stats.spearmanr`` where installed, else pandas' rank correlation (both
    average tied ranks)."""
    pairs = [(float(a), float(b)) for a, b in zip(x, y) if is_finite(a) and is_finite(b)]
    if len(pairs) < 2:
        return None
    xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    try:
        from scipy.stats import spearmanr
    except ImportError:  # pragma: no cover - scipy is a dependency; pandas answers the same
        import pandas as pd

        rho = float(pd.Series(xs).corr(pd.Series(ys), method="spearman"))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = float(spearmanr(xs, ys)[0])
    return None if math.isnan(rho) else rho


def _quality(p: Dict[str, Any], key: str, sets: Sequence[str]) -> float:
    if key == "mean":
        vals = [p["psnr"].get(s) for s in sets]
        return sum(vals) / len(vals) if vals and all(is_finite(v) for v in vals) else math.nan
    v = p["psnr"].get(key)
    return float(v) if is_finite(v) else math.nan


def _front(points: List[Dict[str, Any]], q: List[float]) -> List[str]:
    from .pareto import front_with_ties

    idx, _ = front_with_ties(q, [p["fhd_per_s"] for p in points], [p.get("fhd_per_s_low") for p in points],
                             [p.get("fhd_per_s_high") for p in points])
    return [points[i]["model"] for i in idx]


def paper_front(points: Iterable[Dict[str, Any]], device: str, scale: int, set_name: str = "Set14") -> List[str]:
    """The models on the paper's quality-speed front of one paper device and scale (PSNR on ``set_name``, or
    ``mean`` over the five sets), from a store's points; fastest first. The figures draw this front."""
    name = DEVICES[device_key(device)][0]
    pts = [p for p in points if p["device"] == name and p["scale"] == scale]
    q = [p["psnr_mean"] if set_name == "mean" else _quality(p, set_name, ()) for p in pts]
    return _front(pts, q)


def compare(mine: List[Dict[str, Any]], paper: List[Dict[str, Any]], set_name: str = "Set14",
            paper_device: str = "agx") -> Dict[str, Any]:
    """The statistics of one group and scale: ``mine`` and ``paper`` are points (``model``, ``scale``,
    ``fhd_per_s``, optional ``fhd_per_s_low/high``, ``psnr``: set -> dB) of the same scale; only the models
    on both sides count. ``set_name``: the set the fronts are taken on (or ``mean``: over the sets both have).

    The paper's front uses the paper's PSNR and speed; yours uses your speed and your PSNR on that set,
    or the paper's PSNR where you did not measure that set for every common model (``quality_source``)."""
    theirs = {p["model"]: p for p in paper}
    common = sorted((m for m in mine if m["model"] in theirs), key=lambda m: m["model"])
    pts = [theirs[m["model"]] for m in common]
    shared_sets = sorted({s for m in common for s in m["psnr"]} & {s for p in pts for s in p["psnr"]})
    diffs = []
    for m, p in zip(common, pts):
        for s in shared_sets:
            a, b = m["psnr"].get(s), p["psnr"].get(s)
            if is_finite(a) and is_finite(b):
                diffs.append({"model": m["model"], "scale": m["scale"], "set": s, "psnr": float(a),
                              "paper_psnr": float(b), "diff": float(a) - float(b)})
    by_set: Dict[str, List[float]] = defaultdict(list)
    for d in diffs:
        by_set[d["set"]].append(d["diff"])
    mean_sets = [s for s in shared_sets if all(s in m["psnr"] for m in common) and all(s in p["psnr"] for p in pts)]
    q_paper = [_quality(p, set_name, mean_sets) for p in pts]
    q_mine = [_quality(m, set_name, mean_sets) for m in common]
    source = "yours"
    if not common or not all(is_finite(v) for v in q_mine):
        q_mine, source = list(q_paper), "the paper's"
    paper_front = _front(pts, q_paper) if pts else []
    my_front = _front(common, q_mine) if common else []
    on_mine = [m for m in paper_front if m in my_front]
    return {"paper_device": paper_device, "paper_name": DEVICES[paper_device][2],
            "scale": common[0]["scale"] if common else None, "set": set_name, "models": len(common),
            "rho": spearman([m["fhd_per_s"] for m in common], [p["fhd_per_s"] for p in pts]),
            "psnr_diffs": diffs, "mean_diff": {s: sum(v) / len(v) for s, v in by_set.items()},
            "paper_front": paper_front, "my_front": my_front, "paper_on_mine": len(on_mine),
            "mine_on_paper": sum(m in paper_front for m in my_front), "quality_source": source}


def verdict_line(r: Dict[str, Any]) -> str:
    """One line: e.g. ``cpu (onnxruntime fp32) vs paper Raspberry Pi 400, x2, 40 models: front on Set14: 9 of
    11 paper front models are on yours, 10 of 12 of yours on the paper's; speed rank rho = 0.97; PSNR yours
    minus paper's on Set14: -0.03 dB``."""
    where = f"{r['device']} ({r['backend']} {r['precision']})".replace(" )", ")")
    rho = "n/a (fewer than 2 models)" if r["rho"] is None else f"{r['rho']:.2f}"
    line = (f"{where} vs paper {r['paper_name']}, x{r['scale']}, {r['models']} models: front on {r['set']}: "
            f"{r['paper_on_mine']} of {len(r['paper_front'])} paper front models are on yours, "
            f"{r['mine_on_paper']} of {len(r['my_front'])} of yours on the paper's")
    if r["quality_source"] != "yours":
        line += " (your front with the paper's PSNR: you did not measure that set)"
    line += f"; speed rank rho = {rho}"
    key = r["set"] if r["set"] in r["mean_diff"] else next(iter(sorted(r["mean_diff"])), None)
    if key is not None:
        line += f"; PSNR yours minus paper's on {key}: {r['mean_diff'][key]:+.2f} dB (mean)"
    return line


def own_points(points: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The harness's own timed points that can stand beside the paper's (not paper rows; weights official)."""
    return [p for p in points if not is_paper_device(p["device"]) and p.get("weights") in OWN_WEIGHTS]


def overlay(points: List[Dict[str, Any]], device: Optional[str] = None, scales: Sequence[int] = (),
            set_name: str = "Set14") -> List[Dict[str, Any]]:
    """Every comparison a store's points (:func:`harness.results.plots.collect`) support: one per own
    device/backend/precision group and scale with a model in common with the paper device (``device``, else
    :func:`paper_device_for`), each with ``device``, ``backend``, ``precision`` and its ``line``."""
    fixed = device_key(device) if device else None
    paper: Dict[tuple, List[Dict[str, Any]]] = defaultdict(list)
    for p in points:
        if is_paper_device(p["device"]):
            paper[(device_key(p["device"]), p["scale"])].append(p)
    groups: Dict[tuple, List[Dict[str, Any]]] = defaultdict(list)
    for p in own_points(points):
        if not scales or p["scale"] in scales:
            groups[(p["device"], p["backend"], p["precision"], p["scale"])].append(p)
    out = []
    for (dev, backend, precision, scale), mine in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        key = fixed or paper_device_for(dev, backend)
        result = compare(mine, paper.get((key, scale), []), set_name, key)
        if not result["models"]:
            continue
        result.update(device=dev, backend=backend, precision=precision)
        result["line"] = verdict_line(result)
        out.append(result)
    return out
