"""One self-contained report of a run: ``report.html`` (figures embedded, sortable tables) and
``report.md`` (a summary for a README, a pull request or a chat).

The HTML has no external asset at all, so it can be mailed, attached to a CI run or opened on
a board without network. Every string from the store is HTML-escaped (model ids and failure
reasons are user-controlled: a custom model ``mod:Cls<x>`` must not become markup).

Tables are built once as data (:class:`Table`) and rendered to HTML or Markdown, so both
files show the same figures formatted by the same helper (:func:`fmt`).
"""
from __future__ import annotations

import base64
import html
import json
import math
import tempfile
import time
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..datasets import EMBEDDED, STANDARD_SETS
from ..errors import HarnessError
from ..numeric import number_or_none
from .files import write_text_atomic
from .pareto import QUALITY_TIE_DB
from .table import GPU_LATENCIES, RGB_SPEED_BASELINE, build_records, colour_of, gpu_columns, latest_rows, sets_order
from .table import front_groups as pareto_groups

EMBEDDED_NOTE = "embedded: images bundled with scikit-image, not a standard test set (not comparable with papers)"
MISSING = "–"


# --------------------------------------------------------------------------- formatting

class Col(NamedTuple):
    key: str
    header: str
    kind: str = "text"  # a key of DIGITS, or text / long (wrapped text) / flag / int / gmacs / delta


# decimals per kind of figure; one place, used by the HTML and the Markdown alike
DIGITS = {"psnr": 2, "ssim": 4, "fps": 2, "ms": 2, "cov": 3, "w": 2, "mj": 1, "ratio": 2}
TEXT_KINDS = ("text", "long", "flag")


def fmt(value, kind: str = "text") -> str:
    """The one formatter of the report: PSNR 2 decimals, MACs in G with 3, missing as a dash."""
    if kind in ("text", "long"):
        return MISSING if value is None or value == "" else str(value)
    if kind == "flag":
        return MISSING if value is None else ("yes" if value is True else "no" if value is False else str(value))
    v = number_or_none(value)
    if v is None:
        return MISSING
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if kind == "int":
        return f"{int(round(v)):,}"
    if kind == "gmacs":
        return f"{v / 1e9:.3f}"
    if kind == "delta":
        return f"{v:+.2f}"
    return f"{v:.{DIGITS[kind]}f}"


def _sort_value(value, kind: str) -> Optional[str]:
    """What the sort script compares: the raw number ('' when missing); None for text columns."""
    if kind in TEXT_KINDS:
        return "" if value is None or value == "" else None
    v = number_or_none(value)
    return "" if v is None else repr(v).replace("inf", "Infinity")


def set_label(name: str) -> str:
    """A set's name as shown: the embedded set always carries its label."""
    return f"{name} (not a standard set)" if name == EMBEDDED else name


class Table(NamedTuple):
    id: str
    columns: List[Col]
    rows: List[Dict]
    note: str = ""


def cell_text(row: Dict, col: Col) -> str:
    """A cell as shown: ``row[key + ".text"]`` where the row gives one (a value with its interval,
    still sorted by the value itself), else the value through :func:`fmt`."""
    text = row.get(col.key + ".text")
    return text if text else fmt(row.get(col.key), col.kind)


def with_interval(value, low, high, kind: str = "fps") -> Optional[str]:
    """``13.39 [13.10, 13.70]``: a value and its interval (None where either end is missing)."""
    if number_or_none(value) is None or number_or_none(low) is None or number_or_none(high) is None:
        return None
    return f"{fmt(value, kind)} [{fmt(low, kind)}, {fmt(high, kind)}]"


COLOUR = {"y": "Y", "rgb": "RGB"}


