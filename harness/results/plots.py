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
    from .table import build_records, latest_rows

    out = []
    for rec in build_records(latest_rows(store, run_id), store.emulated_runs()):
        if not rec["speed_ok"]:
            continue
        point = {k: rec.get(k) for k in ("device", "backend", "precision", "model", "scale", "weights", "fhd_per_s",
                                          "mj_per_frame", "family", "emulated")}
        point["family"] = point["family"] or ""
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


def _plain_log_ticks(axis) -> None:
    """Log-axis tick labels as plain numbers (2, 5, 20) rather than 2x10^0."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(plain)
    axis.set_minor_formatter(plain)


def _declutter(fig, texts, tries: int = 8) -> None:
    """Nudge annotation labels that overlap an earlier one up or down, a line at a time.

    Neighbouring models (a ghost network beside its base, the eSR-TM/CNN cluster) otherwise print
    their names on top of each other. ``texts`` in priority order: earlier ones stay put. Offsets
    are in points, so call it after the layout is final.
    """
    fig.canvas.draw()  # text extents are known only once drawn
    renderer = fig.canvas.get_renderer()
    placed = []
    for text in texts:
        x0, y0 = text.xyann
        box = text.get_window_extent(renderer)
        line = box.height * 72.0 / fig.dpi + 1.0  # one label's height and a point, in points
        for k in range(tries):
            if not any(box.overlaps(other) for other in placed):
                break
            step = (k // 2 + 1) * line * (1 if k % 2 == 0 else -1)
            text.xyann = (x0, y0 + step)
            box = text.get_window_extent(renderer)
        placed.append(box)


def trade_off_figure(points: List[Dict], title: str, quality_key: str, path_stem: Path) -> Optional[List[Path]]:
    """PSNR (``quality_key``: a set name or 'mean') vs FHD/s; returns the written files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def q(p):
        return p["psnr_mean"] if quality_key == "mean" else p["psnr"].get(quality_key, float("nan"))

    pts = [p for p in points if is_finite(q(p)) and is_finite(p["fhd_per_s"]) and p["fhd_per_s"] > 0]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    by_family = defaultdict(list)
    for p in pts:
        by_family[p["family"]].append(p)
    ax.set_xscale("log")  # before any limit is read: a linear autoscale can put the left limit below 0
    for fam, members in sorted(by_family.items()):
        marker = METHOD_MARKERS.get(fam, "o")
        ax.scatter([m["fhd_per_s"] for m in members], [q(m) for m in members], s=22 if marker == "o" else 46,
                   alpha=0.8, marker=marker, color=FAMILY_COLOURS.get(fam, "#17becf"), label=fam, zorder=3)
    front = pareto_front([q(p) for p in pts], [p["fhd_per_s"] for p in pts])
    fx = [pts[i]["fhd_per_s"] for i in front]
    fy = [q(pts[i]) for i in front]
    ax.step(fx, fy, where="post", color="#444444", lw=1.2, ls="--", zorder=2, label="Pareto front")
    labels = [ax.annotate(pts[i]["model"], (pts[i]["fhd_per_s"], q(pts[i])), fontsize=7, xytext=(4, 3),
                          textcoords="offset points") for i in front]
    for i, p in enumerate(pts):
        if p["family"] in METHOD_MARKERS and i not in front:
            labels.append(ax.annotate(p["model"], (p["fhd_per_s"], q(p)), fontsize=7, xytext=(4, -9),
                                      textcoords="offset points", color=FAMILY_COLOURS.get(p["family"], "#17becf")))
    baseline = next((p for p in pts if p["family"] == "Bicubic"), None)
    if baseline is not None:
        bx, by = baseline["fhd_per_s"], q(baseline)
        xmin, xmax = ax.get_xlim()
        ymin, ymax = ax.get_ylim()
        xmax, ymax = max(xmax, bx * 1.5), max(ymax, by + 0.2)
        ax.fill_between([bx, xmax * 10], by, ymax + 10, color="#2ca02c", alpha=0.08, zorder=1,
                        label="beats bicubic on both axes")
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.scatter([bx], [by], marker="*", s=160, color="black", zorder=4, label=f"{baseline['model']} (same backend)")
    cv = next((p for p in pts if p["family"] == "bicubic-opencv"), None)
    if cv is not None:
        ax.scatter([cv["fhd_per_s"]], [q(cv)], marker="X", s=90, color="#999999", zorder=4, label="OpenCV bicubic")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("speed: Full-HD output frames per second (log)")
    ax.set_ylabel(f"PSNR (dB, Y) — {'mean over sets' if quality_key == 'mean' else quality_key}")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    _declutter(fig, labels)
    return save_figure(fig, path_stem)


