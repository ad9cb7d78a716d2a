"""Fit, predict and evaluate a model of Full-HD frames per second on a paper device.

The eSR authors measured each of their 1185 models on a Jetson AGX Xavier, a GTX 1080 Max-Q and a
Raspberry Pi 400 (``speed_AGX``, ``speed_MaxQ``, ``speed_RPI`` of their ``tests.pkl``). This module
predicts that speed for a model from its features (:mod:`harness.predict.features`).

The target is the time per frame, ``t = 1 / fhd_per_s``. Three estimators are defined (fixed, none
tuned on a held-out split); :func:`fit` picks one by cross-validation inside its own training table:

* ``loglinear``: ridge least squares of ``log t`` on the logs of the per-pixel MACs, bytes and
  elements written by each kind of operator, ``log params``, the operator count, the convolution and
  transposed-convolution counts and the largest kernel (and, where asked, one indicator per family);
* ``roofline``: ``t = w0 + w_macs·MACs + w_bytes·bytes + Σ w_kind·elements_kind + w_ops·ops`` with every
  ``w >= 0`` (non-negative least squares on the relative error): each kind of work costs time in
  proportion to its amount, as on a roofline with a fixed cost per kernel launch;
* ``hybrid``: the roofline, then ``loglinear`` fitted to the logarithm of its remaining error;
* ``interact``: ``loglinear`` whose every column also gets a slope per family (family x column
  interactions) where family indicators are used, and the squares of its columns where they are not.

The error band of a prediction is the 5th to 95th percentile of ``measured / predicted`` over the
cross-validated predictions of the training table (a 90 % band). A model whose family was in the
table is predicted by the estimator fitted with family indicators (its band from random 5-fold
cross-validation); any other by the one fitted without (its band from leave-one-family-out).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import HarnessError
from ..results.paper import DEVICES, device_key
from .features import FHD, KINDS

PIXELS = float(FHD[0] * FHD[1])
CANDIDATES = ("loglinear", "roofline", "hybrid", "interact")
RIDGE = 1e-3  # ridge penalty per row on standardised columns (fixed a priori)
BAND = (0.05, 0.95)  # the band's quantiles of measured / predicted: a 90 % band
SEED = 0
FOLDS = 5

# paper device -> column of the eSR table
DEVICE_COLUMNS = {key: f"speed_{suffix}" for key, (_, suffix, _) in DEVICES.items()}
DEVICE_NAMES = {key: name.split(" (")[0] for key, (_, _, name) in DEVICES.items()}  # without the setup


def paper_family(model_id: str) -> str:
    """The family name the eSR table uses (``eSR-TM_s2_K7_C3`` -> ``eSR-TM``; ``eSR-Bicubic_s2`` -> ``Bicubic``)."""
    fam = model_id.split("_s")[0] if "_s" in model_id else model_id.split("_")[0]
    if fam == "eSR-Bicubic":
        return "Bicubic"
    try:
        from ..models.esr import PATTERNS

        if fam in PATTERNS or fam == "Bicubic":
            return fam
        from ..models.registry import family_name

        return family_name(model_id)
    except Exception:  # noqa: BLE001 - an unregistered id: its prefix
        return fam


# --- design matrices -------------------------------------------------------------------------

def _log_columns(f: Dict[str, Any]) -> List[float]:
    layers = f.get("layers", {})
    return ([math.log1p(f["macs"] / PIXELS), math.log1p(f["bytes"] / PIXELS), math.log1p(f["params"])]
            + [math.log1p(f[f"{k}_elems"] / PIXELS) for k in KINDS]
            + [float(f["ops"]), float(layers.get("Conv2d", 0)), float(layers.get("ConvTranspose2d", 0)),
               float(f["max_kernel"])])


LOG_NAMES = (["log_macs", "log_bytes", "log_params"] + [f"log_{k}" for k in KINDS]
             + ["ops", "conv2d", "conv_transpose2d", "max_kernel"])
LINEAR_NAMES = ["const", "macs", "bytes"] + [f"{k}_elems" for k in KINDS] + ["ops"]


def _linear_columns(f: Dict[str, Any]) -> List[float]:
    return ([1.0, f["macs"] / PIXELS, f["bytes"] / PIXELS] + [f[f"{k}_elems"] / PIXELS for k in KINDS]
            + [float(f["ops"])])


@dataclass
class _Ridge:
    """Ridge least squares with an unpenalised intercept on standardised columns."""
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> "_Ridge":
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        keep = std > 1e-12
        std = np.where(keep, std, 1.0)
        Z = (X - mean) / std
        Z[:, ~keep] = 0.0
        n = len(y)
        yc = y - y.mean()
        A = Z.T @ Z + ridge * n * np.eye(Z.shape[1])
        coef = np.linalg.solve(A, Z.T @ yc)
        coef[~keep] = 0.0
        return cls(mean, std, coef, float(y.mean()))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.intercept + ((X - self.mean) / self.std) @ self.coef


@dataclass
class _Roofline:
    """``t = X @ w`` with ``w >= 0``, least squares on the relative error."""
    w: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, t: np.ndarray) -> "_Roofline":
        from scipy.optimize import nnls

        scale = np.abs(X).max(axis=0)
        scale[scale == 0] = 1.0
        A = (X / scale) / t[:, None]
        w, _ = nnls(A, np.ones_like(t), maxiter=50 * A.shape[1])
        return cls(w / scale, scale)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(X @ self.w, 1e-12)


@dataclass
class _Estimator:
    """One fitted candidate: ``predict_log_t(features, families)``."""
    kind: str
    families: Tuple[str, ...]
    ridge: Optional[_Ridge] = None
    roof: Optional[_Roofline] = None

    def _log_design(self, feats: Sequence[Dict], fams: Sequence[str]) -> np.ndarray:
        X = np.array([_log_columns(f) for f in feats], dtype=float).reshape(len(feats), len(LOG_NAMES))
        base = X
        if self.families:
            onehot = np.array([[1.0 if fam == g else 0.0 for g in self.families] for fam in fams], dtype=float)
            onehot = onehot.reshape(len(feats), len(self.families))
            X = np.hstack([X, onehot])
            if self.kind == "interact":
                X = np.hstack([X] + [base * onehot[:, [j]] for j in range(len(self.families))])
        elif self.kind == "interact":
            X = np.hstack([X, base ** 2])
        return X

    def _linear_design(self, feats: Sequence[Dict], fams: Sequence[str]) -> np.ndarray:
        X = np.array([_linear_columns(f) for f in feats], dtype=float).reshape(len(feats), len(LINEAR_NAMES))
        if self.families:
            onehot = np.array([[1.0 if fam == g else 0.0 for g in self.families] for fam in fams], dtype=float)
            X = np.hstack([X, onehot.reshape(len(feats), len(self.families))])
        return X

    @classmethod
    def fit(cls, kind: str, feats: Sequence[Dict], fams: Sequence[str], t: np.ndarray,
            families: bool) -> "_Estimator":
        est = cls(kind, tuple(sorted(set(fams))) if families else ())
        y = np.log(t)
        if kind in ("roofline", "hybrid"):
            est.roof = _Roofline.fit(est._linear_design(feats, fams), t)
        if kind in ("loglinear", "interact"):
            est.ridge = _Ridge.fit(est._log_design(feats, fams), y)
        elif kind == "hybrid":
            resid = y - np.log(est.roof.predict(est._linear_design(feats, fams)))
            est.ridge = _Ridge.fit(est._log_design(feats, fams), resid)
        return est

    def predict_log_t(self, feats: Sequence[Dict], fams: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(feats))
        if self.roof is not None:
            out += np.log(self.roof.predict(self._linear_design(feats, fams)))
        if self.ridge is not None:
            out += self.ridge.predict(self._log_design(feats, fams))
        return out


# --- splits ----------------------------------------------------------------------------------

def random_folds(n: int, folds: int = FOLDS, seed: int = SEED) -> List[np.ndarray]:
    """Indices of ``folds`` disjoint test folds covering ``range(n)`` (a fixed-seed permutation)."""
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(perm, folds)]


def family_folds(families: Sequence[str]) -> List[Tuple[str, np.ndarray]]:
    """(family, indices of its rows) for each family: leave-one-family-out test folds."""
    fams = np.asarray(families)
    return [(g, np.flatnonzero(fams == g)) for g in sorted(set(fams))]


def _cv_log_ratios(kind: str, feats: List[Dict], fams: List[str], t: np.ndarray, families: bool,
                   seed: int) -> np.ndarray:
    """log(measured / predicted) of every row, each predicted by a fit without it (random folds when
    ``families``, else leave-one-family-out; random folds where there are fewer than 3 families)."""
    n = len(t)
    out = np.full(n, np.nan)
    if families or len(set(fams)) < 3:
        tests = random_folds(n, FOLDS, seed)
    else:
        tests = [idx for _, idx in family_folds(fams)]
    for test in tests:
        train = np.setdiff1d(np.arange(n), test)
        if len(train) < 5:
            continue
        est = _Estimator.fit(kind, [feats[i] for i in train], [fams[i] for i in train], t[train], families)
        out[test] = np.log(t[test]) - est.predict_log_t([feats[i] for i in test], [fams[i] for i in test])
    return out


@dataclass
class SubModel:
    """One fitted estimator with its cross-validated error: ``kind``, ``band`` (measured/predicted at the
    band's quantiles), ``cv_median_error`` (median |predicted/measured - 1| in the inner cross-validation)."""
    estimator: _Estimator
    band: Tuple[float, float]
    cv_median_error: float
    scores: Dict[str, float]

    @property
    def kind(self) -> str:
        return self.estimator.kind


def _fit_sub(feats: List[Dict], fams: List[str], t: np.ndarray, families: bool, seed: int = SEED,
             candidates: Sequence[str] = CANDIDATES) -> SubModel:
    scores: Dict[str, float] = {}
    ratios: Dict[str, np.ndarray] = {}
    for kind in candidates:
        r = _cv_log_ratios(kind, feats, fams, t, families, seed)
        ratios[kind] = r
        ok = r[np.isfinite(r)]
        scores[kind] = float(np.median(np.abs(np.exp(-ok) - 1))) if len(ok) else math.inf
    best = min(candidates, key=lambda k: scores[k])
    r = ratios[best]
    r = r[np.isfinite(r)]
    band = (float(np.exp(np.quantile(r, BAND[0]))), float(np.exp(np.quantile(r, BAND[1])))) if len(r) else (0.0, math.inf)
    return SubModel(_Estimator.fit(best, feats, fams, t, families), band, scores[best], scores)


# --- the predictor -----------------------------------------------------------------------------

@dataclass
class Prediction:
    """A predicted speed: ``fhd_per_s`` and its error band ``low``..``high`` (which held ``band_share`` of
    the cross-validated predictions of the fitted pool), on ``device``; ``basis``: ``family`` (its family
    was in the pool) or ``features`` (it was not: predicted from the features alone); ``warnings``: why the
    model is unlike the pool (then the band may not hold)."""
    model: str
    device: str
    fhd_per_s: float
    low: float
    high: float
    band_share: float
    basis: str
    estimator: str
    warnings: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"predicted ({DEVICE_NAMES.get(self.device, self.device)}, from the eSR authors' measurements)"

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "device": self.device, "fhd_per_s": self.fhd_per_s, "low": self.low,
                "high": self.high, "band_share": self.band_share, "basis": self.basis,
                "estimator": self.estimator, "warnings": list(self.warnings)}


