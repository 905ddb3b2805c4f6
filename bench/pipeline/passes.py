"""`gptbench passes`: where compile time goes, and which passes matter for latency.

1. Pass timing: one build of the default pipeline under a pass instrument that records, for
   every pass TVM runs (Relax pipeline passes, then the TIR lowering and codegen passes inside
   `tvm.compile`), its wall time and nesting depth, and after each Relax pass the IR size
   (Relax bindings, PrimFuncs).
2. Ablation: one more build per chosen pass with that pass disabled
   (`PassContext(disabled_pass=[...])`), and on llvm one with dlight's CPU rules added
   ("+dlight"), each measured like a `run` cell: build time, parity vs eager, TVM latency; all
   builds and eager are timed in the same alternating rounds. A build or run that fails without
   the pass is recorded as such (that too says what the pass is for).

The result is a report of kind "passes" whose cells are the variants ("default", "-FuseOps", …):
`gptbench compare` matches them across two reports, so CI can run `passes` on a baseline and on a
changed TVM and fail on a regression of build time or latency.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from bench.baselines import prepare_eager
from bench.build.relax import PIPELINE_NAME as PIPELINE_PASS
from bench.build.relax import Compiled, build, pipeline_passes
from bench.core.errors import UserError
from bench.core.threads import configure_threads, peak_rss_mb
from bench.measure.parity import compare
from bench.models import load_model
from bench.pipeline.cell import time_backends
from bench.pipeline.config import new_cell
from bench.record import Baseline, Cell, Parity
from bench.scenarios import make_case
from bench.targets import TARGETS, make_target
from bench.tuning.database import prepacked
from frontends import get_frontend
from frontends.base import ImportRequest, short_error

DEFAULT_ABLATIONS = ("FoldConstant", "FuseOps", "FuseTIR", "RewriteDataflowReshape", "StaticPlanBlockMemory", "KillAfterLastUse")


def ir_size(mod) -> dict[str, int]:
    """Relax bindings and PrimFuncs in a module."""
    from tvm import relax, tirx

    bindings = prim_funcs = 0
    for _, func in mod.functions.items():
        if isinstance(func, relax.Function):
            body = func.body
            if isinstance(body, relax.SeqExpr):
                bindings += sum(len(block.bindings) for block in body.blocks)
        elif isinstance(func, tirx.PrimFunc):
            prim_funcs += 1
    return dict(relax_bindings=bindings, prim_funcs=prim_funcs)


def make_recorder():
    """A pass instrument recording (name, depth, seconds, IR size after) for every pass run."""
    from tvm.ir.instrument import pass_instrument

    @pass_instrument
    class Recorder:
        def __init__(self):
            self.stack: list[tuple[str, float]] = []
            self.records: list[dict] = []

        def run_before_pass(self, mod, info):
            self.stack.append((info.name, time.perf_counter()))

        def run_after_pass(self, mod, info):
            name, t0 = self.stack.pop()
            rec = dict(name=name, depth=len(self.stack), seconds=time.perf_counter() - t0)
            if any(True for _ in _relax_funcs(mod)):
                rec.update(ir_size(mod))
            self.records.append(rec)

    return Recorder()


def _relax_funcs(mod):
    from tvm import relax

    return (f for _, f in mod.functions.items() if isinstance(f, relax.Function))


WRAPPERS = {PIPELINE_PASS, "sequential", "_pipeline"}  # containers: their time is their children's


def summarize(records: list[dict]) -> list[dict]:
    """Per pass name (containers left out): calls, total seconds, and the IR size after its last
    Relax-level run; sorted by total time."""
    agg: dict[str, dict] = defaultdict(lambda: dict(calls=0, seconds=0.0, min_depth=99))
    for r in records:
        if r["name"] in WRAPPERS:
            continue
        a = agg[r["name"]]
        a["calls"] += 1
        a["seconds"] += r["seconds"]
        a["min_depth"] = min(a["min_depth"], r["depth"])
        if "relax_bindings" in r:
            a["relax_bindings"], a["prim_funcs"] = r["relax_bindings"], r["prim_funcs"]
    rows = [dict(name=k, **{kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}) for k, v in agg.items()]
    return sorted(rows, key=lambda r: -r["seconds"])


def pipeline_order(records: list[dict]) -> list[dict]:
    """The Relax pipeline's own passes in the order they ran, with IR size after each."""
    # depth 0 is our module pass, depth 1 the Sequential, depth 2 the pipeline passes
    return [dict(name=r["name"], seconds=round(r["seconds"], 4), relax_bindings=r.get("relax_bindings"),
                 prim_funcs=r.get("prim_funcs")) for r in records if r["depth"] == 2 and "relax_bindings" in r]


