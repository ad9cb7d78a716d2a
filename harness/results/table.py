"""The one results table: quality and speed joined, once, with pandas.

One row per (device, backend, precision, model, scale, weights) that has a speed measurement, plus
one row per model measured for quality only. Quality is device-independent (the protocol runs in
fp32 on the CPU), so a row takes the quality measured on its own device, else the same model,
scale and weights measured anywhere in the store, except that the eSR paper's published measurements
(devices ``paper-*``, :mod:`harness.results.paper`) and the harness's own never lend each other
quality. Where a store holds the same measurement from
several runs, the newest is kept. Plots, the report, the CSV files, ``run.table`` and
:func:`harness.load_results` all read this table.

``psnr_mean`` is the mean PSNR over the standard test sets that the row's group (device, backend,
precision, scale) was measured on; the embedded images count only where they are the group's
sole set (they are never averaged with standard sets). A row lacking any of those sets has no
``psnr_mean`` and stays off the front.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union, cast

from ..datasets import EMBEDDED, STANDARD_SETS
from ..numeric import number_or_none

PAPER_PREFIX = "paper-"  # devices holding the eSR paper's published measurements (harness.results.paper)


def is_paper_device(device) -> bool:
    """Whether a store device name holds the paper's published measurements (``paper-agx`` ...)."""
    return str(device or "").startswith(PAPER_PREFIX)


KEY = ["device", "backend", "precision", "model", "scale", "weights"]
GROUP = ["device", "backend", "precision", "scale"]
# the columns every table has, in order; psnr:<set> and ssim:<set> follow the identity columns
IDENTITY = KEY + ["family", "colour_space", "form", "params", "macs_per_fhd", "bytes_per_fhd", "input_shape"]
SPEED = ["fhd_per_s", "fhd_per_s_low", "fhd_per_s_high", "ci_halfwidth_pct", "timing_stop", "runtime", "median_ms",
         "gpu_median_ms", "e2e_median_ms", "p90_ms", "p99_ms", "mean_ms", "cov", "n", "cpu_util_pct", "mean_w",
         "mj_per_frame", "psnr_vs_reference", "peak_rss_mb"]
# from the speed record's JSON only (absent from older stores: None); the raw times_ms stay out of the table
_FROM_DATA = ("n", "mean_ms", "fhd_per_s_low", "fhd_per_s_high", "ci_halfwidth_pct", "timing_stop", "runtime",
              "gpu_median_ms", "e2e_median_ms")
# a GPU row's two other latencies (None on the CPU), with their labels in printed tables and the report
GPU_LATENCIES = {"gpu_median_ms": "GPU ms", "e2e_median_ms": "with copies ms"}
TAIL = ["psnr_mean", "quality_basis", "status", "reason", "emulated", "run_id"]
_SEVERITY = {"ok": 0, "flagged": 1}


def gpu_latencies(data: Dict) -> Dict[str, Optional[float]]:
    """A speed record's ``gpu_median_ms`` (CUDA events) and ``e2e_median_ms`` (its ``e2e`` latencies, with the
    host<->device copies); None where the record has none."""
    e2e = data.get("e2e")
    return {"gpu_median_ms": number_or_none(data.get("gpu_median_ms")),
            "e2e_median_ms": number_or_none(e2e.get("median_ms")) if isinstance(e2e, dict) else None}


def gpu_columns(rows: Iterable[Dict]) -> List[str]:
    """Those of :data:`GPU_LATENCIES` that any of ``rows`` has: tables show them only for GPU runs."""
    rows = list(rows)
    return [c for c in GPU_LATENCIES if any(r.get(c) is not None for r in rows)]


