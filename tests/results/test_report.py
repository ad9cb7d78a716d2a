"""The HTML/Markdown report from a synthetic store: contents, escaping, the Pareto verdicts,
and what a real browser (headless Chromium) renders and sorts."""
from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.results.report import collect_entries, fmt, latest_rows, pareto_groups, write_report
from harness.results.store import ResultStore

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
EVIL = "custom:mod:Cls<x>&y"
EVIL_REASON = "ImportError: cannot import mod:Cls<x> & co"
POWER_REASON = "rapl: <energy_uj> unreadable & stale"
# model, family, base PSNR (Set14; Set5 is +3), FHD/s, W (None: not measured)
MODELS = [("Bicubic_s2", "Bicubic", 30.0, 100.0, 2.0),
          ("eSR-MAX_s2_K3_C3", "eSR-MAX", 30.8, 120.0, 2.1),    # front: beats bicubic on both
          ("eSR-TM_s2_K7_C4", "eSR-TM", 31.5, 20.0, 3.0),       # front: quality yes, speed no
          ("FSRCNN_s2_D56_S12_M4", "FSRCNN", 31.4, 15.0, None),  # dominated by eSR-TM; power absent
          ("bicubic-opencv", "bicubic-opencv", 29.9, 150.0, 1.5)]  # front: quality no; the RGB models' speed baseline
FRONT = {"eSR-MAX_s2_K3_C3": ("yes", "yes"), "eSR-TM_s2_K7_C4": ("yes", "no"), "bicubic-opencv": ("no", "baseline")}


def _speed(model, family, fps, watts, scale=2, **extra):
    rec = {"model": model, "scale": scale, "device": "cpu", "backend": "onnxruntime", "precision": "fp32",
           "weights": "official", "family": family, "form": "fast", "fhd_per_s": fps, "median_ms": 1000.0 / fps,
           "p90_ms": 1100.0 / fps, "p99_ms": 1200.0 / fps, "cov": 0.05, "params": 1176, "macs_per_fhd": 609638400,
           "mean_w": watts if watts is not None else float("nan"),
           "mj_per_frame": watts * 1000.0 / fps if watts is not None else float("nan"),
           "power_reason": "" if watts is not None else POWER_REASON, "status": "ok", "reason": ""}
    rec.update(extra)
    return rec


def _quality(model, family, psnr, set_name, scale=2, **extra):
    rec = {"model": model, "scale": scale, "device": "cpu", "backend": "torch", "precision": "fp32",
           "weights": "official", "family": family, "set": set_name, "psnr": psnr, "ssim": 0.9, "images": 5,
           "status": "ok", "reason": ""}
    rec.update(extra)
    return rec


def fill(store):
    run, _ = store.start_run("cpu", "k", command="python -m harness run-all",
                             profile={"name": "cpu", "description": "Host CPU & <friends>"},
                             environment={"hostname": "bench<1>", "cpu": "Cortex-A57",
                                          "versions": {"numpy": "1.26.4", "tensorrt": None}})
    for model, fam, psnr, fps, watts in MODELS:
        for s, offset in (("Set5", 3.0), ("Set14", 0.0)):
            store.add(run, f"quality:{s}", _quality(model, fam, psnr + offset, s))
        store.add(run, "speed", _speed(model, fam, fps, watts))
    store.add(run, "quality:Set5", _quality(EVIL, "custom", None, "Set5", status="failed", reason=EVIL_REASON))
    store.add(run, "speed", {"model": EVIL, "scale": 2, "device": "cpu", "backend": "onnxruntime",
                             "precision": "fp32", "weights": "official", "status": "failed", "reason": EVIL_REASON})
    for s in ("Set5", "Set14"):
        store.add(run, f"quality:{s}", _quality("eSR-CNN_s2_C4_D3_S6", "eSR-CNN", 32.0, s))
    store.add(run, "speed", _speed("eSR-CNN_s2_C4_D3_S6", "eSR-CNN", 50.0, 2.5, status="flagged",
                                   reason="output differs from the PyTorch fp32 reference: 20.1 dB < 40 dB"))
    return run