def run_passes(cfg, model: str, frontend: str, ablations: list[str], log) -> list[Cell]:
    """The cells of a passes report: "default" (with pass timing) and one per disabled pass."""
    configure_threads(cfg.threads)
    tinfo = make_target(cfg.target, cfg.threads, cfg.cuda_arch)
    names = {p.info.name for p in pipeline_passes(tinfo.target)}
    unknown_passes = [a for a in ablations if a not in names]
    if unknown_passes:
        raise UserError(f"not in the {cfg.target} pipeline: {', '.join(unknown_passes)}; its passes are: {', '.join(sorted(names))}")
    loaded = load_model(model, cfg.weights, seed=cfg.seed)
    case = make_case(loaded, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, cfg.shapes, cfg.seed)
    tag = f"[{model} × {frontend} passes]"
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        log(f"{tag} importing")
        imported = get_frontend(frontend).import_model(ImportRequest(case.module, case.inputs, case.input_names, case.dynamic, Path(tmp)))
    torch_device = tinfo.torch_device
    eager = prepare_eager(case, torch_device)
    ref = eager.run()
    recorder = make_recorder()
    log(f"{tag} timing every pass of one default build")
    _, instrumented_s = build(imported.mod, tinfo.target, cfg.db, instruments=[recorder], fast_math=cfg.fast_math,
                              prepack=prepacked(cfg.db))
    variants = ["default", *[f"-{a}" for a in ablations]] + (["+dlight"] if TARGETS[cfg.target].cpu_rules else [])
    cells, compiled = {}, {}
    for variant in variants:
        cells[variant] = _variant_cell(cfg, model, frontend, variant, loaded, tinfo, imported)
        built = _build_variant(cfg, cells[variant], variant, imported, tinfo, case, ref, tag, log)
        if built is not None:
            compiled[variant] = built
    _pass_times(cells["default"], recorder.records, instrumented_s)
    if compiled:
        _time_variants(cfg, cells, compiled, eager, case, tag, log)
    for cell in cells.values():
        cell.peak_rss_mb = peak_rss_mb()
    return list(cells.values())


def _variant_cell(cfg, model: str, frontend: str, variant: str, loaded, tinfo, imported) -> Cell:
    cell = new_cell(cfg, model, frontend)
    cell.set(variant=variant, weights=asdict(loaded.weights), n_params=loaded.n_params, target_spec=tinfo.spec,
             timings={k: round(v, 3) for k, v in imported.timings.items()}, rss_scope="whole passes run",
             source_ops=imported.source_ops, relax_ops=imported.relax_ops)
    cell.id = cell.make_id()
    return cell


def _build_variant(cfg, cell: Cell, variant: str, imported, tinfo, case, ref, tag: str, log):
    """The variant's build, loaded and checked against eager; None when it failed (the cell says why)."""
    disabled = [variant[1:]] if variant.startswith("-") else []
    log(f"{tag} {variant}: building")
    try:
        ex, build_s = build(imported.mod, tinfo.target, cfg.db, disabled_passes=disabled, dlight=variant == "+dlight",
                            fast_math=cfg.fast_math, prepack=prepacked(cfg.db))
    except Exception as e:  # noqa: BLE001 - a pass the build cannot do without is a finding
        cell.set(status="build_failed", stage="build", error=short_error(e))
        log(f"{tag} {variant}: build failed: {cell.error}")
        return None
    cell.timings["build_s"] = round(build_s, 3)
    if not tinfo.device_available:
        cell.set(status="no_device", stage="run", error=tinfo.device_reason)
        return None
    try:
        compiled = Compiled(ex, tinfo.device(), imported.params)
        cell.parity = Parity.from_json(compare(ref, compiled(*case.inputs), cfg.tol, case.output_names))
    except Exception as e:  # noqa: BLE001
        cell.set(status="run_failed", stage="run", error=short_error(e))
        return None
    return compiled


def _pass_times(default: Cell, records: list[dict], instrumented_s: float) -> None:
    default.pass_times = summarize(records)
    default.pipeline = pipeline_order(records)
    default.timings["instrumented_build_s"] = round(instrumented_s, 3)
    default.timings["relax_pipeline_s"] = round(sum(r["seconds"] for r in records if r["name"] == PIPELINE_PASS), 3)


def _time_variants(cfg, cells: dict[str, Cell], compiled: dict, eager, case, tag: str, log) -> None:
    """Every variant and eager in the same alternating rounds, so the deltas compare like with like."""
    timers = {v: c.timer(case.inputs) for v, c in compiled.items()}
    timers["eager"] = eager.timer
    stats, timing = time_backends(cfg.plan(), timers, tag)
    for variant in compiled:
        cell = cells[variant]
        cell.timing = timing
        cell.tvm = stats[variant]
        cell.baselines["eager"] = Baseline("ok", setup_s=0.0, info={}, latency=stats["eager"])
        cell.speedup["eager"] = round(stats["eager"].median / stats[variant].median, 4)
        cell.status = "ok" if cell.parity.ok else "mismatch"
        cell.stage = "run"
        log(f"{tag} {variant}: build {cell.timings['build_s']:.2f} s, TVM median {stats[variant].median:.3f} ms, "
            f"rel L2 {cell.parity.rel_l2:.1e}")