def html_table(table: Table) -> str:
    head = "".join(f'<th data-kind="{_e(c.kind)}" data-col="{_e(c.key)}">{_e(c.header)}</th>' for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for c in table.columns:
            value = row.get(c.key)
            sv = _sort_value(value, c.kind)
            attrs = "" if sv is None else f' data-v="{_e(sv)}"'
            if c.kind not in TEXT_KINDS:
                attrs += ' class="num"'
            elif c.kind == "long":
                attrs += ' class="long"'
            elif c.kind == "flag" and value in (True, False):
                attrs += f' class="{"yes" if value else "no"}"'
            title = row.get(c.key + ".title")
            if title:
                attrs += f' title="{_e(title)}"'
            cells.append(f"<td{attrs}>{_e(cell_text(row, c))}</td>")
        css = f' class="{_e(row["_class"])}"' if row.get("_class") else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    note = f'<p class="note">{_e(table.note)}</p>' if table.note else ""
    return (f'<div class="scroll"><table class="sortable" id="{_e(table.id)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{note}')


def md_table(table: Table, keys: Optional[Sequence[str]] = None) -> str:
    cols = [c for c in table.columns if keys is None or c.key in keys]
    out = ["| " + " | ".join(_md(c.header) for c in cols) + " |",
           "|" + "|".join("---:" if c.kind not in TEXT_KINDS else "---" for c in cols) + "|"]
    for row in table.rows:
        out.append("| " + " | ".join(_md(cell_text(row, c)) for c in cols) + " |")
    if table.note:
        out += ["", f"_{_md(table.note)}_"]
    return "\n".join(out)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _md(text) -> str:
    """Markdown cell text: entities for markup characters, no pipes or newlines to break the table."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------- data

def _data(row) -> Dict:
    try:
        return json.loads(row["data"] or "{}")
    except (TypeError, ValueError):
        return {}


def runs_of(store, run_id: Optional[str], rows) -> List[Dict]:
    ids = {run_id} if run_id else {r["run_id"] for r in rows}
    runs = store.runs()
    return [r for r in runs if r["run_id"] in ids]


_SPEED_FIELDS = ("median_ms", "gpu_median_ms", "e2e_median_ms", "p90_ms", "p99_ms", "fhd_per_s", "cov", "mean_w",
                 "mj_per_frame", "cpu_util_pct")


def collect_entries(rows, emulated: Optional[Dict[str, str]] = None) -> List[Dict]:
    """The joined table's records (:mod:`harness.results.table`), with ``psnr``/``ssim`` as per-set dicts."""
    out = []
    for rec in build_records(rows, emulated):
        e = dict(rec)
        e["psnr"] = {k.split(":", 1)[1]: v for k, v in rec.items() if k.startswith("psnr:") and v is not None}
        e["ssim"] = {k.split(":", 1)[1]: v for k, v in rec.items() if k.startswith("ssim:") and v is not None}
        out.append(e)
    return out


# --------------------------------------------------------------------------- sections

def headline(runs: List[Dict], entries: List[Dict], rows) -> List[Tuple[str, str]]:
    """(label, text) pairs: what ran where and when, and how much of it worked."""
    devices = []
    for run in runs:
        profile = _json(run.get("profile"))
        text = run["device"] + (f" ({profile['description']})" if profile.get("description") else "")
        if text not in devices:
            devices.append(text)
    sets = sets_order(s for e in entries for s in e["psnr"])
    statuses = defaultdict(int)
    for r in rows:
        statuses[r["status"]] += 1
    return [
        ("device(s)", ", ".join(devices) or MISSING),
        ("date", ", ".join(sorted({_date(r["started"]) for r in runs})) or MISSING),
        ("models", f"{len({e['model'] for e in entries})} model ids, "
                   f"{len({(e['model'], e['scale']) for e in entries})} model/scale pairs, "
                   f"scales {', '.join(f'x{s}' for s in sorted({e['scale'] for e in entries}))}"),
        ("test sets", ", ".join(set_label(s) for s in sets) or "none"),
        ("measurements", ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))),
        ("run ids", ", ".join(r["run_id"] for r in runs)),
    ]


def emulated_warning(runs: List[Dict]) -> str:
    """One sentence when any run was emulated (qemu-user...): its timings say nothing of the device."""
    emulated = {}
    for run in runs:
        reason = _json(run.get("environment")).get("emulated")
        if reason:
            emulated.setdefault(run["device"], str(reason))
    if not emulated:
        return ""
    where = "; ".join(f"{d}: {r}" for d, r in sorted(emulated.items()))
    return (f"EMULATED ({where}): speed, latency and power figures of these runs are meaningless (an emulator, not "
            f"the device); quality figures are valid.")


