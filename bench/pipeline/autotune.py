"""`--tune-budget`: find the cached tuning database for each model, or tune one within the budget."""

from __future__ import annotations

from dataclasses import replace

from bench.core.log import log
from bench.core.tvm_envs import current
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
    """--tune-budget: for each model, use the cached database for (TVM version, target, model, scenario,
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
