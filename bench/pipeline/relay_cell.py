"""A Relay cell, in the TVM 0.19 environment: import (frontends.relay) → relay.build at opt_level 3
for this CPU → graph executor → the same measurement as every cell (runner.measure_compiled)."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.build.relax import _numpy
from bench.core.env import cpu_flags
from bench.pipeline.cell import (
    cell_case,
    import_case,
    load_cell_model,
    measure_compiled,
)
from bench.record import Cell

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

    def __init__(self, lib, input_names: list[str]):
        import tvm
        from tvm.contrib import graph_executor

        self.device = tvm.cpu(0)
        self.input_names = list(input_names)
        self.module = graph_executor.GraphModule(lib["default"](self.device))

    def _set(self, inputs) -> None:
        import numpy as np

        for name, x in zip(self.input_names, inputs, strict=True):
            self.module.set_input(name, np.ascontiguousarray(_numpy(x)))

    def __call__(self, *inputs) -> list[np.ndarray]:
        self._set(inputs)
        self.module.run()
        return [self.module.get_output(i).numpy() for i in range(self.module.get_num_outputs())]

    def timer(self, inputs):
        self._set(inputs)
        evaluator = self.module.module.time_evaluator("run", self.device, number=1, repeat=1)
        return lambda: float(evaluator().results[0])


def tvm019_setup(cfg, cell: Cell, blas: bool) -> tuple:
    """What every cell in the TVM 0.19 environment (Relay, or Relax untuned) shares: the baselines that run
    there (eager, compile), and the target string for this CPU with LLVM 14 (`blas`: -libs=cblas, which
    only relay.build uses). Returns (cfg, target string)."""
    import tvm

    others = [b for b in cfg.baselines if b not in ("eager", "compile")]
    if others:  # ONNX Runtime and untuned TVM 0.27 belong to the 0.27 cells of the same report
        cell.notes["baselines"] = f"{', '.join(others)} not run in the TVM 0.19 cells: see the TVM 0.27 cells of the same run"
        cfg = replace(cfg, baselines=[b for b in cfg.baselines if b in ("eager", "compile")])
    os.environ.setdefault("TOPHUB_LOCATION", "NONE")  # else TVM retries a GitHub download of AutoTVM logs
    mcpu, why = relay_mcpu()
    spec = f"llvm -mcpu={mcpu} -num-cores={cfg.threads}" + (" -libs=cblas" if blas else "")
    cell.target_spec = spec
    cell.notes.update(tvm_version=tvm.__version__, llvm=int(tvm.target.codegen.llvm_version_major()), mcpu_choice=why)
    return cfg, spec


def execute_relay(cfg, model: str, frontend: str, cell: Cell, log) -> None:
    import tvm
    from tvm import relay

    tag = f"[{model} × {frontend} · TVM {tvm.__version__}]"
    cfg, spec = tvm019_setup(cfg, cell, cfg.blas)
    loaded = load_cell_model(cfg, model, cell)  # RunConfig took llvm, float32, static shapes, prefill or decode
    case = cell_case(cfg, loaded)
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        workdir = Path(tmp)
        log(f"{tag} {loaded.n_params / 1e6:.2f}M params, weights {loaded.weights.label()}; importing")
        imported = import_case(frontend, case, workdir, cell, tag)
        if imported is None:
            return
        cell.stage = "build"
        log(f"{tag} imported ({sum(imported.relax_ops.values())} Relay op calls); relay.build for {spec}")
        t0 = time.perf_counter()
        with tvm.transform.PassContext(opt_level=3):
            lib = relay.build(imported.mod, target=tvm.target.Target(spec), params=imported.params)
        cell.timings["build_s"] = round(time.perf_counter() - t0, 3)
        cell.stage = "run"
        compiled = RelayCompiled(lib, case.input_names)
        measure_compiled(cfg, loaded, case, compiled, cell, tag, frontend, None, "cpu", workdir)
