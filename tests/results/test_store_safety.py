"""The results store and the output files never lose a measured row nor leave a half-written file:
damaged stores are one error line naming the file and the fix, `results check` and `results salvage`
work on a store with a damaged page, a refused row goes to the side file and comes back, WAL with
a checkpoint on close, two writers at once, and reports/figures written to a temp name and renamed."""
from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.results import store as store_mod
from harness.results.store import ResultStore, side_file
from harness.results.table import load_results

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
GARBAGE = b"\xde\xad\xbe\xef" * 1024


def _speed(i, status="ok", model=None, **extra):
    rec = {"model": model or f"eSR-MAX_s2_K3_C{i}", "scale": 2, "device": "cpu", "backend": "onnxruntime",
           "precision": "fp32", "weights": "shipped", "family": "eSR-MAX", "fhd_per_s": 10.0 + i,
           "median_ms": 100.0 / (10.0 + i), "status": status, "reason": "" if status == "ok" else "it broke",
           "pad": "x" * 700}  # two or three rows a page: a damaged page costs a few rows, not all
    rec.update(extra)
    return rec


def _filled(path, n=300):
    with ResultStore(path) as store:
        run, _ = store.start_run("cpu", "k", command="test")
        for i in range(n):
            store.add(run, "speed", _speed(i))
    return run


def _table(path, table="measurements"):
    db = sqlite3.connect(str(path))
    db.row_factory = sqlite3.Row
    try:
        return {r[0]: dict(r) for r in db.execute(f"SELECT rowid, * FROM {table}")}
    finally:
        db.close()


def _one_line(text):
    lines = [line for line in text.strip().splitlines() if line]
    assert len(lines) == 1, text
    return lines[0]


