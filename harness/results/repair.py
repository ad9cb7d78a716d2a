"""Checking a results store and salvaging the readable rows of a damaged one.

:func:`check_store` (``python -m harness results check DB``) runs SQLite's integrity check, counts
the runs and measurements it can read and the rows waiting in its side file (``<db>.unsaved.jsonl``,
the rows the store refused). :func:`salvage` (``python -m harness results salvage DB --to NEW``)
copies every run and measurement it can still read into a new store, by rowid in small chunks and
row by row where a chunk fails, so a damaged page costs only the rows on it, and takes in the
side file's rows. Both open the store read-only: the damaged file is never written.
"""
from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import HarnessError, first_line
from .store import DONE, KEY, ROW_COLUMNS, RUN_COLUMNS, ResultStore, open_readonly, read_side_file, side_files

CHUNK = 64  # rows read at once; a chunk that fails is read again row by row
MAX_EMPTY_CHUNKS = 64  # where the last rowid is unreadable: this many empty chunks in a row end the scan


def check_store(path) -> Dict[str, Any]:
    """The health of the store at ``path`` (never written): ``integrity`` (SQLite's integrity_check
    lines, ``["ok"]`` when sound), ``runs``/``measurements`` (the counts read, None where unreadable),
    ``error`` (why it could not be read at all), ``side_files`` with ``unsaved`` (their rows) and
    ``unsaved_missing`` (those the store lacks), ``damaged`` and ``ok`` (sound and nothing waiting)."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: no such file; give the store to check, e.g. results/harness.db")
    out: Dict[str, Any] = {"path": str(path), "error": None, "integrity": [], "runs": None, "measurements": None,
                           "side_files": [], "unsaved": 0, "unsaved_unreadable": 0, "unsaved_missing": None}
    status: Optional[Dict[Tuple, str]] = None
    db = None
    try:
        db = open_readonly(path, cautious=True)
        db.execute("SELECT name FROM sqlite_master").fetchall()
        for pragma in ("integrity_check(20)", "quick_check(20)", "quick_check(1)"):  # the first that answers
            try:
                found = [str(r[0]) for r in db.execute(f"PRAGMA {pragma}")]
            except sqlite3.DatabaseError as exc:
                out["integrity"] = [first_line(exc)]
                continue
            lines = [" ".join(line.split()) for row in found for line in row.splitlines()]
            out["integrity"] = [line for line in lines if line and line != "*** in database main ***"] or found
            break
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"runs", "measurements"} <= tables:
            out["error"] = "not a results database (no runs or measurements table)"
        else:
            for table in ("runs", "measurements"):
                try:  # NOT INDEXED: the table's own pages, not an index's count
                    out[table] = db.execute(f"SELECT COUNT(*) FROM {table} NOT INDEXED").fetchone()[0]
                except sqlite3.DatabaseError:
                    out[table] = None
            try:
                status = {tuple(r[:-1]): r[-1] for r in
                          db.execute(f"SELECT {', '.join(KEY)}, status FROM measurements NOT INDEXED")}
            except sqlite3.DatabaseError:
                status = None
    except sqlite3.Error as exc:
        out["error"] = first_line(exc)
    finally:
        if db is not None:
            db.close()
    missing = 0
    for f in side_files(path):
        _, rows, bad = read_side_file(f)
        out["side_files"].append(str(f))
        out["unsaved"] += len(rows)
        out["unsaved_unreadable"] += bad
        if status is not None:
            missing += sum(1 for r in rows if status.get(tuple(r[k] for k in KEY)) not in DONE and
                           (tuple(r[k] for k in KEY) not in status or r["status"] in DONE))
    out["unsaved_missing"] = missing if status is not None else (out["unsaved"] or None)
    out["damaged"] = bool(out["error"]) or out["integrity"] != ["ok"] or out["runs"] is None or \
        out["measurements"] is None
    out["ok"] = not out["damaged"] and not out["unsaved_missing"]
    return out


def _read_table(db: sqlite3.Connection, table: str) -> Tuple[List[Dict[str, Any]], List[int], Optional[int]]:
    """(rows read, rowids that could not be read, the table's row count where an index still gives it)
    of one table, by rowid: chunks of :data:`CHUNK`, a failing chunk again row by row."""
    def ask(sql: str, params=()) -> Optional[int]:
        try:
            value = db.execute(sql, params).fetchone()
            return int(value[0]) if value and value[0] is not None else None
        except (sqlite3.DatabaseError, TypeError, ValueError):
            return None

    last = [v for v in (ask(f"SELECT MAX(rowid) FROM {table}"),
                        ask("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))) if v is not None]
    hi = max(last) if last and max(last) < 50_000_000 else None  # a garbage bound: scan until the rows end
    lo = min(ask(f"SELECT MIN(rowid) FROM {table}") or 1, 1)
    expected = ask(f"SELECT COUNT(*) FROM {table}")
    select = f"SELECT rowid AS rowid_, * FROM {table}"
    rows: List[Dict[str, Any]] = []
    lost: List[int] = []
    start, empty = lo, 0
    while (start <= hi) if hi is not None else (empty < MAX_EMPTY_CHUNKS):
        try:
            cur = db.execute(f"{select} WHERE rowid >= ? AND rowid < ? ORDER BY rowid", (start, start + CHUNK))
            names = [d[0] for d in cur.description]
            part = [dict(zip(names, r)) for r in cur.fetchall()]
        except sqlite3.DatabaseError:
            part = []
            for rowid in range(start, start + CHUNK):
                try:
                    cur = db.execute(f"{select} WHERE rowid = ?", (rowid,))
                    names = [d[0] for d in cur.description]
                    found = cur.fetchone()
                except sqlite3.DatabaseError:
                    lost.append(rowid)
                    continue
                if found is not None:
                    part.append(dict(zip(names, found)))
        empty = 0 if part else empty + 1
        rows += part
        start += CHUNK
    if hi is None and rows:  # unreadable rowids past the last row read were most likely never there
        lost = [i for i in lost if i < rows[-1]["rowid_"]]
    return rows, lost, expected


def _ranges(ids: List[int]) -> List[Tuple[int, int]]:
    out: List[Tuple[int, int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def salvage(path, to) -> Dict[str, Any]:
    """Copy every readable run and measurement of the store ``path`` (and the rows of its side files)
    into a new store ``to`` (refused if it exists); returns what was recovered and what was lost:
    ``runs``, ``measurements`` (rows copied), ``lost_runs``/``lost_measurements`` (rowids that could not
    be read, as ranges), ``expected_measurements`` (the count an intact index still gives, else None),
    ``error`` (why nothing could be read), ``side_rows``/``side_added``/``side_unreadable``."""
    path, to = Path(path), Path(to)
    if not path.is_file():
        raise HarnessError(f"{path}: no such file; give the damaged store, e.g. results/harness.db")
    if to.exists() or Path(str(to) + "-wal").exists():
        raise HarnessError(f"{to}: already exists; salvage writes a new store and never overwrites one: "
                           f"give a new file name with --to")
    out: Dict[str, Any] = {"path": str(path), "to": str(to), "error": None, "runs": 0, "measurements": 0,
                           "lost_runs": [], "lost_measurements": [], "expected_measurements": None,
                           "side_files": [], "side_rows": 0, "side_added": 0, "side_unreadable": 0}
    runs: List[Dict[str, Any]] = []
    rows: List[Dict[str, Any]] = []
    db = None
    try:
        db = open_readonly(path, cautious=True)
        db.execute("SELECT name FROM sqlite_master").fetchall()
        runs, lost_runs, _ = _read_table(db, "runs")
        rows, lost_rows, out["expected_measurements"] = _read_table(db, "measurements")
        out["lost_runs"], out["lost_measurements"] = _ranges(lost_runs), _ranges(lost_rows)
    except sqlite3.Error as exc:  # page 1 (the schema) unreadable: only the side files are left
        out["error"] = first_line(exc)
    finally:
        if db is not None:
            db.close()
    tmp = to.with_name(f".{to.name}.{secrets.token_hex(4)}.salvage")
    try:
        with ResultStore(tmp) as new:
            try:
                new.db.execute("BEGIN IMMEDIATE")
                for run in runs:
                    cols = [c for c in RUN_COLUMNS if c in run]
                    new.db.execute(f"INSERT OR IGNORE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                   tuple(run[c] for c in cols))
                for row in rows:
                    cols = ["id"] + [c for c in ROW_COLUMNS if c in row]
                    cur = new.db.execute(f"INSERT OR IGNORE INTO measurements ({', '.join(cols)}) "
                                         f"VALUES ({', '.join('?' * len(cols))})", tuple(row[c] for c in cols))
                    out["measurements"] += cur.rowcount
                out["runs"] = new.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                new.db.commit()
            except sqlite3.Error as exc:
                raise HarnessError(f"{to}: could not be written ({first_line(exc)}); free space on the disk holding "
                                   f"{to.parent if str(to.parent) else '.'} or give another --to") from None
            for f in side_files(path):
                _, side_rows, bad = read_side_file(f)
                added, _ = new.merge(f)
                out["side_files"].append(str(f))
                out["side_rows"] += len(side_rows)
                out["side_added"] += added
                out["side_unreadable"] += bad
        os.replace(str(tmp), str(to))
    except HarnessError as exc:
        raise HarnessError(str(exc).replace(str(tmp), str(to))) from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            if leftover.exists():
                try:
                    leftover.unlink()
                except OSError:
                    pass
    return out
