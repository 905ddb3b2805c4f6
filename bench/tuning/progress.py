"""How a tuning database got where it is, and the database as it was after N seconds of tuning.

Every tuning session appends to `tuning-progress.csv` beside the database files, one row per
measurement batch (and one for a warm start's replayed schedules):

| column | meaning |
|---|---|
| session | the database's session number (1 for the first `tune`) |
| tuning_s | seconds of tuning of this database when the batch was recorded: the earlier sessions' wall time, this session's warm start, and this session's time so far |
| trials | trials of search so far (a warm start's replayed schedules are not trials) |
| records | tuning records in the database after the batch (MetaSchedule records every candidate, failed ones too, in order) |
| task, batch, valid | the task measured, its candidates, how many of them built and ran |
| estimate_ms | the tuner's own estimate of the model's kernel time: sum over tasks of weight × best kernel so far |
| tasks_timed | how many tasks that estimate covers (those with a valid record so far) |

Because MetaSchedule appends records in the order it measures them, the first `records` lines of
the record file *are* the database as it was at `tuning_s`: `database_at` writes that prefix as a
database of its own, and `run --tuned-after 1m,2m,5m,all` builds and measures each of them in the
same way as any cell, so a report shows what each minute of tuning bought, measured, not estimated.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from pathlib import Path

from bench.core.errors import UserError
from bench.core.files import atomic_write
from bench.tuning.database import DB_FILES, META_FILE, count_records, db_hash, read_meta

PROGRESS_FILE = "tuning-progress.csv"



COLUMNS = ("session", "tuning_s", "trials", "records", "task", "batch", "valid", "estimate_ms", "tasks_timed")


class Progress:
    """One session's rows, kept in memory and appended to the file when the session ends."""

    def __init__(self, db_dir, session: int, before_s: float, trials: int, records: int) -> None:
        self.path = Path(db_dir) / PROGRESS_FILE
        self.session, self.before_s, self.trials, self.records = session, before_s, trials, records
        self.t0 = time.perf_counter()
        self.rows: list[dict] = []

    def now_s(self) -> float:
        return self.before_s + time.perf_counter() - self.t0

    def restart(self) -> None:
        """Tuning starts (again) now: the time since the last row (setting the search up) is not counted."""
        self.before_s = self.rows[-1]["tuning_s"] if self.rows else self.before_s
        self.t0 = time.perf_counter()

    def add(self, task: str, batch: int, valid: int, estimate_ms: float | None, tasks_timed: int, trials: bool = True) -> None:
        """A batch measured now (trials=False: the warm start's replayed schedules)."""
        self.records += batch
        self.trials += batch if trials else 0
        self.rows.append(dict(session=self.session, tuning_s=round(self.now_s(), 2),
                              trials=self.trials, records=self.records, task=task, batch=batch, valid=valid,
                              estimate_ms=None if estimate_ms is None else round(estimate_ms, 4), tasks_timed=tasks_timed))

    def save(self) -> None:
        old = self.path.read_text() if self.path.is_file() else ""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        if not old:
            writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.path, old + buf.getvalue())


def read_progress(db_dir) -> list[dict]:
    """The rows of a database's progress log, typed; UserError naming the file when there is none."""
    path = Path(db_dir) / PROGRESS_FILE
    if not path.is_file():
        raise UserError(f"{db_dir} has no {PROGRESS_FILE}: it was tuned before the harness logged tuning progress, so which "
                        "records it had after N minutes is unknown; tune a new database (`gptbench tune`, or run --tune-budget)")
    rows = []
    for row in csv.DictReader(path.open()):
        rows.append(dict(session=int(row["session"]), tuning_s=float(row["tuning_s"]), trials=int(row["trials"]),
                         records=int(row["records"]), task=row["task"], estimate_ms=float(row["estimate_ms"]) if row["estimate_ms"] else None))
    return rows


def cut_label(seconds: float) -> str:
    """'all', '30s', '2m', '1.5m', '1h': a cut as the variant and the report name it."""
    if math.isinf(seconds):
        return "all"
    if seconds < 60:
        return f"{seconds:g}s"
    return f"{seconds / 3600:g}h" if seconds >= 3600 and seconds % 3600 == 0 else f"{seconds / 60:g}m"


def database_at(db_dir, seconds: float, out_dir) -> tuple[Path, dict]:
    """The database as it was after `seconds` of tuning, written to out_dir (a new directory), and
    what it is: {cut_s, tuning_s, trials, records, of_records, of_hash}. `seconds` = inf: all of it."""
    db_dir, out_dir = Path(db_dir), Path(out_dir)
    rows = read_progress(db_dir)
    total = count_records(db_dir)
    if rows and rows[-1]["records"] != total:
        raise UserError(f"{db_dir}/{PROGRESS_FILE} says {rows[-1]['records']} records, the database holds {total}: it was changed "
                        "outside `gptbench tune`, so the log no longer tells which records came when")
    upto = [r for r in rows if r["tuning_s"] <= seconds]
    last = upto[-1] if upto else dict(tuning_s=0.0, trials=0, records=0)
    out_dir.mkdir(parents=True, exist_ok=False)
    shutil.copy(db_dir / DB_FILES[0], out_dir / DB_FILES[0])
    with (db_dir / DB_FILES[1]).open() as src, (out_dir / DB_FILES[1]).open("w") as dst:
        lines = (line for line in src if line.strip())
        for _ in range(last["records"]):
            dst.write(next(lines))
    meta = read_meta(db_dir)
    cut = dict(cut_s=seconds if not math.isinf(seconds) else None, tuning_s=last["tuning_s"], trials=last["trials"],
               records=last["records"], of_records=total, of_tuning_s=rows[-1]["tuning_s"] if rows else 0.0, of_hash=db_hash(db_dir))
    meta.update(records=last["records"], trials=last["trials"], wall_s=last["tuning_s"], hash=db_hash(out_dir), cut=cut)
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    return out_dir, cut