@dataclass
class Predictor:
    """Fitted on one paper device: ``family_model`` (with family indicators), ``general_model`` (without),
    and the pool's ranges for the "unlike the pool" check."""
    device: str
    families: Tuple[str, ...]
    family_model: SubModel
    general_model: SubModel
    pool: Dict[str, Any]
    n: int

    def predict(self, feats: Dict[str, Any], family: Optional[str] = None, model: Optional[str] = None) -> Prediction:
        known = family in self.families
        sub = self.family_model if known else self.general_model
        log_t = float(sub.estimator.predict_log_t([feats], [family if known else ""])[0])
        fhd = math.exp(-log_t)
        lo_ratio, hi_ratio = sub.band  # measured / predicted time: FHD/s bounds are their inverses
        return Prediction(model=model or feats.get("model", "?"), device=self.device, fhd_per_s=fhd,
                          low=fhd / hi_ratio, high=fhd / lo_ratio, band_share=BAND[1] - BAND[0],
                          basis="family" if known else "features", estimator=sub.kind,
                          warnings=unlike_pool(feats, self.pool))


def _pool_summary(feats: Sequence[Dict]) -> Dict[str, Any]:
    def rng(key):
        vals = [float(f[key]) for f in feats]
        return [min(vals), max(vals)]

    return {"op_kinds": sorted({k for f in feats for k in f.get("op_kinds", [])}),
            "layers": sorted({k for f in feats for k in f.get("layers", {})}),
            "channels": sorted({int(f.get("channels", 1)) for f in feats}),
            "macs": rng("macs"), "bytes": rng("bytes"), "ops": rng("ops"), "max_kernel": rng("max_kernel"),
            "max_width": rng("max_width"), "params": rng("params")}


