"""`gptbench tune`: MetaSchedule over every kernel of a model, into a persistent database.

How it works:
1. the model is imported through each frontend asked (static shapes: MetaSchedule tunes fixed shapes);
2. the Relax module goes through the first half of the build pipeline (library dispatch,
   LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR; with `--prepack` also
   CanonicalizeBindings and AttachAttrLayoutFreeBuffers), exactly what a tuned build runs before
   MetaScheduleApplyDatabase, so the kernels' structural keys match at build time;
3. every fused kernel becomes a task (`extract_tasks`); the frontends' tasks are one list, a kernel
   two frontends share (structurally equal) one task with the calls of both, so one session's budget
   goes where the frontends' weighted latency is (each frontend's import fuses differently: of the
   default model's 30 kernels through export and 20 through onnx, one is common);
   `tune_tasks` spends the trials across them with the harness's task scheduler;
4. the records go to a JSON database (`database_workload.json`, `database_tuning_record.json`) with a
   `gptbench-db.json` beside it saying what it is for: TVM version, target (mcpu, cores / CUDA
   arch), model, shapes, the frontends whose kernels it holds (and those whose import failed),
   prepack, trials and wall time so far.

Re-running `tune` on the same database continues: the cost model and evolutionary search start
from the records already there, and the new trials add to them. Each session starts with one
round over all its tasks before the gradient scheduler concentrates trials; `--only matmul`
restricts a follow-up session to the kernels that matter. A session keeps the frontends a database
already holds and adds those asked (`tune --frontend onnx` on an export database: both); with
`missing_only` it tunes only the kernels with no record yet (`run --tune-budget` extending a cached
database to a frontend it was not tuned on). `run --db` applies a database
only if it was tuned for the same TVM version and target; anything else is refused.

Default location: results/tuning/tvm-<version>/<target key>/<model>-<scenario>-b<B>-<shape>[-prepack].
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bench.build.relax import tuning_passes
from bench.core import tvm_compat
from bench.core.errors import UserError
from bench.core.files import atomic_write
from bench.core.threads import configure_threads
from bench.models import load_model
from bench.scenarios import SCENARIOS, make_case
from bench.targets import TARGETS
from bench.targets.remote import parse_address
from bench.tuning.builder import close_builder, export_shared, pooled_builder
from bench.tuning.database import (
    META_FILE,
    META_FORMAT,
    PREPACK_UNSAFE,
    count_records,
    db_frontends,
    db_hash,
    drop_records,
    read_meta,
    summary_markdown,
    target_fingerprint,
    target_key,
    target_key_of,
    validate_database,
)
from bench.tuning.progress import PROGRESS_FILE, Progress, read_progress
from bench.tuning.transfer import check_foreign, warm_start
from frontends import get_frontend
from frontends.base import ImportRequest, short_error


def fused_module(mod, target, prepack: bool, fast_math: bool = False):
    """The module as MetaSchedule sees it (see `bench.build.relax.tuning_passes`)."""
    import tvm

    with target, tvm.transform.PassContext(opt_level=3):
        return tvm.transform.Sequential(tuning_passes(target, prepack, fast_math))(mod)


def extract(mod, target, prepack: bool, fast_math: bool = False) -> list:
    from tvm.s_tir import meta_schedule as ms

    return list(ms.relax_integration.extract_tasks(fused_module(mod, target, prepack, fast_math), target))


def check_database(db_dir, tinfo, mod) -> dict:
    """What a build with this database gets: hash, records, and how many of the model's kernels it
    holds a tuned schedule for (the others keep the default schedule). The database was validated
    (`validate_database`) where the run took it: `prepare` (bench.pipeline.config) for --db, `ensure_tuned` for the cache."""
    from tvm.s_tir import meta_schedule as ms

    meta = read_meta(db_dir)
    tasks = extract(mod, tinfo.target, bool(meta.get("prepack")), bool(meta.get("fast_math")))
    db = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")
    # has_workload is not enough: tune_tasks registers every task's workload before tuning it
    matched = sum(1 for t in tasks if db.query_tuning_record(t.dispatched[0], tinfo.target, t.task_name) is not None)
    info = dict(path=str(db_dir), hash=db_hash(db_dir), records=count_records(db_dir), tasks=len(tasks), matched=matched,
                prepack=bool(meta.get("prepack")), tuned_for=dict(model=meta.get("model"), scenario=meta.get("scenario"),
                                                                   shapes=meta.get("shapes"), frontends=db_frontends(meta)),
                trials=meta.get("trials"),
                tuning_wall_s=meta.get("wall_s"))
    there, here = target_key_of(meta), target_key(tinfo)
    if there != here:  # run --foreign-db: said in every cell that used it
        info["applied_across"] = f"tuned on {there}, applied to {here}"
    if meta.get("warm_start"):
        info["warm_start"] = meta["warm_start"]
    return info


def task_summary(tasks, db_dir) -> list[dict]:
    """Per task: weight (occurrences in the model), trials recorded, best measured latency."""
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")
    rows = []
    for t in tasks:
        mod = t.dispatched[0]
        best_ms = trials = None
        if db.has_workload(mod):
            wkl = db.commit_workload(mod)
            top = db.get_top_k(wkl, 1)
            if top and top[0].run_secs:
                secs = [float(x) for x in top[0].run_secs]
                best_ms = 1e3 * sum(secs) / len(secs)
            trials = sum(1 for r in db.get_all_tuning_records() if r.workload.same_as(wkl))
        rows.append(dict(task=t.task_name, weight=int(t.weight), trials=trials, best_ms=None if best_ms is None else round(best_ms, 4),
                         weighted_ms=None if best_ms is None else round(best_ms * int(t.weight), 4)))
    return rows


def cpu_build(mod, target, _params):
    """MetaSchedule's default_build minus its `import tvm.s_tir.tensor_intrin`.

    That import parses every CUDA, ARM, x86 and RISC-V tensor intrinsic (30-90 s on this 2-core
    machine), and LocalBuilder starts fresh worker processes for every batch of candidates, so it
    paid that import again and again: most of the tuning time went there. Float32 CPU schedules
    use no tensor intrinsics, so the CPU target builds without it (CUDA keeps the default).
    Runs in the builder's worker processes."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


