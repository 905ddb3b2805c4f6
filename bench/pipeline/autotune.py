"""`--tune-budget`: find the cached tuning database for each model, or tune one within the budget; in this
process's TVM, and in every other environment of the run that has the `tvm.compile` API, each in a
process of its own interpreter (`python -m bench.pipeline.autotune CONFIG.json OUT.json`), for the same
budget. What they find or make goes into the run's state (bench.pipeline.config.RunState: `dbs` and `tuned_now`,
by model, or by `ENV|MODEL` for another environment)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bench.core.files import atomic_write
from bench.core.log import log
from bench.core.tvm_envs import CURRENT_VAR, current, launch_env, launcher, probe
from bench.pipeline.config import RunConfig, RunState, run_from_json, run_json
from bench.targets import make_target
from bench.tuning.database import db_frontends, default_db_dir, read_meta, validate_database
from bench.tuning.search import TuneJob, tune
from frontends import FRONTENDS
from frontends.base import short_error


def tuning_frontends(cfg: RunConfig) -> list[str]:
    """The frontends whose imports a --tune-budget database is tuned on: every Relax frontend with a cell
    in this TVM (their kernels differ: each cell must find its own in the database); none when there is
    none (a Relay cell tunes its own database in TVM 0.19: bench.tuning.relay_tune)."""
    return list(dict.fromkeys(f for _m, f, env in cfg.cells() if env == current() and not FRONTENDS[f].relay))


def ensure_tuned(cfg: RunConfig, state: RunState) -> None:
    """--tune-budget in this TVM, then in each other environment of the run that can tune (tune_in_env)."""
    tune_here(cfg, state)
    others = dict.fromkeys(env for _m, f, env in cfg.cells() if env != current() and not FRONTENDS[f].relay)
    for env in others:
        if probe(env).get("api") == "compile":
            tune_in_env(cfg, state, env)


def tune_in_env(cfg: RunConfig, state: RunState, env: str) -> None:
    """tune_here in environment `env`'s interpreter (as its own process's TVM); its databases go into state.dbs as ENV|MODEL."""
    with tempfile.TemporaryDirectory(prefix="gptbench-tune-") as tmp:
        cfg_path, out = Path(tmp) / "config.json", Path(tmp) / "tuned.json"
        cfg_path.write_text(json.dumps(run_json(replace(cfg, tvm=None, isolate=False), replace(state, dbs={}, tuned_now={}))))
        log(f"tuning in TVM {env} (its own process), for at most {cfg.tune_budget:g} s per model")
        code = subprocess.run([*launcher(env), "bench.pipeline.autotune", str(cfg_path), str(out)], env=launch_env(env, {CURRENT_VAR: env})).returncode
        tuned = json.loads(out.read_text()) if out.exists() else {}
    for model in cfg.models:
        if model in tuned.get("dbs", {}):
            state.dbs[f"{env}|{model}"] = tuned["dbs"][model]
        state.tuned_now[f"{env}|{model}"] = tuned.get("tuned_now", {}).get(model) or dict(tuning_error=f"tuning in TVM {env} exited {code}")


def env_databases(state: RunState, env: str) -> tuple[dict, dict]:
    """What tune_in_env filled for environment `env`, keyed by model as that environment's own process reads them:
    (dbs, tuned_now)."""
    def mine(table: dict) -> dict:
        return {k.split("|", 1)[1]: v for k, v in table.items() if k.startswith(env + "|")}

    return mine(state.dbs), mine(state.tuned_now)


def tune_here(cfg: RunConfig, state: RunState) -> None:
    """--tune-budget in this process's TVM: for each model, use the cached database for (TVM version, target, model, scenario,
    shapes, fast-math) when it holds the kernels of every frontend of the run, else tune for at most the budget and keep
    it: one session over the kernels of all the run's frontends (bench.tuning.search), or, for a cached database tuned
    on fewer frontends, over the kernels it has no record for. A frontend whose import failed when the database was
    tuned is not tried again (the database says why). Fills state.dbs (model -> path) and state.tuned_now (model -> what
    this run's tuning did)."""
    frontends = tuning_frontends(cfg)
    if not frontends:
        return
    tinfo = make_target(cfg.target, cfg.threads, cfg.cuda_arch)
    for model in cfg.models:
        db = default_db_dir(model, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, tinfo, True, cfg.fast_math, root=cfg.tune_cache)
        meta = read_meta(db)
        cached = meta is not None and bool(meta.get("trials"))
        missing = frontends
        if cached:
            validate_database(db, tinfo)  # a found database is checked as --db's is, before any cell builds with it
            failed = meta.get("frontends_failed") or {}
            missing = [f for f in frontends if f not in db_frontends(meta) and f not in failed]
            found = (f"[{model}] tuning database found: {db} ({meta.get('trials')} trials, {meta.get('wall_s')} s of tuning, "
                     f"through {', '.join(db_frontends(meta))}" + "".join(f"; {f}'s import failed" for f in failed) + ")")
            if not missing:
                log(f"{found}; tuning nothing")
                state.dbs[model] = str(db)
                state.tuned_now[model] = dict(from_cache=True)
                continue
            log(f"{found}; tuning the kernels of {', '.join(missing)} it has no record for, for at most {cfg.tune_budget:g} s")
        else:
            log(f"[{model}] no tuning database at {db}: tuning through {', '.join(frontends)} for at most {cfg.tune_budget:g} s")
        one = replace(cfg, models=[model], frontends=missing, db=None)
        try:
            meta = tune(one, tinfo, TuneJob(missing, db, budget_s=cfg.tune_budget, missing_only=cached), log)
        except Exception as e:  # noqa: BLE001 - the cells then run untuned and say why

            log(f"[{model}] tuning failed, its cells build {'with the database as it was' if cached else 'untuned'}: {short_error(e)}")
            if cached:
                state.dbs[model] = str(db)
                state.tuned_now[model] = dict(from_cache=True, tuning_error=short_error(e))
            else:
                state.tuned_now[model] = dict(tuning_error=short_error(e))
            continue
        state.dbs[model] = str(db)
        state.tuned_now[model] = dict(tuned_in_this_run=meta["last_session"])
        log(f"[{model}] tuned {meta['last_session']['trials']} trials in {meta['last_session']['wall_s']} s "
            f"(stopped by {meta['last_session']['stopped_by']}): {db}")


def main(argv: list[str]) -> int:
    """CONFIG.json OUT.json: tune_here in this interpreter (the environment to tune is this process's); OUT gets dbs and tuned_now."""
    cfg, state = run_from_json(json.loads(Path(argv[0]).read_text()))
    tune_here(cfg, state)
    atomic_write(Path(argv[1]), json.dumps(dict(dbs=state.dbs, tuned_now=state.tuned_now)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