#: how far beyond the pool's range a size may go before the prediction is flagged (a factor)
RANGE_FACTOR = 2.0


def unlike_pool(feats: Dict[str, Any], pool: Dict[str, Any]) -> List[str]:
    """Why a model is unlike the fitted pool (empty when it is alike): operators or layer kinds the pool
    lacks (attention, GELU, normalisation...), a larger kernel, or a width, MACs, bytes, operator count
    or parameter count more than :data:`RANGE_FACTOR` beyond the pool's range."""
    out: List[str] = []
    new_layers = sorted(set(feats.get("layers", {})) - set(pool["layers"]))
    if new_layers:
        out.append(f"layer kinds absent from the fitted pool: {', '.join(new_layers)}")
    new_ops = sorted(set(feats.get("op_kinds", [])) - set(pool["op_kinds"]))
    if new_ops:
        out.append(f"operators absent from the fitted pool: {', '.join(new_ops)}")
    if int(feats.get("channels", 1)) not in pool["channels"]:
        out.append(f"{feats.get('channels')} input channels; the pool has {pool['channels']}")
    if feats.get("max_kernel", 0) > pool["max_kernel"][1]:
        out.append(f"kernel {feats['max_kernel']} larger than the pool's largest ({int(pool['max_kernel'][1])})")
    for key, what in (("max_width", "width"), ("macs", "MACs per frame"), ("bytes", "bytes per frame"),
                      ("ops", "operator count"), ("params", "parameters")):
        lo, hi = pool[key]
        v = float(feats.get(key, 0))
        if v > RANGE_FACTOR * hi or v < lo / RANGE_FACTOR:
            out.append(f"{what} {v:.3g} outside the pool's range {lo:.3g}-{hi:.3g}")
    return out


