"""The training loop: :func:`train_model` trains one model in one folder (seeded init or
``--init-weights``, Adam with the recipe's betas, cosine decay of the learning rate, the loss of
the recipe or the module's own ``training_loss``, validation, ``last.pt``/``best.pt`` checkpoints,
exact resume, a first Ctrl-C that saves and stops) and writes ``<id>.pt`` and ``<id>.json``
(:func:`provenance`)."""
from __future__ import annotations

import hashlib
import json
import math
import platform
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence

from ..errors import HarnessError, first_line
from ..numeric import json_safe
from .checkpoint import CHECKPOINT_FORMAT, all_finite, atomic_save, load_checkpoint, state_sha256
from .data import PatchSampler, TrainFolder
from .files import atomic_text
from .finetune import load_init, resolve_init
from .recipes import betas_for, recipe_record
from .settings import Settings, crop_border, for_family, loss_border, lr_for, patch_for
from .targets import esr_family, fresh_model, target
from .validation import Validator

# An L1 loss on Y in [0, 1] starts below 1; far above it the weights have blown up even if the
# numbers are still finite (eSR-MAX at --lr 1e30 stays finite for ever): stop as for NaN.
DIVERGED_LOSS = 1e3


def mse_loss(output, target):
    """The MSE training loss of the recipes that ask for it (module-level so that tests can replace it)."""
    import torch.nn.functional as F

    return F.mse_loss(output, target)


def l1_loss(output, target):
    """The training loss (module-level so that tests can replace it)."""
    import torch.nn.functional as F

    return F.l1_loss(output, target)


def cosine_lr(step: int, steps: int, lr: float, min_lr: float) -> float:
    """The learning rate after ``step`` completed steps: cosine from ``lr`` to ``min_lr`` at ``steps``."""
    t = min(max(step, 0), steps) / steps
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


class _StopFlag:
    """First Ctrl-C: finish the current step, save last.pt and stop; a second one aborts at once."""

    def __init__(self):
        self.set = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _config(model_id: str, settings: Settings, scale: int, patch: int, lr: float, data: Sequence[TrainFolder],
            init: Optional[str] = None) -> Dict:
    config = {"model": model_id, "scale": scale, "steps": settings.steps, "batch": settings.batch, "patch": patch,
              "lr": lr, "min_lr": settings.min_lr, "seed": settings.seed,
              "data": [f.key for f in data]}
    if settings.loss not in (None, "l1"):  # only MSE runs carry it: L1 checkpoints stay as they were
        config["loss"] = settings.loss
    if init is not None:  # only fine-tunes carry it: other checkpoints stay as they were
        config["init"] = init
    return config


def _hooks(module):
    """The module's own training hooks, if it has them: ``training_loss(lr, hr) -> (loss, parts)``
    (used instead of L1) and ``trainable_parameters()`` (only those are optimised; the others are
    frozen). None for each hook it lacks."""
    loss = getattr(module, "training_loss", None)
    select = getattr(module, "trainable_parameters", None)
    return (loss if callable(loss) else None), (select if callable(select) else None)


def _parts_text(parts: Optional[Dict[str, float]]) -> str:
    return "" if not parts else " (" + ", ".join(f"{k} {v:.5g}" for k, v in parts.items()) + ")"


