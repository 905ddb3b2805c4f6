"""A Relax cell in the TVM 0.19 environment: the same frontends (export, onnx, fx) and cell steps as in
TVM 0.27 (import → build → parity vs eager → timing), built untuned with 0.19's own pipeline
(bench.build.relax.build_legacy) for the target string of the Relay cells. One report then separates
the frontend's effect (Relay vs Relax, both in 0.19) from the version's (Relax 0.19 vs 0.27).

The rule: tuning needs the tvm.compile API (0.25 on). A tuning database, --tune-budget, --tuned-after and --dlight (0.19's
dlight has no CPU rules) apply to the 0.27 cells; a 0.19 Relax cell builds untuned and its notes say so.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from bench.build.relax import LEGACY_PIPELINE
from bench.pipeline.cell import (
    CellContext,
    cell_case,
    import_and_build,
    load_cell_model,
    measure_compiled,
)
from bench.pipeline.relay_cell import tvm019_setup
from bench.record import Cell
from bench.targets import TargetInfo

UNTUNED = "untuned: tuning databases (--db, --tune-budget, --tuned-after) are TVM 0.27's only"


def execute_relax_legacy(cfg, model: str, frontend: str, cell: Cell, log) -> None:
    import tvm

    tag = f"[{model} × {frontend} · TVM {tvm.__version__}]"
    cfg, spec, _ = tvm019_setup(cfg, cell, blas=False)
    cell.notes.update(pipeline=LEGACY_PIPELINE, tuning=UNTUNED)
    if cfg.dlight:
        cell.notes["dlight"] = "not applied: TVM 0.19's dlight has no CPU rules"
    if cfg.blas:
        cell.notes["blas"] = "not applied: -libs=cblas is relay.build's (Relax legalizes its matmuls to TIR)"
    cfg = replace(cfg, db=None, tune_budget=0.0, tuning_cut=None, dlight=False)
    loaded = load_cell_model(cfg, model, cell)
    case = cell_case(cfg, loaded, cell)
    tinfo = TargetInfo("llvm", tvm.target.Target(spec), spec, True, "")
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        workdir = Path(tmp)
        log(f"{tag} {loaded.n_params / 1e6:.2f}M params, weights {loaded.weights.label()}; importing")
        compiled = import_and_build(CellContext(cfg, cell, tag, workdir, tinfo), case)
        if compiled is None:
            return
        measure_compiled(CellContext(cfg, cell, tag, workdir), loaded, case, compiled)  # measured as another environment's build