# --- tables ----------------------------------------------------------------------------------

def _rows(table, device: str, feats: Optional[Dict[str, Dict]] = None):
    """(models, families, features, seconds per frame) of the table's rows with a speed on ``device``."""
    d = device_key(device)
    col = DEVICE_COLUMNS[d]
    if col not in table.columns:
        raise HarnessError(f"the table has no {col} column (the eSR authors' measurements on {DEVICE_NAMES[d]})")
    sub = table[["model", "family", col]].dropna()
    sub = sub[sub[col] > 0]
    if len(sub) < 10:
        raise HarnessError(f"only {len(sub)} models have a {col} measurement: too few to fit")
    models = [str(m) for m in sub["model"]]
    if feats is None:
        from .features import pool_features

        feats = pool_features(models)
    fams = [paper_family(str(f)) if str(f) == "eSR-Bicubic" else str(f) for f in sub["family"]]
    return models, fams, [feats[m] for m in models], 1.0 / sub[col].to_numpy(dtype=float)


def fit(table, device: str, features: Optional[Dict[str, Dict]] = None, seed: int = SEED) -> Predictor:
    """A :class:`Predictor` of FHD/s on paper device ``device`` (``agx``, ``maxq``, ``rpi``) fitted on
    ``table`` (the layout of :func:`harness.results.paper.paper_frame`: ``model``, ``family`` and the
    ``speed_*`` columns). ``features``: model id -> features (default: computed, cached)."""
    models, fams, feats, t = _rows(table, device, features)
    return Predictor(device=device_key(device), families=tuple(sorted(set(fams))),
                     family_model=_fit_sub(feats, fams, t, True, seed),
                     general_model=_fit_sub(feats, fams, t, False, seed),
                     pool=_pool_summary(feats), n=len(models))


def predict_model(module_or_model_id, scale: Optional[int], device: str, table=None,
                  predictor: Optional[Predictor] = None) -> Prediction:
    """The predicted FHD/s of a model on paper device ``device``: a zoo id (``eSR-TM_s2_K7_C3``,
    ``ABPN_s2``...) or an ``nn.Module`` with its ``scale``, by a predictor fitted on ``table`` (or the
    given ``predictor``, to fit once for many models)."""
    from .features import model_features, module_features

    if predictor is None:
        if table is None:
            raise HarnessError("predict_model needs the eSR measurement table (or a fitted predictor)")
        predictor = fit(table, device)
    elif device_key(device) != predictor.device:
        raise HarnessError(f"the predictor was fitted on {predictor.device}, not {device}")
    if isinstance(module_or_model_id, str):
        feats = model_features(module_or_model_id, scale)
        name, family = module_or_model_id, paper_family(module_or_model_id)
    else:
        if scale is None:
            raise HarnessError("predict_model needs the scale of a module")
        feats = module_features(module_or_model_id, scale)
        name, family = type(module_or_model_id).__name__, None
    return predictor.predict(feats, family, name)


