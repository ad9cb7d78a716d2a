"""A base network against its GhostSR version (``python -m harness ghost-report``).

For ``Ghost-<id>`` with fine-tuned weights and ``<id>`` with its own: parameters and MACs per
Full-HD output frame (:func:`harness.models.ghost.compare_ghost`), ONNX Runtime CPU latency on
one LR input whose output is a Full-HD frame (median of a few runs after a warm-up, the
helpers :mod:`harness.int8_report` times with; the ghost graph is the exported one, its
directions frozen to pad + slice), and PSNR/SSIM on Y per test set with the harness's
:class:`~harness.protocol.QualityEvaluator`; then the relative changes. The GhostSR paper's
abstract reports -46% parameters, -46% FLOPs and -42% GPU latency for x2 EDSR at almost equal
PSNR; this report measures a CPU, so its latency change need not match a GPU's.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import HarnessError

#: the GhostSR paper's abstract (Nie et al., TMLR 2022, arXiv 2101.08525v2), x2 EDSR on a GPU
PUBLISHED = {"EDSR_s2": "GhostSR paper (x2 EDSR, GPU): -46% params, -46% FLOPs, -42% latency, almost lossless PSNR"}


def ghost_report(model_id: str, weights: str, base_weights: str = "shipped", data: Optional[str] = None,
                 sets: Optional[Sequence[str]] = None, runs: int = 5, frame: Tuple[int, int] = (1080, 1920),
                 threads: int = 0, workdir: Optional[str] = None, log=None) -> Dict[str, object]:
    """The report of ``model_id`` (``Ghost-<id>``, or ``<id>`` itself) as a dict: ``base`` and
    ``ghost`` (weights, params, MACs per frame, ms, per-set PSNR/SSIM), ``change`` (relative
    params/MACs/latency, PSNR/SSIM differences per set) and the timing settings."""
    from .datasets import data_root, resolve_sets
    from .export import exported_onnx
    from .int8_report import sessions_median_ms
    from .models import ghost, resolve
    from .ortsession import ort_session
    from .protocol import QualityEvaluator
    from .weights import cache_dir

    ghost_id = model_id if model_id.startswith("Ghost-") else "Ghost-" + model_id
    base_id = ghost.base_id(ghost_id)  # one-line error for ids GhostSR does not apply to
    if runs < 1:
        raise HarnessError(f"--runs {runs}: give at least 1 timed run")
    if sets and [str(x).lower() for x in sets] == ["none"]:  # structure and speed only (untrained networks)
        image_sets = []
    else:
        image_sets = resolve_sets(data_root(data), sets)  # a missing set fails before any work
    scale = ghost.scale_of(ghost_id)
    if frame[0] % scale or frame[1] % scale:
        raise HarnessError(f"the {frame[1]}x{frame[0]} frame is not a multiple of x{scale}")
    models = {}
    for key, mid, choice, flag in (("base", base_id, base_weights, "--base-weights"),
                                   ("ghost", ghost_id, weights, "--weights")):
        try:
            models[key] = resolve(mid, None, choice)
        except HarnessError as exc:
            raise HarnessError(f"{flag} {choice}: {exc}") from None
    counts = ghost.compare_ghost(ghost_id, out_hw=frame)
    say = log or (lambda msg: None)
    work = Path(workdir or cache_dir()) / "onnx"
    lr_shape = (1, 1, frame[0] // scale, frame[1] // scale)

    out: Dict[str, object] = {"model": ghost_id, "base_model": base_id, "scale": scale,
                              "ghost_layers": counts["ghost_layers"], "ratio": counts["ratio"]}
    paths = {key: exported_onnx(model, "naive", work)[0] for key, model in models.items()}
    say(f"{base_id} and {ghost_id}: timing {lr_shape} -> {frame[1]}x{frame[0]} ({runs} interleaved runs each) ...")
    latency = sessions_median_ms({key: ort_session(path, threads) for key, path in paths.items()}, lr_shape, runs)
    for key, model in models.items():
        path, ms = paths[key], latency[key]
        quality = {}
        for image_set in image_sets:
            say(f"{model.id}: {image_set.name} ...")
            result = QualityEvaluator(show_progress=False).evaluate(model, image_set)
            quality[image_set.name] = {"images": len(image_set), "psnr": float(result.psnr),
                                       "ssim": float(result.ssim)}
        out[key] = {"model": model.id, "weights": model.weights,
                    "params": counts["params_before" if key == "base" else "params_after"],
                    "macs": counts["macs_before" if key == "base" else "macs_after"],
                    "ms": ms, "onnx": str(path), "quality": quality}
    base, gh = out["base"], out["ghost"]
    out["change"] = {
        "params": gh["params"] / base["params"] - 1.0,
        "macs": gh["macs"] / base["macs"] - 1.0,
        "ms": gh["ms"] / base["ms"] - 1.0 if base["ms"] > 0 else None,
        "quality": {name: {"psnr_db": gh["quality"][name]["psnr"] - q["psnr"],
                           "ssim": gh["quality"][name]["ssim"] - q["ssim"]}
                    for name, q in base["quality"].items()},
    }
    out["timing"] = {"backend": "onnxruntime CPUExecutionProvider", "frame": f"{frame[1]}x{frame[0]}",
                     "lr_shape": list(lr_shape), "runs": runs, "threads": threads}
    out["directions"] = {name: list(d) for name, d in ghost.directions(models["ghost"].module).items()}
    out["published"] = PUBLISHED.get(base_id)
    return out


def rows(report: Dict[str, object]) -> Tuple[List[Dict[str, object]], List[str], Dict[str, str], Dict[str, int]]:
    """The printed table: the base row, the ghost row and the change row; its columns, headers, digits."""
    sets = list(report["base"]["quality"])
    table = []
    for key in ("base", "ghost"):
        r = report[key]
        row = {"network": r["model"], "weights": _short(r["weights"]), "params": r["params"],
               "gmacs": r["macs"] / 1e9, "ms": r["ms"]}
        for name in sets:
            row[f"{name}_psnr"] = r["quality"][name]["psnr"]
            row[f"{name}_ssim"] = r["quality"][name]["ssim"]
        table.append(row)
    c = report["change"]
    change = {"network": "change", "weights": "", "params": _pct(c["params"]), "gmacs": _pct(c["macs"]),
              "ms": _pct(c["ms"])}
    for name in sets:
        change[f"{name}_psnr"] = f"{c['quality'][name]['psnr_db']:+.2f}"
        change[f"{name}_ssim"] = f"{c['quality'][name]['ssim']:+.4f}"
    table.append(change)
    columns = ["network", "weights", "params", "gmacs", "ms"]
    headers = {"gmacs": "GMACs/frame", "ms": "ORT CPU ms"}
    digits = {"gmacs": 2, "ms": 1}
    for name in sets:
        columns += [f"{name}_psnr", f"{name}_ssim"]
        headers[f"{name}_psnr"], headers[f"{name}_ssim"] = f"{name} PSNR", f"{name} SSIM"
        digits[f"{name}_psnr"], digits[f"{name}_ssim"] = 2, 4
    return table, columns, headers, digits


def describe(report: Dict[str, object]) -> List[str]:
    """The lines printed under the table."""
    t = report["timing"]
    n = t["threads"]
    threads = f"{n} thread{'s' if n > 1 else ''}" if n else "ORT's default threads"
    n_layers = report["ghost_layers"]
    lines = [f"{report['model']}: {n_layers} ghost layer{'' if n_layers == 1 else 's'} (ratio {report['ratio']}); "
             f"MACs per {t['frame']} output frame; latency: ONNX Runtime CPU, {threads}, median of {t['runs']} "
             f"interleaved runs, "
             f"input {t['lr_shape']}; PSNR/SSIM on Y, the harness's protocol"]
    if not report["base"]["quality"]:
        lines.append("PSNR/SSIM not measured (--sets none): latency and MACs do not depend on the weights' values")
    if report.get("published"):
        lines.append(report["published"])
    return lines


def _pct(value: Optional[float]) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.1%}"


def _short(weights: str) -> str:
    return Path(weights).name if ("/" in str(weights) or "\\" in str(weights)) else str(weights)
