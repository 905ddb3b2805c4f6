"""The matrix runner: models × frontends on one target and scenario, one cell at a time.

A cell: build the model (labelled weights) → eager reference outputs → frontend import (op
counts; every unsupported op on failure) → TVM build → parity vs eager → latency of TVM and the
baselines in alternating blocks (bench.measure.timing) → peak RSS. Whatever fails is recorded in the cell with its stage and
reason (`import_failed`, `build_failed`, `run_failed`, `mismatch`, `crashed`, `no_device`) and
the run goes on with the next cell.

By default every cell runs in its own spawned process (`isolate=True`): a crash inside TVM or
LLVM (a segfault, an abort) becomes a `crashed` cell instead of ending the run, and the peak RSS
is the cell's own.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.core.errors import Interrupted
from bench.core.log import log
from bench.core.procs import die_with_parent
from bench.core.threads import configure_threads
from bench.core.tvm_envs import REPO, current, identity, launch_env, missing_reason, probe, worker_command
from bench.pipeline.autotune import ensure_tuned, env_databases
from bench.pipeline.config import RunConfig, RunState, importers, new_cell, run_json
from bench.pipeline.execute import execute_cell
from bench.record import Cell
from bench.tuning.database import read_meta
from bench.tuning.progress import cut_label
from frontends import FRONTENDS
from frontends.base import short_error


def _cell_worker(cfg: RunConfig, state: RunState, model: str, frontend: str, conn) -> None:
    import signal

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    try:
        conn.send(execute_cell(cfg, state, model, frontend))
    finally:
        conn.close()


def run_isolated(cfg: RunConfig, state: RunState, model: str, frontend: str) -> dict:
    """execute_cell in a spawned process; a crash or timeout becomes the cell's status."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_cell_worker, args=(cfg, state, model, frontend, send), daemon=False)
    t0 = time.perf_counter()
    proc.start()
    send.close()
    result = None
    timeout = cfg.cell_timeout or None
    try:
        if recv.poll(timeout):
            result = recv.recv()
    except EOFError:
        result = None
    except BaseException:  # Ctrl-C or SIGTERM: the worker goes with us
        proc.kill()
        proc.join()
        raise
    if result is None and proc.is_alive():
        proc.kill()
    proc.join()
    if result is not None:
        return result
    elapsed = time.perf_counter() - t0
    return _lost_cell(cfg, model, frontend, None, elapsed, bool(timeout and elapsed >= timeout), proc.exitcode,
                      "worker process", "; last stage unknown — rerun with --no-isolate to see the traceback")


def _lost_cell(cfg: RunConfig, model: str, frontend: str, env: str | None, elapsed: float, timed_out: bool, code: int | None,
               who: str, hint: str = "") -> dict:
    """The cell of a worker that never reported: killed at --cell-timeout, or died (how)."""
    cell = new_cell(cfg, model, frontend, env)
    cell.timings["cell_s"] = round(elapsed, 3)
    if timed_out:
        cell.set(status="timeout", error=f"cell exceeded --cell-timeout {cfg.cell_timeout:g} s and was killed")
    else:
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        cell.set(error=f"{who} died ({how}) before reporting{hint}")
    return cell


LEGACY_LIMITS = "--target llvm, float32, --shapes static, prefill or decode, no --rpc or --bundle (as the Relay cells)"


def env_reason(cfg: RunConfig, frontend: str, env: str) -> str | None:
    """Why `frontend`'s cell cannot run in TVM environment `env` in this run (it is recorded, not run), else
    None. Decided by what the environment's TVM has (bench.core.tvm_envs.probe), never by its version."""
    fe = FRONTENDS[frontend]
    if env == current() and not fe.relay:
        return None  # this process's TVM: its import failures are the cell's own
    missing = missing_reason(env, importers())
    if missing:
        return missing
    info = probe(env, importers())
    if not info.get("importers", {}).get(fe.tvm_api):
        has = ("has no Relay (Relay is gone from TVM 0.20 on: run it in --tvm 0.19)" if fe.relay
               else f"has no {fe.tvm_api}")
        return f"{frontend} needs {fe.tvm_api}: TVM {info.get('version')} (environment {env}) {has}"
    if not fe.relay and info.get("api") == "legacy" and (cfg.target != "llvm" or cfg.dtype != "float32" or cfg.shapes != "static"
                                                          or cfg.scenario == "generate" or cfg.rpc or cfg.bundle):
        return f"a Relax cell in TVM {info.get('version')} (before the tvm.compile API) takes {LEGACY_LIMITS}"
    if cfg.db and not fe.relay and info.get("api") == "compile":
        made = (read_meta(cfg.db) or {}).get("tvm_version")
        if made != info.get("version"):
            return f"--db {cfg.db} was tuned with TVM {made}; this build is TVM {info.get('version')}: schedules do not carry across versions"
    return None


def run_cell(cfg: RunConfig, state: RunState, model: str, frontend: str, env: str) -> dict:
    """One cell, where it can run: this process, a spawned one, or the interpreter of another TVM
    environment; a pair that cannot run, or an environment not installed, is a recorded cell. Every
    cell records the identity of its TVM (notes.tvm_build)."""
    reason = env_reason(cfg, frontend, env)
    if reason:  # recorded, not run
        cell = new_cell(cfg, model, frontend, env)
        cell.set(status="import_failed", stage="env", error=reason)
        log(f"[{model} × {frontend}] not run in TVM {env}: {reason}")
    elif env != current():
        cell = run_in_env(cfg, state, model, frontend, env)
    else:
        cell = run_isolated(cfg, state, model, frontend) if cfg.isolate else execute_cell(cfg, state, model, frontend, env)
    cell.notes["tvm_build"] = identity(env, importers())
    return cell