def _data(row) -> Dict:
    try:
        value = json.loads(row["data"] or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _interval(value) -> Optional[List[float]]:
    """A record's ``[low, high]`` (e.g. ``fhd_per_s_ci``) as two floats, or None where absent or malformed."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    low, high = number_or_none(value[0]), number_or_none(value[1])
    return [low, high] if low is not None and high is not None and low <= high else None


def _text_or_none(value) -> Optional[str]:
    return str(value) if value not in (None, "") else None


# the bicubic baselines' colour space where a record lacks its input shape (older stores)
BASELINE_COLOUR = {"Bicubic": "y", "bicubic-matlab": "rgb", "bicubic-opencv": "rgb"}
RGB_SPEED_BASELINE = "bicubic-opencv"


def colour_of(rec: Dict[str, Any]) -> Optional[str]:
    """A row's colour space, ``y`` or ``rgb`` (from its input shape; for the bicubic baselines from the
    family where the shape is missing), else None."""
    return rec.get("colour_space") or BASELINE_COLOUR.get(rec.get("family") or "")


def speed_baseline_name(colour: Optional[str], scale) -> str:
    """The bicubic a model's speed is compared with: the one of its colour space (on the same device,
    backend, precision and scale). Y models (and those of unknown colour space): ``Bicubic_s<scale>``,
    bicubic run as a Y-channel network; RGB models: ``bicubic-opencv``, OpenCV's (the fast RGB bicubic)."""
    return RGB_SPEED_BASELINE if colour == "rgb" else f"Bicubic_s{scale}"


def latest_rows(store, run_id: Optional[str] = None) -> List:
    """The store's rows (one run, or all), the newest kept where runs measured the same thing."""
    where, params = ("run_id = ?", (run_id,)) if run_id else ("", ())
    kept: Dict[tuple, object] = {}
    for r in store.rows(where, params):  # ordered by id: later rows replace earlier ones
        key = (r["device"], r["backend"], r["precision"], r["model"], r["scale"], r["measurement"], r["weights"])
        kept.pop(key, None)
        kept[key] = r
    return list(kept.values())


def sets_order(names: Iterable[str]) -> List[str]:
    """Standard sets in their usual order, then any others, the embedded set last."""
    names = list(dict.fromkeys(names))
    standard = [s for s in STANDARD_SETS if s in names]
    return standard + sorted(n for n in names if n not in STANDARD_SETS and n != EMBEDDED) + \
        ([EMBEDDED] if EMBEDDED in names else [])


def quality_basis(sets: Iterable[str]) -> List[str]:
    """The sets a group's mean PSNR is taken over: its standard sets, else the embedded set alone."""
    ordered = sets_order(sets)
    return [s for s in ordered if s != EMBEDDED] or ([EMBEDDED] if EMBEDDED in ordered else [])


def build_records(rows, emulated: Optional[Dict[str, str]] = None) -> List[Dict]:
    """The joined rows as dicts (the table without pandas): see the module docstring."""
    emulated = emulated or {}
    family = {r["model"]: r["family"] for r in rows if r["family"]}
    quality: Dict[tuple, Dict[str, Any]] = {}
    speed = []
    for r in rows:
        if r["measurement"].startswith("quality:"):
            quality.setdefault((r["device"], r["model"], r["scale"], r["weights"]), {})[
                r["measurement"].split(":", 1)[1]] = r
        elif r["measurement"] == "speed":
            speed.append(r)
    records, used = [], set()
    for r in speed:
        qkey = (r["device"], r["model"], r["scale"], r["weights"])
        if qkey not in quality:  # quality is device-independent: take it from any device of the same kind
            published = is_paper_device(r["device"])  # the paper's figures and the harness's never mix
            qkey = next((k for k in quality if k[1:] == qkey[1:] and is_paper_device(k[0]) == published), qkey)
        used.add(qkey)
        d = _data(r)
        shape = d.get("input_shape")
        rec: Dict[str, Any] = {k: r[k] for k in KEY}
        rec.update(family=r["family"] or family.get(r["model"]), form=r["form"], params=d.get("params"),
                   macs_per_fhd=d.get("macs_per_fhd"), bytes_per_fhd=d.get("bytes_per_fhd"),
                   input_shape="x".join(str(int(v)) for v in shape) if shape else None,
                   colour_space={1: "y", 3: "rgb"}.get(int(shape[1])) if shape and len(shape) == 4 else None,
                   n=d.get("n"), mean_ms=number_or_none(d.get("mean_ms")), run_id=r["run_id"],
                   emulated=emulated.get(r["run_id"], ""), power_reason=d.get("power_reason", ""),
                   routing=d.get("routing"), _speed_status=r["status"], _speed_reason=r["reason"] or "")
        for c in SPEED:
            if c not in _FROM_DATA:
                rec[c] = number_or_none(r[c]) if c in r.keys() else number_or_none(d.get(c))
        ci = _interval(d.get("fhd_per_s_ci"))
        rec.update(fhd_per_s_low=ci[0] if ci else None, fhd_per_s_high=ci[1] if ci else None,
                   ci_halfwidth_pct=number_or_none(d.get("ci_halfwidth_pct")),
                   timing_stop=_text_or_none(d.get("timing_stop")), runtime=_text_or_none(d.get("runtime")),
                   **gpu_latencies(d))
        records.append(_with_quality(rec, quality.get(qkey, {})))
    for qkey, sets in quality.items():
        if qkey in used:
            continue
        device, model, scale, weights = qkey
        any_row = next(iter(sets.values()))
        rec = {"device": device, "backend": "", "precision": "", "model": model, "scale": scale,
               "weights": weights, "family": family.get(model), "run_id": any_row["run_id"],
               "emulated": emulated.get(any_row["run_id"], ""), "_speed_status": None, "_speed_reason": ""}
        records.append(_with_quality(rec, sets))
    _add_means(records)
    return sorted(records, key=lambda e: (e["device"], e["backend"], e["precision"], e["scale"],
                                          str(e["model"]).lower()))


