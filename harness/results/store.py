"""Results store: SQLite (``results/harness.db``), one row per measurement, committed at once.

A row is one (run, device, backend, precision, model, scale, measurement, weights) with the
headline figures in columns (for SQL and plots) and the full record as JSON. Each row is
committed as soon as it is measured, so a killed sweep keeps everything measured so far;
``--resume`` reopens the newest run with the same configuration and skips what it holds (a
failed row is measured again and replaced). Stores from several devices merge without
duplicates (the same unique key).

The store runs in WAL mode with a busy timeout, so two writers wait for each other instead of
failing, and :meth:`ResultStore.close` checkpoints the log into the file (a copied ``harness.db``
holds every row). A measured row is never lost: a row the store refuses (a full disk, a
read-only or damaged file) goes to the side file ``<db>.unsaved.jsonl`` with one warning, and
``results merge`` or ``results salvage`` (:mod:`harness.results.repair`) brings it back. Every
storage error is one :class:`~harness.errors.HarnessError` line naming the file and the fix.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import sqlite3
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from ..errors import HarnessError, first_line
from ..numeric import json_safe, number_or_none

COLUMNS = ("median_ms", "p90_ms", "p99_ms", "fhd_per_s", "cov", "cpu_util_pct", "mean_w", "mj_per_frame",
           "psnr", "ssim", "psnr_vs_reference", "peak_rss_mb")
KEY = ("run_id", "device", "backend", "precision", "model", "scale", "measurement", "weights")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    device TEXT NOT NULL,
    config_key TEXT NOT NULL,
    command TEXT,
    profile TEXT,
    environment TEXT
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    device TEXT NOT NULL,
    backend TEXT NOT NULL,
    precision TEXT NOT NULL,
    model TEXT NOT NULL,
    scale INTEGER NOT NULL,
    measurement TEXT NOT NULL,
    weights TEXT NOT NULL,
    family TEXT,
    form TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    created REAL NOT NULL,
    {", ".join(f"{c} REAL" for c in COLUMNS)},
    data TEXT,
    UNIQUE ({", ".join(KEY)})
);
CREATE INDEX IF NOT EXISTS measurements_model ON measurements(model, scale);
"""


RUN_COLUMNS = ("run_id", "started", "device", "config_key", "command", "profile", "environment")
ROW_COLUMNS = KEY + ("family", "form", "status", "reason", "created") + COLUMNS + ("data",)
DONE = ("ok", "flagged")  # a row with another status (failed) is measured again on --resume, and replaced
SIDE_SUFFIX = ".unsaved.jsonl"
BUSY_TIMEOUT_S = 30.0  # a second writer waits this long for the first, then the row goes to the side file


def json_text(obj) -> str:
    """The JSON text of a record: NaN as null, infinities as "inf"/"-inf" (an exact PSNR stays readable)."""
    return json.dumps(json_safe(obj, inf_as_text=True))


def _q(path) -> str:
    return shlex.quote(str(path))


def side_file(path) -> Path:
    """Where the rows a store refuses are kept: ``<db>.unsaved.jsonl`` beside it."""
    return Path(str(path) + SIDE_SUFFIX)