CPU_INTRINSICS = ("x86", "arm_cpu", "riscv_cpu")


def cpu_tensor_intrinsics() -> bool:
    """Register the CPU tensor intrinsics without the GPU ones, for a CPU session: every TuneContext imports
    the package `tvm.s_tir.tensor_intrin`, whose `__init__` first parses every CUDA intrinsic (37 s on a
    2-core znver4, inside the session's budget). The package is put in place as its own directory and its
    CPU modules imported from it, as its `__init__` would; a later import of its CUDA module still works.
    True if done; False where the package is already imported or is laid out otherwise (then untouched)."""
    import importlib
    import importlib.util
    import sys
    import types

    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return False
    package = types.ModuleType(name, "TVM's tensor intrinsics, CPU modules only (bench.tuning.search.cpu_tensor_intrinsics)")
    package.__path__, package.__package__, package.__spec__ = list(spec.submodule_search_locations), name, spec
    sys.modules[name] = package
    try:
        for module in CPU_INTRINSICS:
            importlib.import_module(f"{name}.{module}")
    except Exception:  # noqa: BLE001 - another layout: let TuneContext import the package as it is
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        return False
    return True


class Budget:
    """When tuning stops: a wall-clock deadline (time.monotonic), a Ctrl-C, or neither."""

    def __init__(self, seconds: float | None = None) -> None:
        self.deadline = None if not seconds else time.monotonic() + seconds
        self.interrupted = False

    def over(self) -> bool:
        return self.interrupted or (self.deadline is not None and time.monotonic() >= self.deadline)


UNLIMITED_TRIALS = 100_000  # the trial limit of a session bounded by its budget alone
PATIENCE = 3  # a task whose best kernel improved by under MIN_GAIN over its last PATIENCE batches stops
MIN_GAIN = 0.01


MS_POPULATION = 512  # MetaSchedule's evolutionary search: candidates sampled and evolved for each batch
BUDGET_POPULATION = int(os.environ.get("GPTBENCH_POPULATION", "128"))


def population(budget_s: float | None) -> int:
    """The evolutionary search's population: MetaSchedule's 512 for a session bounded by trials alone; 128
    for one bounded by a wall-clock budget, where the search's own time competes with measuring."""
    return BUDGET_POPULATION if budget_s else MS_POPULATION