def _date(epoch) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(epoch)))


def _json(text) -> Dict:
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {"value": value}


def models_table(entries: List[Dict]) -> Table:
    """Every model with its complexity, quality per set, speed, energy and status."""
    sets = sets_order(s for e in entries for s in list(e["psnr"]) + list(e["ssim"]))
    runtime = any(e.get("runtime") for e in entries)  # what really computed a row, where recorded
    cols = [Col("model", "model"), Col("family", "family"), Col("colour", "colour"), Col("device", "device"),
            Col("backend", "backend")] + ([Col("runtime", "runtime")] if runtime else []) + [
            Col("scale", "scale", "int"), Col("params", "params", "int"),
            Col("macs_per_fhd", "GMACs / FHD frame", "gmacs")]
    for s in sets:
        cols += [Col(f"psnr:{s}", f"PSNR {set_label(s)}", "psnr"), Col(f"ssim:{s}", f"SSIM {set_label(s)}", "ssim")]
    cols += [Col("fhd_per_s", "FHD/s", "fps"), Col("median_ms", "median ms", "ms")] + [
             Col(c, GPU_LATENCIES[c], "ms") for c in gpu_columns(entries)] + [
             Col("p90_ms", "p90 ms", "ms"), Col("p99_ms", "p99 ms", "ms"), Col("cov", "CoV", "cov"), Col("mean_w", "W", "w"),
             Col("mj_per_frame", "mJ/frame", "mj"), Col("form", "graph form"), Col("weights", "weights"),
             Col("status", "status")]
    rows = []
    for e in entries:
        row = {k: e.get(k) for k in ("model", "family", "device", "scale", "params", "macs_per_fhd", "form",
                                     "weights", "status") + _SPEED_FIELDS}
        row["backend"] = f"{e['backend']} {e['precision']}".strip()
        row["colour"], row["runtime"] = COLOUR.get(colour_of(e) or ""), e.get("runtime")
        row["fhd_per_s.text"] = with_interval(e.get("fhd_per_s"), e.get("fhd_per_s_low"), e.get("fhd_per_s_high"))
        row["fhd_per_s.title"] = speed_note(e)
        for s in sets:
            row[f"psnr:{s}"], row[f"ssim:{s}"] = e["psnr"].get(s), e["ssim"].get(s)
        row["status.title"] = e["reason"]
        row["_class"] = "" if e["status"] == "ok" else "bad"
        rows.append(row)
    notes = ["colour: the channels a model computes (Y: luma only, chroma by bicubic; RGB: all three)"]
    if any(row.get("fhd_per_s.text") for row in rows):
        notes.append("FHD/s [95 % interval] where the interval was measured")
    if runtime:
        notes.append("runtime: what computed the row (the backend column groups the rows)")
    if EMBEDDED in sets:
        notes.append(EMBEDDED_NOTE)
    return Table("models", cols, rows, "; ".join(notes))


def speed_note(e: Dict) -> str:
    """A speed cell's tooltip: its interval's half-width and why timing stopped, where recorded."""
    parts = []
    if number_or_none(e.get("ci_halfwidth_pct")) is not None:
        parts.append(f"95 % interval ±{float(e['ci_halfwidth_pct']):.1f} % of the median")
    if e.get("timing_stop"):
        parts.append(f"timing stopped: {e['timing_stop']}")
    return "; ".join(parts)


FRONT_RULE = ("Δ PSNR and 'beats bicubic: quality' are against Bicubic_s<scale>; × bicubic speed and 'beats "
              "bicubic: speed' against the bicubic of the model's colour space on the same device, backend, "
              "precision and scale: Y models against Bicubic_s<scale> (bicubic as a Y network), RGB models against "
              "bicubic-opencv (OpenCV's, the fast RGB bicubic). A model leaves the front only when another is "
              f"better by at least {QUALITY_TIE_DB:g} dB and faster with a speed interval wholly above its own (the "
              "strict rule where no interval was measured); one kept because the difference is within the noise "
              "is marked 'statistically tied'.")