def energy_figure(points: List[Dict], title: str, path_stem: Path) -> Optional[List[Path]]:
    """Energy per Full-HD frame (mJ, log) against mean PSNR; only where power was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [p for p in points if is_finite(p["mj_per_frame"]) and is_finite(p["psnr_mean"])]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for p in pts:
        marker = METHOD_MARKERS.get(p["family"], "o")
        ax.scatter(p["psnr_mean"], p["mj_per_frame"], s=22 if marker == "o" else 46, marker=marker,
                   color=FAMILY_COLOURS.get(p["family"], "#17becf"))
    front = pareto_front([p["psnr_mean"] for p in pts], [-p["mj_per_frame"] for p in pts])
    labels = [ax.annotate(pts[i]["model"], (pts[i]["psnr_mean"], pts[i]["mj_per_frame"]), fontsize=7,
                          xytext=(4, 3), textcoords="offset points") for i in front]
    for i, p in enumerate(pts):
        if p["family"] in METHOD_MARKERS and i not in front:
            labels.append(ax.annotate(p["model"], (p["psnr_mean"], p["mj_per_frame"]), fontsize=7, xytext=(4, -9),
                                      textcoords="offset points", color=FAMILY_COLOURS.get(p["family"], "#17becf")))
    ax.set_yscale("log")
    ax.set_xlabel("PSNR (dB, Y), mean over sets")
    ax.set_ylabel("energy per Full-HD frame (mJ, log)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    _declutter(fig, labels)
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
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    markers = "os^Dv<>ph"
    for k, (device, pts) in enumerate(sorted(by_device.items())):
        ax.scatter([p["fhd_per_s"] for p in pts], [p["psnr_mean"] for p in pts], marker=markers[k % len(markers)],
                   s=20, alpha=0.7, label=device)
        front = pareto_front([p["psnr_mean"] for p in pts], [p["fhd_per_s"] for p in pts])
        ax.step([pts[i]["fhd_per_s"] for i in front], [pts[i]["psnr_mean"] for i in front], where="post", lw=1)
        bic = [p for p in pts if p["family"] == "Bicubic"]
        if bic:
            ax.scatter([bic[0]["fhd_per_s"]], [bic[0]["psnr_mean"]], marker="*", s=140, color="black", zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("speed: Full-HD output frames per second (log)")
    ax.set_ylabel("PSNR (dB, Y), mean over sets")
    _plain_log_ticks(ax.xaxis)
    ax.set_title(f"x{scale}: devices compared (stars: bicubic on each device){note}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return save_figure(fig, path_stem)


def draw_all(store, out_dir, run_id: Optional[str] = None) -> List[Path]:
    """Every figure the store supports: per device/backend/precision and scale, per set and the mean."""
    points = collect(store, run_id)
    groups = defaultdict(list)
    for p in points:
        groups[(p["device"], p["backend"], p["precision"], p["scale"])].append(p)
    written: List[Path] = []
    out_dir = Path(out_dir)
    for (device, backend, precision, scale), pts in sorted(groups.items()):
        sets = sorted({s for p in pts for s in p["psnr"]})
        base = f"{device}_{backend}_{precision}_x{scale}"
        label = " (embedded images, not a standard test set)" if sets == ["embedded"] else ""
        warn = emulated_note(pts)
        for key in sets + (["mean"] if len(sets) > 1 else []):
            title = f"{device} / {backend} {precision} / x{scale}: PSNR on {key}{label} vs Full-HD frames/s{warn}"
            files = trade_off_figure(pts, title, key, out_dir / f"tradeoff_{base}_{key}")
            written += files or []
        files = energy_figure(pts, f"{device} / {backend} {precision} / x{scale}: energy vs PSNR{warn}",
                              out_dir / f"energy_{base}")
        written += files or []
    for scale in sorted({p["scale"] for p in points}):
        pts = [p for p in points if p["scale"] == scale]
        files = cross_device_figure(pts, scale, out_dir / f"devices_x{scale}", note=emulated_note(pts))
        written += files or []
    return written
