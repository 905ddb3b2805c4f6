"""`--tune-budget`: find the cached tuning database for each model, or tune one within the budget; in this
process's TVM, and in every other environment of the run that has the `tvm.compile` API, each in a
process of its own interpreter (`python -m bench.pipeline.autotune CONFIG.json OUT.json`), for the same
budget. A database of another environment is kept in `cfg.dbs` under `ENV|MODEL`."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from bench.core.files import atomic_write
from bench.core.log import log
from bench.core.tvm_envs import CURRENT_VAR, current, launch_env, launcher, probe
from bench.pipeline.config import RunConfig
from bench.targets import make_target
from bench.tuning.database import default_db_dir, read_meta, validate_database
from bench.tuning.search import tune
from frontends import FRONTENDS
from frontends.base import short_error


def tuning_frontend(cfg: RunConfig) -> str | None:
    """The frontend whose import a --tune-budget database is tuned on: export where asked (its kernels
    are what the other frontends' builds match against as far as they can), else the first Relax
    frontend with a cell in TVM 0.27; None when there is none (a Relay cell tunes its own database in
    TVM 0.19: bench.tuning.relay_tune)."""
    relax = [f for m, f, env in cfg.cells() if env == current() and not FRONTENDS[f].relay]
    return ("export" if "export" in relax else relax[0]) if relax else None



def ensure_tuned(cfg: RunConfig) -> None:
    """--tune-budget in this TVM, then in each other environment of the run that can tune (tune_in_env)."""
    tune_here(cfg)
    others = dict.fromkeys(env for _m, f, env in cfg.cells() if env != current() and not FRONTENDS[f].relay)
    for env in others:
        if probe(env).get("api") == "compile":
            tune_in_env(cfg, env)


def tune_in_env(cfg: RunConfig, env: str) -> None:
    """tune_here in environment `env`'s interpreter (as its own process's TVM); its databases go into cfg.dbs as ENV|MODEL."""
    with tempfile.TemporaryDirectory(prefix="gptbench-tune-") as tmp:
        cfg_path, out = Path(tmp) / "config.json", Path(tmp) / "tuned.json"
        cfg_path.write_text(json.dumps(asdict(replace(cfg, tvm=None, dbs={}, tuned_now={}, isolate=False))))
        log(f"tuning in TVM {env} (its own process), for at most {cfg.tune_budget:g} s per model")
        code = subprocess.run([*launcher(env), "bench.pipeline.autotune", str(cfg_path), str(out)], env=launch_env(env, {CURRENT_VAR: env})).returncode
        tuned = json.loads(out.read_text()) if out.exists() else {}
    for model in cfg.models:
        if model in tuned.get("dbs", {}):
            cfg.dbs[f"{env}|{model}"] = tuned["dbs"][model]
        cfg.tuned_now[f"{env}|{model}"] = tuned.get("tuned_now", {}).get(model) or dict(tuning_error=f"tuning in TVM {env} exited {code}")


def tune_here(cfg: RunConfig) -> None:
    """--tune-budget in this process's TVM: for each model, use the cached database for (TVM version, target, model, scenario,
    shapes, fast-math) when there is one, else tune one for at most the budget and keep it. Fills
    cfg.dbs (model -> path) and cfg.tuned_now (model -> what this run's tuning did)."""
    frontend = tuning_frontend(cfg)
    if frontend is None:
        return
    tinfo = make_target(cfg.target, cfg.threads, cfg.cuda_arch)
    for model in cfg.models:
        db = default_db_dir(model, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, tinfo, True, cfg.fast_math, root=cfg.tune_cache)
        meta = read_meta(db)
        if meta is not None and meta.get("trials"):
            validate_database(db, tinfo)  # a found database is checked as --db's is, before any cell builds with it
            log(f"[{model}] tuning database found: {db} ({meta.get('trials')} trials, {meta.get('wall_s')} s of tuning); tuning nothing")
            cfg.dbs[model] = str(db)
            cfg.tuned_now[model] = dict(from_cache=True)
            continue
        log(f"[{model}] no tuning database at {db}: tuning through {frontend} for at most {cfg.tune_budget:g} s")
        one = replace(cfg, models=[model], frontends=[frontend], db=None, dbs={}, tuned_now={})
        try:
            meta = tune(one, frontend, 0, db, True, None, log, budget_s=cfg.tune_budget)
        except Exception as e:  # noqa: BLE001 - the cells then run untuned and say why

            log(f"[{model}] tuning failed, its cells build untuned: {short_error(e)}")
            cfg.tuned_now[model] = dict(tuning_error=short_error(e))
            continue
        cfg.dbs[model] = str(db)
        cfg.tuned_now[model] = dict(tuned_in_this_run=meta["last_session"])
        log(f"[{model}] tuned {meta['last_session']['trials']} trials in {meta['last_session']['wall_s']} s "
            f"(stopped by {meta['last_session']['stopped_by']}): {db}")


def main(argv: list[str]) -> int:
    """CONFIG.json OUT.json: tune_here in this interpreter (the environment to tune is this process's); OUT gets dbs and tuned_now."""
    cfg = RunConfig(**json.loads(Path(argv[0]).read_text()))
    tune_here(cfg)
    atomic_write(Path(argv[1]), json.dumps(dict(dbs=cfg.dbs, tuned_now=cfg.tuned_now)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