class Tables(HTMLParser):
    """Each table of a page by id: header texts and rows of cell texts (document order), and the images."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.imgs = {}, []
        self._table = self._row = self._cell = None
        self._part = "rows"
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), {"head": [], "rows": []})
        elif tag in ("thead", "tbody"):
            self._part = "head" if tag == "thead" else "rows"
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "img":
            self.imgs.append(attrs)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._part == "head":
                self._table["head"] = self._row
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def records(self, table_id):
        t = self.tables[table_id]
        return [dict(zip(t["head"], r)) for r in t["rows"]]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    store = ResultStore(tmp / "harness.db")
    run = fill(store)
    html_path, md_path = write_report(store, tmp / "results", run_id=run, plots_dir=tmp / "plots")
    return {"html": html_path, "md": md_path, "run": run, "plots": tmp / "plots", "tmp": tmp}


def test_files_and_sections(report):
    assert report["html"].name == "report.html" and report["md"].name == "report.md"
    text = report["html"].read_text()
    for sid in ("headline", "figures", "front", "all-models", "failures", "power", "environment"):
        assert f'<section id="{sid}">' in text
    assert report["run"] in text and "cpu (Host CPU &amp; &lt;friends&gt;)" in text
    assert "7 model ids" in text


def test_figures_embedded_and_no_external_references(report):
    text = report["html"].read_text()
    pngs = sorted(p.stem for p in report["plots"].glob("*.png"))
    assert pngs, "draw_all made no figure"
    page = Tables(text)
    assert sorted(i["alt"] for i in page.imgs) == pngs
    assert all(i["src"].startswith("data:image/png;base64,") for i in page.imgs)
    low = text.lower()
    for bad in ("src=http", 'src="http', "src='http", "href=http", 'href="http', "href='http", "<link",
                "@import", "url(http", "src=\"//", "href=\"//"):
        assert bad not in low


def test_models_table(report):
    page = Tables(report["html"].read_text())
    rows = {r["model"]: r for r in page.records("models")}
    assert set(rows) == {m[0] for m in MODELS} | {EVIL, "eSR-CNN_s2_C4_D3_S6"}
    tm = rows["eSR-TM_s2_K7_C4"]
    assert (tm["PSNR Set5"], tm["PSNR Set14"], tm["SSIM Set5"]) == ("34.50", "31.50", "0.9000")
    assert (tm["FHD/s"], tm["median ms"], tm["p90 ms"], tm["p99 ms"]) == ("20.00", "50.00", "55.00", "60.00")
    assert (tm["GMACs / FHD frame"], tm["params"], tm["W"], tm["mJ/frame"]) == ("0.610", "1,176", "3.00", "150.0")
    assert (tm["CoV"], tm["graph form"], tm["weights"], tm["status"]) == ("0.050", "fast", "official", "ok")
    assert rows["FSRCNN_s2_D56_S12_M4"]["W"] == "–"
    assert rows[EVIL]["status"] == "failed" and rows[EVIL]["FHD/s"] == "–"
    assert rows["eSR-CNN_s2_C4_D3_S6"]["status"] == "flagged"


def test_pareto_front_and_bicubic_verdicts(report):
    page = Tables(report["html"].read_text())
    front = {r["model"]: (r["beats bicubic: quality"], r["beats bicubic: speed"]) for r in page.records("pareto")}
    assert front == FRONT  # flagged eSR-CNN (faster/better than some) never enters the front
    tm = next(r for r in page.records("pareto") if r["model"] == "eSR-TM_s2_K7_C4")
    assert tm["quality on"] == "Set5 + Set14 (mean)" and tm["PSNR (dB)"] == "33.00"
    assert tm["Δ PSNR vs bicubic"] == "+1.50" and tm["× bicubic speed"] == "0.20"


def test_failures_power_environment_and_escaping(report):
    text = report["html"].read_text()
    page = Tables(text)
    problems = page.records("problems")
    assert {(r["model"], r["measurement"], r["status"]) for r in problems} == {
        (EVIL, "speed", "failed"), (EVIL, "quality:Set5", "failed"), ("eSR-CNN_s2_C4_D3_S6", "speed", "flagged")}
    assert all(r["reason"] == EVIL_REASON for r in problems if r["model"] == EVIL)
    power = page.records("power")
    assert [(r["reason"], r["models"], r["power"]) for r in power] == [(POWER_REASON, "FSRCNN_s2_D56_S12_M4 x2",
                                                                         "absent")]
    env = {r["key"]: r["value"] for r in page.records(f"env-{report['run']}")}
    assert env["hostname"] == "bench<1>" and env["versions.numpy"] == "1.26.4" and env["versions.tensorrt"] == "–"
    assert env["profile.description"] == "Host CPU & <friends>"
    # every store string escaped: nothing of it becomes markup
    assert "Cls<x>" not in text and "<friends>" not in text and "bench<1>" not in text and "<energy_uj>" not in text
    assert "custom:mod:Cls&lt;x&gt;&amp;y" in text and "mod:Cls&lt;x&gt; &amp; co" in text


def test_markdown(report):
    md = report["md"].read_text()
    assert md.startswith("# SR benchmark report: cpu")
    assert "## Pareto front per device and scale" in md and "## Failures and flagged measurements" in md
    front = [line for line in md.split("## All models")[0].splitlines() if line.startswith("| cpu ")]
    assert sorted(line.split(" | ")[3] for line in front) == sorted(FRONT)
    assert ("| eSR-MAX_s2_K3_C3 | eSR-MAX | – | Set5 + Set14 (mean) | 32.30 | +0.80 | 120.00 | 1.20 | yes | yes | 17.5 "
            "| – |") in md  # colour unknown (no input shape in this store), not tied
    assert "custom:mod:Cls&lt;x&gt;&amp;y" in md and "Cls<x>" not in md
    assert "| PSNR Set5 | PSNR Set14 |" in md


def test_formatting():
    assert fmt(31.2349, "psnr") == "31.23" and fmt(0.912345, "ssim") == "0.9123"
    assert fmt(1.23456e9, "gmacs") == "1.235" and fmt(2.5, "delta") == "+2.50"
    assert fmt(None, "ms") == fmt(float("nan"), "fps") == fmt("", "text") == "–"
    assert fmt(float("inf"), "psnr") == "inf" and fmt(12644, "int") == "12,644"
    assert fmt(True, "flag") == "yes" and fmt("baseline", "flag") == "baseline"


def test_embedded_is_labelled_and_never_averaged_with_standard_sets(tmp_path):
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cpu", "k")
    for model, fam, psnr, fps, watts in MODELS[:3]:
        store.add(run, "quality:embedded", _quality(model, fam, psnr + 10, "embedded"))
        store.add(run, "speed", _speed(model, fam, fps, watts))
    store.add(run, "quality:Set5", _quality("Bicubic_s2", "Bicubic", 33.0, "Set5"))
    store.add(run, "quality:Set5", _quality("eSR-TM_s2_K7_C4", "eSR-TM", 34.5, "Set5"))
    (group,) = pareto_groups(collect_entries(latest_rows(store, run)))
    assert group["basis"] == ["Set5"] and group["left_out"] == 1  # eSR-MAX has no Set5: off the front
    assert {r["model"]: r["psnr"] for r in group["rows"]} == {"Bicubic_s2": 33.0, "eSR-TM_s2_K7_C4": 34.5}
    assert next(r for r in group["rows"] if r["model"] == "Bicubic_s2")["beats_q"] == "baseline"
    html_path, md_path = write_report(store, tmp_path / "out", plots_dir=tmp_path / "plots")
    page = Tables(html_path.read_text())
    head = page.tables["models"]["head"]
    assert "PSNR embedded (not a standard set)" in head and head.index("PSNR Set5") < head.index(
        "PSNR embedded (not a standard set)")
    assert "not a standard test set" in html_path.read_text() and "not a standard test set" in md_path.read_text()


def test_routed_models_section(tmp_path):
    """ClassSR's routing (shares per branch, routed MACs, savings) gets its own table; none without it."""
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cpu", "k")
    routing = {"branches": ["FSRCNN_s4_D16_S12_M4", "FSRCNN_s4_D36_S12_M4", "FSRCNN_s4_D56_S12_M4"],
               "patches_per_image": 170, "shares": [0.5, 0.25, 0.25], "macs_routed_per_image": 2.1e9,
               "macs_saved_pct": 21.25, "macs_saved_pct_incl_classifier": -7.5}
    store.add(run, "quality:Set5", _quality("ClassSR-FSRCNN_s4", "ClassSR", 30.1, "Set5", scale=4))
    store.add(run, "speed", _speed("ClassSR-FSRCNN_s4", "ClassSR", 3.0, None, scale=4, routing=routing))
    html_path, _ = write_report(store, tmp_path / "out", plots_dir=tmp_path / "plots")
    (row,) = Tables(html_path.read_text()).records("routing")
    assert row["model"] == "ClassSR-FSRCNN_s4" and row["patches / frame"] == "170"
    assert row["share of patches per branch"] == ("FSRCNN_s4_D16_S12_M4: 50%, FSRCNN_s4_D36_S12_M4: 25%, "
                                                  "FSRCNN_s4_D56_S12_M4: 25%")
    assert row["MACs saved vs largest branch (%)"] == "21.25" and row["… with the classifier (%)"] == "-7.50"
    assert row["mean PSNR (dB)"] == "30.10" and row["FHD/s end to end"] == "3.00"


