"""Relay tuning, in the TVM 0.19 environment: MetaSchedule's Relay integration, budgeted like Relax tuning.

`run --tune-budget B` with a Relay frontend (relay-onnx, relay-torch): each Relay cell looks in the tune
cache for the database of its (model, scenario, shapes, frontend, target) and, when there is none, tunes
one for at most B, then builds with it:

1. `relay_integration.extract_tasks` on the imported Relay module and its params (TVM's own Relay
   pipeline at opt_level 3 with `relay.backend.use_meta_schedule`, so the kernels match at build time);
2. `tune.tune_tasks` with the task scheduler and measure callback of every harness session
   (bench.tuning.search: one round over all tasks, then the task with the largest weighted latency,
   a task that stops improving is stopped, the deadline ends it); MetaSchedule's LocalBuilder and
   LocalRunner of 0.19, its XGBoost cost model and evolutionary search;
3. `relay_integration.compile_relay` with that JSON database (graph executor, opt_level 3).

A database is one directory: `<tune cache>/tvm-0.19.0/<key>/<model>-<scenario>-b<B>-<shape>-<frontend>`,
its record files, `tuning-progress.csv` (bench.tuning.progress) and `gptbench-relay-db.json` (what it is
for, trials, seconds). The key is `llvm14-<mcpu>-<threads>c-<cpu>`: LLVM 14's -mcpu (which may stand in for
a newer CPU, bench.pipeline.relay_cell.relay_mcpu) and a short hash of this CPU's model name and flags, so
a database is only ever found again on the CPU kind it was tuned on. One cell's tuning is its own: the
two Relay importers give different kernels, so each frontend has its database.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from bench.core import tvm_compat
from bench.core.env import cpu_flags, cpu_model
from bench.core.files import atomic_write
from bench.core.log import log
from bench.core.threads import configure_threads
from bench.scenarios import SCENARIOS
from bench.tuning.database import count_records, db_hash, unpack
from bench.tuning.progress import Progress
from bench.tuning.search import UNLIMITED_TRIALS, Budget, progress_callback, task_scheduler

META = "gptbench-relay-db.json"
BATCH = 16  # candidates per measurement batch (as a budgeted Relax session)


def cpu_tag() -> str:
    """A short, stable name of this CPU kind: its model name and instruction-set flags, hashed."""
    text = cpu_model() + "|" + " ".join(sorted(cpu_flags()))
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def relay_db_dir(cfg, model: str, frontend: str, mcpu: str, blas: bool) -> Path:
    import tvm

    shape = f"t{cfg.seq_len}" if SCENARIOS[cfg.scenario].length == "seq_len" else f"p{cfg.past_len}"
    key = f"llvm{int(tvm.target.codegen.llvm_version_major())}-{mcpu}-{cfg.threads}c-{cpu_tag()}" + ("-cblas" if blas else "")
    name = f"{model}-{cfg.scenario}-b{cfg.batch}-{shape}-{frontend}"
    return Path(cfg.tune_cache) / f"tvm-{tvm.__version__}" / key / re.sub(r"[^\w.+-]", "_", name)


def read_relay_meta(db_dir: Path) -> dict | None:
    path = Path(db_dir) / META
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not (isinstance(meta, dict) and meta.get("trials")):
        return None
    unpack(db_dir)  # a committed (packed) database: its plain files before MetaSchedule opens it
    return meta


def _tasks(mod, params, target):
    ms = tvm_compat.meta_schedule()
    return ms, list(ms.relay_integration.extract_tasks(mod, target, params))


def tune_relay(mod, params, target, db_dir: Path, budget_s: float, threads: int, seed: int, log) -> dict:
    """Tune the Relay module's kernels for at most budget_s into db_dir; returns the session's summary."""
    ms, extracted = _tasks(mod, params, target)
    db_dir.mkdir(parents=True, exist_ok=True)
    contexts, weights = ms.relay_integration.extracted_tasks_to_tune_contexts(
        extracted, work_dir=str(db_dir), num_tuning_cores=threads, seed=seed)
    log(f"[relay tune] {len(contexts)} tasks; tuning for at most {budget_s:g} s into {db_dir}")
    budget, best, history = Budget(budget_s), {}, {}
    progress = Progress(db_dir, session=1, before_s=0.0, trials=0, records=count_records(db_dir))
    t0 = time.perf_counter()
    try:
        ms.tune.tune_tasks(
            tasks=contexts,
            task_weights=weights,
            work_dir=str(db_dir),
            max_trials_global=UNLIMITED_TRIALS,
            num_trials_per_iter=BATCH,
            builder=ms.builder.LocalBuilder(timeout_sec=180, max_workers=threads),
            runner=ms.runner.LocalRunner(timeout_sec=60, evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50)),
            database=ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural"),
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                               progress_callback(UNLIMITED_TRIALS, best, history, progress)],
            task_scheduler=task_scheduler(budget, best, history, "budget", seed),
        )
    finally:
        progress.save()
    wall = time.perf_counter() - t0
    trials = progress.trials
    meta = dict(format=1, tvm_version=_tvm_version(), target=str(target), cpu_model=cpu_model(), cpu_tag=cpu_tag(),
                tasks=len(contexts), trials=trials, wall_s=round(wall, 1), budget_s=budget_s,
                stopped_by="budget" if budget.over() else "every task stopped improving")
    atomic_write(db_dir / META, json.dumps(meta, indent=1) + "\n")
    log(f"[relay tune] {trials} trials in {wall:.0f} s (stopped by {meta['stopped_by']})")
    return meta


def tune_in_child(mod, params, target, db_dir: Path, budget_s: float, threads: int, seed: int, log) -> dict:
    """tune_relay in a process of its own (this interpreter, spawned), never in the cell's: tuning leaves
    thread pools behind (the cost model's OpenMP threads, TVM's), and eager PyTorch timed afterwards in the
    same process read up to 5x slow. The module and its weights go to the child as files."""
    import multiprocessing as mp
    import tempfile

    import tvm
    from tvm import relay

    with tempfile.TemporaryDirectory(prefix="gptbench-relay-tune-") as tmp:
        mod_file, params_file = Path(tmp) / "mod.json", Path(tmp) / "params.bin"
        mod_file.write_text(tvm.ir.save_json(mod))
        params_file.write_bytes(relay.save_param_dict({k: tvm.nd.array(v) if not isinstance(v, tvm.nd.NDArray) else v
                                                       for k, v in (params or {}).items()}))
        child = mp.get_context("spawn").Process(target=_tune_child, args=(str(mod_file), str(params_file), str(target), str(db_dir),
                                                                           budget_s, threads, seed))
        child.start()
        child.join()
    meta = read_relay_meta(db_dir)
    if child.exitcode != 0 or meta is None:
        raise RuntimeError(f"Relay tuning failed (its process exited with {child.exitcode}); see the log above")
    return meta


def _tune_child(mod_file: str, params_file: str, target: str, db_dir: str, budget_s: float, threads: int, seed: int) -> None:
    import tvm
    from tvm import relay

    configure_threads(threads)
    mod = tvm.ir.load_json(Path(mod_file).read_text())
    params = relay.load_param_dict(Path(params_file).read_bytes())
    tune_relay(mod, params, tvm.target.Target(target), Path(db_dir), budget_s, threads, seed, log)


def _tvm_version() -> str:
    import tvm

    return tvm.__version__


def ensure_relay_db(cfg, model: str, frontend: str, mod, params, target, mcpu: str, blas: bool, log) -> tuple[Path, dict]:
    """The cell's database, found in the tune cache or tuned now for at most cfg.tune_budget; and what
    the cell records of it (bench.record.Cell.tuning: path, hash, records, trials, kernels matched)."""
    db_dir = relay_db_dir(cfg, model, frontend, mcpu, blas)
    meta = read_relay_meta(db_dir)
    if meta is not None:
        log(f"[relay tune] database found: {db_dir} ({meta['trials']} trials, {meta['wall_s']} s of tuning); tuning nothing")
        extra = dict(from_cache=True)
    else:
        meta = tune_in_child(mod, params, target, db_dir, cfg.tune_budget, cfg.threads, cfg.seed, log)
        extra = dict(tuned_in_this_run=dict(trials=meta["trials"], wall_s=meta["wall_s"], stopped_by=meta["stopped_by"]))
    ms, extracted = _tasks(mod, params, target)
    db = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")
    matched = sum(1 for t in extracted if db.query_tuning_record(t.dispatched[0], target, t.task_name) is not None)
    info = dict(path=str(db_dir), hash=db_hash(db_dir), records=count_records(db_dir), tasks=len(extracted), matched=matched,
                trials=meta["trials"], tuning_wall_s=meta["wall_s"], integration="MetaSchedule relay_integration (TVM 0.19)", **extra)
    return db_dir, info


def build_tuned(db_dir: Path, mod, params, target):
    """relay.build through MetaSchedule's Relay integration with the database applied (graph executor)."""
    ms = tvm_compat.meta_schedule()
    db = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")
    return ms.relay_integration.compile_relay(db, mod, target, params, backend="graph", opt_level=3)