GRADIENT_ALPHA, GRADIENT_WINDOW = 0.2, 3  # MetaSchedule's defaults for its gradient scheduler


def task_scheduler(budget: Budget, best: dict, history: dict, mode: str, seed: int = 0):
    """The task scheduler of every tuning session: MetaSchedule's task-selection rules, written in
    Python so that a session can stop between measurement batches (a deadline, Ctrl-C) instead of
    unwinding through C++ (an exception raised inside MetaSchedule's loop can abort the process).

    Both modes start with one round over every task (each task's first batch), those without a record first
    (first_round_order: kernels that would otherwise keep TVM's default schedule). Then:
    - mode "gradient" (a session with only --trials): MetaSchedule's gradient rule, as in its
      C++ scheduler: the live task with the largest weight × (0.2·recent improvement per batch
      over a window of 3 + 0.8·best/batches), ties broken at random;
    - mode "budget" (`--budget`, `run --tune-budget`): the live task with the largest weighted
      latency (weight × best kernel time): where the model's time is; a task whose best kernel
      improved by under 1% over its last 3 batches is stopped, so the budget goes to kernels that
      still improve. When every task has stopped, so does the session: a budget is a limit.
    MetaSchedule itself stops a task whose search space is exhausted (an element-wise kernel
    often has one schedule). When the deadline passes or Ctrl-C is pressed, no batch starts;
    MetaSchedule joins those in flight and ends normally, records kept. `best` and `history`
    (best seconds per task; its value after each batch) are filled by the measure callback."""
    import random

    ms, derived_object = tvm_compat.meta_schedule(), tvm_compat.derived_object()
    rng = random.Random(seed)

    @derived_object
    class HarnessScheduler(ms.task_scheduler.PyTaskScheduler):
        def __init__(self):
            super().__init__()
            self.first_round: list[int] | None = None  # the tasks still to get their first batch, in order

        def next_task_id(self) -> int:
            ts = self._outer()
            tasks = ts.tasks_
            n = len(tasks)
            if budget.over():
                return -1
            for i in range(n):
                ts.touch_task(i)  # joins every batch that has finished (its records reach the database, its times `best`)
            if self.first_round is None:
                self.first_round = first_round_order(ts)
            if self.first_round:
                return self.first_round.pop(0)
            alive = _live_tasks(ts, tasks, history, mode)
            if not alive:
                return -1
            pick = _pick_task(alive, tasks, best, history, mode, rng)
            if tasks[pick].measure_candidates is not None:
                ts.join_running_task(pick)
            return pick

    return HarnessScheduler()


def first_round_order(ts) -> list[int]:
    """Every task of the scheduler `ts` once: those with no valid record in its database first, then the others,
    each group in extraction order."""
    db = ts.database_

    def has_record(task) -> bool:
        mod = task.ctx.mod
        return db is not None and db.has_workload(mod) and bool(db.get_top_k(db.commit_workload(mod), 1))

    recorded = [has_record(t) for t in ts.tasks_]
    return [i for i, r in enumerate(recorded) if not r] + [i for i, r in enumerate(recorded) if r]


def _gradient(h: list[float], weight: float) -> float:
    """MetaSchedule's gradient score of a task from its best time after each batch (h)."""
    if not h or not h[-1] < 1e9:
        return -1e9  # no valid measurement yet: MetaSchedule skips such a task
    g1 = (h[-1 - GRADIENT_WINDOW] - h[-1]) / GRADIENT_WINDOW if len(h) >= 1 + GRADIENT_WINDOW else 0.0
    return (GRADIENT_ALPHA * g1 + (1 - GRADIENT_ALPHA) * h[-1] / len(h)) * weight


def _live_tasks(ts, tasks, history: dict, mode: str) -> list[int]:
    """The tasks not terminated; in mode "budget", first stops those that improved by under MIN_GAIN
    over their last PATIENCE batches (and have no batch in flight)."""
    alive = [i for i in range(len(tasks)) if not tasks[i].is_terminated]
    if mode != "budget":
        return alive
    for i in alive:
        h = history.get(i, [])
        if tasks[i].measure_candidates is None and len(h) > PATIENCE and h[-1] > (1 - MIN_GAIN) * h[-1 - PATIENCE]:
            ts.terminate_task(i)
    return [i for i in range(len(tasks)) if not tasks[i].is_terminated]


