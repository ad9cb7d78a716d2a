"""The eSR paper's trade-off figures, redrawn from the authors' published table in the results store.

Per paper device (AGX Xavier, GTX 1080 Max-Q, Raspberry Pi 400) and scale, in the style of the
harness's own figures (:mod:`harness.results.plots`): PSNR on a set against Full-HD frames per
second on a log axis, every model coloured by family, the Pareto front (:mod:`.pareto`) dashed
and labelled, bicubic starred with the region that beats it on both axes shaded; and, where the
paper published power, mean power against speed with lines of equal energy per frame and
the quality-speed front's models ringed. On top, where given:

* the harness's own measurements of the same models (``overlay``: hollow black diamonds, each
  joined to its paper point by a faint line, with their own dotted front);
* ``predicted`` points, e.g. a new model placed by a speed predictor: dicts with ``model``,
  ``psnr`` (set -> dB, or one number), ``fhd_per_s`` and optionally ``fhd_per_s_low``/``_high``,
  drawn hollow with a horizontal band for the interval and labelled ``(predicted)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..numeric import is_finite
from .paper import DEVICES, device_key
from .plots import FAMILY_COLOURS, LABEL_FONT, legend_outside, log_ticks, save_figure, scatter_points, trade_off_axes

SETS = ("Set5", "Set14", "BSD100", "Urban100", "Manga109")
DEFAULT_SET = "Set14"
OVERLAY_COLOUR = "#000000"
PREDICTED_COLOUR = "#e377c2"


def set_key(name: str) -> str:
    """A set as the figures name it: the harness's names (``BSDS100`` is ``BSD100``), or ``mean``."""
    from ..errors import HarnessError

    aliases = {s.lower(): s for s in SETS + ("mean",)}
    aliases["bsds100"] = "BSD100"
    key = aliases.get(str(name).lower())
    if key is None:
        raise HarnessError(f"--set {name}: the paper's table has {', '.join(SETS)} (BSDS100 is BSD100), or give mean")
    return key


def _q(key: str) -> Callable[[Dict[str, Any]], float]:
    def q(p: Dict[str, Any]) -> float:
        if key == "mean":
            v = p.get("psnr_mean")
        else:
            v = p["psnr"] if not isinstance(p.get("psnr"), dict) else p["psnr"].get(key)
        return float(v) if is_finite(v) else float("nan")
    return q


def _extend_limits(ax, xs: Sequence[float], ys: Sequence[float]) -> None:
    xmin, xmax = ax.get_xlim()
    ymin, ymax = ax.get_ylim()
    xs = [x for x in xs if is_finite(x) and x > 0]
    ys = [y for y in ys if is_finite(y)]
    if xs:
        xmin, xmax = min(xmin, min(xs) / 1.3), max(xmax, max(xs) * 1.3)
    if ys:
        ymin, ymax = min(ymin, min(ys) - 0.2), max(ymax, max(ys) + 0.2)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)


def draw_overlay(ax, paper_pts: List[Dict], mine: List[Dict], label: str, x, y) -> List:
    """Your measurements of the paper's models: hollow diamonds joined to their paper points, their front dotted."""
    from .pareto import front_with_ties

    theirs = {p["model"]: p for p in paper_pts}
    mine = [m for m in mine if m["model"] in theirs and is_finite(x(m)) and x(m) > 0 and is_finite(y(m))]
    if not mine:
        return []
    for m in mine:
        p = theirs[m["model"]]
        if is_finite(x(p)) and is_finite(y(p)):
            ax.plot([x(p), x(m)], [y(p), y(m)], color="#888888", lw=0.5, alpha=0.5, zorder=2.2, label="_nolegend_")
    ax.scatter([x(m) for m in mine], [y(m) for m in mine], s=42, marker="D", facecolors="none",
               edgecolors=OVERLAY_COLOUR, linewidths=1.2, zorder=4.5, label=label)
    idx, _ = front_with_ties([y(m) for m in mine], [x(m) for m in mine],
                             [m.get("fhd_per_s_low") for m in mine], [m.get("fhd_per_s_high") for m in mine])
    ax.step([x(mine[i]) for i in idx], [y(mine[i]) for i in idx], where="post", color=OVERLAY_COLOUR, lw=1.0,
            ls=":", zorder=2, label=f"{label}: its Pareto front")
    return [(x(m), y(m)) for m in mine]