def _damage_a_table_page(src, dst):
    """Copy ``src`` to ``dst`` with one page of the measurements table (not page 1) overwritten with
    garbage: the first page from the middle on whose damage a full scan of the table fails."""
    data = src.read_bytes()
    page = int.from_bytes(data[16:18], "big")
    pages = len(data) // page
    for p in list(range(pages // 2, pages)) + list(range(1, pages // 2)):
        broken = bytearray(data)
        broken[p * page:(p + 1) * page] = GARBAGE[:page].ljust(page, b"\xde")
        dst.write_bytes(bytes(broken))
        db = sqlite3.connect(str(dst))
        try:
            db.execute("SELECT SUM(LENGTH(data)) FROM measurements NOT INDEXED").fetchone()
        except sqlite3.DatabaseError:
            return p
        finally:
            db.close()
    pytest.fail("no page of the measurements table found to damage")


def test_garbage_and_truncated_files_are_one_line_naming_the_file(tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_bytes(GARBAGE * 3)
    good = tmp_path / "good.db"
    _filled(good, 200)
    cut = tmp_path / "cut.db"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (junk, cut):
        for readonly in (False, True):
            with pytest.raises(HarnessError) as err:
                ResultStore(path, readonly=readonly)
            text = _one_line(str(err.value))
            assert text.startswith(f"{path}: not a readable results database (")
            assert f"results check {path}" in text and f"results salvage {path} --to NEW.db" in text
        with pytest.raises(HarnessError, match=str(path)):
            load_results(path)
        assert main(["report", "--db", str(path), "--out", str(tmp_path / "out")]) == 2
        err_line = _one_line(capsys.readouterr().err)
        assert err_line.startswith(f"error: {path}: not a readable results database")
        assert main(["results", "merge", str(path), "--db", str(tmp_path / "into.db")]) == 2
        assert _one_line(capsys.readouterr().err).startswith(f"error: {path}: not a readable results database")
    assert junk.read_bytes() == GARBAGE * 3  # opening never wrote to it
    assert not (tmp_path / "out").exists()


def test_check_and_salvage_a_store_with_a_damaged_page(tmp_path, capsys):
    good = tmp_path / "good.db"
    _filled(good, 300)
    assert main(["results", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: 1 runs, 300 measurements; integrity check: ok" in out and "verdict: healthy" in out

    bad = tmp_path / "bad.db"
    _damage_a_table_page(good, bad)
    before = bad.read_bytes()
    assert main(["results", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "verdict: damaged" in out and f"results salvage {bad} --to NEW.db" in out
    assert main(["results", "check", str(bad), "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert res["damaged"] and res["integrity"] != ["ok"] and res["runs"] == 1
    with pytest.raises(HarnessError, match=f"^{bad}: not a readable results database"):
        ResultStore(bad)  # a store for writing is checked at once: the damage is found before a sweep
    with pytest.raises(HarnessError, match=f"^{bad}: not a readable results database"):
        load_results(bad)  # a reader meets the damaged page: the same line

    new = tmp_path / "new.db"
    assert main(["results", "salvage", str(bad), "--to", str(new)]) == 0
    out = capsys.readouterr().out
    assert bad.read_bytes() == before  # the damaged store is only read
    original, recovered = _table(good), _table(new)
    assert 0 < len(recovered) < len(original)
    assert all(row == original[rowid] for rowid, row in recovered.items())  # each recovered row is the original
    assert f"1 runs and {len(recovered)} measurements recovered" in out
    assert f"lost: {len(original) - len(recovered)} of 300 measurements" in out or "lost: up to" in out
    assert _table(new, "runs") == _table(good, "runs")
    assert main(["results", "check", str(new)]) == 0
    capsys.readouterr()
    assert len(load_results(new)) == len(recovered)
    # never over an existing store
    assert main(["results", "salvage", str(bad), "--to", str(new)]) == 2
    assert "already exists" in _one_line(capsys.readouterr().err)
    assert len(_table(new)) == len(recovered)
    # a file that is no database at all: nothing readable, said, and an empty new store
    junk = tmp_path / "junk.db"
    junk.write_bytes(GARBAGE)
    assert main(["results", "salvage", str(junk), "--to", str(tmp_path / "j.db")]) == 0
    assert "nothing readable (file is not a database)" in capsys.readouterr().out
    assert _table(tmp_path / "j.db") == {}
    assert main(["results", "check", str(junk)]) == 1
    assert "unreadable (file is not a database)" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp store left


def test_a_store_in_a_read_only_folder_is_read_and_left_untouched(tmp_path, capsys):
    folder = tmp_path / "ro"
    db = folder / "harness.db"
    with ResultStore(db) as store:
        run, _ = store.start_run("cpu", "k")
        for i, (model, fam) in enumerate((("Bicubic_s2", "Bicubic"), ("eSR-MAX_s2_K3_C3", "eSR-MAX"))):
            store.add(run, "quality:Set5", {"model": model, "scale": 2, "device": "cpu", "backend": "torch",
                                            "precision": "fp32", "weights": "shipped", "family": fam, "psnr": 30.0 + i})
            store.add(run, "speed", _speed(i, model=model, family=fam))
    listing = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert set(listing) == {"harness.db"}  # closed: the WAL was checkpointed and removed
    os.chmod(db, 0o444)
    os.chmod(folder, 0o555)
    try:
        table = load_results(db)
        assert sorted(table["model"]) == ["Bicubic_s2", "eSR-MAX_s2_K3_C3"]
        assert main(["report", "--db", str(db), "--out", str(tmp_path / "out"), "--plots", str(tmp_path / "p")]) == 0
        assert (tmp_path / "out" / "report.html").is_file()
        assert main(["plot", "--db", str(db), "--out", str(tmp_path / "p2")]) == 0
        capsys.readouterr()
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == listing  # nothing written, nothing left
    finally:
        os.chmod(folder, 0o755)
        os.chmod(db, 0o644)


class _Full:
    """A connection whose writes fail as on a full disk (root ignores chmod, so this is the injection)."""

    def __init__(self, db):
        self._db = db

    def execute(self, sql, *args):
        if sql.split()[0].upper() in ("BEGIN", "INSERT", "DELETE"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_refused_row_goes_to_the_side_file_and_comes_back(tmp_path, capsys, monkeypatch):
    db = tmp_path / "harness.db"
    store = ResultStore(db)
    run, _ = store.start_run("cpu", "k")
    store.add(run, "speed", _speed(0))
    monkeypatch.setattr(store, "db", _Full(store.db))
    for i in (1, 2, 3):
        store.add(run, "speed", _speed(i))  # returns: the sweep goes on
    warning = _one_line(capsys.readouterr().err)  # one warning for three refused rows
    side = side_file(db)
    assert side.name == "harness.db.unsaved.jsonl"
    assert warning.startswith(f"warning: {db}: could not store a measurement (database or disk is full: free space")
    assert f"kept in {side}" in warning and f"results merge {side} --db {db}" in warning
    lines = [json.loads(line) for line in side.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["run", "measurement", "measurement", "measurement"]
    assert lines[0]["run"]["run_id"] == run and lines[2]["row"]["model"] == "eSR-MAX_s2_K3_C2"
    monkeypatch.undo()
    store.close()
    assert "3 measurements in all" in capsys.readouterr().err
    assert len(_table(db)) == 1

    assert main(["results", "check", str(db)]) == 1  # sound, but rows wait outside it
    assert "3 measured rows are only in the side file" in capsys.readouterr().out
    new = tmp_path / "new.db"
    assert main(["results", "salvage", str(db), "--to", str(new)]) == 0  # salvage takes them in
    assert "side files: 3 rows, 3 added" in capsys.readouterr().out
    assert len(_table(new)) == 4
    assert main(["results", "merge", str(side), "--db", str(db)]) == 0  # and so does merge
    assert capsys.readouterr().out.strip() == f"{side}: 3 rows added, 0 already present"
    rows = _table(db)
    assert sorted(r["model"] for r in rows.values()) == [f"eSR-MAX_s2_K3_C{i}" for i in range(4)]
    assert {r["fhd_per_s"] for r in rows.values()} == {10.0, 11.0, 12.0, 13.0}
    assert main(["results", "merge", str(side), "--db", str(db)]) == 0  # twice: nothing doubled
    assert "0 rows added, 3 already present" in capsys.readouterr().out
    assert main(["results", "check", str(db)]) == 0
    assert "verdict: healthy (the side file's rows are all in the store" in capsys.readouterr().out


def test_when_the_side_file_fails_too_the_temp_folder_then_stderr(tmp_path, capsys, monkeypatch):
    db = tmp_path / "harness.db"
    store = ResultStore(db)
    run, _ = store.start_run("cpu", "k")
    side_file(db).mkdir()  # the side file cannot be written (a folder in its way)
    fallback = tmp_path / "tmp" / "fallback.unsaved.jsonl"
    fallback.parent.mkdir()
    monkeypatch.setattr(store_mod, "temp_side_file", lambda path: fallback)
    monkeypatch.setattr(store, "db", _Full(store.db))
    store.add(run, "speed", _speed(1))
    assert f"kept in {fallback}" in _one_line(capsys.readouterr().err)
    assert [json.loads(x)["kind"] for x in fallback.read_text().splitlines()] == ["run", "measurement"]
    monkeypatch.setattr(store_mod, "temp_side_file", lambda path: tmp_path / "no" / "such" / "dir.jsonl")
    store.add(run, "speed", _speed(2))
    err = capsys.readouterr().err.strip().splitlines()
    assert json.loads(err[0])["row"]["model"] == "eSR-MAX_s2_K3_C2"  # the row itself, as a JSON line
    assert err[1].startswith(f"warning: {db}: could not store a measurement") and "stderr" in err[1]


def test_a_failed_row_is_replaced_and_an_ok_row_stays(tmp_path):
    with ResultStore(tmp_path / "h.db") as store:
        run, _ = store.start_run("cpu", "k")
        store.add(run, "speed", _speed(1, status="failed"))
        store.add(run, "speed", _speed(2, status="flagged", model="eSR-TM_s2_K7_C4"))
        key = ("cpu", "onnxruntime", "fp32", "eSR-MAX_s2_K3_C1", 2, "speed", "shipped")
        assert key in store.done_keys(run) and key not in store.done_keys(run, include_failed=False)
        store.add(run, "speed", _speed(1, fhd_per_s=42.0))  # the retry on --resume replaces the failure
        assert key in store.done_keys(run, include_failed=False)
        store.add(run, "speed", _speed(1, status="failed", fhd_per_s=1.0))  # a later failure does not
        store.add(run, "speed", _speed(2, model="eSR-TM_s2_K7_C4", fhd_per_s=99.0))  # nor an ok over a flagged
        rows = {r["model"]: r for r in store.rows()}
        assert len(store.rows()) == 2
        assert (rows["eSR-MAX_s2_K3_C1"]["status"], rows["eSR-MAX_s2_K3_C1"]["fhd_per_s"]) == ("ok", 42.0)
        assert (rows["eSR-TM_s2_K7_C4"]["status"], rows["eSR-TM_s2_K7_C4"]["fhd_per_s"]) == ("flagged", 12.0)


def test_wal_and_a_checkpoint_on_close_a_copied_db_holds_every_row(tmp_path):
    db = tmp_path / "a" / "harness.db"
    writer = ResultStore(db)
    assert writer.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader = ResultStore(db, readonly=True)  # another connection open: closing the writer is not the last close
    run, _ = writer.start_run("cpu", "k")
    for i in range(50):
        writer.add(run, "speed", _speed(i))
    assert Path(f"{db}-wal").stat().st_size > 0  # the rows are in the log so far
    assert len(reader.rows()) == 50  # a reader sees them while the writer works
    writer.close()
    copy = tmp_path / "b" / "harness.db"
    copy.parent.mkdir()
    shutil.copy(db, copy)  # the .db alone, not its -wal
    assert len(_table(copy)) == 50
    reader.close()


WRITER = """
import sys
from harness.results.store import ResultStore
with ResultStore(sys.argv[1]) as store:
    run, _ = store.start_run("cpu", sys.argv[2])
    for i in range(200):
        store.add(run, "speed", {"model": f"{sys.argv[2]}-{i}", "scale": 2, "device": "cpu", "fhd_per_s": float(i)})
"""


def test_two_processes_write_at_once_and_both_keep_every_row(tmp_path):
    db = tmp_path / "harness.db"
    ResultStore(db).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), name], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and err == "", err
    rows = _table(db)
    assert len(rows) == 400 and {r["model"].split("-")[0] for r in rows.values()} == {"a", "b"}
    assert len(_table(db, "runs")) == 2
    assert not side_file(db).exists()


def _fail_fsync(code):
    def fsync(fd):
        raise OSError(code, os.strerror(code))
    return fsync


def test_the_report_is_written_to_a_temp_name_and_renamed(tmp_path, monkeypatch):
    from harness.results import files
    from harness.results.report import write_report

    db = tmp_path / "h.db"
    _filled(db, 3)
    out = tmp_path / "out"
    with ResultStore(db, readonly=True) as store:
        html, md = write_report(store, out, figures=[])
        before = html.read_bytes(), md.read_bytes()
        assert oct(html.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's private 0600
        for code, fix in ((errno.ENOSPC, f"free space on the disk holding {out}"), (errno.EACCES, f"make {out} writable")):
            monkeypatch.setattr(files.os, "fsync", _fail_fsync(code))
            with pytest.raises(HarnessError) as err:
                write_report(store, out, figures=[])
            text = _one_line(str(err.value))
            assert text.startswith(f"{html}: cannot write ({os.strerror(code)}); {fix}") and "--out DIR" in text
            monkeypatch.undo()
            assert (html.read_bytes(), md.read_bytes()) == before  # the previous report, whole
            assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]  # no temp file left


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_figure_is_written_to_a_temp_name_and_renamed(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.results.plots import save_figure

    stem = tmp_path / "plots" / "tradeoff_x2"
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    files = save_figure(fig, stem)
    assert [f.name for f in files] == ["tradeoff_x2.png", "tradeoff_x2.svg"]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in files[1].read_bytes()
    before = [f.read_bytes() for f in files]

    def half_then_full(path, **kwargs):  # a disk that fills up in the middle of the file
        assert Path(path).name.startswith(".tradeoff_x2.") and Path(path).suffix == "." + kwargs["format"]
        Path(path).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    fig, _ = plt.subplots()
    monkeypatch.setattr(fig, "savefig", half_then_full)
    with pytest.raises(HarnessError) as err:
        save_figure(fig, stem)
    text = _one_line(str(err.value))
    assert text.startswith(f"{files[0]}: cannot write (No space left on device); free space on the disk holding")
    assert "--plots DIR" in text
    assert [f.read_bytes() for f in files] == before
    assert sorted(p.name for p in stem.parent.iterdir()) == ["tradeoff_x2.png", "tradeoff_x2.svg"]
    assert not plt.fignum_exists(fig.number)  # closed all the same