def _pick_task(alive: list[int], tasks, best: dict, history: dict, mode: str, rng) -> int:
    """Mode "budget": the largest weighted latency; mode "gradient": the largest gradient, ties at random."""
    if mode == "budget":
        return max(alive, key=lambda i: tasks[i].task_weight * best.get(i, float("inf")))
    grads = {i: _gradient(history.get(i, []), tasks[i].task_weight) for i in alive}
    top = max(grads.values())
    return rng.choice(alive) if top == min(grads.values()) else max(alive, key=grads.get)


def progress_callback(total: int, best: dict, history: dict, progress: Progress):
    """The measure callback of a session: the progress bar; each task's best time (`best`) and its value
    after each batch (`history`), for the task scheduler; a row of the database's progress log."""
    from tqdm import tqdm

    ms, derived_object = tvm_compat.meta_schedule(), tvm_compat.derived_object()

    @derived_object
    class SessionProgress(ms.measure_callback.PyMeasureCallback):
        def __init__(self):
            self.bar = tqdm(total=total, desc="tune", unit="trial")

        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            self.bar.update(len(measure_candidates))
            secs = [sum(float(x) for x in r.run_secs) / len(r.run_secs) for r in runner_results
                    if r.error_msg is None and r.run_secs]
            if secs:
                best[task_id] = min(best.get(task_id, float("inf")), min(secs))
            history.setdefault(task_id, []).append(best.get(task_id, float("inf")))
            _log_batch(progress, task_scheduler.tasks_, task_id, len(measure_candidates), len(secs), best)

    return SessionProgress()


def _log_batch(progress: Progress, tasks, task_id: int, batch: int, valid: int, best: dict) -> None:
    """A progress row: the batch, and the tuner's estimate of the model's kernel time after it."""
    timed = {i: s for i, s in best.items() if s < 1e9}
    estimate = sum(float(tasks[i].task_weight) * s for i, s in timed.items()) * 1e3 if timed else None
    progress.add(str(tasks[task_id].ctx.task_name), batch, valid, estimate, len(timed))


@dataclass(frozen=True)
class TuneJob:
    """One tuning session: the kernels of the model imported through `frontends` (and the frontends `db_dir` already
    holds), into `db_dir`: all of them, or those whose task name contains one of `only`, less those containing one
    of `skip`; with `missing_only`, those of `frontends` without a record in db_dir. It stops at `trials` (0: no
    limit when a budget is given), at `budget_s` seconds of wall time from its start (checked between measurement
    batches), or at Ctrl-C. With `warm_from`, a database tuned on another CPU seeds this one first
    (bench.tuning.transfer). With --rpc, candidates are measured on `rpc_servers` servers at once."""

    frontends: list[str]
    db_dir: Path
    trials: int = 0
    budget_s: float | None = None
    prepack: bool = True
    max_trials_per_task: int | None = None
    only: list[str] | None = None
    skip: list[str] | None = None
    warm_from: str | None = None
    missing_only: bool = False
    rpc_servers: int = 1


class Extracted(NamedTuple):
    """The tasks of a session (_tasks_of): every task, the calls of each kernel per frontend, the frontends whose
    import failed (why), and those whose kernels are in the tasks."""

    tasks: list
    calls: dict
    failed: dict
    through: list[str]