def draw_predicted(ax, predicted: List[Dict], key: str) -> List:
    """Predicted points: hollow, with a horizontal band over the predicted interval, labelled ``(predicted)``."""
    from .paper import family_of

    q = _q(key)
    texts = []
    for p in predicted:
        xv, yv = p.get("fhd_per_s"), q(p)
        if not (is_finite(xv) and xv > 0 and is_finite(yv)):
            continue
        col = FAMILY_COLOURS.get(family_of(str(p.get("model", ""))), PREDICTED_COLOUR)
        lo, hi = p.get("fhd_per_s_low"), p.get("fhd_per_s_high")
        if is_finite(lo) and is_finite(hi) and lo <= xv <= hi:
            ax.fill_betweenx([yv - 0.03, yv + 0.03], lo, hi, color=col, alpha=0.25, zorder=2.6, label="_nolegend_")
            ax.errorbar([xv], [yv], xerr=[[xv - lo], [hi - xv]], fmt="none", ecolor=col, elinewidth=1.0, capsize=3,
                        zorder=2.7, label="_nolegend_")
        ax.scatter([xv], [yv], s=60, marker="o", facecolors="none", edgecolors=col, linewidths=1.6, zorder=4.6,
                   label="predicted (hollow; band: predicted speed interval)")
        texts.append(ax.annotate(f"{p.get('model', '?')} (predicted)", (xv, yv), fontsize=LABEL_FONT,
                                 xytext=(5, -11), textcoords="offset points", color=col))
    return texts


def _finish(fig, ax, log_axes: str = "x") -> None:
    legend_outside(ax, title=None)
    fig.tight_layout()
    for which in log_axes:
        log_ticks(ax, which)
    fig.tight_layout()


def trade_off(paper_pts: List[Dict], title: str, key: str, path_stem: Path,
              overlay: Optional[List[tuple]] = None, predicted: Optional[List[Dict]] = None) -> Optional[List[Path]]:
    """PSNR on ``key`` (a set, or ``mean``) against FHD/s of the paper's points, with ``overlay`` ((label,
    points) pairs) and ``predicted`` points on top; PNG and SVG. None when no point has both figures."""
    q = _q(key)
    fig = trade_off_axes(paper_pts, title, key)
    if fig is None:
        return None
    ax = fig.axes[0]
    xs, ys = [], []
    for label, pts in overlay or []:
        for xv, yv in draw_overlay(ax, paper_pts, pts, label, lambda p: p["fhd_per_s"], q):
            xs.append(xv)
            ys.append(yv)
    pred = [p for p in predicted or [] if is_finite(p.get("fhd_per_s"))]
    texts = draw_predicted(ax, pred, key)
    xs += [v for p in pred for v in (p.get("fhd_per_s"), p.get("fhd_per_s_low"), p.get("fhd_per_s_high"))]
    ys += [q(p) for p in pred]
    if xs or ys:
        from .plots import labels_inside

        _extend_limits(ax, xs, ys)
        _finish(fig, ax, "x")
        labels_inside(fig, ax, texts)
    return save_figure(fig, path_stem)