# --- held-out evaluation -----------------------------------------------------------------------

def evaluate(table, device: str, split: str = "random", folds: int = FOLDS, seed: int = SEED,
             features: Optional[Dict[str, Dict]] = None, models: Optional[Sequence[str]] = None):
    """Held-out predictions: a DataFrame with one row per model (``model, family, fold, measured,
    predicted, low, high, error`` = predicted / measured - 1, ``in_band``, ``estimator``).

    ``split``: ``random`` (``folds`` folds of a fixed-seed permutation; the fit may use family
    indicators of the training folds) or ``family`` (leave one family out; the fit never sees the
    held-out family, nor its indicator). ``models``: restrict the table to these ids first.
    Everything a fit chooses (the estimator, the band) is chosen inside its training folds."""
    import pandas as pd

    if models is not None:
        table = table[table["model"].isin(list(models))]
    ids, fams, feats, t = _rows(table, device, features)
    fmap = dict(zip(ids, feats))
    n = len(ids)
    if split == "random":
        tests = [(f"fold {i + 1}", idx) for i, idx in enumerate(random_folds(n, folds, seed))]
    elif split == "family":
        tests = family_folds(fams)
    else:
        raise HarnessError(f"unknown split {split!r}: random or family")
    rows = []
    tab = pd.DataFrame({"model": ids, "family": fams, DEVICE_COLUMNS[device_key(device)]: 1.0 / t})
    for name, test in tests:
        train = np.setdiff1d(np.arange(n), test)
        pred = fit(tab.iloc[train], device, features=fmap, seed=seed)
        for i in test:
            fam = fams[i] if split == "random" else None  # leave-one-family-out: never the held-out family
            p = pred.predict(feats[i], fam, ids[i])
            measured = 1.0 / t[i]
            rows.append({"model": ids[i], "family": fams[i], "fold": name, "measured": measured,
                         "predicted": p.fhd_per_s, "low": p.low, "high": p.high,
                         "error": p.fhd_per_s / measured - 1.0, "in_band": p.low <= measured <= p.high,
                         "estimator": p.estimator})
    return pd.DataFrame(rows)


def summarize(results) -> Dict[str, float]:
    """Share within ±10 % and ±20 %, median absolute error (in %), band coverage, count."""
    e = np.abs(results["error"].to_numpy(dtype=float))
    return {"n": int(len(e)), "within10": float(np.mean(e <= 0.10)), "within20": float(np.mean(e <= 0.20)),
            "median_pct": float(100 * np.median(e)), "in_band": float(np.mean(results["in_band"]))}


def noise_floor(table, device: str) -> Dict[str, float]:
    """How well the measurements agree with themselves: along each one-parameter series of near-identical
    models (eSR-MAX/TM/TR at one scale and kernel, C = 1..16, whose cost grows smoothly with C), each
    interior model's speed is compared with the geometric mean of its two neighbours' (C - 1, C + 1).
    That "neighbour" predictor knows almost the same model measured twice, so its shares within ±10 % /
    ±20 % bound what a predictor from features can be expected to reach (noise plus a little curvature).
    Returns ``n``, ``within10``, ``within20``, ``median_pct`` of the neighbour predictor and ``sigma``,
    the spread of log speed of one measurement implied by it (std of the deviation / sqrt(1.5))."""
    import re

    col = DEVICE_COLUMNS[device_key(device)]
    series: Dict[Tuple[str, int, int], Dict[int, float]] = {}
    for model, v in zip(table["model"], table[col]):
        m = re.fullmatch(r"(eSR-(?:MAX|TM|TR))_s(\d+)_K(\d+)_C(\d+)", str(model))
        if m and v == v and v > 0:
            series.setdefault((m.group(1), int(m.group(2)), int(m.group(3))), {})[int(m.group(4))] = float(v)
    dev = []
    for s in series.values():
        for c in sorted(s):
            if c - 1 in s and c + 1 in s:
                dev.append(s[c] / math.sqrt(s[c - 1] * s[c + 1]) - 1.0)
    if not dev:
        return {"n": 0, "within10": math.nan, "within20": math.nan, "median_pct": math.nan, "sigma": math.nan}
    e = np.abs(np.asarray(dev))
    return {"n": int(len(e)), "within10": float(np.mean(e <= 0.10)), "within20": float(np.mean(e <= 0.20)),
            "median_pct": float(100 * np.median(e)),
            "sigma": float(np.std(np.log1p(np.asarray(dev))) / math.sqrt(1.5))}