def train_model(model_id: str, settings: Settings, data: Sequence[TrainFolder], out: Path,
                validator: Optional[Validator] = None, resume: bool = False, stop_at: Optional[int] = None,
                show_progress: bool = False, log=None) -> Dict:
    """Train one model in ``out``; returns the provenance record (``status`` finished or paused)."""
    import torch

    from ..progress import progress

    t = target(model_id, settings.scale)
    family, scale = t.family, t.scale
    wrong = sorted({f.space for f in data} - {t.space})
    if wrong:
        raise HarnessError(f"{model_id} trains on {t.space.upper()} pairs, but the training data was loaded as "
                           f"{', '.join(w.upper() for w in wrong)} (load_folder(..., space={t.space!r}))")
    recipe = recipe_record(family, scale, model_id)
    settings = for_family(settings, family, model_id)
    patch = patch_for(settings, model_id, scale, family)
    lr = lr_for(settings, family, model_id)
    sampler = PatchSampler(data, scale, patch, settings.batch, settings.seed)
    last_path, best_path = out / "last.pt", out / "best.pt"
    resuming = resume and last_path.is_file()
    init = resolve_init(model_id, settings.init_weights) if settings.init_weights and not resuming else None
    config = _config(model_id, settings, scale, patch, lr, data, init.describe() if init else None)
    log = log or (lambda msg: None)

    previous_threads = torch.get_num_threads()
    threads = settings.threads or previous_threads
    torch.set_num_threads(threads)
    torch_rng = torch.get_rng_state()
    try:
        torch.manual_seed(settings.seed)
        # eSR: the authors' init; others: the module's own; drawn from the seeded torch RNG
        model = fresh_model(model_id, settings.scale)
        if init is not None:  # a fine-tune: the given weights replace the init (a resumed run has them in last.pt)
            model.module = load_init(model_id, model, init)
        module = model.module.to(settings.device).train()
        model.module = module
        if settings.device != "cpu":
            # Fixed patch shapes: let cuDNN time its algorithms once instead of using its heuristics.
            # (On an H100 these small nets are host-bound anyway: each process keeps one CPU core busy,
            # ESPCN_s2_D34_S32 ~100 steps/s with six runs at once; --jobs is how to fill the GPU.)
            torch.backends.cudnn.benchmark = True
        if validator is not None:
            validator.models[model_id] = model  # scored as this Upscaler (space, scale) with the trained module
        loss_hook, select = _hooks(module)
        # Layers that follow the schedule (GhostSR's Gumbel temperature): told the step before each one.
        scheduled = [m for m in module.modules() if callable(getattr(m, "training_progress", None))]
        if loss_hook is not None:  # the model's own loss sees the whole patch
            border = {"hr_pixels": 0, "how": "off (the model's own training_loss)"}
        else:
            border = loss_border(settings.loss_border, module, 3 if t.space == "rgb" else 1, patch // scale,
                                 scale, settings.device)
        crop = int(border["hr_pixels"])
        if crop:  # only runs that crop carry it: earlier checkpoints stay as they were
            config["loss_border"] = crop
        if select is not None:  # only these are optimised; the rest is frozen (no gradient, no update)
            trained = list(select())
            chosen = {id(p) for p in trained}
            if not trained:
                raise HarnessError(f"{model_id}: trainable_parameters() returned no parameter; nothing to train")
            for p in module.parameters():
                if id(p) not in chosen:
                    p.requires_grad_(False)
        else:
            trained = list(module.parameters())
        betas = betas_for(family, model_id)
        optimizer = torch.optim.Adam(trained, lr=lr, betas=betas)
        steps, min_lr = settings.steps, settings.min_lr
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: cosine_lr(e, steps, lr, min_lr) / lr)
        state = {"step": 0, "best_psnr": None, "best_step": None, "last_psnr": None, "history": [],
                 "wall_s": 0.0, "cpu_s": 0.0, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if init is not None:  # the exact start, whatever files and loader made it (kept in last.pt's state)
            state["init_state_sha256"] = state_sha256(module)
        if resuming:
            ckpt = load_checkpoint(last_path)
            if ckpt["config"].get("model") != model_id:
                raise HarnessError(f"{last_path} is a checkpoint of {ckpt['config'].get('model')}, not {model_id}; "
                                   f"give another --out or train again with --force")
            if "init" in ckpt["config"]:  # a fine-tune goes on from last.pt: its start is the checkpoint's
                config["init"] = ckpt["config"]["init"]
            changed = [f"{k} {ckpt['config'].get(k)} -> {v}" for k, v in config.items() if ckpt["config"].get(k) != v]
            if changed:
                warnings.warn(f"resuming {model_id} with changed settings ({'; '.join(changed)}); the result is "
                              f"no longer what one uninterrupted run gives")
            module.load_state_dict(ckpt["module"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if changed:  # the schedule of this run's --lr/--steps from here on, by LambdaLR's own formula
                scheduler.base_lrs = [lr for _ in optimizer.param_groups]
                for group, fn in zip(optimizer.param_groups, scheduler.lr_lambdas):
                    group["lr"] = lr * fn(scheduler.last_epoch)
            sampler.set_state(ckpt["rng"]["numpy"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            state = ckpt["state"]
        params = list(module.parameters())

        def save_last(step: int) -> None:
            if not all_finite(module, optimizer):  # never replace the last good checkpoint with NaN
                raise HarnessError(f"the weights became NaN/inf by step {step}; lower --lr (was {lr:g}); "
                                   f"{_kept(last_path)}")
            state["step"] = step
            atomic_save({"format": CHECKPOINT_FORMAT, "config": config, "step": step,
                         "module": module.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(),
                         "rng": {"numpy": sampler.get_state(), "torch": torch.get_rng_state()},
                         "state": state}, last_path)

        start = int(state["step"])
        done_json = out / f"{model_id}.json"
        if resuming and start >= steps and done_json.is_file() and (out / f"{model_id}.pt").is_file():
            try:  # --resume of a finished run: nothing to do; its record stays as written
                return json.loads(done_json.read_text())
            except ValueError:
                pass  # a damaged record is written again below
        # Where each stretch of steps ran (a run started on a GPU box may be finished on a laptop).
        state.setdefault("segments", []).append({"from_step": start, "device": _device_name(settings.device)})
        wall0, cpu0 = time.perf_counter(), time.process_time()
        wall_before, cpu_before = float(state["wall_s"]), float(state["cpu_s"])
        stop = min(steps, stop_at) if stop_at else steps
        bar = progress(None, total=steps, desc=model_id, disable=not show_progress)
        bar.n = bar.last_print_n = bar.initial = start
        running, interrupted = state.get("running_loss"), False
        diverged = float(getattr(module, "diverged_loss", DIVERGED_LOSS))
        step = start
        try:
            with _StopFlag() as flag:
                while step < stop:
                    lr_batch, hr_batch = sampler.next()
                    if settings.device != "cpu":
                        lr_batch = lr_batch.to(settings.device, non_blocking=True)
                        hr_batch = hr_batch.to(settings.device, non_blocking=True)
                    parts = None
                    for layer in scheduled:
                        layer.training_progress(step, steps)
                    try:
                        if loss_hook is not None:  # the model's own loss (ClassSR: L1 + class + average)
                            loss, parts = loss_hook(lr_batch, hr_batch)
                        else:
                            loss = (mse_loss if settings.loss == "mse" else l1_loss)(
                                crop_border(module(lr_batch), crop), crop_border(hr_batch, crop))
                    except RuntimeError as exc:  # e.g. a patch too small for the network's own downsampling
                        raise HarnessError(f"{model_id} failed on {tuple(lr_batch.shape)} LR patches at step "
                                           f"{step + 1} ({first_line(exc)}); try a bigger --patch") from None
                    value = float(loss.item())
                    if not math.isfinite(value) or value > diverged:
                        what = "NaN" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.3g}"
                        raise HarnessError(f"loss became {what} at step {step + 1}; lower --lr (was {lr:g}) "
                                           f"or check the images in --data; {_kept(last_path)}")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    if not all(bool(torch.isfinite(p).all()) for p in params):
                        raise HarnessError(f"the weights became NaN/inf at step {step}; lower --lr "
                                           f"(was {lr:g}); {_kept(last_path)}")
                    running = value if running is None else 0.98 * running + 0.02 * value
                    state["running_loss"] = running
                    if parts:  # the same running mean for each part of the model's own loss
                        before = state.get("running_parts") or {}
                        state["running_parts"] = {k: float(v) if k not in before else
                                                  0.98 * before[k] + 0.02 * float(v) for k, v in parts.items()}
                    if validator is not None and (step % settings.val_every == 0 or step == steps):
                        psnr = validator.psnr(model_id, module)
                        state["last_psnr"] = psnr
                        running_parts = state.get("running_parts")
                        state["history"].append([step, psnr] + ([dict(running_parts)] if running_parts else []))
                        if state["best_psnr"] is None or psnr > state["best_psnr"]:
                            state["best_psnr"], state["best_step"] = psnr, step
                            atomic_save({k: v.detach().cpu() for k, v in module.state_dict().items()}, best_path)
                        msg = (f"{model_id} step {step}/{steps} loss {running:.5f}{_parts_text(running_parts)} "
                               f"{validator.image_set.name} PSNR {psnr:.2f} dB (best {state['best_psnr']:.2f})")
                        if show_progress:
                            bar.write(msg, file=sys.stderr)
                        else:
                            log(msg)
                    state["wall_s"] = wall_before + time.perf_counter() - wall0
                    state["cpu_s"] = cpu_before + time.process_time() - cpu0
                    state["segments"][-1].update(to_step=step, wall_s=round(time.perf_counter() - wall0, 3),
                                                 cpu_s=round(time.process_time() - cpu0, 3))
                    if step % settings.checkpoint_every == 0 or step == stop or flag.set:
                        save_last(step)
                    bar.update(1)
                    if step % 10 == 0 or step == stop:
                        post = {"loss": f"{running:.4f}", "lr": f"{optimizer.param_groups[0]['lr']:.1e}"}
                        if state["last_psnr"] is not None:
                            post["psnr"] = f"{state['last_psnr']:.2f}"
                        bar.set_postfix(post, refresh=False)
                    if flag.set:
                        interrupted = True
                        break
        finally:
            bar.close()
        if interrupted:
            log(f"{model_id}: stopped at step {step} of {steps}; {last_path} saved, continue with --resume")
            raise KeyboardInterrupt
        extra: Dict = {"optimizer": f"Adam (betas {betas[0]:g}, {betas[1]:g})", "loss_border": border}
        if "init" in config:
            extra["init"] = config["init"]
            extra["init_state_sha256"] = state.get("init_state_sha256")
        if loss_hook is not None:
            extra["loss"] = str(getattr(module, "loss_name", f"{type(module).__name__}.training_loss"))
            extra["loss_parts"] = state.get("running_parts")
        if select is not None:
            total = sum(p.numel() for p in module.parameters())
            n_trained = sum(p.numel() for p in trained)
            extra["trained_parameters"] = {"trained": n_trained, "frozen": total - n_trained,
                                           "by": f"{type(module).__name__}.trainable_parameters"}
        record = provenance(model_id, family, scale, settings, patch, lr, threads, data, sampler, validator,
                            state, step, space=t.space, recipe=recipe, extra=extra)
        if step < steps:
            record["status"] = "paused"
            return record
        weights = out / f"{model_id}.pt"
        if not all_finite(module):
            raise HarnessError(f"the final weights of {model_id} hold NaN/inf; lower --lr (was {lr:g})")
        atomic_save({k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, weights)
        record["weights"] = str(weights)
        record["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        atomic_text(json.dumps(json_safe(record), indent=2) + "\n", out / f"{model_id}.json")
        return record
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_rng_state(torch_rng)


def _device_name(device: str) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA ...)``: GPU runs are not bit-reproducible across GPU models."""
    if device == "cpu":
        return "cpu"
    import torch

    return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"


def _kept(last_path: Path) -> str:
    return f"the last good checkpoint {last_path} is kept" if last_path.is_file() else "no checkpoint was written"


def provenance(model_id, family, scale, settings: Settings, patch, lr, threads, data, sampler, validator,
               state, step, space: str = "y", recipe: Optional[Dict] = None, extra: Optional[Dict] = None) -> Dict:
    """The provenance record; ``extra`` overrides or adds entries (a fine-tune's ``init``, a model's
    own ``loss`` and its ``loss_parts``, ``trained_parameters``, the recipe's Adam betas)."""
    import torch

    from ..export import harness_version

    is_esr = esr_family(model_id) is not None
    record = {
        "model": model_id, "family": family, "scale": scale, "status": "finished",
        "input_space": space,
        "data": [f.record(used) for f, used in zip(data, sampler.used)],
        "images": sum(sampler.used),
        "steps": step, "batch": settings.batch, "patch": patch, "lr_patch": patch // scale,
        "recipe": recipe if recipe is not None else recipe_record(family, scale),
        "augmentation": "random flips and 90-degree rotations (8 orientations)",
        "degradation": "modcrop, MATLAB-faithful bicubic shrink of the uint8 RGB image, " +
                       ("BT.601 Y in [0, 1]" if space == "y" else "RGB in [0, 1]"),
        "loss": settings.loss.upper(), "optimizer": "Adam (betas 0.9, 0.999)",
        "lr_schedule": {"type": "cosine", "lr": lr, "min_lr": settings.min_lr, "steps": settings.steps},
        "init": "authors' initialisation (harness.models.esr.build_module)" if is_esr else
                "module default (PyTorch), as the registry's resolve(id) builds it",
        "seed": settings.seed, "threads": threads, "device": _device_name(settings.device),
        "segments": state.get("segments", []),
        "wall_time_s": round(float(state["wall_s"]), 3), "cpu_time_s": round(float(state["cpu_s"]), 3),
        "validation": None if validator is None else dict(validator.record(), every=settings.val_every),
        "final_psnr": state["last_psnr"] if state["history"] and state["history"][-1][0] == step else None,
        "best_psnr": state["best_psnr"], "best_step": state["best_step"],
        "history": state["history"],
        "started": state["started"], "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "harness_version": harness_version(), "torch_version": torch.__version__,
        "python_version": platform.python_version(), "machine": platform.machine(),
    }
    record.update(extra or {})
    return record