def test_no_routed_models_no_routing_section(report):
    assert 'id="routing"' not in report["html"].read_text()


def test_no_measurements_is_one_clear_error(tmp_path):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="no measurements"):
        write_report(ResultStore(tmp_path / "h.db"), tmp_path / "out")


# --------------------------------------------------------------------------- in a browser

def _find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium, installed here with apt-get when absent (skipped where that is impossible)."""
    path = _find_chromium()
    if path:
        return path
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

    def apt(*args):
        try:
            return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 1, "", "timed out")

    result = apt("install", "-y", "chromium")
    if result.returncode != 0:
        apt("update")
        result = apt("install", "-y", "chromium")
    path = _find_chromium()
    if result.returncode != 0 or path is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        pytest.skip(f"chromium could not be installed with apt-get (no network?): {' / '.join(tail)}")
    return path


def _browse(chromium, url, tmp, *flags):
    profile = tmp / "profile"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--window-size=1400,2000", *flags, url]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


SORT_PROBE = """<script>
(function(){
  document.querySelector('#models th[data-col="fhd_per_s"]').click();            /* ascending */
  var m = document.querySelector('#pareto th[data-col="model"]'); m.click(); m.click();  /* descending */
  window.addEventListener('load', function(){
    var ok = Array.prototype.filter.call(document.images, function(i){ return i.naturalWidth > 0; });
    document.body.setAttribute('data-images-loaded', ok.length);
  });
})();
</script></body>"""


def test_renders_in_chromium(report, chromium, tmp_path):
    html_path = report["html"]
    shot = tmp_path / "report.png"
    _browse(chromium, html_path.as_uri(), tmp_path, f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report.png")

    dom = Tables(_browse(chromium, html_path.as_uri(), tmp_path, "--dump-dom"))
    assert len(dom.tables["models"]["rows"]) == len(MODELS) + 2
    assert len(dom.tables["pareto"]["rows"]) == len(FRONT)
    assert len(dom.tables["problems"]["rows"]) == 3
    assert len(dom.imgs) == len(list(report["plots"].glob("*.png")))


def test_sorting_in_chromium(report, chromium, tmp_path):
    text = report["html"].read_text()
    head, sep, tail = text.rpartition("</body>")
    probe = tmp_path / "probe.html"
    probe.write_text(head + SORT_PROBE + tail)
    out = _browse(chromium, probe.as_uri(), tmp_path, "--dump-dom")
    dom = Tables(out)
    fps = [r["FHD/s"] for r in dom.records("models")]
    numbers = [float(v) for v in fps if v != "–"]
    assert numbers == sorted(numbers) and len(numbers) == len(MODELS) + 1  # numerically: 100 after 20
    assert fps[-1] == "–"  # the failed model (no speed) last
    assert [r["model"] for r in dom.records("pareto")] == sorted(FRONT, key=str.lower, reverse=True)
    assert 'aria-sort="descending"' in out
    assert f'data-images-loaded="{len(dom.imgs)}"' in out  # every embedded figure decoded
    assert dom.imgs


def test_a_run_on_another_host_is_said_first(tmp_path):
    """--device rpi measured on a desktop: the report's headline says so before anything else."""
    store = ResultStore(tmp_path / "h.db")
    why = "the rpi profile describes a Raspberry Pi, but this host is x86_64 (AMD EPYC)"
    run, _ = store.start_run("rpi", "k", environment={"machine": "x86_64", "not_the_device": why})
    store.add(run, "quality:Set5", _quality("Bicubic_s2", "Bicubic", 33.7, "Set5"))
    store.add(run, "speed", _speed("Bicubic_s2", "Bicubic", 80.0, None))
    html_path, md_path = write_report(store, tmp_path / "out", plots_dir=tmp_path / "plots")
    html = html_path.read_text()
    assert "NOT THE DEVICE" in html and why in html
    assert html.index("NOT THE DEVICE") < html.index("device(s)")
    assert "NOT THE DEVICE" in md_path.read_text()


