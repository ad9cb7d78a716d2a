"""Shipping weights trained by ``python -m harness train`` inside the package: ``zoo ship``.

Why: ``./run_all.sh`` must run the ``default`` pool on a fresh checkout with no download,
and every shipped file must say where it came from and how good it is. ``zoo ship DIR``
copies each finished ``DIR/<id>/<id>.pt`` into ``harness/models/weights/shipped/`` and
records in ``manifest.json`` there: its SHA-256, the training provenance (data, steps,
batch, learning-rate schedule, seed, threads, wall and CPU time, versions), its PSNR/SSIM
on the acceptance sets measured with the harness's own quality protocol, the same figures
for the official weights of the same id (when imported), and whether it is within the
tolerance of the official weights on the acceptance set (0.3 dB for eSR-MAX/TM/TR/CNN,
0.5 dB for ESPCN and FSRCNN).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import HarnessError
from ..numeric import json_safe
from .files import atomic_text

MANIFEST_FORMAT = 1
ACCEPTANCE_SET = "Set14"
# dB the shipped weights may lose against the official weights of the same id on ACCEPTANCE_SET.
TOLERANCE_DB = {"eSR-MAX": 0.3, "eSR-TM": 0.3, "eSR-TR": 0.3, "eSR-CNN": 0.3, "ESPCN": 0.5, "FSRCNN": 0.5}
# The official x3 weights were trained on a grid half an HR pixel off MATLAB's (see the
# eSR-Bicubic_s3 notes), so under the standard protocol a correctly aligned x3 model can beat them.
X3_NOTE = ("the official x3 weights are half an HR pixel off MATLAB's grid (as the authors' Bicubic_s3 is); "
           "under the standard protocol these correctly aligned weights score {delta:+.2f} dB against them on {set}")
_PROVENANCE_KEYS = ("steps", "batch", "patch", "lr_patch", "augmentation", "degradation", "loss", "loss_border",
                    "optimizer", "lr_schedule", "init", "seed", "threads", "device", "segments", "wall_time_s",
                    "cpu_time_s", "validation",
                    "best_psnr", "best_step", "final_psnr", "started", "finished", "harness_version",
                    "torch_version", "python_version", "machine")


def _finished_runs(train_dir: Path, model_ids: Optional[Sequence[str]]) -> Dict[str, Path]:
    """id -> run folder holding ``<id>.pt`` and ``<id>.json`` (a finished ``harness train`` run)."""
    if not train_dir.is_dir():
        raise HarnessError(f"{train_dir} is not a folder; give the --out folder of python -m harness train --pool")
    runs = {}
    for json_file in sorted(train_dir.glob("*/*.json")):
        mid = json_file.stem
        if json_file.parent.name == mid and (json_file.parent / f"{mid}.pt").is_file():
            runs[mid] = json_file.parent
    if model_ids:
        missing = [m for m in model_ids if m not in runs]
        if missing:
            raise HarnessError(f"no finished training run for {', '.join(missing[:5])} in {train_dir} (want "
                               f"{train_dir}/<id>/<id>.pt and <id>.json); train them first or drop them")
        return {m: runs[m] for m in model_ids}
    if not runs:
        raise HarnessError(f"{train_dir} holds no finished training runs (<id>/<id>.pt with <id>.json); "
                           f"train with python -m harness train --pool default --out {train_dir}")
    return runs


_ABS_PATH = re.compile(r"(?:\b[A-Za-z]:)?[/\\][^\s,;()]*[/\\]([^/\\\s,;()]+)")
_SHA256 = re.compile(r"\b[0-9a-f]{64}\b")


def _file_names(text):
    """``init`` without this machine's folders: ``weights /a/b/x.pt (sha256 ...)`` -> ``weights x.pt (...)``."""
    return _ABS_PATH.sub(r"\1", text) if isinstance(text, str) else text


def _run_summary(record: Dict) -> Dict:
    cpu_s, gpu_s = time_split(record)
    return {"model": record.get("model"), "steps": record.get("steps"), "device": record.get("device"),
            "cpu_time_s": round(cpu_s, 3), "gpu_time_s": round(gpu_s, 3), "wall_time_s": record.get("wall_time_s"),
            "best_psnr": record.get("best_psnr"), "final_psnr": record.get("final_psnr")}


