"""Running one cell in this process: the Relay cells and the Relax cells of TVM 0.19, generation, bundles, and the
prefill/decode cell of `bench.pipeline.cell`'s steps. A failure of the model, frontend or TVM is the
cell's status, never an exception.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path

from bench.core import tvm_compat
from bench.core.log import log
from bench.core.threads import peak_rss_mb
from bench.pipeline.bundle import write_cell
from bench.pipeline.cell import (
    CellContext,
    cell_case,
    import_and_build,
    measure_compiled,
    on_device,
    setup_cell,
)
from bench.pipeline.config import RunConfig, RunState, new_cell
from bench.pipeline.generate import generate_cell
from bench.pipeline.legacy_cell import execute_relax_legacy
from bench.pipeline.relay_cell import execute_relay
from bench.record import Cell
from frontends import FRONTENDS
from frontends.base import short_error


def execute_cell(cfg: RunConfig, state: RunState, model: str, frontend: str, env: str | None = None) -> Cell:
    """Run one cell in this process; never raises for a failure of the model, frontend or TVM."""
    cell = new_cell(cfg, model, frontend, env)
    t_cell = time.perf_counter()
    try:
        if FRONTENDS[frontend].relay:
            execute_relay(cfg, model, frontend, cell, log)
        elif tvm_compat.legacy():  # a TVM before the tvm.compile API (0.19)
            execute_relax_legacy(cfg, model, frontend, cell, log)
        else:
            _execute(cfg, state, model, frontend, cell)
    except Exception as e:  # noqa: BLE001 - a failed cell is a result

        status = {"export": "import_failed", "import": "import_failed", "build": "build_failed"}.get(cell.stage, "run_failed")
        cell.set(status=status, error=short_error(e), traceback=traceback.format_exc(limit=8))
    cell.timings["cell_s"] = round(time.perf_counter() - t_cell, 3)
    cell.peak_rss_mb = peak_rss_mb()
    return cell



def _execute(cfg: RunConfig, state: RunState, model: str, frontend: str, cell: Cell) -> None:
    tag = f"[{model} × {frontend}]"
    loaded, tinfo, torch_device = setup_cell(cfg, state, model, cell)
    if cfg.scenario == "generate":
        return generate_cell(cfg, loaded, frontend, tinfo, torch_device, cell, log)
    case = cell_case(cfg, loaded, cell)
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        workdir = Path(tmp)
        log(f"{tag} {loaded.n_params / 1e6:.2f}M params, weights {loaded.weights.label()}; importing")
        export = (lambda imported, ex: write_cell(cfg, cell, case, imported, ex, log)) if cfg.bundle else None
        ctx = CellContext(cfg, cell, tag, workdir, tinfo, torch_device, state)
        compiled = import_and_build(ctx, case, export)
        if compiled is None:
            return
        if cfg.rpc:
            compiled = on_device(ctx, compiled)
        measure_compiled(ctx, loaded, case, compiled)
