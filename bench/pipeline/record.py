"""The cell record: what one cell of the matrix measured, as the reports store it (its id, its
status, the stage that failed), and the empty record every cell starts from.
"""

from __future__ import annotations

from bench.pipeline.config import RunConfig
from frontends import FRONTENDS

ID_FIELDS = ("model", "frontend", "target", "scenario", "batch", "seq_len", "past_len", "new_tokens", "shapes", "dtype")



def cell_id(cell: dict) -> str:
    """The key `compare` matches cells by: what was measured, plus the variant (a pass ablation,
    a tuned build) when there is one."""
    key = "|".join(str(cell[k]) for k in ID_FIELDS)
    return f"{key}|{cell['variant']}" if cell.get("variant") else key



def variant_name(cfg, env: str = "0.27") -> str | None:
    """The pipeline variant a cell was built with (part of its id: compare never matches two
    variants), and the TVM environment when it is not the default one."""
    relax = env == "0.27"
    parts = ([] if relax else [f"tvm-{env}"]) + (["+dlight"] if cfg.dlight and relax else []) + \
        (["+fastmath"] if cfg.fast_math and relax else []) + (["+cblas"] if cfg.blas and not relax else [])
    return "".join(parts) or None



def new_cell(cfg: RunConfig, model: str, frontend: str, env: str | None = None) -> dict:
    env = env or FRONTENDS[frontend].tvm_env
    cell = dict(
        model=model, frontend=frontend, target=cfg.target, scenario=cfg.scenario, batch=cfg.batch,
        seq_len=cfg.seq_len if cfg.scenario != "decode" else 1,
        past_len=cfg.past_len if cfg.scenario == "decode" else 0,
        new_tokens=cfg.new_tokens if cfg.scenario == "generate" else 0,
        shapes=cfg.shapes, dtype=cfg.dtype, threads=cfg.threads,
        status="crashed", stage=None, error=None, unsupported_ops=[],
        weights=None, n_params=None, timings={}, source_ops={}, relax_ops={}, patches=[], notes={},
        parity=None, tvm=None, baselines={}, speedup={}, timing=None, peak_rss_mb=None,
        rss_scope="cell process" if cfg.isolate else "whole run (cells share a process)",
        tuning=None, target_spec=None, variant=variant_name(cfg, env), rewrites={}, tvm_env=env,
    )
    cell["id"] = cell_id(cell)
    return cell



STATUSES = ("ok", "mismatch", "import_failed", "build_failed", "run_failed", "crashed", "no_device", "timeout", "interrupted", "bundled")


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a run: the cells finished so far are kept (`cells`)."""

    def __init__(self, signame: str, exit_code: int, cells: list[dict]):
        super().__init__(signame)
        self.signame, self.exit_code, self.cells = signame, exit_code, cells
