"""``zoo import-esr`` with the authors' table and ``python -m harness paper`` as users call them (in-process)."""
from __future__ import annotations

import pickle
import sys
import zipfile
from pathlib import Path

from harness.cli import main
from harness.results.store import ResultStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "results"))
from test_paper import TINY, _own, tiny_table, write_table  # noqa: E402  (the hand-made table, shared)


def test_import_the_table_then_draw_the_paper_with_your_device(tmp_path, capsys):
    repo = tmp_path / "eSR"
    write_table(repo / "data" / "tests.pkl")
    out, plots = tmp_path / "results", tmp_path / "plots"
    assert main(["zoo", "import-esr", str(repo), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "5 models" in captured.out and "paper-agx" in captured.out and "NOT the published table" in captured.out
    assert captured.err.count("warning:") == 1 and "SHA-256" in captured.err
    with ResultStore(out / "harness.db") as store:  # your device: the same models, reversed order on the Pi
        run, _ = store.start_run("cpu", "k")
        for i, model in enumerate(sorted(TINY, key=lambda m: TINY[m][5])):
            _own(store, run, model, 100.0 - 10 * i, TINY[model][0] - 0.1)
    assert main(["paper", "--out", str(out), "--plots", str(plots), "--scale", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for name in ("paper_agx_x2_Set14.png", "paper_maxq_x2_Set14.svg", "paper_rpi_x2_Set14.png",
                 "paper_power_agx_x2.png", "paper_power_maxq_x2.png"):
        assert (plots / name).is_file() and str(plots / name) in printed
    assert not (plots / "paper_power_rpi_x2.png").exists()  # the paper published no power for the Pi
    verdicts = [line for line in printed if "vs paper" in line]
    assert len(verdicts) == 1 and "Raspberry Pi 400" in verdicts[0] and "rho = -1.00" in verdicts[0]
    assert "PSNR yours minus paper's on Set14: -0.10 dB" in verdicts[0]


def test_paper_without_an_imported_table_names_the_fix(tmp_path, capsys):
    assert main(["paper", "--out", str(tmp_path / "none"), "--plots", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "python -m harness zoo import-esr PATH" in err[0]
    with ResultStore(tmp_path / "own" / "harness.db"):  # a store without the table: the same one line
        pass
    assert main(["paper", "--out", str(tmp_path / "own"), "--plots", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no eSR paper table" in err[0] and "zoo import-esr" in err[0]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_import_of_a_malicious_table_is_one_line_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "ran"
    bad = tmp_path / "tests.pkl"
    bad.write_bytes(pickle.dumps({"Bicubic_s2": {"speed_AGX": _Evil(marker)}}))
    assert main(["zoo", "import-esr", str(bad), "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "refuses" in err[0]
    assert not marker.exists()


def test_import_from_the_repository_zip_and_a_second_time(tmp_path, capsys):
    archive = tmp_path / "eSR-main.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("eSR-main/data/tests.pkl", pickle.dumps(tiny_table()))
        zf.writestr("eSR-main/README.md", "edge-SR")
    out = tmp_path / "results"
    assert main(["zoo", "import-esr", str(archive), "--out", str(out)]) == 0
    assert main(["zoo", "import-esr", str(archive), "--out", str(out)]) == 0
    assert "replaced 90 rows" in capsys.readouterr().out
    with ResultStore(out / "harness.db", readonly=True) as store:
        assert len(store.rows()) == 90


def test_a_folder_with_neither_weights_nor_table_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["zoo", "import-esr", str(tmp_path / "empty"), "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither eSR .model files nor data/tests.pkl" in err[0]
