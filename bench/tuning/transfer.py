"""A tuning database made on another CPU, used here: never trusted blindly.

- `tune --warm-start DIR`: for every task of this model, the best schedules (traces) DIR holds for it
  are replayed on this target, built and **measured here**; what builds and runs goes into this
  database with this machine's times, and the session's search then starts from those records (the
  evolutionary search seeds its population from the database's best). A trace that fails here is
  dropped and counted.
- `run --db DIR --foreign-db`: applies DIR although it was tuned for another CPU of the same kind
  (another mcpu or core count); the report says so ("tuned on llvm-znver3-2c, applied to
  llvm-znver5-2c"). Without the flag such a database is refused (bench.tuning.database).

Both need the same TVM version, model, scenario, shapes, --prepack and --fast-math: the kernels'
structural keys must be the same for a record to mean anything.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from bench.core.errors import UserError
from bench.tuning.database import DB_FILES, read_meta, target_key_of

WARM_TOP_K = 4  # schedules replayed per task: the foreign database's best few, not only its best


def check_foreign(foreign_dir, here_key: str, want: dict) -> dict:
    """The foreign database's description, if its kernels can mean something here; else UserError."""
    import tvm

    meta = read_meta(foreign_dir)
    if meta is None or not (Path(foreign_dir) / DB_FILES[1]).is_file():
        raise UserError(f"--warm-start {foreign_dir}: not a tuning database made by `gptbench tune` (no description or records)")
    if meta.get("tvm_version") != tvm.__version__:
        raise UserError(f"--warm-start {foreign_dir} was made with TVM {meta.get('tvm_version')}, this is TVM {tvm.__version__}: "
                        "schedules do not carry across versions")
    if meta["target"].get("kind") != here_key.split("-")[0]:
        raise UserError(f"--warm-start {foreign_dir} is for {target_key_of(meta)}: another kind of target than {here_key}")
    have = {k: meta.get(k) for k in want}
    have["prepack"], have["fast_math"] = bool(have.get("prepack")), bool(have.get("fast_math"))
    diff = [f"{k} {have[k]!r} (database) vs {want[k]!r} (here)" for k in want if have[k] != want[k]]
    if diff:
        raise UserError(f"--warm-start {foreign_dir} was tuned for another workload: {', '.join(diff)}")
    return meta


def warm_start(tasks: list, foreign_dir, db_dir, target, builder, runner, log, top_k: int = WARM_TOP_K) -> dict:
    """Replay the foreign database's best `top_k` traces of each task on `target`, measure them with
    `builder` and `runner` (MetaSchedule's), and commit what ran to the database at db_dir with the
    times measured here. Returns what happened, for the database's description."""
    from tvm.s_tir import Schedule
    from tvm.s_tir import meta_schedule as ms

    t0 = time.perf_counter()
    foreign = ms.database.JSONDatabase(work_dir=str(foreign_dir), module_equality="structural")
    db = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")
    candidates, failed = [], 0
    for task in tasks:
        mod = task.dispatched[0]
        if not foreign.has_workload(mod):
            continue
        for record in foreign.get_top_k(foreign.commit_workload(mod), top_k):
            try:
                sch = Schedule(mod)
                record.trace.apply_to_schedule(sch, remove_postproc=False)
            except Exception:  # noqa: BLE001 - a trace that does not replay here is dropped, and counted
                failed += 1
                continue
            candidates.append((task, mod, sch, record.trace))
    with_records = len({id(task) for task, *_ in candidates})
    log(f"warm start: {len(candidates)} schedules of {with_records} of {len(tasks)} tasks replayed from {foreign_dir}; "
        "building and measuring them here")
    measured = _measure(candidates, target, builder, runner, ms)
    committed = 0
    for (_task, mod, sch, trace), run_secs in zip(candidates, measured, strict=True):
        if run_secs is None:
            failed += 1
            continue
        db.commit_tuning_record(ms.database.TuningRecord(trace, db.commit_workload(mod), run_secs, target, _args(sch, ms)))
        committed += 1
    info = dict(source=str(foreign_dir), source_target=target_key_of(read_meta(foreign_dir)), replayed=len(candidates),
                measured=committed, failed=failed, seconds=round(time.perf_counter() - t0, 1), top_k=top_k)
    log(f"warm start: {committed} schedules measured here and recorded, {failed} dropped (did not replay, build or run here) "
        f"in {info['seconds']} s")
    return info


def _measure(candidates: list, target, builder, runner, ms) -> list:
    """run_secs for each candidate (None where it failed to build or run)."""
    if not candidates:
        return []
    built = builder.build([ms.builder.BuilderInput(sch.mod, target) for _t, _m, sch, _tr in candidates])
    results: list = [None] * len(candidates)
    inputs, where = [], []
    for i, ((_t, _m, sch, _tr), b) in enumerate(zip(candidates, built, strict=True)):
        if b.error_msg is None:
            device = "cuda" if target.kind.name == "cuda" else "cpu"
            inputs.append(ms.runner.RunnerInput(b.artifact_path, device, _args(sch, ms)))
            where.append(i)
    for i, future in zip(where, runner.run(inputs), strict=True):
        r = future.result()
        if r.error_msg is None and r.run_secs:
            results[i] = [float(x) for x in r.run_secs]
    for b in built:  # as MetaSchedule's RemoveBuildArtifact does after a batch
        if b.artifact_path:
            shutil.rmtree(os.path.dirname(b.artifact_path), ignore_errors=True)
    return results


def _args(sch, ms) -> list:
    """The arguments of a scheduled kernel as it is built and run: with --prepack, a weight's layout
    rewrite (the preprocessing block) is taken out and the kernel takes the packed weight, as in
    MetaSchedule's own measurements (remove_preproc). The unscheduled function's arguments have the
    weight's original shape, and the runner refused every prepacked GEMM with them."""
    return ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