def test_gpu_rows_show_the_gpu_time_and_the_time_with_copies(tmp_path, report):
    """A CUDA run's rows carry gpu_median_ms and e2e (as the runner stores them): the models table gains those two
    columns, with their values; a CPU-only report (the fixture's) has neither."""
    assert "GPU ms" not in Tables(report["html"].read_text()).tables["models"]["head"]
    store = ResultStore(tmp_path / "h.db")
    run, _ = store.start_run("cuda", "k")
    store.add(run, "quality:Set5", _quality("eSR-TM_s2_K7_C4", "eSR-TM", 34.5, "Set5", device="cuda"))
    store.add(run, "speed", _speed("eSR-TM_s2_K7_C4", "eSR-TM", 2985.0, 223.0, device="cuda", backend="torch",
                                   precision="fp16", gpu_median_ms=0.277, e2e={"median_ms": 1.68}))
    html_path, _ = write_report(store, tmp_path / "out", plots_dir=tmp_path / "plots")
    page = Tables(html_path.read_text())
    head = page.tables["models"]["head"]
    assert head.index("median ms") + 1 == head.index("GPU ms") and head.index("GPU ms") + 1 == head.index(
        "with copies ms")
    (row,) = page.records("models")
    assert (row["median ms"], row["GPU ms"], row["with copies ms"]) == ("0.34", "0.28", "1.68")