def power(paper_pts: List[Dict], title: str, key: str, path_stem: Path,
          overlay: Optional[List[tuple]] = None) -> Optional[List[Path]]:
    """Mean power (W) against FHD/s (log) where the paper published power, with dotted lines of equal energy
    per frame (mJ) and the models of the quality-speed front (PSNR on ``key``) ringed and labelled; your
    measurements with power on top. None where no power was published (the Raspberry Pi 400)."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .pareto import front_with_ties
    from .plots import declutter, hidden_note, labels_inside

    pts = [p for p in paper_pts if is_finite(p.get("mean_w")) and is_finite(p.get("fhd_per_s")) and p["fhd_per_s"] > 0]
    if not pts:
        return None
    q = _q(key)
    fig, ax = plt.subplots(figsize=(11, 6), dpi=110)
    ax.set_xscale("log")
    x, y = (lambda p: p["fhd_per_s"]), (lambda p: p["mean_w"])
    scatter_points(ax, [dict(p, fhd_per_s_low=None, fhd_per_s_high=None) for p in pts], x, y)
    xmin, xmax = min(x(p) for p in pts) / 1.2, max(x(p) for p in pts) * 1.2
    ymax = max(y(p) for p in pts) * 1.1
    low = 10 ** math.floor(math.log10(max(ymax, 1e-9) / xmax * 1000.0))
    for mj in [low * f * 10 ** k for k in range(6) for f in (1, 2, 5)]:  # W = mJ/frame * frames/s / 1000
        xs = [xmin, xmax]
        ax.plot(xs, [mj * v / 1000.0 for v in xs], color="#bbbbbb", lw=0.7, ls=":", zorder=1, label="_nolegend_")
        xe = min(xmax / 1.05, 0.9 * ymax * 1000.0 / mj)  # the label inside the axes, below the title
        if xe > xmin * 1.5:
            ax.annotate(f"{mj:g} mJ/frame", (xe, mj * xe / 1000.0), fontsize=7, color="#999999", ha="right",
                        va="bottom")
    ax.plot([], [], color="#bbbbbb", lw=0.7, ls=":", label="equal energy per frame")
    front, _ = front_with_ties([q(p) for p in pts], [x(p) for p in pts])
    ax.scatter([x(pts[i]) for i in front], [y(pts[i]) for i in front], s=110, marker="o", facecolors="none",
               edgecolors="#444444", linewidths=1.1, zorder=2.8, label=f"on the quality-speed front ({key})")
    texts = [ax.annotate(pts[i]["model"], (x(pts[i]), y(pts[i])), fontsize=LABEL_FONT, xytext=(5, 4),
                         textcoords="offset points") for i in front]
    for label, mine in overlay or []:
        mine = [m for m in mine if is_finite(m.get("mean_w"))]
        draw_overlay(ax, pts, mine, label, x, y)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(0, ymax)
    ax.set_xlabel("Full-HD output frames per second (log scale)")
    ax.set_ylabel("mean power (W)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    _finish(fig, ax, "x")
    labels_inside(fig, ax, texts)
    hidden_note(ax, declutter(fig, texts, within=ax))
    return save_figure(fig, path_stem)


def draw_paper(points: List[Dict], out_dir, devices: Sequence[str] = (), scales: Sequence[int] = (),
               set_name: str = DEFAULT_SET, overlay: bool = True, predicted: Optional[List[Dict]] = None,
               compare_with: Optional[str] = None, log: Optional[Callable[[str], None]] = None) -> List[Path]:
    """Every paper figure of the chosen devices (default all three) and scales (default every scale in the
    table) from a store's points (:func:`harness.results.plots.collect`). With ``overlay``, the harness's own
    points of the same models go on the figure of the paper device they are compared with (``compare_with``,
    else :func:`harness.results.overlay.paper_device_for`). ``predicted`` points go on every trade-off figure
    of their scale (a point without ``scale`` on every one)."""
    from .overlay import own_points, paper_device_for
    from .plots import group_title

    key = set_key(set_name)
    keys = [device_key(d) for d in devices] or list(DEVICES)
    fixed = device_key(compare_with) if compare_with else None
    mine = own_points(points) if overlay else []
    written: List[Path] = []
    out_dir = Path(out_dir)
    for dev in keys:
        name, _, what = DEVICES[dev]
        here = [p for p in points if p["device"] == name]
        for scale in sorted({p["scale"] for p in here}):
            if scales and scale not in scales:
                continue
            pts = [p for p in here if p["scale"] == scale]
            groups: Dict[tuple, List[Dict]] = {}
            for m in mine:
                if m["scale"] == scale and (fixed or paper_device_for(m["device"], m["backend"])) == dev:
                    groups.setdefault((m["device"], m["backend"], m["precision"]), []).append(m)
            layers = [(f"{group_title(d, b, pr, scale).rsplit(' · ', 1)[0]} (measured here)", g)
                      for (d, b, pr), g in sorted(groups.items())]
            pred = [p for p in predicted or [] if p.get("scale") in (None, scale)]
            what_set = "mean over Set5, Set14, BSD100, Urban100, Manga109" if key == "mean" else key
            title = f"eSR paper (published) · {what} · x{scale} · PSNR on {what_set}"
            if log:
                log(f"drawing the paper's figures: {what}, x{scale}")
            written += trade_off(pts, title, key, out_dir / f"paper_{dev}_x{scale}_{key}", layers, pred) or []
            written += power(pts, f"eSR paper (published) · {what} · x{scale} · power", key,
                             out_dir / f"paper_power_{dev}_x{scale}", layers) or []
    return written
