"""A Relay cell, in the TVM 0.19 environment: import (frontends.relay) → relay.build at opt_level 3
for this CPU → graph executor → the same measurement as every cell (runner.measure_compiled).

With --tune-budget the cell finds or tunes its MetaSchedule database (bench.tuning.relay_tune) and
builds through MetaSchedule's Relay integration; the `untuned` baseline is then the plain relay.build
of the same import, timed in the same rounds."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.baselines import MODEL_ONLY, Prepared
from bench.build.relax import as_numpy
from bench.core.env import cpu_flags
from bench.pipeline.cell import (
    CellContext,
    cell_case,
    import_case,
    load_cell_model,
    measure_compiled,
)
from bench.record import Cell
from bench.tuning.relay_tune import build_tuned, ensure_relay_db
from frontends.base import short_error

if TYPE_CHECKING:
    import numpy as np


def relay_mcpu() -> tuple[str, str]:
    """(-mcpu for LLVM 14, why). LLVM 14 names CPUs up to about 2021: on a newer one its host
    detection says `generic` (no AVX at all). Then the newest LLVM 14 CPU whose instruction sets
    this host has: skylake-avx512 with AVX-512 F/BW/DQ/VL/CD, haswell with AVX2/FMA/BMI2."""
    import tvm

    host = str(tvm.target.codegen.llvm_get_system_cpu())
    if host != "generic":
        return host, "LLVM 14's host detection"
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set(cpu_flags())
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"} <= flags:
        return "skylake-avx512", "LLVM 14 does not know this CPU (host detection: generic); it has AVX-512 F/BW/DQ/VL/CD"
    if {"avx2", "fma", "bmi2"} <= flags:
        return "haswell", "LLVM 14 does not know this CPU (host detection: generic); it has AVX2/FMA/BMI2"
    return "generic", "LLVM 14 does not know this CPU and it lacks AVX2"


class RelayCompiled:
    """A relay.build library in the graph executor: call it, time it (Compiled's interface)."""

    def __init__(self, lib, input_names: list[str], untuned=None):
        import tvm
        from tvm.contrib import graph_executor

        self.untuned = untuned  # inputs -> the `untuned` baseline (a tuned cell's plain relay.build), else None
        self.device = tvm.cpu(0)
        self.input_names = list(input_names)
        self.module = graph_executor.GraphModule(lib["default"](self.device))

    def _set(self, inputs) -> None:
        import numpy as np

        for name, x in zip(self.input_names, inputs, strict=True):
            self.module.set_input(name, np.ascontiguousarray(as_numpy(x)))

    def __call__(self, *inputs) -> list[np.ndarray]:
        self._set(inputs)
        self.module.run()
        return [self.module.get_output(i).numpy() for i in range(self.module.get_num_outputs())]

    def timer(self, inputs):
        self._set(inputs)
        evaluator = self.module.module.time_evaluator("run", self.device, number=1, repeat=1)
        return lambda: float(evaluator().results[0])


def plain_build(mod, params, spec: str):
    """relay.build at opt_level 3 with TVM's default (TOPI) schedules: (library, seconds)."""
    import tvm
    from tvm import relay

    t0 = time.perf_counter()
    with tvm.transform.PassContext(opt_level=3):
        lib = relay.build(mod, target=tvm.target.Target(spec), params=params)
    return lib, time.perf_counter() - t0


def untuned_baseline(mod, params, spec: str, input_names: list[str]):
    """The `untuned` baseline of a tuned Relay cell: the plain relay.build of the same import."""

    def prepare(inputs) -> Prepared:
        lib, build_s = plain_build(mod, params, spec)
        compiled = RelayCompiled(lib, input_names)
        return Prepared("untuned", lambda: compiled(*inputs), compiled.timer(inputs), build_s,
                        {"what": "same import, plain relay.build (TOPI default schedules), no tuning database",
                         "build_s": round(build_s, 3)})

    return prepare


def tvm019_setup(cfg, cell: Cell, blas: bool, tuned: bool = False) -> tuple:
    """What every cell in the TVM 0.19 environment (Relay, or Relax untuned) shares: the baselines that run
    there (those that need only the model; untuned in a tuned Relay cell), and the target string for this CPU with LLVM 14
    (`blas`: -libs=cblas, which only relay.build uses). Returns (cfg, target string, its -mcpu)."""
    import tvm

    here = [*MODEL_ONLY, *(["untuned"] if tuned else [])]
    others = [b for b in cfg.baselines if b not in here]
    if others:  # ONNX Runtime and untuned TVM 0.27 belong to the 0.27 cells of the same report
        cell.notes["baselines"] = f"{', '.join(others)} not run in the TVM 0.19 cells: see the TVM 0.27 cells of the same run"
        cfg = replace(cfg, baselines=[b for b in cfg.baselines if b in here])
    os.environ.setdefault("TOPHUB_LOCATION", "NONE")  # else TVM retries a GitHub download of AutoTVM logs
    mcpu, why = relay_mcpu()
    spec = f"llvm -mcpu={mcpu} -num-cores={cfg.threads}" + (" -libs=cblas" if blas else "")
    cell.target_spec = spec
    cell.notes.update(tvm_version=tvm.__version__, llvm=int(tvm.target.codegen.llvm_version_major()), mcpu_choice=why)
    return cfg, spec, mcpu


def execute_relay(cfg, model: str, frontend: str, cell: Cell, log) -> None:
    import tvm

    tag = f"[{model} × {frontend} · TVM {tvm.__version__}]"
    tuned = cfg.tune_budget > 0
    cfg, spec, mcpu = tvm019_setup(cfg, cell, cfg.blas, tuned)
    loaded = load_cell_model(cfg, model, cell)  # RunConfig took llvm, float32, static shapes, prefill or decode
    case = cell_case(cfg, loaded, cell)
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        workdir = Path(tmp)
        log(f"{tag} {loaded.n_params / 1e6:.2f}M params, weights {loaded.weights.label()}; importing")
        imported = import_case(frontend, case, workdir, cell, tag)
        if imported is None:
            return
        cell.stage = "build"
        log(f"{tag} imported ({sum(imported.relax_ops.values())} Relay op calls); "
            f"{'MetaSchedule database, then compile_relay' if tuned else 'relay.build'} for {spec}")
        try:
            if tuned:
                lib = _tuned_lib(cfg, model, frontend, imported, spec, mcpu, cell, tag, log)
            else:
                lib, build_s = plain_build(imported.mod, imported.params, spec)
                cell.timings["build_s"] = round(build_s, 3)
        except Exception as e:  # noqa: BLE001 - a failed build (or tuning) is a result
            cell.set(status="build_failed", error=short_error(e))
            log(f"{tag} build failed: {cell.error}")
            return
        cell.stage = "run"
        untuned = untuned_baseline(imported.mod, imported.params, spec, case.input_names) if tuned else None
        compiled = RelayCompiled(lib, case.input_names, untuned)
        measure_compiled(CellContext(cfg, cell, tag, workdir), loaded, case, compiled)


def _tuned_lib(cfg, model: str, frontend: str, imported, spec: str, mcpu: str, cell: Cell, tag: str, log):
    """--tune-budget: the cell's database (found, or tuned now: its seconds go to timings.tune_s), then
    compile_relay with it (timings.build_s)."""
    import tvm

    target = tvm.target.Target(spec)
    t0 = time.perf_counter()
    db_dir, cell.tuning = ensure_relay_db(cfg, model, frontend, imported.mod, imported.params, target, mcpu, cfg.blas,
                                          lambda m: log(f"{tag} {m}"))
    cell.timings["tune_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    lib = build_tuned(db_dir, imported.mod, imported.params, target)
    cell.timings["build_s"] = round(time.perf_counter() - t0, 3)
    return lib
