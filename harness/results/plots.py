"""Quality-speed trade-off figures, the edge-SR paper's plot, from the results store.

Per device and scale: PSNR (per test set, and the mean over sets) against FHD/s on a log
axis, every model a point coloured by family, the Pareto front drawn with its models
labelled, bicubic on the same backend (``Bicubic_s*``) and OpenCV's bicubic marked, and the
region that beats bicubic on both axes shaded. Where power was measured, a second figure
shows energy per frame against PSNR. Figures are PNG and SVG in ``plots/``.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

from ..numeric import is_finite
from .pareto import pareto_front

FAMILY_COLOURS = {
    "Bicubic": "#000000", "bicubic-matlab": "#555555", "bicubic-opencv": "#999999",
    "eSR-MAX": "#1f77b4", "eSR-TM": "#ff7f0e", "eSR-TR": "#2ca02c", "eSR-CNN": "#d62728",
    "ESPCN": "#9467bd", "FSRCNN": "#8c564b", "eSR-Bicubic": "#7f7f7f", "custom": "#e377c2",
    "ABPN": "#bcbd22", "BSRN": "#17becf", "EDSR": "#393b79", "GhostSR": "#e7298a", "ClassSR": "#66a61e",
    "onnx": "#e377c2",
}
# The methods other than the eSR pool get a marker of their own and their name on every figure
# (a handful of points among hundreds: they must be findable off the front too).
METHOD_MARKERS = {"ABPN": "D", "BSRN": "P", "EDSR": "s", "GhostSR": "v", "ClassSR": "^", "custom": "X", "onnx": "X"}


def collect(store, run_id: Optional[str] = None) -> List[Dict]:
    """One point per timed (device, backend, precision, model, scale, weights) of the joined table
    (:mod:`harness.results.table`): speed, energy, PSNR per set and the table's ``psnr_mean``."""
    from .table import build_records, colour_of, latest_rows

    out = []
    for rec in build_records(latest_rows(store, run_id), store.emulated_runs()):
        if not rec["speed_ok"]:
            continue
        point = {k: rec.get(k) for k in ("device", "backend", "precision", "model", "scale", "weights", "fhd_per_s",
                                          "fhd_per_s_low", "fhd_per_s_high", "runtime", "mj_per_frame", "mean_w", "family",
                                          "emulated")}
        point["family"] = point["family"] or ""
        point["colour_space"] = colour_of(rec)
        point["psnr"] = {k.split(":", 1)[1]: v for k, v in rec.items() if k.startswith("psnr:") and v is not None}
        point["psnr_mean"] = rec["psnr_mean"] if rec["psnr_mean"] is not None else float("nan")
        out.append(point)
    return out


FIGURES_ELSEWHERE = "draw the figures elsewhere (plot --out DIR, run-all or report --plots DIR)"


def save_figure(fig, path_stem: Path) -> List[Path]:
    """Write ``fig`` as PNG (for the report and quick looks) and SVG (for papers), then close it.

    Each file goes to a temp name beside it and is renamed into place (:mod:`.files`): a full disk
    or a read-only folder is one error line, and the previous figure stays whole."""
    import matplotlib.pyplot as plt

    from .files import write_atomic

    path_stem = Path(path_stem)
    files = []
    try:
        for ext in ("png", "svg"):
            target = path_stem.with_suffix(f".{ext}")
            write_atomic(target, lambda tmp, ext=ext: fig.savefig(str(tmp), format=ext), elsewhere=FIGURES_ELSEWHERE)
            files.append(target)
    finally:
        plt.close(fig)
    return files


def plain_number(value, _pos=None) -> str:
    """A tick label as a plain number: 0.5, 2, 20, 1,000 (never 2x10^0 or 1e+03)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


LOG_SUBS = ((1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0), (1.0, 2.0, 3.0, 5.0), (1.0, 2.0, 5.0), (1.0, 3.0), (1.0,))


def tick_label_boxes(ax, which: str, renderer) -> List:
    """The display boxes of the labelled ticks of an axis (``"x"`` or ``"y"``) that lie within the axes."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    frame = ax.get_window_extent(renderer)
    boxes = []
    for label in axis.get_ticklabels(which="both"):
        if not (label.get_visible() and label.get_text()):
            continue
        box = label.get_window_extent(renderer)
        centre = (box.x0 + box.x1) / 2 if which == "x" else (box.y0 + box.y1) / 2
        lo, hi = (frame.x0, frame.x1) if which == "x" else (frame.y0, frame.y1)
        if lo - 1 <= centre <= hi + 1:
            boxes.append(box)
    return boxes


