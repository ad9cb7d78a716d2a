"""Options shared by the commands, and the command line's reading of them."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from ..errors import HarnessError

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def csv_list(text: Optional[str]) -> List[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def scales_of(text: Optional[str]) -> List[int]:
    try:
        return [int(s) for s in csv_list(text)]
    except ValueError:
        raise HarnessError(f"--scale {text}: give integers such as 2 or 2,3,4") from None


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")


def add_device(p: argparse.ArgumentParser) -> None:
    """The options that choose where and how models run (bench, selfcheck, run-all)."""
    p.add_argument("--device", default="cpu",
                   help="device profile name or path (harness/profiles/*.toml or your devices/*.toml; default cpu)")
    p.add_argument("--backend", help="override the profile's backend: onnxruntime, tensorrt, torch")
    p.add_argument("--precision", help="override the profile's precision: fp32, fp16, int8")
    p.add_argument("--frames", metavar="DIR", help="folder of Full-HD frames (default: embedded mosaics)")
    add_calib(p)


def add_calib(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib-data", metavar="DIR[,DIR]",
                   help="INT8 calibration images (training images, e.g. DIV2K_train_HR), for --precision int8 on "
                        "ONNX Runtime (QDQ) and TensorRT (entropy calibrator); default: the embedded images")


def calib_folders_of(args) -> Optional[List[str]]:
    """The --calib-data folders (each must exist), or None for the embedded images."""
    from ..api import calib_folders

    return calib_folders(csv_list(getattr(args, "calib_data", None)))


def add_timing(p: argparse.ArgumentParser, rounds: bool = True) -> None:
    """How models are timed (bench, run-all): each overrides the device profile for this run and is
    recorded with the results."""
    p.add_argument("--repeats", type=int, help="at most this many timed passes over the frames (profile default)")
    p.add_argument("--timeout", type=float, help="seconds a model may take to be measured, or in the quality stage "
                                                 "to finish one image, before it is recorded as hung (profile default)")
    p.add_argument("--warmup", type=int, metavar="N", help="warm-up passes over the frames before timing (profile "
                                                            "default)")
    p.add_argument("--iterations", type=int, metavar="N", help="time exactly N frames (no adaptive stop)")
    p.add_argument("--duration", type=float, metavar="S", help="the time budget per model: stop adding passes after "
                                                                "S seconds of timing (profile's max_time_s)")
    p.add_argument("--threads", type=int, metavar="N", help="intra-op threads of the backend (0: the library's "
                                                             "choice; profile default)")
    p.add_argument("--ci-target", type=float, metavar="PCT", help="stop timing once the median's 95%% interval is "
                                                                   "within +-PCT %% (default 3; 0: never)")
    if rounds:
        p.add_argument("--rounds", type=int, default=1, metavar="N",
                       help="time the models in N interleaved rounds (A B C, A B C, ...) and pool them: steadier "
                            "figures on a noisy host (default 1)")
    p.add_argument("--pipeline", choices=("model", "color"), default=None,
                   help="what is timed: model (the model on its own input, the default) or color (the application's "
                        "path: LR RGB frame -> Y model + CbCr bicubic -> RGB frame, as one)")
    p.add_argument("--export-times", metavar="FILE", help="also write every raw per-frame time as JSON, one list "
                                                          "per model")


def add_fresh_process(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fresh-process", action="store_true",
                   help="measure each model in a fresh process (slower: a process start and imports per model) "
                        "instead of one worker process that measures them one after another and is replaced after "
                        "a crash or hang")


def timing_of(args):
    """The timing controls on the command line as BenchConfig overrides (:func:`harness.api.timing_overrides`)."""
    from ..api import timing_overrides

    return timing_overrides(*(getattr(args, k, None) for k in ("repeats", "timeout", "warmup", "iterations",
                                                                "duration", "threads", "ci_target", "pipeline")))


def device_config(args):
    """(profile, BenchConfig) of the device and timing options on the command line."""
    from ..api import bench_config

    return bench_config(args.device, backend=getattr(args, "backend", None),
                        precision=getattr(args, "precision", None), weights=getattr(args, "weights", None),
                        form=getattr(args, "form", None), frames_dir=getattr(args, "frames", None),
                        calib_data=csv_list(getattr(args, "calib_data", None)),
                        onnx_dir=getattr(args, "onnx_dir", None), **timing_of(args))


def add_weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="shipped",
                   help="weights of the learned models: shipped (trained by the project, in the package; the "
                        "default, for the default pool), official (imported with zoo import-esr or zoo "
                        "import-bsrn), init "
                        "(untrained), or a weights file; bicubic baselines ignore it")


def add_onnx_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx-dir", metavar="DIR",
                   help="run the models of an export folder (python -m harness export --out DIR, on a machine with "
                        "PyTorch): the device needs no PyTorch")


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR",
                   help="folder holding test sets as DIR/<Set>/HR/*.png (default: $HARNESS_DATA; "
                        "without either, the embedded scikit-image set)")


def add_ids(p) -> None:
    """Model ids as plain arguments (``bench eSR-MAX_s2_K3_C1``), the same as --model."""
    p.add_argument("ids", nargs="*", metavar="MODEL", help="model id(s), the same as --model")


def model_ids_of(args) -> List[str]:
    """Ids given as arguments, by --model and/or --pool (a pool is filtered to --scale when given)."""
    from ..models import id_scale
    from ..models.pools import pool_ids

    ids = [i for item in getattr(args, "ids", None) or [] for i in csv_list(item)] + csv_list(getattr(args, "model", None))
    pool = getattr(args, "pool", None)
    if pool:
        scales = scales_of(getattr(args, "scale", None))
        ids += [i for i in pool_ids(pool) if not scales or id_scale(i) in scales]
    return ids


def add_plots(p, beside: str) -> None:
    """--plots, by default a plots/ folder beside the results (``beside`` names the option holding them)."""
    p.add_argument("--plots", default=None, help=f"figures folder (default: a plots/ folder beside {beside}'s "
                                                 f"folder: the checkout's plots/ for the default)")