def pareto_table(groups: List[Dict]) -> Table:
    cols = [Col("device", "device"), Col("backend", "backend"), Col("scale", "scale", "int"), Col("model", "model"),
            Col("family", "family"), Col("colour", "colour"), Col("basis", "quality on"),
            Col("psnr", "PSNR (dB)", "psnr"), Col("d_psnr", "Δ PSNR vs bicubic", "delta"),
            Col("fhd_per_s", "FHD/s", "fps"), Col("speedup", "× bicubic speed", "ratio"),
            Col("beats_q", "beats bicubic: quality", "flag"), Col("beats_s", "beats bicubic: speed", "flag"),
            Col("mj_per_frame", "mJ/frame", "mj"), Col("front_note", "front")]
    rows, notes = [], [FRONT_RULE]
    for g in groups:
        basis = " + ".join(set_label(s) for s in g["basis"]) + (" (mean)" if len(g["basis"]) > 1 else "")
        for r in g["rows"]:
            row = dict(r, basis=basis, backend=f"{r['backend']} {r['precision']}",
                       colour=COLOUR.get(r.get("colour_space") or ""))
            row["fhd_per_s.text"] = with_interval(r["fhd_per_s"], r.get("fhd_per_s_low"), r.get("fhd_per_s_high"))
            if r.get("speed_baseline"):
                row["speedup.title"] = f"FHD/s against {r['speed_baseline']}'s"
            rows.append(row)
        where = f"{g['device']} {g['backend']} {g['precision']} x{g['scale']}"
        if g["baseline"] is None:
            notes.append(f"{where}: no Bicubic_s{g['scale']} measurement, so no beats-bicubic verdict")
        missing = [name for c, name in (("rgb", RGB_SPEED_BASELINE),) if g.get("speed_baselines", {}).get(c) is None
                   and any(r.get("colour_space") == c for r in g["rows"])]
        for name in missing:
            notes.append(f"{where}: no {name} measurement, so no × bicubic speed for its RGB models")
        if g["left_out"]:
            notes.append(f"{where}: {g['left_out']} model(s) without PSNR on every set left off the front")
    return Table("pareto", cols, rows, "; ".join(notes))


def problems_table(rows) -> Table:
    """Failed and flagged measurements (speed and quality) with the recorded reason."""
    cols = [Col("device", "device"), Col("backend", "backend"), Col("model", "model"), Col("scale", "scale", "int"),
            Col("measurement", "measurement"), Col("status", "status"), Col("reason", "reason", "long")]
    out = []
    for r in rows:
        if r["status"] != "ok":
            out.append({"device": r["device"], "backend": f"{r['backend']} {r['precision']}", "model": r["model"],
                        "scale": r["scale"], "measurement": r["measurement"], "status": r["status"],
                        "reason": r["reason"] or "(no reason recorded)", "_class": "bad"})
    return Table("problems", cols, out)


def routing_table(entries: List[Dict]) -> Table:
    """Models that route patches between branches (ClassSR): where the patches went and what it saved."""
    cols = [Col("model", "model"), Col("device", "device"), Col("backend", "backend"), Col("scale", "scale", "int"),
            Col("patches", "patches / frame", "int"), Col("shares", "share of patches per branch", "long"),
            Col("macs", "routed GMACs / frame", "gmacs"), Col("saved", "MACs saved vs largest branch (%)", "ratio"),
            Col("saved_cls", "… with the classifier (%)", "ratio"), Col("fhd_per_s", "FHD/s end to end", "fps"),
            Col("psnr", "mean PSNR (dB)", "psnr")]
    rows = []
    for e in entries:
        r = e.get("routing")
        if not r:
            continue
        shares = ", ".join(f"{b}: {100 * x:.0f}%" for b, x in zip(r.get("branches", []), r.get("shares", [])))
        psnr = [v for v in e["psnr"].values() if number_or_none(v) is not None]
        rows.append({"model": e["model"], "device": e["device"], "backend": f"{e['backend']} {e['precision']}",
                     "scale": e["scale"], "patches": r.get("patches_per_image"), "shares": shares,
                     "macs": r.get("macs_routed_per_image"), "saved": r.get("macs_saved_pct"),
                     "saved_cls": r.get("macs_saved_pct_incl_classifier"), "fhd_per_s": e.get("fhd_per_s"),
                     "psnr": sum(psnr) / len(psnr) if psnr else None})
    return Table("routing", cols, rows, "over the Full-HD frames of the speed run; FHD/s includes patching, "
                                        "classification, the per-branch batches and stitching")