def tune(cfg, tinfo, job: TuneJob, log) -> dict:
    """Tune the kernels of cfg.models[0] for cfg's shapes as `job` says, on `tinfo`'s target (bench.targets.TargetInfo;
    with --rpc the device's CPU); returns the database's description. Whatever stops it (the summary then says
    which: `interrupted` for Ctrl-C), the records so far and a valid description are kept."""
    budget = Budget(job.budget_s)
    configure_threads(cfg.threads)
    db_dir = Path(job.db_dir)
    previous = read_meta(db_dir)
    if previous is not None:
        _check_continues(previous, db_dir, tinfo, cfg, job.prepack)
    if job.warm_from:
        check_foreign(job.warm_from, target_key(tinfo), dict(model=cfg.models[0], scenario=cfg.scenario, shapes=_shapes(cfg),
                                                             prepack=job.prepack, fast_math=cfg.fast_math))
    found = _tasks_of(cfg, job.frontends, previous, tinfo, job.prepack, log)
    trials, budget_s = job.trials, job.budget_s
    log(f"{len(found.tasks)} tuning tasks ({sum(int(t.weight) for t in found.tasks)} kernel calls) in {cfg.models[0]} "
        f"{cfg.scenario} through {', '.join(found.through)}; " + (f"{trials} trials" if trials else "")
        + (" and " if trials and budget_s else "") + (f"at most {budget_s:g} s" if budget_s else "") + f" into {db_dir}")
    selected = _select_tasks(found.tasks, db_dir, job.prepack, trials, job.only, job.skip, log)
    if job.missing_only:  # the kernels of the frontends asked that the database has no record for
        mine = [t for t in selected if any(t.task_name in found.calls.get(fe, {}) for fe in job.frontends)]
        selected = _without_records(mine, db_dir, tinfo)
        log(f"{len(selected)} of the {len(mine)} kernels of {', '.join(job.frontends)} have no record in the database: tuning those")
    db_dir.mkdir(parents=True, exist_ok=True)
    progress = _new_progress(db_dir, previous or {})
    try:
        warm = _warm(cfg, job, selected, tinfo, progress, log) if job.warm_from else None
        wall, profile = _run_session(cfg, job, selected, budget, log, progress)
    finally:  # the records so far are in the database whatever happened: the log must account for them
        progress.save()
    meta = _session_meta(cfg, job, tinfo, found, previous or {}, budget, wall)
    meta["last_session"]["frontends"] = [f for f in job.frontends if f not in found.failed]
    meta["last_session"]["profile_s"] = profile
    meta["last_session"]["population"] = population(budget_s)
    if warm:  # its records are measurements here, not trials of a search: counted apart
        meta["trials"] = max(0, meta["trials"] - warm["measured"])
        meta["last_session"]["trials"] = max(0, meta["last_session"]["trials"] - warm["measured"])
        meta["warm_start"] = warm
    elif previous and previous.get("warm_start"):
        meta["warm_start"] = previous["warm_start"]
    atomic_write(db_dir / META_FILE, json.dumps(meta, indent=1) + "\n")
    atomic_write(db_dir / "SUMMARY.md", summary_markdown(meta) + "\n")
    return meta


def _warm(cfg, job: TuneJob, selected: list, tinfo, progress: Progress, log) -> dict:
    """The warm start (bench.tuning.transfer), with the builder and runner of a session; logged as one row."""
    from tvm.s_tir import meta_schedule as ms

    builder = _builder(ms, cfg)
    try:
        warm = warm_start(selected, job.warm_from, Path(job.db_dir), tinfo.target, builder, _runner(ms, cfg, job.rpc_servers), log)
    finally:
        close_builder(builder)
    progress.add("warm start", warm["measured"], warm["measured"], None, 0, trials=False)
    return warm


def _new_progress(db_dir: Path, previous: dict) -> Progress:
    """This session's progress log, continuing the database's: its tuning seconds so far (the log's
    last row, else the description's wall time), trials and records."""
    before = float(previous.get("wall_s", 0.0))
    if (db_dir / PROGRESS_FILE).is_file():
        rows = read_progress(db_dir)
        before = rows[-1]["tuning_s"] if rows else before
    return Progress(db_dir, int(previous.get("sessions", 0)) + 1, before, int(previous.get("trials", 0)), count_records(db_dir))


def _shapes(cfg) -> dict:
    """The tuned shapes as a database's meta records them."""
    by_seq = SCENARIOS[cfg.scenario].length == "seq_len"
    return dict(batch=cfg.batch, seq_len=cfg.seq_len if by_seq else 1, past_len=0 if by_seq else cfg.past_len)


def _check_continues(meta: dict, db_dir: Path, tinfo, cfg, prepack: bool) -> None:
    """UserError unless the existing database at db_dir is for this target, workload, --prepack and --fast-math."""
    validate_database(db_dir, tinfo)
    want = dict(model=cfg.models[0], scenario=cfg.scenario, shapes=_shapes(cfg))
    have = {k: meta.get(k) for k in want}
    if have != want:
        diff = ", ".join(f"{k} {have[k]!r} (database) vs {want[k]!r} (asked)" for k in want if have[k] != want[k])
        raise UserError(f"{db_dir} was tuned for another workload: {diff}; use another --db (kernels would not match)")
    if bool(meta.get("prepack")) != prepack:
        raise UserError(f"{db_dir} was tuned {'with' if meta.get('prepack') else 'without'} --prepack; "
                        "keep that setting when continuing it (or use another --db)")
    if bool(meta.get("fast_math")) != cfg.fast_math:
        raise UserError(f"{db_dir} was tuned {'with' if meta.get('fast_math') else 'without'} --fast-math; "
                        "keep that setting when continuing it (or use another --db)")


