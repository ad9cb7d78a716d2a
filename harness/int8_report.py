"""FP32 against INT8: quality and ONNX Runtime CPU speed of one model (``python -m harness int8-report``).

Three graphs of the same weights run in ONNX Runtime on the CPU: the FP32 export, the
post-training static INT8 graph (QDQ, calibrated on training patches with ``--calib-data``,
else on the embedded images) and, with ``--qat-steps N``, the quantization-aware fine-tuned
graph exported to QDQ. Per test set: PSNR on RGB in [0, 255] with ``scale`` border pixels
cropped (the MAI 2021 challenge's measure, ABPN's published figures) and on Y (the harness's
protocol), from the same unrounded outputs clamped to [0, 1]. Speed: the median of a few
runs on one LR input whose output is a Full-HD frame.
"""
from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import HarnessError
from .ortsession import ort_session
from .timing import interleaved_median_ms

#: ABPN x3, DIV2K valid, RGB PSNR as reported by its authors (Du et al., MAI 2021)
PUBLISHED = {"ABPN_s3": {"fp32": 30.22, "ptq": 30.09, "qat": 30.15}}
VARIANTS = ("fp32", "ptq", "qat")


def parse_frame_size(text: str) -> Tuple[int, int]:
    """``1920x1080`` -> (height, width) of the output frame."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise HarnessError(f"--frame-size {text}: give WIDTHxHEIGHT, e.g. 1920x1080") from None
    if w < 1 or h < 1:
        raise HarnessError(f"--frame-size {text}: both sides must be positive")
    return h, w


def _run(session, x: np.ndarray) -> np.ndarray:
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def sessions_median_ms(sessions: Dict[str, object], shape: Sequence[int], runs: int) -> Dict[str, float]:
    """Median wall-clock ms of each ONNX Runtime session over ``runs`` interleaved rounds on one seeded
    random input of ``shape``, after one warm-up run each (:func:`harness.timing.interleaved_median_ms`)."""
    x = np.random.default_rng(0).random(tuple(shape), dtype=np.float32)
    return interleaved_median_ms({k: functools.partial(_run, s, x) for k, s in sessions.items()}, runs, warmup=1)


def qat_onnx(model, folders, steps: int, lr: float, batch: int, patch: int, workdir: Path,
             seed: int = 0) -> Tuple[Path, Dict[str, object]]:
    """The QAT QDQ ONNX of ``model`` (cached by weights, calibration data and QAT settings) and its facts."""
    from .export import module_digest
    from .quantize import PatchPairs, calibration_source, qat_finetune

    source = calibration_source(folders)
    folder = workdir / "onnx" / f"{model.id}.{module_digest(model.module)}"
    stem = f"{model.id}.qat-{source['key']}-n{steps}-lr{lr:g}-b{batch}-p{patch}-s{seed}"
    path, facts_path = folder / f"{stem}.onnx", folder / f"{stem}.json"
    if path.is_file() and facts_path.is_file():
        return path, json.loads(facts_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    pairs = PatchPairs(model.scale, model.input_space, folders, patch=patch, batch=batch, seed=seed)
    t0 = time.perf_counter()
    result = qat_finetune(model.id, model.module, pairs, steps, lr=lr, out=path, seed=seed)
    losses = result["losses"]
    facts = {"steps": steps, "lr": lr, "batch": batch, "patch": patch, "seed": seed,
             "train_s": round(time.perf_counter() - t0, 2), "data": source,
             "first_loss": _head_mean(losses), "last_loss": _head_mean(losses[::-1])}
    facts_path.write_text(json.dumps(facts, indent=1))
    return path, facts


def int8_report(model_id: str, weights: str = "shipped", data: Optional[str] = None,
                sets: Optional[Sequence[str]] = None, calib_data: Optional[Sequence[str]] = None,
                qat_steps: int = 0, qat_lr: float = 5e-5, qat_batch: int = 16, qat_patch: int = 96,
                runs: int = 5, frame: Tuple[int, int] = (1080, 1920), threads: int = 0,
                workdir: Optional[str] = None, log=None) -> List[Dict[str, object]]:
    """One row per test set: FP32, post-training INT8 and (``qat_steps`` > 0) QAT INT8 PSNR (RGB
    and Y), the ONNX Runtime CPU latency of each graph on one Full-HD-output frame, and what
    calibrated and fine-tuned the INT8 graphs."""
    from .color import rgb_to_y
    from .datasets import data_root, resolve_sets
    from .export import exported_onnx
    from .imresize import downscale, modcrop
    from .metrics import psnr, psnr_rgb
    from .models import resolve
    from .quantize import int8_onnx
    from .weights import cache_dir

    model = resolve(model_id, None, weights)
    if getattr(model, "module", None) is None:
        raise HarnessError(f"{model_id} is not a network: INT8 applies to the learned models (e.g. ABPN_s3)")
    image_sets = resolve_sets(data_root(data), sets)  # a missing set fails before any work
    if qat_steps < 0:
        raise HarnessError(f"--qat-steps {qat_steps}: give 0 (no QAT) or more")
    scale, rgb_model = model.scale, model.input_space == "rgb"
    if frame[0] % scale or frame[1] % scale:
        raise HarnessError(f"the {frame[1]}x{frame[0]} frame is not a multiple of x{scale}")
    work = Path(workdir or cache_dir())
    say = log or (lambda msg: None)

    fp32_path, _ = exported_onnx(model, "naive", work / "onnx")
    say(f"{model.id}: post-training INT8 calibration ...")
    ptq_path, calibration = int8_onnx(model, fp32_path, list(calib_data) if calib_data else None)
    paths = {"fp32": fp32_path, "ptq": ptq_path}
    qat_facts = None
    if qat_steps:
        say(f"{model.id}: quantization-aware fine-tuning, {qat_steps} steps ...")
        paths["qat"], qat_facts = qat_onnx(model, list(calib_data) if calib_data else None, qat_steps, qat_lr,
                                           qat_batch, qat_patch, work)
    sessions = {k: ort_session(p, threads) for k, p in paths.items()}

    lr_shape = (1, model.channels, frame[0] // scale, frame[1] // scale)
    say(f"{model.id}: timing {lr_shape} -> {frame[1]}x{frame[0]} ({runs} interleaved runs each) ...")
    latency = sessions_median_ms(sessions, lr_shape, runs)

    rows = []
    for image_set in image_sets:
        scores: Dict[str, List[float]] = {f"{k}_{m}": [] for k in sessions for m in ("rgb", "y")}
        count = 0
        for name, rgb in image_set:
            hr = modcrop(rgb, scale)
            if hr.shape[0] < 4 * scale or hr.shape[1] < 4 * scale:
                raise HarnessError(f"{image_set.name}/{name}: {rgb.shape[1]}x{rgb.shape[0]} is too small for "
                                   f"x{scale}; remove it from the set")
            lr = downscale(hr, scale)
            if rgb_model:
                x = np.ascontiguousarray(np.transpose(lr.astype(np.float32) / 255.0, (2, 0, 1))[None])
            else:
                x = np.ascontiguousarray((rgb_to_y(lr) / 255.0)[None, None], dtype=np.float32)
            hr_y = rgb_to_y(hr)
            for k, session in sessions.items():
                out = np.clip(np.asarray(_run(session, x), dtype=np.float64)[0], 0.0, 1.0)
                if not np.all(np.isfinite(out)):
                    raise HarnessError(f"{model.id} ({k}): output holds NaN/inf for {image_set.name}/{name}")
                if rgb_model:
                    sr = np.transpose(out, (1, 2, 0))
                    scores[f"{k}_rgb"].append(psnr_rgb(hr.astype(np.float64), sr * 255.0, crop=scale))
                    scores[f"{k}_y"].append(psnr(hr_y, rgb_to_y(sr), crop=scale))
                else:
                    scores[f"{k}_y"].append(psnr(hr_y, out[0] * 255.0, crop=scale))
            count += 1
        row: Dict[str, object] = {"model": model.id, "scale": scale, "weights": model.weights, "set": image_set.name,
                                  "images": count}
        for k in VARIANTS:
            for m in ("rgb", "y"):
                vals = scores.get(f"{k}_{m}") or []
                row[f"{k}_psnr_{m}"] = _mean(vals) if vals else None
        for k in VARIANTS:
            row[f"{k}_ms"] = latency.get(k)
        row["ptq_speedup"] = latency["fp32"] / latency["ptq"] if latency["ptq"] > 0 else None
        row.update(frame=f"{frame[1]}x{frame[0]}", lr_shape=list(lr_shape), runs=runs, threads=threads,
                   calibration=calibration, qat=qat_facts, onnx={k: str(p) for k, p in paths.items()},
                   published_rgb=PUBLISHED.get(model.id))
        rows.append(row)
    return rows


def _head_mean(losses: List[float]) -> Optional[float]:
    """Mean of the first tenth (at least one, at most 20) of the losses: one batch is too noisy."""
    n = min(20, max(1, len(losses) // 10))
    return float(np.mean(losses[:n])) if losses else None


def _mean(values: List[float]) -> float:
    return float(np.mean(values)) if all(math.isfinite(v) for v in values) else float("inf")


def columns(qat: bool) -> Tuple[List[str], Dict[str, str]]:
    cols = ["set", "images", "fp32_psnr_rgb", "fp32_psnr_y", "ptq_psnr_rgb", "ptq_psnr_y"]
    if qat:
        cols += ["qat_psnr_rgb", "qat_psnr_y"]
    cols += ["fp32_ms", "ptq_ms"] + (["qat_ms"] if qat else [])
    headers = {"fp32_psnr_rgb": "FP32 RGB dB", "fp32_psnr_y": "FP32 Y dB", "ptq_psnr_rgb": "PTQ RGB dB",
               "ptq_psnr_y": "PTQ Y dB", "qat_psnr_rgb": "QAT RGB dB", "qat_psnr_y": "QAT Y dB",
               "fp32_ms": "FP32 ms", "ptq_ms": "PTQ ms", "qat_ms": "QAT ms"}
    return cols, headers


def describe(rows: List[Dict[str, object]]) -> List[str]:
    """The lines printed under the table: calibration, QAT, speed settings, the published figures."""
    if not rows:
        return []
    r = rows[0]
    cal = r["calibration"] or {}
    where = (f"{cal.get('images')} images in {', '.join(cal.get('folders', []))}" if cal.get("source") == "folders"
             else f"the {cal.get('images')} embedded images")
    lines = [f"{r['model']} (weights {r['weights']}): post-training INT8 calibrated on {where}"]
    q = r.get("qat")
    if q:
        lines.append(f"QAT: {q['steps']} steps, lr {q['lr']:g}, batch {q['batch']} of {q['patch']}-pixel HR patches "
                     f"from {'the calibration folders' if q['data'].get('source') == 'folders' else 'the embedded images'}"
                     f"; mean L1 loss {q['first_loss']:.4f} first -> {q['last_loss']:.4f} last" if q.get("first_loss") is not None
                     else f"QAT: {q['steps']} steps")
    threads = f"{r['threads']} threads" if r["threads"] else "ORT's default threads"
    speed = f"ONNX Runtime CPU, {threads}, median of {r['runs']} interleaved runs, input {r['lr_shape']} -> {r['frame']}"
    if r.get("ptq_speedup"):
        speed += f"; post-training INT8 {r['ptq_speedup']:.2f}x FP32"
    lines.append(speed)
    pub = r.get("published_rgb")
    if pub:
        lines.append(f"published (DIV2K valid x{r['scale']}, RGB): FP32 {pub['fp32']:.2f}, post-training INT8 "
                     f"{pub['ptq']:.2f}, QAT INT8 {pub['qat']:.2f} dB")
    return lines