def temp_side_file(path) -> Path:
    """The side file's fallback when the store's folder cannot take it: one per store in the temp folder."""
    digest = hashlib.sha1(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"harness-{digest}-{Path(path).name}{SIDE_SUFFIX}"


def side_files(path) -> List[Path]:
    """The side files of the store at ``path`` that exist (beside it, then in the temp folder)."""
    return [f for f in (side_file(path), temp_side_file(path)) if f.is_file()]


def is_damaged(exc: BaseException) -> bool:
    """Whether an sqlite error means the file itself is not a readable database."""
    text = str(exc).lower()
    return any(k in text for k in ("not a database", "malformed", "disk i/o", "corrupt", "integrity check"))


def _fix(path: Path, exc: BaseException) -> str:
    """The fix for an sqlite error on the store ``path`` (without the store's name)."""
    text = str(exc).lower()
    folder = path.parent if str(path.parent) else Path(".")
    if is_damaged(exc):
        return (f"check it with `python -m harness results check {_q(path)}`, salvage its readable rows with "
                f"`python -m harness results salvage {_q(path)} --to NEW.db`, or move it aside")
    if "full" in text:
        return f"free space on the disk holding {folder} (df -h {_q(folder)})"
    if "readonly" in text or "read-only" in text or "permission" in text:
        return f"make {path} and its folder writable, or give another store (--db FILE, run-all --out DIR)"
    if "locked" in text or "busy" in text:
        return (f"another process held it for over {BUSY_TIMEOUT_S:.0f} s: wait for that run to finish, "
                f"or give another store (--db FILE, run-all --out DIR)")
    if "unable to open" in text:
        return f"check that {folder} exists and is readable and writable"
    return f"check it with `python -m harness results check {_q(path)}`"


def storage_error(path, exc: BaseException) -> HarnessError:
    """One line for an sqlite error on the store ``path``: what happened and the fix."""
    path = Path(path)
    what = "not a readable results database" if is_damaged(exc) else "results database error"
    return HarnessError(f"{path}: {what} ({first_line(exc)}); {_fix(path, exc)}")


def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, uri=uri)
    db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return db