def _tasks_of(cfg, frontends: list[str], previous: dict | None, tinfo, prepack: bool, log) -> Extracted:
    """The tasks of the frontends asked and of those the database already holds (_extract_tasks); the
    frontends whose import failed, now or when the database was tuned (unless imported now); those that imported."""
    asked = list(dict.fromkeys([*db_frontends(previous), *frontends]))
    tasks, calls, failed = _extract_tasks(cfg, asked, tinfo, prepack, log)
    failed = {**{k: v for k, v in ((previous or {}).get("frontends_failed") or {}).items() if k not in calls}, **failed}
    return Extracted(tasks, calls, failed, [f for f in asked if f not in failed])


def _extract_tasks(cfg, frontends: list[str], tinfo, prepack: bool, log) -> tuple[list, dict, dict]:
    """The tuning tasks of cfg.models[0]'s case (static shapes) imported through each of `frontends`,
    as one list: a kernel two frontends share (structurally equal) is one task whose weight is the
    sum of its calls in each. With several frontends a task is named FRONTEND:NAME (shared: A+B:NAME).
    Returns the tasks, each frontend's calls per task name ({frontend: {task: calls}}) and, for a
    frontend whose import or extraction failed, why (UserError when none imports; with one frontend
    its own error is raised)."""
    import tempfile

    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    loaded = load_model(cfg.models[0], cfg.weights, seed=cfg.seed)
    case = make_case(loaded, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, "static", cfg.seed)
    merged: dict[int, list] = {}  # structural hash -> [(task, {frontend: calls})]
    failed: dict[str, str] = {}
    for fe in frontends:
        try:
            with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
                imported = get_frontend(fe).import_model(ImportRequest(case.module, case.inputs, case.input_names, None, Path(tmp)))
            found = extract(imported.mod, tinfo.target, prepack, cfg.fast_math)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - a frontend that does not import has no kernels to tune; said in the database
            if len(frontends) == 1:
                raise
            failed[fe] = short_error(e)
            log(f"{fe}: its import failed, its kernels are not tuned: {failed[fe]}")
            continue
        for t in found:
            bucket = merged.setdefault(tvm_ffi.structural_hash(t.dispatched[0]), [])
            same = next((entry for entry in bucket if tvm_ffi.structural_equal(entry[0].dispatched[0], t.dispatched[0])), None)
            if same is None:
                bucket.append((t, {fe: int(t.weight)}))
            else:
                same[1][fe] = same[1].get(fe, 0) + int(t.weight)
    if len(failed) == len(frontends):
        raise UserError(f"no frontend imports {cfg.models[0]} to tune it: " + "; ".join(f"{f}: {e}" for f, e in failed.items()))
    several = len(frontends) - len(failed) > 1
    tasks, calls = [], {fe: {} for fe in frontends if fe not in failed}
    for t, by in (entry for bucket in merged.values() for entry in bucket):
        name = f"{'+'.join(by)}:{t.task_name}" if several else t.task_name
        tasks.append(ms.ExtractedTask(name, t.mod, t.target, list(t.dispatched), sum(by.values())) if several else t)
        for fe, n in by.items():
            calls[fe][name] = n
    return tasks, calls, failed


def _without_records(tasks: list, db_dir: Path, tinfo) -> list:
    """The tasks for which db_dir holds no tuning record."""
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")
    return [t for t in tasks if db.query_tuning_record(t.dispatched[0], tinfo.target, t.task_name) is None]


