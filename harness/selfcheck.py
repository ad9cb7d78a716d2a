"""How much the harness itself adds to what it measures.

For a small and a large model, the same backend session is timed in the same process two
ways, alternating: through the runner's timed loop (:func:`harness.runner.time_session`,
with the device's power sampler running) and by a bare loop (``load`` + ``compute`` per
frame, one clock around the whole pass). The overhead is the runner's mean per-frame
latency against the bare loop's; the target is within 2%. The run-to-run spread is the
(max - min) / median of the per-run figures of each way.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List

import numpy as np

from .timing import seconds

SMALL, LARGE = "eSR-MAX_s2_K3_C1", "FSRCNN_s2_D56_S12_M4"
TARGET_PCT = 2.0


def _pass(session, batch) -> None:
    for x in batch:
        session.load(x)
        session.compute()


def _bare_pass(session, batch) -> float:
    """Mean seconds per frame of one pass, one clock around the whole pass."""
    return seconds(_pass, session, batch) / len(batch)


def check_model(model_id: str, cfg, runs: int = 3, frames_dir=None) -> Dict:
    from .backends import as_nchw, make_backend
    from .frames import load_frames, lr_inputs
    from .models import id_scale, resolve
    from .runner import make_sampler, time_session
    from .weights import cache_dir

    scale = id_scale(model_id)
    model = resolve(model_id, scale, "init")  # the harness's cost does not depend on the weights
    batch = [as_nchw(x) for x in lr_inputs(load_frames(frames_dir), scale, model.input_space)]
    backend = make_backend(cfg.backend, precision=cfg.precision, threads=cfg.threads, device=cfg.target,
                           workdir=cfg.workdir or str(cache_dir()), form=cfg.form)
    session = backend.prepare(model, [batch[0].shape])
    one_pass = replace(cfg, repeats=1, min_repeats=1, max_time_s=0.0)
    for x in batch:  # warm-up
        session.load(x)
        session.compute()
    runner_ms: List[float] = []
    bare_ms: List[float] = []
    sampler, power_reason = make_sampler(cfg.power_meter, cfg.device)
    try:
        for _ in range(runs):
            bare_ms.append(1e3 * _bare_pass(session, batch))
            times, _, _, _ = time_session(session, batch, one_pass, sampler)
            runner_ms.append(1e3 * float(np.mean(times)))
    finally:
        if sampler is not None:
            sampler.stop()
    session.close()
    runner, bare = float(np.median(runner_ms)), float(np.median(bare_ms))
    return {"model": model_id, "form": session.form, "frames": len(batch), "runs": runs,
            "bare_ms": bare, "runner_ms": runner, "overhead_pct": 100.0 * (runner - bare) / bare,
            "within_target": abs(100.0 * (runner - bare) / bare) <= TARGET_PCT,
            "bare_spread_pct": 100.0 * (max(bare_ms) - min(bare_ms)) / bare,
            "runner_spread_pct": 100.0 * (max(runner_ms) - min(runner_ms)) / runner,
            "power_sampler": sampler is not None, "power_reason": power_reason}