def labels_collide(boxes, which: str, gap: float = 2.0) -> bool:
    """Whether any two tick label boxes along an axis are closer than ``gap`` pixels."""
    spans = sorted((b.x0, b.x1) if which == "x" else (b.y0, b.y1) for b in boxes)
    return any(a[1] + gap > b[0] for a, b in zip(spans, spans[1:]))


def lay_out(fig) -> None:
    """Place every artist (text extents, tick labels) without rasterising the figure: the cheap draw the
    label checks need (``Figure.draw_without_rendering``, matplotlib 3.6+; a full draw before)."""
    layout = getattr(fig, "draw_without_rendering", None)
    if layout is not None:
        layout()
    else:  # pragma: no cover - matplotlib < 3.6
        fig.canvas.draw()


def log_ticks(ax, which: str = "x") -> None:
    """Readable log-axis ticks: plain numbers, as many per decade as the decade span allows, the
    finest set whose labels do not touch (checked on the drawn figure); minor ticks unlabelled."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    span = math.log10(max(hi, lo) / min(hi, lo)) if lo > 0 and hi > 0 else 1.0
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_locator(LogLocator(base=10.0, subs=tuple(range(1, 10)), numticks=100))
    axis.set_minor_formatter(NullFormatter())
    if span < 0.8:  # less than a decade: evenly spaced plain numbers read better than 1-2-5
        choices = [MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10]) for n in (6, 4, 3, 2)]
    else:
        choices = [LogLocator(base=10.0, subs=subs, numticks=100) for subs in LOG_SUBS if span * len(subs) <= 12]
        choices = choices or [LogLocator(base=10.0, subs=(1.0,), numticks=100)]
        if span > 12:
            choices.append(LogLocator(base=10.0, numticks=8))  # every few decades
    fig = ax.figure
    for locator in choices:
        axis.set_major_locator(locator)
        lay_out(fig)
        if not labels_collide(tick_label_boxes(ax, which, fig.canvas.get_renderer()), which):
            return


def unique_legend(ax, **kwargs):
    """A legend with one entry per label (the first handle of each), none for ``_``-labels."""
    handles, labels = ax.get_legend_handles_labels()
    kept: Dict[str, object] = {}
    for handle, label in zip(handles, labels):
        if label and not label.startswith("_") and label not in kept:
            kept[label] = handle
    return ax.legend(list(kept.values()), list(kept), **kwargs)


def legend_outside(ax, **kwargs):
    """:func:`unique_legend` to the right of the axes, where it can cover no data point (two columns
    when it would be taller than the axes)."""
    labels = {label for label in ax.get_legend_handles_labels()[1] if label and not label.startswith("_")}
    return unique_legend(ax, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8,
                         ncol=1 if len(labels) <= 24 else 2, **kwargs)


def colour_label(colour: Optional[str]) -> str:
    """``Y`` or ``RGB`` (``?`` where a record does not say)."""
    return {"y": "Y", "rgb": "RGB"}.get(colour or "", "?")


def labels_inside(fig, ax, texts) -> None:
    """Move a point label that would cross the axes' right edge (into the legend beside it) to the
    left of its point. Call it once the layout is final."""
    lay_out(fig)
    renderer = fig.canvas.get_renderer()
    right = ax.get_window_extent(renderer).x1
    for text in texts:
        if text.get_window_extent(renderer).x1 > right:
            x0, y0 = text.xyann
            text.xyann = (-abs(x0), y0)
            text.set_horizontalalignment("right")


def declutter(fig, texts, tries: int = 8, within=None) -> int:
    """Nudge annotation labels that overlap an earlier one up or down, a line at a time.

    Neighbouring models (a ghost network beside its base, the eSR-TM/CNN cluster) otherwise print
    their names on top of each other. ``texts`` in priority order: earlier ones stay put. Offsets
    are in points, so call it after the layout is final. With ``within`` (an Axes) a label must also
    lie inside those axes (not over the title or the legend), and one that finds no free place there
    is hidden: a dense front (the eSR paper's Raspberry Pi figures) keeps the names that fit, readable.
    Returns how many labels were hidden.
    """
    lay_out(fig)  # text extents are known only once laid out
    renderer = fig.canvas.get_renderer()
    frame = within.get_window_extent(renderer) if within is not None else None
    placed: list = []
    hidden = 0

    def free(box) -> bool:
        if frame is not None and (box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1 or box.y0 < frame.y0 - 1
                                  or box.y1 > frame.y1 + 1):
            return False
        return not any(box.overlaps(other) for other in placed)

    for text in texts:
        x0, y0 = text.xyann
        box = text.get_window_extent(renderer)
        line = box.height * 72.0 / fig.dpi + 1.0  # one label's height and a point, in points
        for k in range(tries + 1):
            if free(box):
                placed.append(box)
                break
            if k == tries:
                text.xyann = (x0, y0)
                if frame is not None:
                    text.set_visible(False)
                    hidden += 1
                else:
                    placed.append(box)
                break
            step = (k // 2 + 1) * line * (1 if k % 2 == 0 else -1)
            text.xyann = (x0, y0 + step)
            box = text.get_window_extent(renderer)
    return hidden


def hidden_note(ax, hidden: int) -> None:
    """A small note beside the axes' lower right corner (under the legend) when :func:`declutter` hid
    labels, so a reader knows that some names are missing, not the models."""
    if hidden:
        ax.annotate(f"{hidden} model label{'s' if hidden > 1 else ''} left out\nwhere {'they' if hidden > 1 else 'it'} "
                    f"would overlap", (1.0, 0.0), xycoords="axes fraction", xytext=(10, 0), textcoords="offset points",
                    ha="left", va="bottom", fontsize=7, color="#777777")


BASELINE_STYLE = {  # family: marker, size, colour, legend label (the baselines are drawn on their own)
    "Bicubic": ("*", 170, "#000000", "{model}: bicubic as a Y network, same backend"),
    "bicubic-opencv": ("X", 90, "#777777", "bicubic-opencv: OpenCV, RGB"),
    "bicubic-matlab": ("h", 80, "#444444", "bicubic-matlab: MATLAB-exact, RGB"),
}
LABEL_FONT = 8


def scatter_points(ax, pts: List[Dict], x, y) -> None:
    """Every point coloured by family, its speed interval as a horizontal error bar; Y models filled,
    RGB models hollow; the bicubic baselines with their own markers. One legend label per family."""
    by_kind = defaultdict(list)
    for p in pts:
        by_kind[(p["family"], p.get("colour_space"))].append(p)
    for (fam, colour), members in sorted(by_kind.items(), key=lambda kv: (kv[0][0] in BASELINE_STYLE, str(kv[0]))):
        if fam in BASELINE_STYLE:
            marker, size, col, label = BASELINE_STYLE[fam]
            label = label.format(model=members[0]["model"])
        else:
            marker, col = METHOD_MARKERS.get(fam, "o"), FAMILY_COLOURS.get(fam, "#17becf")
            size = 26 if marker == "o" else 46
            label = f"{fam} ({colour_label(colour)})" if colour else fam
        bars = [m for m in members if is_finite(m.get("fhd_per_s_low")) and is_finite(m.get("fhd_per_s_high"))]
        if bars:
            xs = [x(m) for m in bars]
            ax.errorbar(xs, [y(m) for m in bars], fmt="none", ecolor=col, elinewidth=0.9, capsize=2, alpha=0.65,
                        zorder=2.5, label="_nolegend_",
                        xerr=[[max(v - m["fhd_per_s_low"], 0.0) for v, m in zip(xs, bars)],
                              [max(m["fhd_per_s_high"] - v, 0.0) for v, m in zip(xs, bars)]])
        hollow = colour == "rgb"
        ax.scatter([x(m) for m in members], [y(m) for m in members], s=size, marker=marker, alpha=0.9,
                   facecolors="none" if hollow else col, edgecolors=col, linewidths=1.3 if hollow else 0.5,
                   label=label, zorder=4 if fam in BASELINE_STYLE else 3)


def legend_title(pts: List[Dict]) -> str:
    lines = []
    if any(p.get("colour_space") == "rgb" for p in pts):
        lines.append("filled: Y-channel model, hollow: RGB model")
    if any(is_finite(p.get("fhd_per_s_low")) for p in pts):
        lines.append("bars: 95 % interval of the speed")
    return "\n".join(lines)


def trade_off_axes(points: List[Dict], title: str, quality_key: str):
    """The trade-off figure (a matplotlib Figure, not yet saved) of PSNR (``quality_key``: a set name
    or 'mean') against FHD/s; None when no point has both. Layout final: the legend outside the
    axes, log ticks that do not touch, point labels moved off each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .pareto import front_with_ties

    def q(p):
        return p["psnr_mean"] if quality_key == "mean" else p["psnr"].get(quality_key, float("nan"))

    pts = [p for p in points if is_finite(q(p)) and is_finite(p["fhd_per_s"]) and p["fhd_per_s"] > 0]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(11, 6), dpi=110)
    ax.set_xscale("log")  # before any limit is read: a linear autoscale can put the left limit below 0
    scatter_points(ax, pts, lambda p: p["fhd_per_s"], q)
    front, ties = front_with_ties([q(p) for p in pts], [p["fhd_per_s"] for p in pts],
                                  [p.get("fhd_per_s_low") for p in pts], [p.get("fhd_per_s_high") for p in pts])
    clear = [i for i in front if i not in ties]
    ax.step([pts[i]["fhd_per_s"] for i in clear], [q(pts[i]) for i in clear], where="post", color="#444444", lw=1.2,
            ls="--", zorder=2, label="Pareto front")
    if ties:
        ax.scatter([pts[i]["fhd_per_s"] for i in ties], [q(pts[i]) for i in ties], s=150, marker="o",
                   facecolors="none", edgecolors="#444444", linestyles=":", linewidths=1.2, zorder=2.8,
                   label="on the front, statistically tied")
    labels = [ax.annotate(pts[i]["model"] + (" (tied)" if i in ties else ""), (pts[i]["fhd_per_s"], q(pts[i])),
                          fontsize=LABEL_FONT, xytext=(5, 4), textcoords="offset points",
                          color="#555555" if i in ties else "#111111")
              for i in clear + [i for i in front if i in ties]]  # the clear front's names placed first
    for i, p in enumerate(pts):
        if p["family"] in METHOD_MARKERS and i not in front:
            labels.append(ax.annotate(p["model"], (p["fhd_per_s"], q(p)), fontsize=LABEL_FONT, xytext=(5, -11),
                                      textcoords="offset points", color=FAMILY_COLOURS.get(p["family"], "#17becf")))
    baseline = next((p for p in pts if p["family"] == "Bicubic"), None)
    if baseline is not None:
        bx, by = baseline["fhd_per_s"], q(baseline)
        xmin, xmax = ax.get_xlim()
        ymin, ymax = ax.get_ylim()
        xmax, ymax = max(xmax, bx * 1.5), max(ymax, by + 0.2)
        ax.fill_between([bx, xmax * 10], by, ymax + 10, color="#2ca02c", alpha=0.08, zorder=1,
                        label=f"beats {baseline['model']} on both axes")
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
    ax.set_xlabel("Full-HD output frames per second (log scale)")
    ax.set_ylabel("PSNR (dB, Y channel)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax, title=legend_title(pts) or None, title_fontsize=8)
    fig.tight_layout()
    log_ticks(ax, "x")
    fig.tight_layout()  # the chosen tick labels may be taller or shorter
    labels_inside(fig, ax, labels)
    hidden_note(ax, declutter(fig, labels, within=ax))
    return fig


def trade_off_figure(points: List[Dict], title: str, quality_key: str, path_stem: Path) -> Optional[List[Path]]:
    """:func:`trade_off_axes` written as PNG and SVG; returns the written files."""
    fig = trade_off_axes(points, title, quality_key)
    return save_figure(fig, path_stem) if fig is not None else None


def energy_figure(points: List[Dict], title: str, path_stem: Path) -> Optional[List[Path]]:
    """Energy per Full-HD frame (mJ, log) against mean PSNR; only where power was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [p for p in points if is_finite(p["mj_per_frame"]) and is_finite(p["psnr_mean"])]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    ax.set_yscale("log")
    scatter_points(ax, [dict(p, fhd_per_s_low=None, fhd_per_s_high=None) for p in pts], lambda p: p["psnr_mean"],
                   lambda p: p["mj_per_frame"])
    front = pareto_front([p["psnr_mean"] for p in pts], [-p["mj_per_frame"] for p in pts])
    labels = [ax.annotate(pts[i]["model"], (pts[i]["psnr_mean"], pts[i]["mj_per_frame"]), fontsize=LABEL_FONT,
                          xytext=(5, 4), textcoords="offset points") for i in front]
    for i, p in enumerate(pts):
        if p["family"] in METHOD_MARKERS and i not in front:
            labels.append(ax.annotate(p["model"], (p["psnr_mean"], p["mj_per_frame"]), fontsize=LABEL_FONT,
                                      xytext=(5, -11), textcoords="offset points",
                                      color=FAMILY_COLOURS.get(p["family"], "#17becf")))
    ax.set_xlabel("PSNR (dB, Y channel), mean over sets")
    ax.set_ylabel("energy per Full-HD frame (mJ, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax, title=legend_title([dict(p, fhd_per_s_low=None) for p in pts]) or None, title_fontsize=8)
    fig.tight_layout()
    log_ticks(ax, "y")
    fig.tight_layout()  # the chosen tick labels may be wider or narrower
    labels_inside(fig, ax, labels)
    hidden_note(ax, declutter(fig, labels, within=ax))
    return save_figure(fig, path_stem)


def emulated_note(points: List[Dict]) -> str:
    """A title's second line when any of its points was timed under an emulator, else ''."""
    devices = sorted({p["device"] for p in points if p.get("emulated")})
    return f"\nEMULATED ({', '.join(devices)}): timings are meaningless" if devices else ""


def cross_device_figure(points: List[Dict], scale: int, path_stem: Path, note: str = "") -> Optional[List[Path]]:
    """Mean PSNR vs FHD/s of every device (marker per device), each device's front and bicubic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_device = defaultdict(list)
    for p in points:
        if is_finite(p["psnr_mean"]) and is_finite(p["fhd_per_s"]) and p["fhd_per_s"] > 0:
            by_device[f"{p['device']} ({p['backend']} {p['precision']})"].append(p)
    if len(by_device) < 2:
        return None
    fig, ax = plt.subplots(figsize=(11, 6), dpi=110)
    markers = "os^Dv<>ph"
    for k, (device, pts) in enumerate(sorted(by_device.items())):
        ax.scatter([p["fhd_per_s"] for p in pts], [p["psnr_mean"] for p in pts], marker=markers[k % len(markers)],
                   s=20, alpha=0.7, label=device)
        front = pareto_front([p["psnr_mean"] for p in pts], [p["fhd_per_s"] for p in pts])
        ax.step([pts[i]["fhd_per_s"] for i in front], [pts[i]["psnr_mean"] for i in front], where="post", lw=1)
        bic = [p for p in pts if p["family"] == "Bicubic"]
        if bic:
            ax.scatter([bic[0]["fhd_per_s"]], [bic[0]["psnr_mean"]], marker="*", s=140, color="black", zorder=4,
                       label="bicubic on each device")
    ax.set_xscale("log")
    ax.set_xlabel("Full-HD output frames per second (log scale)")
    ax.set_ylabel("PSNR (dB, Y channel), mean over sets")
    ax.set_title(f"x{scale} · devices compared{note}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax)
    fig.tight_layout()
    log_ticks(ax, "x")
    fig.tight_layout()
    return save_figure(fig, path_stem)


def group_title(device: str, backend: str, precision: str, scale) -> str:
    """A figure's title: where it was measured, each word once (the axes name what is plotted)."""
    return f"{device} · {backend} {precision} · x{scale}"


def set_title(key: str, sets: List[str]) -> str:
    """What the quality axis is averaged over: a set, the embedded images (labelled), or the mean."""
    from ..datasets import EMBEDDED
    from .table import quality_basis

    if key == "mean":  # psnr_mean's sets: the standard ones (the embedded images only where alone)
        return "mean over " + ", ".join(quality_basis(sets))
    return "embedded images (not a standard test set)" if key == EMBEDDED else key


def draw_all(store, out_dir, run_id: Optional[str] = None) -> List[Path]:
    """Every figure the store supports: per device/backend/precision and scale, per set and the mean.
    The eSR paper's published table (devices ``paper-*``) is left out: ``python -m harness paper`` draws it."""
    from .paper import is_paper_device

    points = [p for p in collect(store, run_id) if not is_paper_device(p["device"])]
    groups = defaultdict(list)
    for p in points:
        groups[(p["device"], p["backend"], p["precision"], p["scale"])].append(p)
    written: List[Path] = []
    out_dir = Path(out_dir)
    for (device, backend, precision, scale), pts in sorted(groups.items()):
        sets = sorted({s for p in pts for s in p["psnr"]})
        base = f"{device}_{backend}_{precision}_x{scale}"
        warn = emulated_note(pts)
        for key in sets + (["mean"] if len(sets) > 1 else []):
            title = f"{group_title(device, backend, precision, scale)} · {set_title(key, sets)}{warn}"
            files = trade_off_figure(pts, title, key, out_dir / f"tradeoff_{base}_{key}")
            written += files or []
        files = energy_figure(pts, f"{group_title(device, backend, precision, scale)}{warn}",
                              out_dir / f"energy_{base}")
        written += files or []
    for scale in sorted({p["scale"] for p in points}):
        pts = [p for p in points if p["scale"] == scale]
        files = cross_device_figure(pts, scale, out_dir / f"devices_x{scale}", note=emulated_note(pts))
        written += files or []
    return written