def init_runs(record: Dict, train_dir: Path, manifest: Dict) -> List[Dict]:
    """The training runs behind a fine-tune's start (``init``'s files, by SHA-256): a finished run in
    ``train_dir`` (its steps and time, as shipping it would record) or a shipped entry; unknown
    files are listed by hash alone. ClassSR's branches, GhostSR's base, are accounted for this way."""
    shas = _SHA256.findall(record.get("init") or "")
    if not shas:
        return []
    runs: Dict[str, Dict] = {}
    for json_file in sorted(train_dir.glob("*/*.json")):
        try:
            other = json.loads(json_file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(other, dict) and other.get("status") == "finished" and other.get("weights_sha256"):
            runs[other["weights_sha256"]] = _run_summary(other)
    shipped = {e.get("sha256"): m for m, e in manifest.get("models", {}).items()}
    out = []
    for sha in shas:
        if sha in shipped:
            out.append({"sha256": sha, "shipped": shipped[sha]})
        elif sha in runs:
            out.append({"sha256": sha, **runs[sha]})
        else:
            out.append({"sha256": sha, "run": None})
    return out


def _provenance(record: Dict) -> Dict:
    out = {k: record.get(k) for k in _PROVENANCE_KEYS}
    out["init"] = _file_names(out.get("init"))
    # Folder names and image counts, not this machine's absolute paths.
    out["data"] = [{"folder": Path(d["folder"]).name, "images": d["images"], "used": d["used"], "key": d["key"]}
                   for d in record.get("data", [])]
    if out.get("validation"):
        out["validation"] = {k: out["validation"].get(k) for k in ("name", "images", "every")}
    return out


def _score(model, image_sets, evaluator) -> Dict[str, Dict[str, float]]:
    return {s.name: {"psnr": round(r.psnr, 4), "ssim": round(r.ssim, 5)}
            for s in image_sets for r in [evaluator.evaluate(model, s)]}


def reference_id(model_id: str) -> Optional[str]:
    """The network a shipped method is compared with (its family's ``reference_of``, else ``base_of``)."""
    from ..models.registry import lookup

    family = lookup(model_id)
    pick = family.reference_of or family.base_of
    return pick(model_id) if pick else None


def acceptance(model_id: str, ours: Dict, official: Optional[Dict], set_name: str = ACCEPTANCE_SET,
               official_reason: Optional[str] = None) -> Dict:
    """Whether ``ours`` is within the family's tolerance of ``official`` on ``set_name``."""
    from ..models.registry import family_name

    tol = TOLERANCE_DB.get(family_name(model_id))
    out = {"set": set_name, "tolerance_db": tol, "delta_db": None, "passes": None}
    if official is None or set_name not in ours or set_name not in official or tol is None:
        out["reason"] = ((official_reason or "official weights not imported (python -m harness zoo import-esr PATH)")
                         if official is None
                         else f"{set_name} not measured" if tol is not None else "no tolerance for this family")
        return out
    delta = ours[set_name]["psnr"] - official[set_name]["psnr"]
    out["delta_db"] = round(delta, 4)
    out["passes"] = bool(delta >= -tol)
    if model_id.split("_s")[-1].startswith("3") and delta > 0:
        out["note"] = X3_NOTE.format(delta=delta, set=set_name)
    return out


def ship(train_dir, model_ids: Optional[Sequence[str]] = None, data: Optional[str] = None,
         sets: Sequence[str] = ("Set5", ACCEPTANCE_SET), show_progress: bool = False, log=None) -> Dict:
    """Copy finished runs into the shipped store and (re)write their manifest entries; returns the manifest."""
    from ..datasets import data_root, resolve_sets
    from ..models import resolve
    from ..progress import progress
    from ..protocol import QualityEvaluator
    from ..weights import SHIPPED_DIR, SHIPPED_MANIFEST, shipped_manifest

    log = log or (lambda msg: print(msg, file=sys.stderr))
    train_dir = Path(train_dir).expanduser()
    runs = _finished_runs(train_dir, model_ids)
    image_sets = resolve_sets(data_root(data), list(sets)) if data else []
    evaluator = QualityEvaluator(show_progress=False)
    manifest = shipped_manifest()
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    for mid, folder in progress(list(runs.items()), desc="ship", disable=not show_progress):
        with open(folder / f"{mid}.json") as fh:
            record = json.load(fh)
        if record.get("status") != "finished" or record.get("model") != mid:
            raise HarnessError(f"{folder / (mid + '.json')} is not a finished run of {mid}; finish it with "
                               f"python -m harness train {mid} --resume --out {folder}")
        target = SHIPPED_DIR / f"{mid}.pt"
        fd, tmp = tempfile.mkstemp(dir=SHIPPED_DIR, suffix=".part")
        os.close(fd)
        shutil.copyfile(folder / f"{mid}.pt", tmp)
        os.replace(tmp, target)
        data_bytes = target.read_bytes()
        entry = {"file": target.name, "sha256": hashlib.sha256(data_bytes).hexdigest(), "bytes": len(data_bytes),
                 "provenance": _provenance(record)}
        behind = init_runs(record, train_dir, manifest)
        if behind:
            entry["provenance"]["init_runs"] = behind
        if image_sets:
            model = resolve(mid, weights=str(target))
            entry["params"] = int(sum(p.numel() for p in model.module.parameters()))
            entry["quality"] = _score(model, image_sets, evaluator)
            official_reason = None
            try:
                entry["official"] = _score(resolve(mid, weights="official"), image_sets, evaluator)
            except HarnessError as exc:  # not imported or never published: recorded as absent, never guessed
                entry["official"] = None
                official_reason = str(exc)
                log(f"{mid}: official weights not measured ({exc})")
            entry["acceptance"] = acceptance(mid, entry["quality"], entry["official"],
                                             official_reason=official_reason)
            ref = reference_id(mid)
            if ref and ref != mid:  # a method without official weights is read against its base network
                try:
                    entry["reference"] = {"model": ref, "weights": "shipped",
                                          "quality": _score(resolve(ref, weights="shipped"), image_sets, evaluator)}
                except HarnessError as exc:
                    entry["reference"] = {"model": ref, "weights": "shipped", "quality": None, "reason": str(exc)}
        else:
            old = manifest["models"].get(mid, {})
            if old.get("sha256") == entry["sha256"]:  # same file: its measured figures still hold
                entry.update({k: old[k] for k in ("params", "quality", "official", "acceptance", "reference")
                              if k in old})
        manifest["models"][mid] = entry
        acc = entry.get("acceptance") or {}
        if acc.get("delta_db") is not None:
            log(f"{mid}: {acc['set']} {entry['quality'][acc['set']]['psnr']:.2f} dB, official "
                f"{entry['official'][acc['set']]['psnr']:.2f} dB ({acc['delta_db']:+.2f}, tolerance "
                f"-{acc['tolerance_db']}) {'ok' if acc['passes'] else 'BELOW TOLERANCE'}")
        ref_q = (entry.get("reference") or {}).get("quality") or {}
        if ACCEPTANCE_SET in ref_q and ACCEPTANCE_SET in (entry.get("quality") or {}):
            ours, theirs = entry["quality"][ACCEPTANCE_SET]["psnr"], ref_q[ACCEPTANCE_SET]["psnr"]
            log(f"{mid}: {ACCEPTANCE_SET} {ours:.2f} dB, {entry['reference']['model']} (shipped) {theirs:.2f} dB "
                f"({ours - theirs:+.2f})")
    manifest["models"] = dict(sorted(manifest["models"].items()))
    entries = list(manifest["models"].values())
    splits = [time_split(e["provenance"]) for e in entries]  # (CPU s, GPU s) per model
    behind = {r["sha256"]: r for e in entries for r in e["provenance"].get("init_runs", []) if r.get("model")}
    splits += [(r["cpu_time_s"], r["gpu_time_s"]) for r in behind.values()]  # unshipped starts (ClassSR's branches)
    manifest.update({
        "format": MANIFEST_FORMAT,
        "about": "weights trained by python -m harness train (see provenance); quality with the harness's "
                 "protocol (Y channel, MATLAB bicubic LR, crop = scale)",
        "acceptance": {"set": ACCEPTANCE_SET, "tolerance_db": TOLERANCE_DB},
        "totals": {"models": len(entries),
                   "cpu_hours": round(sum(cpu for cpu, _ in splits) / 3600, 3),
                   "gpu_hours": round(sum(gpu for _, gpu in splits) / 3600, 3),
                   "wall_hours": round(sum(e["provenance"]["wall_time_s"] or 0 for e in entries) / 3600, 3),
                   "passing": sum(1 for e in entries if (e.get("acceptance") or {}).get("passes")),
                   "failing": [m for m, e in manifest["models"].items()
                               if (e.get("acceptance") or {}).get("passes") is False]},
    })
    atomic_text(json.dumps(json_safe(manifest), indent=1) + "\n", SHIPPED_MANIFEST)
    return manifest


def _on_gpu(device) -> bool:
    return str(device or "cpu").startswith("cuda")


def time_split(provenance: Dict) -> Tuple[float, float]:
    """(CPU seconds of the steps trained on a CPU, wall seconds of the steps trained on a GPU).

    From the run's segments where they carry times (a run started on a GPU and resumed on a CPU
    has one of each), else the whole run on its recorded device."""
    segments = [s for s in (provenance.get("segments") or []) if "wall_s" in s]
    if not segments:
        if _on_gpu(provenance.get("device")):
            return 0.0, float(provenance.get("wall_time_s") or 0)
        return float(provenance.get("cpu_time_s") or 0), 0.0
    return (sum(float(s["cpu_s"]) for s in segments if not _on_gpu(s["device"])),
            sum(float(s["wall_s"]) for s in segments if _on_gpu(s["device"])))


def acceptance_rows(manifest: Dict) -> List[Dict]:
    """One row per shipped model for ``zoo list --shipped`` and the README table."""
    rows = []
    for mid, e in manifest["models"].items():
        acc = e.get("acceptance") or {}
        s = acc.get("set", ACCEPTANCE_SET)
        cpu_s, gpu_s = time_split(e["provenance"])
        rows.append({"model": mid, "steps": e["provenance"]["steps"],
                     "cpu_min": cpu_s / 60, "gpu_min": gpu_s / 60,
                     "set5": ((e.get("quality") or {}).get("Set5") or {}).get("psnr"),
                     "ours": ((e.get("quality") or {}).get(s) or {}).get("psnr"),
                     "official": ((e.get("official") or {}).get(s) or {}).get("psnr"),
                     "reference": (e.get("reference") or {}).get("model"),
                     "reference_psnr": (((e.get("reference") or {}).get("quality") or {}).get(s) or {}).get("psnr"),
                     "delta": acc.get("delta_db"), "tolerance": acc.get("tolerance_db"),
                     "passes": {True: "yes", False: "NO", None: "-"}[acc.get("passes")]})
    return rows
