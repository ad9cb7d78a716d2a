"""Results store: SQLite (``results/harness.db``), one row per measurement, committed at once.

A row is one (run, device, backend, precision, model, scale, measurement, weights) with the
headline figures in columns (for SQL and plots) and the full record as JSON. Each row is
committed as soon as it is measured, so a killed sweep keeps everything measured so far;
``--resume`` reopens the newest run with the same configuration and skips what it holds.
Stores from several devices merge without duplicates (the same unique key).
"""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

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


def _json(obj) -> str:
    """The JSON text of a record: NaN as null, infinities as "inf"/"-inf" (an exact PSNR stays readable)."""
    return json.dumps(json_safe(obj, inf_as_text=True))


class ResultStore:
    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=30.0)  # a second writer waits for the first, not fails
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)
        self.db.commit()

    def close(self):
        self.db.close()

    # ---- runs
    def start_run(self, device: str, config_key: str, command: str = "", profile: Optional[Dict] = None,
                  environment: Optional[Dict] = None, resume: bool = False) -> Tuple[str, bool]:
        """(run id, resumed?) — with ``resume``, the newest run of the same configuration."""
        if resume:
            row = self.db.execute("SELECT run_id FROM runs WHERE config_key = ? ORDER BY started DESC LIMIT 1",
                                  (config_key,)).fetchone()
            if row:
                return row["run_id"], True
        run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (run_id, time.time(), device, config_key, command,
                         _json(profile or {}), _json(environment or {})))
        self.db.commit()
        return run_id, False

    # ---- measurements
    def done_keys(self, run_id: str) -> Set[Tuple]:
        rows = self.db.execute("SELECT device, backend, precision, model, scale, measurement, weights "
                               "FROM measurements WHERE run_id = ?", (run_id,))
        return {tuple(r) for r in rows}

    def add(self, run_id: str, measurement: str, record: Dict) -> None:
        """Insert one measurement and commit it now (INSERT OR IGNORE: a resumed run never duplicates)."""
        values = {
            "run_id": run_id, "device": record["device"], "backend": record.get("backend", ""),
            "precision": record.get("precision", ""), "model": record["model"], "scale": int(record["scale"]),
            "measurement": measurement, "weights": record.get("weights", "none"), "family": record.get("family"),
            "form": record.get("form"), "status": record.get("status", "ok"), "reason": record.get("reason", ""),
            "created": time.time(),
        }
        for c in COLUMNS:
            values[c] = number_or_none(record.get(c))
        values["data"] = _json(record)
        cols = ", ".join(values)
        self.db.execute(f"INSERT OR IGNORE INTO measurements ({cols}) VALUES ({', '.join('?' * len(values))})",
                        tuple(values.values()))
        self.db.commit()

    def rows(self, where: str = "", params: Iterable = ()) -> List[sqlite3.Row]:
        sql = "SELECT * FROM measurements" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return list(self.db.execute(sql, tuple(params)))

    def runs(self) -> List[Dict]:
        """Every run of the store (id, start time, device, configuration key, command, profile and
        environment as JSON text), oldest first."""
        return [dict(r) for r in self.db.execute("SELECT * FROM runs ORDER BY started")]

    def emulated_runs(self) -> Dict[str, str]:
        """run id -> why its environment was emulated (qemu-user...), for the runs that were."""
        out = {}
        for r in self.db.execute("SELECT run_id, environment FROM runs"):
            try:
                reason = (json.loads(r["environment"] or "{}") or {}).get("emulated")
            except (TypeError, ValueError, AttributeError):
                reason = None
            if reason:
                out[r["run_id"]] = str(reason)
        return out

    def export_csv(self, path, where: str = "", params: Iterable = ()) -> Path:
        """The measurements as CSV (without the JSON record), plus ``emulated``: why the run's
        timings are meaningless (an emulator), empty for a real device."""
        import csv

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = self.rows(where, params)
        emulated = self.emulated_runs()
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            names = [d[0] for d in self.db.execute("SELECT * FROM measurements LIMIT 0").description if d[0] != "data"]
            writer.writerow(names + ["emulated"])
            for r in rows:
                writer.writerow([r[n] for n in names] + [emulated.get(r["run_id"], "")])
        return path

    def merge(self, other_path) -> Tuple[int, int]:
        """Copy runs and measurements of another store in; (rows added, rows already present)."""
        other = sqlite3.connect(str(other_path))
        other.row_factory = sqlite3.Row
        before = self.db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        for r in other.execute("SELECT * FROM runs"):
            self.db.execute("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(r))
        total = 0
        for r in other.execute("SELECT * FROM measurements"):
            d = dict(r)
            d.pop("id")
            self.db.execute(f"INSERT OR IGNORE INTO measurements ({', '.join(d)}) VALUES ({', '.join('?' * len(d))})",
                            tuple(d.values()))
            total += 1
        self.db.commit()
        other.close()
        added = self.db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] - before
        return added, total - added