def open_readonly(path, cautious: bool = False) -> sqlite3.Connection:
    """A connection that never writes to the store ``path``, which may sit in a read-only folder.

    Where the file and its folder are writable it is an ordinary connection in ``query_only`` mode
    (its WAL files go away when it closes); else, and always with ``cautious`` (a store that may be
    damaged: check, salvage), SQLite's read-only mode, and where a WAL store's shared-memory file
    cannot be made there (a read-only folder), the file read as immutable."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no results database; run ./run_all.sh or python -m harness bench first")
    folder = path.parent if str(path.parent) else Path(".")
    if not cautious and os.access(str(path), os.W_OK) and os.access(str(folder), os.W_OK):
        db = _connect(str(path))
        db.execute("PRAGMA query_only = 1")
        return db
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    db = _connect(uri + "?mode=ro", uri=True)
    try:
        db.execute("SELECT name FROM sqlite_master").fetchall()
        return db
    except sqlite3.OperationalError as exc:
        db.close()
        if not any(k in str(exc).lower() for k in ("readonly", "read-only", "unable to open")):
            raise
    wal = Path(str(path) + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        print(f"warning: {path}: read without {wal.name} (its folder is read-only): rows written since the "
              f"store's last checkpoint are not shown; open it once where its folder is writable", file=sys.stderr)
    return _connect(uri + "?mode=ro&immutable=1", uri=True)


def read_side_file(path) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], int]:
    """(runs, measurement rows, unreadable lines) of a side file (``.unsaved.jsonl``)."""
    runs: List[Dict[str, Any]] = []
    rows: List[Dict[str, Any]] = []
    bad = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read ({exc.strerror or type(exc).__name__}); check its permissions") from None
    for line in lines:
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if item.get("kind") == "run" and isinstance(item.get("run"), dict) and item["run"].get("run_id"):
                runs.append({k: item["run"].get(k) for k in RUN_COLUMNS})
                continue
            row = item["row"] if item.get("kind") == "measurement" else None
            if isinstance(row, dict) and all(row.get(k) is not None for k in KEY + ("status", "created")):
                rows.append({k: row.get(k) for k in ROW_COLUMNS})
                continue
        except (ValueError, TypeError, AttributeError, KeyError):
            pass
        bad += 1  # a line cut short by a full disk, or not ours
    return runs, rows, bad


class ResultStore:
    """The results store at ``path``; ``readonly``: only read (no schema made, nothing written; a
    read-only folder is fine). A context manager: :meth:`close` checkpoints and closes."""

    def __init__(self, path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.unsaved = 0  # rows this store refused, kept aside
        self._closed = False
        self._aside_to: Optional[str] = None  # where the last refused row went (warned once per place)
        self._runs: Dict[str, Dict[str, Any]] = {}  # run rows seen, for the side file
        self._runs_aside: Set[Tuple[str, str]] = set()
        if not readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HarnessError(f"{self.path}: cannot make its folder ({exc.strerror or type(exc).__name__}); "
                                   f"give a store in a writable folder (--db FILE, run-all --out DIR)") from None
        try:
            self.db = open_readonly(self.path) if readonly else _connect(str(self.path))
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from None
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("SELECT name FROM sqlite_master").fetchall()  # not a database, truncated: said here
            if readonly:
                tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"runs", "measurements"} <= tables:
                    raise HarnessError(f"{self.path}: not a results database (no measurements table); give the "
                                       f"harness.db that run-all or bench wrote")
            else:
                found = str(self.db.execute("PRAGMA quick_check(1)").fetchone()[0])
                if found != "ok":  # a damaged page: found before a sweep (and before anything is written)
                    found = " ".join(found.replace("*** in database main ***", "").split())[:200]
                    raise sqlite3.DatabaseError(f"integrity check: {found}")
                self._wal()
                self.db.executescript(_SCHEMA)
                self.db.commit()
        except sqlite3.Error as exc:
            self.db.close()
            raise storage_error(self.path, exc) from None
        except HarnessError:
            self.db.close()
            raise

    def _wal(self) -> None:
        """WAL mode: readers never block the writer, and a second writer waits (busy timeout)."""
        try:
            self.db.execute("PRAGMA journal_mode = WAL").fetchall()
        except sqlite3.OperationalError as exc:  # another process holds it: its mode stays, the store works
            if not any(k in str(exc).lower() for k in ("locked", "busy")):
                raise

    def close(self) -> None:
        """Checkpoint the WAL into the file (a copy of ``harness.db`` alone holds every row) and close."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.readonly:
                self.db.execute("PRAGMA busy_timeout = 5000")
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            pass  # another connection keeps the log; the last one to close checkpoints it
        finally:
            self.db.close()
        if self.unsaved > 1:
            print(f"warning: {self.path}: {self.unsaved} measurements in all were kept outside the store "
                  f"(see the warning above)", file=sys.stderr)

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """sqlite errors while reading: one line naming the store and the fix."""
        try:
            yield
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from None

    # ---- runs
    def start_run(self, device: str, config_key: str, command: str = "", profile: Optional[Dict] = None,
                  environment: Optional[Dict] = None, resume: bool = False) -> Tuple[str, bool]:
        """(run id, resumed?) — with ``resume``, the newest run of the same configuration."""
        with self._reading():
            if resume:
                row = self.db.execute("SELECT * FROM runs WHERE config_key = ? ORDER BY started DESC LIMIT 1",
                                      (config_key,)).fetchone()
                if row:
                    self._runs[row["run_id"]] = {k: row[k] for k in RUN_COLUMNS}
                    return row["run_id"], True
            run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
            values = (run_id, time.time(), device, config_key, command, json_text(profile or {}), json_text(environment or {}))
            try:
                self.db.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)", values)
                self.db.commit()
            except sqlite3.Error:
                self.db.rollback()
                raise
        self._runs[run_id] = dict(zip(RUN_COLUMNS, values))
        return run_id, False

    # ---- measurements
    def done_keys(self, run_id: str, include_failed: bool = True) -> Set[Tuple]:
        """The (device, backend, precision, model, scale, measurement, weights) the run holds; without
        ``include_failed``, only those measured successfully (ok or flagged): a failed one is to be redone."""
        sql = "SELECT device, backend, precision, model, scale, measurement, weights FROM measurements WHERE run_id = ?"
        if not include_failed:
            sql += f" AND status IN ({', '.join('?' * len(DONE))})"
        with self._reading():
            rows = self.db.execute(sql, (run_id,) + (() if include_failed else DONE)).fetchall()
        return {tuple(r) for r in rows}

    def add(self, run_id: str, measurement: str, record: Dict) -> None:
        """Store one measurement and commit it now. A row of the same key that is ok or flagged stays
        (a resumed run never duplicates); one that failed is replaced. Never raises for the store: a
        row it refuses (full disk, read-only, damaged) goes to the side file, with one warning."""
        values: Dict[str, Any] = {
            "run_id": run_id, "device": record["device"], "backend": record.get("backend", ""),
            "precision": record.get("precision", ""), "model": record["model"], "scale": int(record["scale"]),
            "measurement": measurement, "weights": record.get("weights", "none"), "family": record.get("family"),
            "form": record.get("form"), "status": record.get("status", "ok"), "reason": record.get("reason", ""),
            "created": time.time(),
        }
        for c in COLUMNS:
            values[c] = number_or_none(record.get(c))
        values["data"] = json_text(record)
        try:
            if not self.db.in_transaction:
                self.db.execute("BEGIN IMMEDIATE")  # the write lock now: a second writer waits here
            self._put(values)
            self.db.commit()
        except sqlite3.Error as exc:
            try:
                self.db.rollback()
            except sqlite3.Error:
                pass
            self._keep_aside(values, exc)

    def _put(self, values: Dict[str, Any], only_if_better: bool = False) -> bool:
        """Insert one row inside the caller's transaction; True if it was added. A row of the same key
        that is not ok/flagged is replaced (with ``only_if_better``: only by an ok/flagged one)."""
        if not only_if_better or values.get("status") in DONE:
            self.db.execute(f"DELETE FROM measurements WHERE {' AND '.join(f'{k} = ?' for k in KEY)} "
                            f"AND status NOT IN ({', '.join('?' * len(DONE))})",
                            tuple(values[k] for k in KEY) + DONE)
        cur = self.db.execute(f"INSERT OR IGNORE INTO measurements ({', '.join(values)}) "
                              f"VALUES ({', '.join('?' * len(values))})", tuple(values.values()))
        return cur.rowcount == 1

    def _run_row(self, run_id: str) -> Optional[Dict[str, Any]]:
        if run_id not in self._runs:
            try:
                row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            except sqlite3.Error:
                row = None
            if row is None:
                return None
            self._runs[run_id] = {k: row[k] for k in RUN_COLUMNS}
        return self._runs[run_id]

    def _keep_aside(self, values: Dict[str, Any], exc: BaseException) -> None:
        """Append a refused row (with its run, the first time) to the side file, fsync'd; else to one in
        the temp folder; else print it on stderr. One warning per place, naming it and the way back."""
        run_id = values["run_id"]
        row_line = json.dumps({"kind": "measurement", "row": values, "error": first_line(exc)}, default=str)
        target: Optional[Path] = None
        for place in (side_file(self.path), temp_side_file(self.path)):
            lines = [row_line]
            run = self._run_row(run_id) if (str(place), run_id) not in self._runs_aside else None
            if run is not None:
                lines.insert(0, json.dumps({"kind": "run", "run": run}, default=str))
            if _append_lines(place, lines):
                target = place
                self._runs_aside.add((str(place), run_id))
                break
        if target is None:
            print(row_line, file=sys.stderr)
        self.unsaved += 1
        where = str(target) if target is not None else "stderr"
        if where != self._aside_to:
            self._aside_to = where
            print(self._aside_warning(exc, target), file=sys.stderr)

    def _aside_warning(self, exc: BaseException, target: Optional[Path]) -> str:
        db = _q(self.path)
        why = f"{first_line(exc)}: {_fix(self.path, exc)}"
        if target is None:
            return (f"warning: {self.path}: could not store a measurement ({why}), nor write it to a file: it and "
                    f"any later one are printed on stderr as JSON lines; save those lines in a .jsonl file and "
                    f"bring them back with `python -m harness results merge FILE.jsonl --db {db}`")
        if is_damaged(exc):
            back = f"`python -m harness results salvage {db} --to NEW.db` takes them in with the store's readable rows"
        else:
            back = f"bring them back with `python -m harness results merge {_q(target)} --db {db}` once that is fixed"
        return (f"warning: {self.path}: could not store a measurement ({why}); it is kept in {target}, as is any "
                f"later one the store refuses: {back}")

    def rows(self, where: str = "", params: Iterable = ()) -> List[sqlite3.Row]:
        sql = "SELECT * FROM measurements" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        with self._reading():
            return list(self.db.execute(sql, tuple(params)))

    def runs(self) -> List[Dict]:
        """Every run of the store (id, start time, device, configuration key, command, profile and
        environment as JSON text), oldest first."""
        with self._reading():
            return [dict(r) for r in self.db.execute("SELECT * FROM runs ORDER BY started")]

    def emulated_runs(self) -> Dict[str, str]:
        """run id -> why its environment was emulated (qemu-user...), for the runs that were."""
        out = {}
        with self._reading():
            found = self.db.execute("SELECT run_id, environment FROM runs").fetchall()
        for r in found:
            try:
                reason = (json.loads(r["environment"] or "{}") or {}).get("emulated")
            except (TypeError, ValueError, AttributeError):
                reason = None
            if reason:
                out[r["run_id"]] = str(reason)
        return out

    def export_csv(self, path, where: str = "", params: Iterable = ()) -> Path:
        """The measurements as CSV (without the JSON record), plus ``emulated``: why the run's
        timings are meaningless (an emulator), empty for a real device. Written to a temp name and renamed."""
        import csv

        from .files import write_atomic

        rows = self.rows(where, params)
        emulated = self.emulated_runs()
        with self._reading():
            names = [d[0] for d in self.db.execute("SELECT * FROM measurements LIMIT 0").description if d[0] != "data"]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(names + ["emulated"])
                for r in rows:
                    writer.writerow([r[n] for n in names] + [emulated.get(r["run_id"], "")])

        return write_atomic(path, write, elsewhere="give another --db folder")

    def merge(self, other_path) -> Tuple[int, int]:
        """Copy runs and measurements of another store in, or the rows of a side file (``.jsonl``);
        (rows added, rows already present). A failed row here is replaced by an ok/flagged one."""
        other_path = Path(other_path)
        if other_path.name.endswith(".jsonl"):
            runs, rows, _ = read_side_file(other_path)
            return self._take(runs, rows)
        try:
            other = open_readonly(other_path)
        except sqlite3.Error as exc:
            raise storage_error(other_path, exc) from None
        try:
            other.row_factory = sqlite3.Row
            runs = [{k: r[k] for k in RUN_COLUMNS if k in r.keys()} for r in other.execute("SELECT * FROM runs")]
            rows = [{k: r[k] for k in ROW_COLUMNS if k in r.keys()}  # an older store may lack a column
                    for r in other.execute("SELECT * FROM measurements ORDER BY id")]
        except sqlite3.Error as exc:
            raise storage_error(other_path, exc) from None
        finally:
            other.close()
        return self._take(runs, rows)

    def _take(self, runs: List[Dict[str, Any]], rows: List[Dict[str, Any]]) -> Tuple[int, int]:
        """Runs and rows from elsewhere, in one transaction; (rows added, rows already present)."""
        added = 0
        try:
            if not self.db.in_transaction:
                self.db.execute("BEGIN IMMEDIATE")
            for run in runs:
                self.db.execute(f"INSERT OR IGNORE INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                                tuple(run.values()))
            for row in rows:
                added += self._put(row, only_if_better=True)
            self.db.commit()
        except sqlite3.Error as exc:
            try:
                self.db.rollback()
            except sqlite3.Error:
                pass
            raise storage_error(self.path, exc) from None
        return added, len(rows) - added


def _append_lines(path: Path, lines: List[str]) -> bool:
    """Append whole lines to ``path`` and fsync; False (and the file as it was) if that failed."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    try:
        with open(path, "ab+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":  # a line cut short by an earlier failure: start a new one
                    data = b"\n" + data
            try:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:
                fh.truncate(size)
                raise
        return True
    except OSError:
        return False