def _select_tasks(tasks: list, db_dir: Path, prepack: bool, trials: int, only: list[str] | None, skip: list[str] | None, log) -> list:
    """The tasks `only` and `skip` select, less those --prepack must not tune (whose earlier records are dropped)."""
    selected = [t for t in tasks if (not only or any(o in t.task_name for o in only))
                and not any(s in t.task_name for s in skip or [])]
    if not selected:
        raise UserError(f"--only {','.join(only or [])} / --skip {','.join(skip or [])} leave none of the tasks: "
                        f"{', '.join(t.task_name for t in tasks)}")
    unsafe = [t for t in tasks if prepack and any(u in t.task_name for u in PREPACK_UNSAFE)]
    if unsafe:  # dropped whatever --only/--skip say: an earlier session may have recorded them
        selected = [t for t in selected if t not in unsafe]
        dropped = drop_records(db_dir, unsafe)
        log(f"not tuned with --prepack (layout rewrite of a data-indexed gather is wrong in TVM 0.27): "
            f"{', '.join(t.task_name for t in unsafe)}" + (f"; dropped their {dropped} earlier record(s)" if dropped else ""))
    if not selected and trials > 0:
        raise UserError("no task left to tune: every selected task is one --prepack must not tune")
    if only or skip:
        log(f"tuning {len(selected)} of them: {', '.join(t.task_name for t in selected)}")
    return selected


def _run_session(cfg, job: TuneJob, selected: list, budget: Budget, log, progress: Progress) -> tuple[float, dict]:
    """MetaSchedule on the selected tasks until the trials, the budget or Ctrl-C (the first one sets
    budget.interrupted and lets the batches in flight finish; a second one unwinds). Returns its
    seconds and where they went (MetaSchedule's profiler: seconds per scope, e.g. SendToBuilder is
    building the candidates, SendToRunner + JoinRunnerFutures running them, UpdateCostModel training
    the cost model, GenerateMeasureCandidates the evolutionary search)."""
    import signal

    from tvm.s_tir import meta_schedule as ms

    trials, budget_s, db_dir = job.trials, job.budget_s, Path(job.db_dir)
    contexts, weights = _tune_contexts(ms, cfg, selected, db_dir, budget_s, log)
    t0 = time.perf_counter()
    progress.restart()  # the log counts tuning time as the description does: from here
    limit = trials if trials > 0 else (UNLIMITED_TRIALS if budget_s else 0)
    best: dict = {}
    history: dict = {}
    previous_handler = signal.signal(signal.SIGINT, _on_sigint(budget, log))
    log("tuning; Ctrl-C stops it and keeps what was measured")
    profile: dict = {}
    try:
        if limit > 0:
            scheduler = task_scheduler(budget, best, history, "budget" if budget_s else "gradient", cfg.seed)
            builder = _builder(ms, cfg)
            try:
                with ms.Profiler() as prof:
                    ms.tune.tune_tasks(
                        tasks=contexts,
                        task_weights=weights,
                        work_dir=str(db_dir),
                        max_trials_global=limit,
                        max_trials_per_task=job.max_trials_per_task,
                        task_scheduler=scheduler,
                        num_trials_per_iter=min(64, max(8, limit // max(1, len(selected)))) if limit < UNLIMITED_TRIALS else 16,
                        builder=builder,
                        runner=_runner(ms, cfg, job.rpc_servers),
                        database=ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural"),
                        measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                                           progress_callback(trials or None, best, history, progress)],
                    )
            finally:
                close_builder(builder)
            profile = {str(k): round(float(v), 2) for k, v in prof.get().items()}
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    return time.perf_counter() - t0, profile


def _tune_contexts(ms, cfg, selected: list, db_dir: Path, budget_s: float | None, log) -> tuple[list, list]:
    """MetaSchedule's tune contexts of the selected tasks (those it can make a schedule space for) and their weights."""
    # TVM's logger setup (logging.dictConfig) lists every handler already on its logger by name and
    # fails on one it did not create (pytest 9 attaches unnamed capture handlers to loggers that do not
    # propagate, so a second tune in one process broke); it re-adds its own console and file handlers.
    ms_logger = logging.getLogger("tvm.s_tir.meta_schedule")
    for handler in list(ms_logger.handlers):
        ms_logger.removeHandler(handler)
        handler.close()
    if TARGETS[cfg.target].cpu_rules:
        cpu_tensor_intrinsics()
    strategy = ms.search_strategy.EvolutionarySearch(population_size=population(budget_s)) if budget_s else "evolutionary"
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(selected, work_dir=str(db_dir), strategy=strategy,
                                                                            seed=cfg.seed)
    contexts, weights = _with_design_space(contexts, weights, log)
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)
    return contexts, weights