def run_in_env(cfg: RunConfig, state: RunState, model: str, frontend: str, env: str) -> dict:
    """execute_cell in another TVM environment's interpreter (bench.pipeline.env_worker); its logs go to our
    stderr, its cell comes back as JSON; a crash or a timeout becomes the cell's status."""
    import json
    import subprocess

    with tempfile.TemporaryDirectory(prefix="gptbench-env-") as tmp:
        cfg_path, out = Path(tmp) / "config.json", Path(tmp) / "cell.json"
        # --tune-budget goes along: a Relay cell tunes (or finds) its own database there (bench.tuning.relay_tune);
        # a Relax cell in TVM 0.19 drops it and builds untuned, saying so (bench.pipeline.legacy_cell)
        # its own databases, where --tune-budget tuned in that environment (bench.pipeline.autotune: ENV|MODEL)
        # and --db where that environment can apply it (env_reason checked its TVM version)
        mine, tuned = env_databases(state, env)
        db = cfg.db if cfg.db and not FRONTENDS[frontend].relay and probe(env, importers()).get("api") == "compile" else None
        cfg_path.write_text(json.dumps(run_json(replace(cfg, isolate=False, db=db), replace(state, dbs=mine, tuned_now=tuned))))
        # From a source checkout the other interpreter imports the harness from it. An installed harness is
        # in site-packages beside this environment's numpy and TVM, which must not shadow the other's:
        # there the other environment has the harness installed itself (docker/Dockerfile's relay stage).
        checkout = (REPO / "pyproject.toml").exists()
        t0 = time.perf_counter()
        proc = subprocess.Popen([*worker_command(env), str(cfg_path), model, frontend, env, str(out)],
                                cwd=REPO if checkout else None, env=launch_env(env))
        try:
            code = proc.wait(timeout=cfg.cell_timeout or None)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if out.exists():
            return Cell.from_json(json.loads(out.read_text()))
        return _lost_cell(cfg, model, frontend, env, time.perf_counter() - t0, code is None, code, f"the TVM {env} worker")


def _todo(cfg: RunConfig, state: RunState) -> list[tuple]:
    """(configuration, state, model, frontend, env) of every cell, after --tune-budget filled state.dbs. With
    --tuned-after, each cut is a cell of its own where a database applies (a Relax cell in this TVM);
    the others (Relay, TVM 0.19) run once, with the first cut's configuration, which they ignore."""
    points = cfg.tuning_points()
    return [(point, state, m, f, env) for k, point in enumerate(points) for m, f, env in point.cells()
            if k == 0 or (env == current() and not FRONTENDS[f].relay)]


def _tuned_todo(points: list[RunConfig], state: RunState, builds: str | None) -> list[tuple]:
    """_todo of every shape of a sweep, each tuned first with --tune-budget. Each shape has its own state (its
    tuning databases are its own); with symbolic shapes they share `builds`: one build per model × frontend ×
    batch, run at every length (bench.pipeline.shared_build)."""
    states = [replace(state.for_shape(), build_cache=builds or state.build_cache) for _ in points] if len(points) > 1 else [state]
    todo = []
    for shape, shape_state in zip(points, states, strict=True):
        if shape.tune_budget:
            ensure_tuned(shape, shape_state)
        todo += _todo(shape, shape_state)
    return todo


def run_matrix(cfg: RunConfig, state: RunState, on_cell=None) -> list[dict]:
    """Every cell of the run in turn (each shape of a sweep tuned first, with --tune-budget); Interrupted
    carries the cells finished when Ctrl-C or SIGTERM came."""
    cells = []
    configure_threads(cfg.threads)
    import signal

    def on_term(_signum, _frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_term)
    current = None  # the cell in progress, when an interrupt comes
    points = cfg.shape_points()
    builds = tempfile.mkdtemp(prefix="gptbench-builds-") if cfg.shapes == "symbolic" and len(points) > 1 else None
    try:
        todo = _tuned_todo(points, state, builds)
        for i, (point, point_state, model, frontend, env) in enumerate(todo, 1):
            cut = "" if point.tuning_cut is None else f"; the database after {cut_label(point.tuning_cut)} of tuning"
            log(f"== cell {i}/{len(todo)}: {model} × {frontend} on {cfg.target} ({cfg.scenario}, batch {point.batch}, "
                f"{'seq ' + str(point.seq_len) if cfg.scenario != 'decode' else 'past ' + str(point.past_len)}, {cfg.shapes}; TVM {env}{cut})")
            current = (i, point, model, frontend, env)
            try:
                cell = run_cell(point, point_state, model, frontend, env)
            except Exception as e:  # noqa: BLE001 - the harness's own failure in one cell: recorded, the run goes on
                cell = new_cell(point, model, frontend, env)
                cell.set(status="crashed", error=f"the harness failed running this cell: {short_error(e)}")
                log(f"[{model} × {frontend}] {cell.error}")
            current = None
            cells.append(cell)
            if on_cell:
                on_cell(cell)
    except KeyboardInterrupt as e:  # during a cell, or during tuning before any
        signame = "SIGTERM" if str(e) == "SIGTERM" else "SIGINT"
        if current is not None:
            i, point, model, frontend, env = current
            cell = new_cell(point, model, frontend, env)
            cell.set(status="interrupted", error=f"{'SIGTERM' if signame == 'SIGTERM' else 'Ctrl-C (SIGINT)'} during this cell; "
                                                    f"{len(todo) - i} cell(s) after it not run")
            cells.append(cell)
        raise Interrupted(signame, 143 if signame == "SIGTERM" else 130, cells) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        if builds:
            shutil.rmtree(builds, ignore_errors=True)
    return cells