def _with_quality(rec: Dict[str, Any], sets: Dict[str, Any]) -> Dict[str, Any]:
    """PSNR/SSIM per set, and the row's status: the worst of its measurements, with the reasons."""
    for name, q in sets.items():
        if q["status"] == "ok":
            rec[f"psnr:{name}"] = number_or_none(q["psnr"])
            rec[f"ssim:{name}"] = number_or_none(q["ssim"])
    problems = []
    if rec["_speed_status"] is None:
        problems.append(("no speed", "speed not measured"))
    elif rec["_speed_status"] != "ok":
        problems.append((rec["_speed_status"], f"speed: {rec['_speed_reason']}"))
    problems += [(q["status"], f"{q['measurement']}: {q['reason']}") for q in sets.values() if q["status"] != "ok"]
    rec["status"] = max(problems, key=lambda p: _SEVERITY.get(p[0], 2))[0] if problems else "ok"
    rec["reason"] = "; ".join(p[1] for p in problems)
    rec["speed_status"] = rec.pop("_speed_status")
    rec["speed_ok"] = rec["speed_status"] == "ok" and number_or_none(rec.get("fhd_per_s")) is not None
    rec.pop("_speed_reason")
    return rec


def _add_means(records: List[Dict[str, Any]]) -> None:
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(tuple(rec[k] for k in GROUP), []).append(rec)
    for members in groups.values():
        timed = [rec for rec in members if rec["speed_ok"]] or members  # the front's members decide the basis
        sets = {k.split(":", 1)[1] for rec in timed for k, v in rec.items() if k.startswith("psnr:") and v is not None}
        basis = quality_basis(sets)
        for rec in members:
            vals = [rec.get(f"psnr:{s}") for s in basis]
            known = [float(v) for v in vals if v is not None]
            rec["quality_basis"] = ",".join(basis)
            rec["psnr_mean"] = sum(known) / len(known) if basis and len(known) == len(vals) else None


def to_frame(records: Sequence[Dict[str, Any]]):
    """The records as a pandas DataFrame with the table's column order."""
    import pandas as pd

    sets = sets_order(k.split(":", 1)[1] for rec in records for k in rec if k.startswith("psnr:"))
    columns = IDENTITY + [f"{m}:{s}" for s in sets for m in ("psnr", "ssim")] + SPEED + TAIL
    extra = ["speed_ok", "speed_status", "power_reason", "routing"]
    frame = pd.DataFrame(list(records), columns=columns + extra)
    return frame


def load_table(store, run_id: Optional[str] = None):
    """The joined table (a pandas DataFrame) of a store (or one run of it)."""
    return to_frame(build_records(latest_rows(store, run_id), store.emulated_runs()))


def load_results(path: Union[str, Path], run_id: Optional[str] = None):
    """``harness.load_results``: the joined table of the results store at ``path`` (``harness.db``)."""
    from ..errors import HarnessError
    from .store import ResultStore

    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no results database; run ./run_all.sh or python -m harness bench first")
    with ResultStore(path, readonly=True) as store:  # only read: a store in a read-only folder works too
        return load_table(store, run_id)