def power_table(entries: List[Dict]) -> Table:
    """Why power is absent: each distinct reason once, with where it applies."""
    groups: Dict[tuple, List[str]] = defaultdict(list)
    for e in entries:
        if e.get("speed_status") in (None, "failed"):
            continue
        reason = e.get("power_reason") or ""
        absent = number_or_none(e["mean_w"]) is None
        if absent or reason:
            key = (e["device"], f"{e['backend']} {e['precision']}", "absent" if absent else "measured, with a caveat",
                   reason or "(no reason recorded)")
            groups[key].append(f"{e['model']} x{e['scale']}")
    cols = [Col("device", "device"), Col("backend", "backend"), Col("power", "power"),
            Col("count", "measurements", "int"), Col("reason", "reason", "long"), Col("models", "models", "long")]
    rows = [{"device": d, "backend": b, "power": p, "reason": reason, "count": len(models),
             "models": ", ".join(models[:8]) + (f" and {len(models) - 8} more" if len(models) > 8 else "")}
            for (d, b, p, reason), models in sorted(groups.items())]
    return Table("power", cols, rows)


def environment_tables(runs: List[Dict]) -> List[Tuple[str, Table]]:
    """Per run: when, the command, the device profile and the captured environment as key/values."""
    out = []
    for run in runs:
        pairs = [("started", _date(run["started"])), ("device", run["device"]), ("command", run.get("command")),
                 ("config key", run.get("config_key"))]
        pairs += _flatten(_json(run.get("profile")), "profile.")
        pairs += _flatten(_json(run.get("environment")), "")
        rows = [{"key": k, "value": fmt(v if not isinstance(v, (list, tuple)) else ", ".join(map(str, v)))}
                for k, v in pairs]
        table = Table(f"env-{run['run_id']}", [Col("key", "key"), Col("value", "value", "long")], rows)
        out.append((run["run_id"], table))
    return out