def _on_sigint(budget: Budget, log):
    """The SIGINT handler of a session: the first Ctrl-C lets the batches in flight finish, a second unwinds."""
    def on_sigint(_signum, _frame):
        if budget.interrupted:  # a second Ctrl-C: unwind now (MetaSchedule may abort on the way)
            raise KeyboardInterrupt
        budget.interrupted = True
        log("\ninterrupted: finishing the measurements in flight, then saving the database (Ctrl-C again to abort)")

    return on_sigint


def _with_design_space(contexts: list, weights: list, log) -> tuple[list, list]:
    """The tasks whose schedule space MetaSchedule can generate; each other one is said and left with
    its default schedule (MetaSchedule would fail the whole session on it: TVM 0.27's
    reverse-compute-at refuses onnx's fused causal-mask matmul, `fused_tril_equal_matmul_where_add`)."""
    keep = []
    for ctx, w in zip(contexts, weights, strict=True):
        try:
            ctx.generate_design_space()
        except Exception as e:  # noqa: BLE001 - MetaSchedule's own refusal: the kernel keeps its default schedule
            log(f"not tuned: MetaSchedule cannot generate a schedule space for {ctx.task_name} ({short_error(e, 240)})")
            continue
        keep.append((ctx, w))
    return [c for c, _ in keep], [w for _, w in keep]


def _session_meta(cfg, job: TuneJob, tinfo, found: Extracted, previous: dict, budget: Budget, wall: float) -> dict:
    """The database's description after this session: the totals so far and what this session did."""
    import tvm

    frontends, failed, tasks, calls, db_dir = found.through, found.failed, found.tasks, found.calls, Path(job.db_dir)
    rows = task_summary(tasks, db_dir)
    if len(frontends) > 1:  # which frontend calls each kernel how often (the per-frontend estimates of SUMMARY.md)
        for row in rows:
            row["calls"] = {fe: calls[fe][row["task"]] for fe in frontends if row["task"] in calls[fe]}
    records = count_records(db_dir)
    trials_done = records - int(previous.get("records", 0))
    return dict(
        format=META_FORMAT, tvm_version=tvm.__version__, target=target_fingerprint(tinfo), model=cfg.models[0],
        frontend=",".join(frontends), frontends=frontends, frontends_failed=failed, scenario=cfg.scenario, shapes=_shapes(cfg),
        prepack=job.prepack, fast_math=cfg.fast_math, tasks=len(tasks), trials=int(previous.get("trials", 0)) + max(trials_done, 0),
        wall_s=round(float(previous.get("wall_s", 0.0)) + wall, 1), sessions=int(previous.get("sessions", 0)) + 1,
        records=records, hash=db_hash(db_dir), task_summary=rows,
        last_session=dict(trials=max(trials_done, 0), wall_s=round(wall, 1), budget_s=job.budget_s, trial_limit=job.trials or None,
                          stopped_by="interrupt" if budget.interrupted else ("budget" if budget.over() else "trials or search space")),
    )


def _builder(ms, cfg):
    """Candidates are built in cfg.threads worker processes, kept between batches (bench.tuning.builder);
    GPTBENCH_BUILDER=local: MetaSchedule's LocalBuilder, a fresh pool every batch (to compare)."""
    f_build = cpu_build if TARGETS[cfg.target].cpu_rules else None
    if os.environ.get("GPTBENCH_BUILDER") == "local":
        return ms.builder.LocalBuilder(timeout_sec=180, max_workers=cfg.threads, f_build=f_build)
    return pooled_builder(cfg.threads, 180, f_build, f_export=None if cfg.rpc or os.environ.get("GPTBENCH_EXPORT") == "tar" else export_shared)


def _runner(ms, cfg, servers: int):
    """Where candidates are measured: this machine, or every server of --rpc-key (MetaSchedule's
    RPCRunner, one worker per server: N devices measure N candidates at once)."""
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=50)
    if not cfg.rpc:
        return ms.runner.LocalRunner(timeout_sec=60, evaluator_config=evaluator)

    host, port = parse_address(cfg.rpc)
    rpc_config = ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=cfg.rpc_key, session_timeout_sec=60)
    return ms.runner.RPCRunner(rpc_config=rpc_config, evaluator_config=evaluator, max_workers=servers)


