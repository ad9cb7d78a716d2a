"""ONNX Runtime: the CPU path (Raspberry Pi, host CPU) and the CUDA / TensorRT providers on NVIDIA.

On CPU, inputs are fed as NumPy arrays; on GPU providers an IOBinding keeps the input and
output on the device, so ``compute`` times the inference alone and ``load``/``fetch`` the
copies. The graph form (``naive`` export, or one of the rewrites of :mod:`harness.models.fast`:
``fast``, ``lean``, ``pad``, ``subpix``) is chosen per model: ``auto`` exports every form the model
has, times each briefly on this backend (on the CPU, a form far slower on a strip of the frame first
leaves without a full-size run; then interleaved rounds that drop a clearly slower form as soon as
one round shows it, :func:`trial_times`) and keeps the fastest, recording every trial (``form_trial_ms``,
``form_trial_runs``); a rewrite whose export fails or differs from PyTorch is left out, with the reason
(``form_refused``). In a process that measures many models (a sweep's worker), a form its family and
scale kept screening out is not exported again for a while (:class:`ScreenedForms`, ``form_skipped``).
``HARNESS_FORMS`` (comma-separated) limits the forms ``auto`` tries, e.g. ``naive,fast`` to measure as
before issue 22.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import HarnessError, first_line
from ..export import exported_onnx, module_digest  # exported_onnx: the TensorRT backend imports it from here too
from ..ortsession import ort_session
from .base import Backend, BackendUnavailable, Session, Shape, quick_time
from .native import NativeSession

TRIAL_ROUNDS = 3  # interleaved rounds of the form trial (--form auto)
# a form whose first run (a fresh session's) takes this many times the fastest first run is not timed further:
# the naive graph of a family with a fast form is often 3-10x slower
FIRST_CUT = 3.0
# ... unless it took at most this many times: then its second run decides, against the same cut. A session's
# first run also pays for its memory (page faults over hundreds of MB for a wide model), more for a graph of
# more tensors: measured, eSR-TM_s3_K5_C8 lean 153 ms first, 57 ms later; fast 100 and 64 ms (with ONNX
# Runtime's memory pattern, which the harness turns off on CPU, lean's first two runs took 6x: 573 ms)
HOPELESS_CUT = 5.0
# a form whose median is this many times the best one's leaves the trial after round 1, 2, ...: one run can
# swing by ~30 % (a hiccup more), so the first cut is wider
TRIAL_DROP = (2.0, 1.5)
# on the CPU, before any run at the Full-HD shape, each form runs twice on a strip of the input's rows (1/STRIP_PART
# of them, at least STRIP_MIN_ROWS: else no strip runs), and a form whose better strip run took over STRIP_CUT times
# the fastest form's is not run at full size. Measured on 14 official models, the naive graph of the 7 eSR-TM, -TR
# and -CNN ones took 2.6-12x the best form on strips of 1/8 and 3.9-13x at full size, so the strip catches the
# hopeless naive graphs (eSR-TM_s3_K5_C15's: two strip runs of 93 ms instead of a full-size first run of about a
# second); but a strip's few ms swing more, and put a form up to 2.2x further behind than at full size
# (ESPCN_s4_D52_S6 lean: 2.2x on the strip, 1.0x at full size), so the cut is wider than the full-size one (FIRST_CUT)
STRIP_PART = 8
STRIP_MIN_ROWS = 16
STRIP_CUT = 4.0
# seconds idle before each trial run of a session other than the one run before: ONNX Runtime's pool threads of
# the session just run spin for tens of ms and take the cores from the next one (measured, eSR-TR_s2_K5_C2 lean:
# 40-70 ms a run interleaved without a pause, 17-19 ms with 50 ms, 15 ms in a steady loop)
TRIAL_PAUSE_S = 0.05
# within one process (a sweep's worker), a form screened out by its first runs in this many consecutive models
# of one family and scale is not exported or tried for the next ones of that family and scale ...
SKIP_AFTER = 3
# ... except every RECHECK-th of them, which tries it again (a form that survives there is tried again from then on)
RECHECK = 10
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def provider_missing(provider: str) -> str:
    """Why this ONNX Runtime cannot run ``provider`` (one of :data:`PROVIDERS`' values), or "" where it can."""
    import onnxruntime as ort

    if provider in ort.get_available_providers():
        return ""
    return (f"onnxruntime {ort.__version__} has no {provider} here (available: "
            f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu for CUDA/TensorRT, or use --device cpu")


def auto_forms(module) -> List[str]:
    """The forms ``--form auto`` exports and times for ``module``: every form its family has
    (:func:`harness.models.fast.candidate_forms`), within ``$HARNESS_FORMS`` where that is set."""
    from ..models.fast import FORMS, candidate_forms

    allowed = [f.strip() for f in os.environ.get("HARNESS_FORMS", "").split(",") if f.strip()] or list(FORMS)
    unknown = sorted(set(allowed) - set(FORMS))
    if unknown:
        raise HarnessError(f"HARNESS_FORMS={os.environ.get('HARNESS_FORMS')}: unknown form(s) {', '.join(unknown)}; "
                           f"give some of {', '.join(FORMS)}")
    return candidate_forms(module, allowed)


def strip_shape(shape: Shape) -> Optional[Shape]:
    """The shape of the strip the CPU trial screens forms on (1/:data:`STRIP_PART` of the rows), or None
    where that is under :data:`STRIP_MIN_ROWS` rows (a small input: the trial runs at its shape only)."""
    rows = shape[2] // STRIP_PART
    return None if rows < STRIP_MIN_ROWS else (*shape[:2], rows, *shape[3:])


def trial_times(sessions: Dict[str, Session], shape: Shape, rounds: int = TRIAL_ROUNDS,
                drop: Sequence[float] = TRIAL_DROP, first_cut: float = FIRST_CUT, pause: Optional[float] = None,
                prime: bool = True, hopeless_cut: float = HOPELESS_CUT, strip: Optional[Shape] = None,
                strip_cut: float = STRIP_CUT) -> Dict[str, Dict[str, Any]]:
    """form -> ``{"first": seconds of its first run, "second": of its second run (where it had one),
    "runs": seconds of each timed round}``, ``"screened": True`` for a form left out by its first runs, and
    ``"primed": 1`` for the first form when ``prime``.

    With a ``strip`` shape (:func:`strip_shape`), every form first runs twice at that shape, back to back
    (``"strip"``: the seconds of both; the better one counts, and the second run follows its own session's,
    not another session's spinning threads); a form whose better strip run took over ``strip_cut``
    times the fastest form's is left out (``"screened": "strip"``) and never runs at ``shape``. The rest of the
    trial, below, runs the others.

    With ``prime``, the first form's session runs once untimed before anything is timed: the first ONNX
    Runtime run after the exports took 120-170 ms more than the next (FSRCNN_s2_D6_S1_M1: its first form
    150 ms against 33 ms primed), which screened that form out. Then every form's session runs once (its
    warm-up, timed: :func:`~harness.backends.base.quick_time` with ``warm=False``); a form whose first run
    took over ``first_cut`` times the fastest first run is not timed further (``runs`` empty), except that
    one within ``hopeless_cut`` times runs once more and is timed when that second run is within
    ``first_cut`` times the fastest first run (a first run also pays for the session's memory,
    :data:`HOPELESS_CUT`). The others are timed in up to ``rounds`` interleaved rounds of one run each, so they are
    compared under the same conditions; after round ``r`` a form whose median is over ``drop[r]`` (the last
    entry for later rounds) times the best one's leaves the trial, and the trial ends when one form is
    left. Each run of a session other than the one run before it waits ``pause`` seconds first (default
    :data:`TRIAL_PAUSE_S`)."""
    import statistics

    pause = TRIAL_PAUSE_S if pause is None else pause
    last: Optional[str] = None

    def run(form: str, at: Shape = shape) -> float:
        nonlocal last
        if pause > 0 and last is not None and last != form:
            time.sleep(pause)
        last = form
        return quick_time(sessions[form], at, runs=1, warm=False)

    trial: Dict[str, Dict[str, Any]] = {form: {} for form in sessions}
    full = list(sessions)
    if strip is not None and len(sessions) > 1:
        for form in sessions:  # back to back: the second run follows its own session's
            trial[form]["strip"] = [run(form, strip), run(form, strip)]
        fastest = min(min(t["strip"]) for t in trial.values())
        for form in sessions:
            if min(trial[form]["strip"]) > strip_cut * fastest:
                trial[form].update(screened="strip", runs=[])
        full = [form for form in sessions if not trial[form].get("screened")]
    if prime and len(full) > 1:
        run(full[0])
        trial[full[0]]["primed"] = 1
    for form in full:
        trial[form].update(first=run(form), runs=[])
    fastest = min(trial[form]["first"] for form in full)
    for form in full:
        first = trial[form]["first"]
        if first_cut * fastest < first <= hopeless_cut * fastest:  # perhaps a first run paying for its memory
            trial[form]["second"] = run(form)
        if min(first, trial[form].get("second", first)) > first_cut * fastest:
            trial[form]["screened"] = True
    alive = [form for form in full if not trial[form].get("screened")]
    for r in range(rounds):
        if len(alive) == 1:
            break
        for form in alive:
            trial[form]["runs"].append(run(form))
        medians = {form: statistics.median(trial[form]["runs"]) for form in alive}
        best = min(medians.values())
        cut = drop[min(r, len(drop) - 1)]
        alive = [form for form in alive if medians[form] <= cut * best]
    return trial


class ScreenedForms:
    """What this process's form trials showed, per family and scale (and precision, provider): for each form,
    how many models in a row screened it out by its first runs (:func:`trial_times`).

    A sweep measures hundreds of models of one family and scale, and the naive graph of a family with a fast
    form is screened out in nearly all of them after an export, a session and its first runs (a second or two for
    a wide x2 eSR model). Once a form was screened out ``SKIP_AFTER`` times in a row, :meth:`skipped` leaves
    it out of the following models' trials, each of which records why (``form_skipped``); every ``RECHECK``-th
    of those tries it again, and a form that survives a trial starts from zero.
    """

    def __init__(self, skip_after: int = SKIP_AFTER, recheck: int = RECHECK):
        self.skip_after, self.recheck = skip_after, recheck
        self.streak: Dict[Tuple, Dict[str, int]] = {}
        self.left_out: Dict[Tuple, int] = {}

    def skipped(self, key: Tuple, forms: Sequence[str]) -> Dict[str, str]:
        """form -> why it is not tried for the next model of ``key`` (none when that model is a recheck)."""
        streak = self.streak.get(key, {})
        out = {form: f"screened out by its first runs (over {FIRST_CUT:g}x the fastest) in each of the last {n} "
                     f"{key[0]} x{key[1]} models that tried it"
               for form, n in streak.items() if n >= self.skip_after and form in forms}
        if len(out) >= len(forms):  # never every form
            return {}
        if out:
            self.left_out[key] = self.left_out.get(key, 0) + 1
            if self.left_out[key] % self.recheck == 0:
                return {}
        return out

    def record(self, key: Tuple, trial: Dict[str, Dict[str, Any]]) -> None:
        """Count the forms this model's trial (:func:`trial_times`) screened out by their first runs."""
        streak = self.streak.setdefault(key, {})
        for form, t in trial.items():
            streak[form] = streak.get(form, 0) + 1 if t.get("screened") and len(trial) > 1 else 0


#: this process's memory of screened-out forms (one per process: a sweep's worker measures many models)
SCREENED = ScreenedForms()


class OrtSession(Session):
    def __init__(self, session, form: str, device: str, device_id: int = 0):
        super().__init__()
        self.session = session
        self.form = form
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        self.on_gpu = device != "cpu"
        self.device_id = device_id
        self._feed = None
        self._out = None
        self.details["runtime"] = "onnxruntime"  # whatever the provider (listed next)
        self.details["providers"] = session.get_providers()
        if self.on_gpu:
            self.binding = session.io_binding()

    def load(self, lr: np.ndarray) -> None:
        if self.on_gpu:
            import onnxruntime as ort

            self._feed = ort.OrtValue.ortvalue_from_numpy(lr, "cuda", self.device_id)
            self.binding.bind_ortvalue_input(self.input_name, self._feed)
            self.binding.bind_output(self.output_name, "cuda", self.device_id)
        else:
            self._feed = {self.input_name: lr}

    def compute(self) -> None:
        if self.on_gpu:
            self.session.run_with_iobinding(self.binding)
            self.binding.synchronize_outputs()
        else:
            self._out = self.session.run([self.output_name], self._feed)[0]

    def fetch(self) -> np.ndarray:
        if self.on_gpu:
            return self.binding.copy_outputs_to_cpu()[0]
        return self._out


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "fp16", "int8")

    @classmethod
    def probe(cls) -> Tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False, "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu on NVIDIA)"
        return True, ""

    def _provider(self) -> str:
        kind = self.device.split(":")[0]
        provider = PROVIDERS.get(kind)
        if provider is None:
            raise HarnessError(f"onnxruntime device '{self.device}' is not one of {', '.join(PROVIDERS)}")
        missing = provider_missing(provider)
        if missing:
            raise BackendUnavailable(missing)
        if self.precision == "fp16" and kind != "tensorrt":
            raise HarnessError(f"onnxruntime fp16 runs through the TensorRT provider only; use --precision fp32 "
                               f"with {provider}")
        if self.precision == "int8" and kind == "tensorrt":
            # ONNX Runtime's QDQ graph has uint8 activations with non-zero zero points, which TensorRT refuses
            # (signed INT8, zero point 0 only: harness/backends/trt_onnx_support.json): its nodes would fall
            # back to CUDA/CPU and the run would not measure a TensorRT INT8 engine
            raise HarnessError("onnxruntime's TensorRT provider cannot run ONNX Runtime's uint8 QDQ graph (TensorRT "
                               "takes signed INT8 with zero point 0); use --backend tensorrt --precision int8 "
                               "(calibrated from the fp32 graph)")
        return provider

    def _session(self, path: Path, provider: str, spin_stop: bool = False):
        device_id = int(self.device.split(":")[1]) if ":" in self.device else 0
        if provider == "CPUExecutionProvider":
            providers = [provider]
        elif provider == "CUDAExecutionProvider":
            providers = [(provider, {"device_id": device_id}), "CPUExecutionProvider"]
        else:
            cache = str(Path(self.workdir or ".") / "ort-trt-cache")
            os.makedirs(cache, exist_ok=True)
            providers = [(provider, {"device_id": device_id, "trt_fp16_enable": self.precision == "fp16",
                                     "trt_engine_cache_enable": True, "trt_engine_cache_path": cache}),
                         ("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
        return ort_session(path, threads=self.threads or None, providers=providers, spin_stop=spin_stop)

    def prepare(self, model, input_shapes: List[Shape]) -> Session:
        ok, why = self.probe()
        if not ok:
            raise BackendUnavailable(why)
        provider = self._provider()
        if getattr(model, "onnx_parts", None):  # an exported routed model (ClassSR): its graphs, no PyTorch
            from .classsr_onnx import ClassSROnnx

            self._fp32_only(model)
            return ClassSROnnx(dict(model.onnx_parts), threads=self.threads or None, providers=[provider],
                               macs=getattr(model, "routing_macs", None))
        if getattr(model, "onnx_forms", None):  # an export folder's files (the device path: no PyTorch)
            chosen = self._choose(self._exported_candidates(model), provider, input_shapes)
            if self.precision == "int8" and getattr(model, "calibration", None):
                chosen.details["calibration"] = model.calibration
            return chosen
        if getattr(model, "onnx_path", None):  # a user's ONNX file runs as it is
            session = OrtSession(self._session(Path(model.onnx_path), provider), "onnx", self.device)
            session.details["onnx"] = model.onnx_path
            return session
        if getattr(model, "module", None) is None:
            return NativeSession(model)
        workdir = Path(self.workdir or ".") / "onnx"
        if hasattr(model, "onnx_pipeline"):  # a routed model (ClassSR): several graphs, routing and stitching on the host
            from .classsr_onnx import ClassSROnnx

            self._fp32_only(model)
            folder = workdir / f"{model.id}.{module_digest(model.module)}"  # cached by weights, as exported_onnx
            return ClassSROnnx.of_module(model.module, folder, threads=self.threads or None, providers=[provider])
        forms = auto_forms(model.module) if self.form == "auto" else [self.form]
        key = (getattr(model, "family", None) or model.id, getattr(model, "scale", None), self.precision, provider)
        skipped = SCREENED.skipped(key, forms) if self.form == "auto" else {}
        forms = [form for form in forms if form not in skipped]
        candidates = {}
        refused = {}
        for form in forms:
            try:
                path, got = exported_onnx(model, form, workdir)
            except Exception as exc:  # noqa: BLE001 - auto leaves out a rewrite that fails its export or check
                if self.form != "auto" or form == "naive":
                    raise
                refused[form] = first_line(exc, 300)
                continue
            if got not in candidates:
                candidates[got] = path
        calibration = None
        if self.precision == "int8":
            from ..quantize import int8_onnx

            folders = self.options.get("calib_data") or None
            quantized = {}
            for form, path in candidates.items():
                try:
                    quantized[form] = int8_onnx(model, path, folders)
                except Exception as exc:  # noqa: BLE001 - as above: auto leaves out a rewrite that fails to quantize
                    if self.form != "auto" or form == "naive":
                        raise
                    refused[form] = first_line(exc, 300)
            candidates = {form: path for form, (path, _) in quantized.items()}
            calibration = next(iter(quantized.values()))[1]
        chosen = self._choose(candidates, provider, input_shapes, screened=key)
        if skipped:
            chosen.details["form_skipped"] = skipped
        if calibration is not None:
            chosen.details["calibration"] = calibration
        if refused:  # a form whose export (or INT8 quantization) failed or differed from PyTorch: not timed, and why
            chosen.details["form_refused"] = refused
        return chosen

    def _fp32_only(self, model) -> None:
        if self.precision != "fp32":
            raise HarnessError(f"{model.id} runs at fp32 only on onnxruntime (its routed pipeline has no "
                               f"{self.precision} form); use --precision fp32")

    def _exported_candidates(self, model) -> Dict[str, Path]:
        """form -> file of an exported model at this backend's precision and ``--form``."""
        if self.precision == "int8":
            files = dict(model.onnx_int8_forms)
            if not files:
                raise HarnessError(f"{model.id}: {model.export_dir} holds no INT8 graph of it; export with "
                                   f"--precision fp32,int8 (python -m harness export), or run --precision fp32")
        else:
            files = dict(model.onnx_forms)
        if self.form != "auto" and "onnx" not in files:  # a user's file has one graph, whatever --form says
            # a family without a fast form has only its naive graph (as exported_onnx falls back)
            want = self.form if self.form in files or self.form != "fast" else "naive"
            if want not in files:
                raise HarnessError(f"{model.id}: {model.export_dir} holds no '{self.form}' graph of it (has "
                                   f"{', '.join(files)}); use --form auto or export that form")
            files = {want: files[want]}
        return {form: Path(path) for form, path in files.items()}

    def _choose(self, candidates: Dict[str, Path], provider: str, input_shapes: List[Shape],
                screened: Optional[Tuple] = None) -> Session:
        """One session per candidate file; several are timed briefly and the fastest kept (the trial is
        remembered in :data:`SCREENED` under ``screened``, when given).

        On the CPU provider the trial's sessions stop their threads' spinning after each run, so the forms take
        turns without the pauses :func:`trial_times` otherwise waits (measured: interleaved runs then take what a
        steady loop takes), and the chosen form is timed in a fresh session of its file with the default spinning
        (``fresh_after_trial``): a session that stops spinning after each run is up to a third slower frame after
        frame on a fast model (eSR-MAX_s2_K3_C1 lean: 1.4-1.6 ms spinning, 1.6-2.6 ms stopped)."""
        cpu = provider == "CPUExecutionProvider"
        several = len(candidates) > 1
        fresh = several and self._fresh_after_trial(provider)
        sessions = {form: OrtSession(self._session(path, provider, spin_stop=fresh), form, self.device)
                    for form, path in candidates.items()}
        if not several:
            chosen = next(iter(sessions.values()))
        else:
            import statistics

            strip = strip_shape(input_shapes[0]) if cpu else None  # a new shape would rebuild a TensorRT engine
            trial = trial_times(sessions, input_shapes[0], strip=strip, pause=0.0 if fresh else None)
            if screened is not None:
                SCREENED.record(screened, trial)
            # a form not timed in rounds ranks by its last run (a screened one is over 3x the fastest); one
            # screened out on the strip never ran at full size
            timings = {form: statistics.median(t["runs"]) if t["runs"] else t.get("second", t["first"])
                       for form, t in trial.items() if "first" in t}
            best = min((f for f in trial if not trial[f].get("screened")), key=timings.get)
            if fresh:  # the trial's sessions go (their memory with them), the chosen form's file opens afresh
                sessions.clear()
                chosen = OrtSession(self._session(candidates[best], provider), best, self.device)
                chosen.details["fresh_after_trial"] = True
            else:
                chosen = sessions[best]
            chosen.details["form_trial_ms"] = {k: round(v * 1e3, 3) for k, v in timings.items()}
            chosen.details["form_trial_runs"] = {k: len(t["runs"]) for k, t in trial.items()}
            chosen.details["form_first_run_ms"] = {k: round(t["first"] * 1e3, 3) for k, t in trial.items()
                                                   if "first" in t}
            if strip is not None:
                chosen.details["form_strip_ms"] = {k: round(min(t["strip"]) * 1e3, 3) for k, t in trial.items()}
                chosen.details["form_strip_rows"] = strip[2]
            chosen.details["form_second_run_ms"] = {k: round(t["second"] * 1e3, 3) for k, t in trial.items()
                                                    if "second" in t}
            chosen.details["form_primed"] = next((k for k, t in trial.items() if t.get("primed")), None)
        chosen.details["onnx"] = str(candidates[chosen.form])
        return chosen

    @staticmethod
    def _fresh_after_trial(provider: str) -> bool:
        """Whether the form trial runs sessions that stop spinning, without pauses, and the chosen form is then
        timed in a fresh session: on the CPU provider (a GPU provider's session may hold a built engine)."""
        return provider == "CPUExecutionProvider"

    def versions(self) -> Dict[str, str]:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__, "onnxruntime_providers": ",".join(ort.get_available_providers())}