def _flatten(d: Dict, prefix: str) -> List[Tuple[str, object]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _figure_order(path: Path):
    """Per device/backend/scale: the trade-off per set, then the mean over sets, then energy, then the
    zoomed crops; the cross-device figures last."""
    stem = path.stem
    if stem.startswith("energy_"):
        return (0, stem[len("energy_"):], 2, 0, path.suffix)
    if stem.startswith("visual_"):
        return (0, stem[len("visual_"):], 3, 0, path.suffix)
    if not stem.startswith("tradeoff_"):
        return (1, stem, 0, 0, path.suffix)
    base, _, key = stem[len("tradeoff_"):].rpartition("_")
    return (0, base, 1 if key == "mean" else 0, sets_order([key] + list(STANDARD_SETS)).index(key), path.suffix)


def is_visual(path: Path) -> bool:
    """A zoomed-crop figure (:mod:`harness.results.visual`), shown in its own section."""
    return Path(path).stem.startswith("visual_")


def visual_files(plots_dir: Optional[Path], entries: List[Dict]) -> List[Path]:
    """The zoomed-crop figures of this report's device/backend/precision/scale groups found in
    ``plots_dir`` (run-all draws them: they need the test images and the models, which a report lacks)."""
    if plots_dir is None:
        return []
    out = []
    for key in sorted({(e["device"], e["backend"], e["precision"], e["scale"]) for e in entries if e.get("speed_ok")}):
        stem = Path(plots_dir) / "visual_{}_{}_{}_x{}".format(*key)
        out += [f for f in (stem.with_suffix(".png"), stem.with_suffix(".svg")) if f.is_file()]
    return out


BESIDE_NOTE = ("Your measurements of the eSR paper's models (same id and scale, weights official) beside the "
               "authors' published table (python -m harness zoo import-esr): PSNR difference is the harness protocol "
               "minus the paper's; rho is Spearman's rank correlation of your FHD/s with the paper device's (1: the "
               "same order); the fronts are taken over the models both measured. Figures: python -m harness paper.")


def beside_paper(store, run_id: Optional[str] = None, set_name: str = "Set14"
                 ) -> Optional[Tuple[List[str], Table, Table]]:
    """The section "Beside the paper": (verdict lines, one row per comparison, the per-model PSNR differences),
    or None when the store lacks the paper's table or any own measurement of its models."""
    from .overlay import overlay
    from .paper import is_paper_device
    from .plots import collect

    paper = [p for p in collect(store) if is_paper_device(p["device"])]
    if not paper:
        return None
    mine = [p for p in collect(store, run_id) if not is_paper_device(p["device"])]
    results = overlay(paper + mine, None, (), set_name)
    if not results:
        return None
    sets = sets_order(s for r in results for s in r["mean_diff"])
    cols = [Col("device", "device"), Col("backend", "backend"), Col("paper", "paper device"),
            Col("scale", "scale", "int"), Col("models", "models in common", "int"), Col("rho", "speed rank rho", "cov"),
            Col("paper_on_mine", "paper front on yours"), Col("mine_on_paper", "your front on the paper's")]
    cols += [Col(f"diff:{s}", f"Δ PSNR {s} (mean)", "delta") for s in sets]
    rows = []
    for r in results:
        row = {"device": r["device"], "backend": f"{r['backend']} {r['precision']}", "paper": r["paper_name"],
               "scale": r["scale"], "models": r["models"], "rho": r["rho"],
               "paper_on_mine": f"{r['paper_on_mine']} of {len(r['paper_front'])}",
               "mine_on_paper": f"{r['mine_on_paper']} of {len(r['my_front'])}"}
        row.update({f"diff:{s}": r["mean_diff"].get(s) for s in sets})
        rows.append(row)
    diff_cols = [Col("device", "device"), Col("model", "model"), Col("scale", "scale", "int"), Col("set", "set"),
                 Col("psnr", "PSNR, harness (dB)", "psnr"), Col("paper_psnr", "PSNR, paper (dB)", "psnr"),
                 Col("diff", "Δ PSNR (harness − paper)", "delta")]
    diffs = [dict(d, device=f"{r['device']} {r['backend']} {r['precision']}") for r in results for d in r["psnr_diffs"]]
    return ([r["line"] for r in results], Table("paper", cols, rows, BESIDE_NOTE),
            Table("paper-psnr", diff_cols, diffs))


NO_FIGURE = "<p>No figure: no model of this run has both quality and speed measured.</p>"
NO_CROPS = ("<p>No crops: run-all draws them (they need the test images and the models); the report command "
            "embeds those it finds in the figures folder (--plots).</p>")


def figures_html(files: Sequence[Path], empty: str = NO_FIGURE) -> str:
    """Every figure embedded (PNG as base64; an SVG only where no PNG of it exists)."""
    stems: "OrderedDict[str, Path]" = OrderedDict()
    for f in sorted((Path(p) for p in files), key=_figure_order):
        if f.suffix.lower() == ".png" or (f.suffix.lower() == ".svg" and f.stem not in stems):
            stems[f.stem] = f
    if not stems:
        return empty
    parts = []
    for stem, f in stems.items():
        mime = "image/png" if f.suffix.lower() == ".png" else "image/svg+xml"
        data = base64.b64encode(f.read_bytes()).decode("ascii")
        caption = stem + (" — " + EMBEDDED_NOTE if stem.endswith("_" + EMBEDDED) else "")
        parts.append(f'<figure><img src="data:{mime};base64,{data}" alt="{_e(stem)}">'
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    return f'<div class="figures">{"".join(parts)}</div>'


# --------------------------------------------------------------------------- page

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 20px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
dl.headline{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dl.headline dt{font-weight:600;color:#555}dl.headline dd{margin:0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:12px;margin:4px 0}
th,td{border:1px solid #d6d6d6;padding:3px 5px;text-align:left;vertical-align:top}
td{white-space:nowrap}td.long{white-space:pre-wrap;word-break:break-word;min-width:320px;max-width:900px}
th{background:#f0f2f5;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fafafa}tr.bad td{background:#fff1f0}
td.yes{color:#1a7f37;font-weight:600}td.no{color:#b42318}
table[id^=env-] td:first-child{color:#444}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,900px),1fr));gap:12px}
figure{margin:0;border:1px solid #e3e3e3;padding:6px;background:#fff}
figure img{width:100%;height:auto;display:block}figcaption{font-size:12px;color:#555;margin-top:4px}
.note{font-size:12px;color:#555;margin:2px 0 10px}
"""

SORT_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null)return td.textContent.trim();
    return v===''?null:parseFloat(v);}
  function cmp(a,b){if(a===null||b===null)return 0;
    if(typeof a==='number'&&typeof b==='number')return a-b;
    return String(a).localeCompare(String(b),undefined,{numeric:true});}
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(table){
    var ths=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths,function(th,i){
      th.addEventListener('click',function(){
        var asc=th.getAttribute('aria-sort')!=='ascending';
        Array.prototype.forEach.call(ths,function(h){h.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort',asc?'ascending':'descending');
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        rows.sort(function(r1,r2){var a=key(r1.cells[i]),b=key(r2.cells[i]);
          if(a===null||b===null)return (a===null)-(b===null);  /* missing values last either way */
          return asc?cmp(a,b):cmp(b,a);});
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
})();
"""


def _section(title: str, body: str, sid: str) -> str:
    return f'<section id="{_e(sid)}"><h2>{_e(title)}</h2>{body}</section>'


def render_html(title: str, head: List[Tuple[str, str]], figures: str, models: Table, pareto: Table,
                problems: Table, power: Table, envs: List[Tuple[str, Table]], routing: Optional[Table] = None,
                crops: str = NO_CROPS, beside: Optional[Tuple[List[str], Table, Table]] = None) -> str:
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in head)
    paper = [] if not beside else [_section(
        "Beside the paper", "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in beside[0]) + "</ul>" +
        html_table(beside[1]) + "<h3>PSNR per model and set</h3>" + html_table(beside[2]), "paper")]
    sections = [
        f'<section id="headline"><h1>{_e(title)}</h1><dl class="headline">{dl}</dl></section>',
        _section("Quality–speed trade-off", figures, "figures"),
        _section("Zoomed crops: bicubic, the front and the best model", crops, "crops"),
        _section("Pareto front per device and scale", html_table(pareto) if pareto.rows else
                 "<p>No model has both quality and speed measured.</p>", "front"),
    ] + paper + [
        _section("All models", html_table(models) + '<p class="note">Click a column header to sort; '
                 'hover a status for its reason.</p>', "all-models"),
    ] + ([_section("Routed models (ClassSR)", html_table(routing), "routing")] if routing and routing.rows else []) + [
        _section("Failures and flagged measurements", html_table(problems) if problems.rows else
                 "<p>None: every measurement succeeded.</p>", "failures"),
        _section("Power", html_table(power) if power.rows else
                 "<p>Power was measured for every speed measurement.</p>", "power"),
        _section("Environment", "".join(f"<h3>run {_e(rid)}</h3>{html_table(t)}" for rid, t in envs), "environment"),
    ]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head><body>{''.join(sections)}<script>{SORT_JS}</script></body></html>\n")


MD_MODEL_KEYS = ("model", "device", "backend", "scale", "fhd_per_s", "median_ms", "mj_per_frame", "status")


def render_md(title: str, head: List[Tuple[str, str]], models: Table, pareto: Table, problems: Table,
              beside: Optional[Tuple[List[str], Table, Table]] = None) -> str:
    keys = list(MD_MODEL_KEYS[:4]) + [c.key for c in models.columns if c.key.startswith("psnr:")] + \
        list(MD_MODEL_KEYS[4:])
    paper = [] if not beside else ["## Beside the paper", "\n".join(f"- {_md(line)}" for line in beside[0]),
                                   md_table(beside[1])]
    parts = [f"# {_md(title)}", "\n".join(f"- **{_md(k)}**: {_md(v)}" for k, v in head),
             "## Pareto front per device and scale", md_table(pareto) if pareto.rows else "No front."] + paper + [
             "## All models", md_table(models, keys),
             "## Failures and flagged measurements", md_table(problems) if problems.rows else "None."]
    return "\n\n".join(parts) + "\n"


ELSEWHERE = "write the report elsewhere (report --out DIR, run-all --out DIR)"


def write_report(store, out_dir, run_id: Optional[str] = None, plots_dir=None,
                 figures: Optional[Sequence[Path]] = None) -> Tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir``; returns their paths.

    ``figures``: the files a caller has just drawn from this store (run-all draws them once);
    without them the figures are drawn afresh by :func:`harness.results.plots.draw_all` (into
    ``plots_dir``, or a temporary folder) so the report always shows exactly what the store holds.
    """
    from .paper import is_paper_device
    from .plots import draw_all

    rows = latest_rows(store, run_id)
    published = any(is_paper_device(r["device"]) for r in rows)
    rows = [r for r in rows if not is_paper_device(r["device"])]  # the paper's table: its own section
    if not rows:
        if published:
            raise HarnessError(f"{store.path}: holds only the eSR paper's published table, no measurement of this "
                               f"harness; draw the paper's figures with python -m harness paper")
        raise HarnessError(f"{store.path}: no measurements" + (f" for run {run_id}" if run_id else ""))
    runs = runs_of(store, run_id, rows)
    entries = collect_entries(rows, store.emulated_runs())
    title = f"SR benchmark report: {', '.join(sorted({e['device'] for e in entries}))}"
    head = headline(runs, entries, rows)
    models, pareto = models_table(entries), pareto_table(pareto_groups(entries))
    for run in runs:  # a profile measured on another host (--device rpi on a desktop): said first
        other = _json(run.get("environment")).get("not_the_device")
        if other:
            head.insert(0, ("NOT THE DEVICE", f"run {run['run_id']}: {other}"))
    warning = emulated_warning(runs)
    if warning:  # an emulator's timings must not be read as the device's: said first and on every table
        head.insert(0, ("EMULATED", warning))
        models = models._replace(note=f"{warning} {models.note}".strip())
        pareto = pareto._replace(note=f"{warning} {pareto.note}".strip())
    problems, power = problems_table(rows), power_table(entries)
    def blocks(files: List[Path]) -> Tuple[str, str]:  # the figures, and the zoomed crops in their own section
        return (figures_html([f for f in files if not is_visual(f)]),
                figures_html([f for f in files if is_visual(f)], NO_CROPS))

    if figures is not None:
        figures_block, crops_block = blocks([Path(f) for f in figures])
    else:
        folder = Path(plots_dir) if plots_dir else None
        with tempfile.TemporaryDirectory(prefix="report-plots-") as tmp:  # read before the folder goes
            figures_block, crops_block = blocks(draw_all(store, folder or Path(tmp), run_id) +
                                                visual_files(folder, entries))
    out_dir = Path(out_dir)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    # each to a temp name, then renamed: a full disk leaves the previous report, not a truncated one
    beside = beside_paper(store, run_id)
    write_text_atomic(html_path, render_html(title, head, figures_block, models, pareto, problems, power,
                                             environment_tables(runs), routing_table(entries), crops_block, beside),
                      elsewhere=ELSEWHERE)
    write_text_atomic(md_path, render_md(title, head, models, pareto, problems, beside), elsewhere=ELSEWHERE)
    return html_path, md_path