def front_groups(records: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The Pareto front of quality (``psnr_mean``) against FHD/s per device/backend/precision/scale.

    The front is :func:`harness.results.pareto.front_with_ties` with each row's FHD/s interval
    (``fhd_per_s_low/high``, where measured): speeds within each other's intervals and PSNRs within
    0.01 dB count as equal; front members equal on both have ``tied`` set and ``front_note`` naming
    the models they are statistically tied with.
    Quality is set against the group's ``Bicubic_s<scale>`` (``d_psnr``, ``beats_q``); speed against the
    bicubic of the member's colour space (:func:`speed_baseline_name`: ``speed_baseline``, ``speedup``,
    ``beats_s``). Per group: its ``basis`` sets, front ``rows``, ``left_out`` count, ``baseline`` (the
    quality baseline) and ``speed_baselines`` (colour space -> the model measured, or None)."""
    from .pareto import QUALITY_TIE_DB, front_with_ties

    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for rec in records:
        if rec["speed_ok"]:
            groups.setdefault(tuple(rec[k] for k in GROUP), []).append(rec)
    out = []
    for (device, backend, precision, scale), members in sorted(groups.items()):
        quality = [number_or_none(m.get("psnr_mean")) for m in members]
        speed = [float(m["fhd_per_s"]) for m in members]
        low = [number_or_none(m.get("fhd_per_s_low")) for m in members]
        high = [number_or_none(m.get("fhd_per_s_high")) for m in members]
        q_all = [q if q is not None else float("nan") for q in quality]
        idx, ties = front_with_ties(q_all, speed, low, high)
        index = {m["model"]: i for i, m in enumerate(members)}
        base_i = index.get(f"Bicubic_s{scale}")
        base_q = quality[base_i] if base_i is not None else None
        speed_base = {c: index.get(speed_baseline_name(c, scale)) for c in ("y", "rgb")}
        rows = []
        for i in idx:
            # a front member has a quality (front_with_ties leaves NaN out)
            m, q, s = members[i], cast(float, quality[i]), speed[i]
            colour = colour_of(m)
            sb = speed_base["rgb" if colour == "rgb" else "y"]
            base_s = speed[sb] if sb is not None else None
            tied = ties.get(i, [])
            note = (", ".join(members[j]["model"] for j in tied) + f" (speed intervals overlap, PSNR within "
                    f"{QUALITY_TIE_DB:g} dB)")
            rows.append({"device": device, "backend": backend, "precision": precision, "scale": scale,
                         "model": m["model"], "family": m["family"], "colour_space": colour, "weights": m["weights"],
                         "psnr": q, "quality_basis": m["quality_basis"], "fhd_per_s": s,
                         "fhd_per_s_low": low[i], "fhd_per_s_high": high[i], "mj_per_frame": m["mj_per_frame"],
                         "d_psnr": None if base_q is None else q - base_q,
                         "speed_baseline": members[sb]["model"] if sb is not None else None,
                         "speedup": None if not base_s else s / base_s,
                         "beats_q": "baseline" if i == base_i else (None if base_q is None else q > base_q),
                         "beats_s": "baseline" if i == sb else (None if base_s is None else s > base_s),
                         "tied": bool(tied), "front_note": f"statistically tied with {note}" if tied else ""})
        out.append({"device": device, "backend": backend, "precision": precision, "scale": scale,
                    "basis": [b for b in (members[0].get("quality_basis") or "").split(",") if b], "rows": rows,
                    "left_out": sum(q is None for q in quality),
                    "baseline": members[base_i]["model"] if base_i is not None else None,
                    "speed_baselines": {c: members[i]["model"] if i is not None else None
                                        for c, i in speed_base.items()}})
    return out


FRONT_COLUMNS = ["device", "backend", "precision", "scale", "model", "family", "colour_space", "weights", "psnr",
                 "quality_basis", "fhd_per_s", "fhd_per_s_low", "fhd_per_s_high", "mj_per_frame", "d_psnr",
                 "speed_baseline", "speedup", "beats_q", "beats_s", "tied", "front_note", "left_out"]


def front(table):
    """:func:`front_groups` of a joined table, one row per front member (``left_out``: its group's count)."""
    import pandas as pd

    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
               for rec in table.to_dict("records")]
    rows = [dict(r, left_out=g["left_out"]) for g in front_groups(records) for r in g["rows"]]
    return pd.DataFrame(rows, columns=FRONT_COLUMNS)


def to_csv(table, path: Union[str, Path]) -> Path:
    """The table as CSV (without the nested routing record), written to a temp name then renamed."""
    from .files import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda tmp: table.drop(columns=["routing", "speed_ok"], errors="ignore")
                        .to_csv(tmp, index=False), elsewhere="give another --out DIR")
