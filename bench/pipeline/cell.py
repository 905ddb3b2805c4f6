"""One cell of the matrix, written once: model → eager reference → frontend import → TVM build →
parity → latency of TVM and the baselines in the same rounds. `run`, `passes`, `generate`, bundles
and the Relay cells all go through these steps; whatever fails is recorded in the cell.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import baselines as bl
from bench.build.relax import Compiled, OffloadUnavailable, build, load_library, offload, remote_compiled
from bench.build.rewrites import rewrite_counts
from bench.core import tvm_compat
from bench.core.errors import UserError
from bench.core.files import save_arrays
from bench.core.log import log, round_progress
from bench.core.threads import configure_threads
from bench.measure.parity import compare
from bench.measure.ppl import read_text, split_ids, text_parity, tokenize
from bench.measure.textdata import window_loss
from bench.measure.timing import MachineProbe, measure
from bench.models import load_model
from bench.pipeline import shared_build
from bench.pipeline.config import RunConfig, RunState
from bench.pipeline.memory import METHOD, measure_alone
from bench.record import Baseline, Cell, Latency, Parity
from bench.scenarios import make_case, shape_text
from bench.tuning.database import prepacked
from bench.tuning.progress import cut_label, database_at
from bench.tuning.search import check_database
from frontends import get_frontend
from frontends.base import FrontendError, ImportRequest, short_error
from frontends.onnx_import import ONNX_FILE

TEXT_TOL = 1e-4  # eager and TVM losses on real text must agree to this relative difference


@dataclass(frozen=True)
class CellContext:
    """What every step of one cell shares: the run's flags, the cell's record (which names its model and
    frontend), the log tag, the cell's scratch directory, its target, the torch device eager runs on, and
    the run's state (its tuning databases, the --rpc device, a sweep's shared builds).
    `tinfo` is None where the build was made elsewhere (a bundle, another TVM environment): nothing here
    builds, and the memory step says why it measures nothing."""

    cfg: RunConfig
    cell: Cell
    tag: str
    workdir: Path
    tinfo: Any = None  # bench.targets.TargetInfo
    torch_device: str = "cpu"
    state: RunState = field(default_factory=RunState)


def load_cell_model(cfg: RunConfig, model: str, cell: Cell):
    """The cell's model with its labelled weights, in the run's dtype, on this process's threads."""
    import torch

    configure_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    cell.stage = "model"
    loaded = load_model(model, cfg.weights, seed=cfg.seed)
    if cfg.dtype == "float16":
        loaded.module.half()
    cell.weights = asdict(loaded.weights)
    cell.n_params = loaded.n_params
    return loaded


def cell_case(cfg: RunConfig, loaded, cell: Cell | None = None):
    """The scenario's inputs for the loaded model (float inputs in the run's dtype); what the scenario says about
    its module (e.g. a workaround) goes into the cell's notes."""
    case = make_case(loaded, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, cfg.shapes, cfg.seed)
    if cell is not None:
        cell.notes.update(case.notes)
    if cfg.dtype == "float16":
        case.inputs = tuple(x.half() if x.is_floating_point() else x for x in case.inputs)
    return case


def setup_cell(cfg: RunConfig, state: RunState, model: str, cell: Cell):
    """Load the model and the target for a cell: (loaded, target info, torch device)."""
    loaded = load_cell_model(cfg, model, cell)
    tinfo = state.target_info(cfg)
    cell.target_spec = tinfo.spec
    torch_device = tinfo.torch_device
    return loaded, tinfo, torch_device


def import_case(frontend: str, case, workdir: Path, cell: Cell, tag: str):
    """The frontend's import of a case, recorded in `cell` (timings, op counts, workarounds, notes).
    None when the frontend could not take it: the cell says why (import_failed, unsupported ops)."""
    cell.stage = "import"
    try:
        imported = get_frontend(frontend).import_model(ImportRequest(case.module, case.inputs, case.input_names, case.dynamic, workdir,
                                                                     case.output_names))
    except FrontendError as e:
        cell.set(status="import_failed", stage=e.stage, error=str(e), unsupported_ops=e.unsupported)
        log(f"{tag} import failed: {e}")
        return None
    cell.timings.update({k: round(v, 3) for k, v in imported.timings.items()})
    cell.set(source_ops=imported.source_ops, relax_ops=imported.relax_ops, patches=imported.patches)
    cell.notes.update({k: v for k, v in imported.notes.items() if k != "onnx_file"})
    return imported


def import_and_build(ctx: CellContext, case, export=None):
    """Frontend import and TVM build of a case, recorded in `cell`. Returns (Compiled or None).
    None means the cell's status says why (import_failed, build_failed, no_device, or bundled: `export`,
    when given, takes the build (imported, executable) instead of this device, e.g. into a --bundle). In a sweep with
    symbolic shapes, a later length loads the first length's build (bench.pipeline.shared_build) instead."""
    cfg, cell, tag, tinfo = ctx.cfg, ctx.cell, ctx.tag, ctx.tinfo
    shared = shared_build.shared_dir(cfg, ctx.state, cell)
    if shared is not None and (shared / shared_build.META).is_file() and tinfo.device_available:
        return _load_shared(ctx, shared)
    imported = import_case(cell.frontend, case, ctx.workdir, cell, tag)
    if imported is None:
        return None
    cell.stage = "build"

    cell.rewrites = rewrite_counts(imported.mod, cfg.fast_math, imported.relax_ops)
    log(f"{tag} imported ({sum(imported.relax_ops.values())} Relax op calls); building for {cfg.target}")
    if cfg.offload and (imported := _offloaded(ctx, imported)) is None:
        return None
    found, db = _cell_database(ctx, imported)
    if not found:
        log(f"{tag} {cell.error}")
        return None
    stats: dict = {}
    try:
        ex, build_s = build(imported.mod, tinfo.target, db, dlight=cfg.dlight, fast_math=cfg.fast_math, prepack=prepacked(db), stats=stats)
    except Exception as e:  # noqa: BLE001 - a build failure is a result
        cell.set(status="build_failed", error=short_error(e))
        log(f"{tag} build failed: {cell.error}")
        return None
    cell.timings["build_s"] = round(build_s, 3)
    if "kernels" in stats:
        cell.notes["kernels"] = stats["kernels"]
    if export is not None:
        export(imported, ex)
        return None
    if shared is not None:
        shared_build.save(shared, ex, imported.params, cell)
    if not tinfo.device_available:
        cell.set(status="no_device", stage="run", error=f"built for {tinfo.spec} in {build_s:.1f} s; not run: {tinfo.device_reason}")
        log(f"{tag} {cell.error}")
        return None
    cell.stage = "run"
    return Compiled(ex, tinfo.device(), imported.params, imported=imported,
                    untuned=lambda inputs: bl.prepare_untuned(imported, tinfo, inputs, cfg.dlight, cfg.fast_math))


def _offloaded(ctx: CellContext, imported):
    """The import with its matmuls handed to --offload's library (bench.build.relax.offload; cell.notes["offload"] says
    which), or None when this TVM cannot: a build_failed cell that says what would have gone."""
    try:
        mod, info = offload(imported.mod, ctx.cfg.offload)
    except OffloadUnavailable as e:
        ctx.cell.notes["offload"] = e.info
        ctx.cell.set(status="build_failed", error=str(e))
        log(f"{ctx.tag} {ctx.cell.error}")
        return None
    ctx.cell.notes["offload"] = info
    log(f"{ctx.tag} {info['calls']} matmul calls ({info['functions']} functions) handed to {info['library']}")
    return replace(imported, mod=mod)


def _cell_database(ctx: CellContext, imported) -> tuple[bool, str | None]:
    """(False, None) when the --tuned-after cut cannot be made (the cell says why), else (True, the tuning database
    the cell builds with, recorded in the cell; None: untuned)."""
    cfg, cell, tuned_now = ctx.cfg, ctx.cell, ctx.state.tuned_now
    db = whole = ctx.state.db_for(cfg, cell.model)
    cut = None
    if db and cfg.tuning_cut is not None:
        try:
            db, cut = database_at(db, cfg.tuning_cut, ctx.workdir / "tuning-cut")
        except UserError as e:
            cell.set(status="build_failed", error=f"--tuned-after {cut_label(cfg.tuning_cut)}: {e}")
            return False, None
    if db:
        cell.tuning = check_database(db, ctx.tinfo, imported.mod)
        cell.tuning.update(tuned_now.get(cell.model) or {})
        if cut is not None:  # the database named is the whole one; the cell built with its first cut["records"]
            cell.tuning.update(path=whole, cut=cut)
    elif (tuned_now.get(cell.model) or {}).get("tuning_error"):
        cell.notes["tuning_error"] = tuned_now[cell.model]["tuning_error"]
    return True, db


def _load_shared(ctx: CellContext, shared: Path) -> Compiled:
    """The build an earlier length of this symbolic sweep made (bench.pipeline.shared_build), on this device."""
    cell, device = ctx.cell, ctx.tinfo.device()
    lib, params = shared_build.load(shared, cell)
    at = cell.notes["shared_build"]["built_at"]
    log(f"{ctx.tag} running the build of {shape_text(ctx.cfg.scenario, at['batch'], at['seq_len'], at['past_len'])} "
        "(symbolic length): not imported or built again")
    cell.stage = "run"
    return Compiled(load_library(lib), device, [tvm_compat.to_device(p, device) for p in params], lib_path=lib)


def on_device(ctx: CellContext, compiled):
    """The build uploaded to a server of --rpc-key, where TVM then runs and is timed."""
    cfg, cell, tag = ctx.cfg, ctx.cell, ctx.tag
    cell.stage = "upload"
    remote = remote_compiled(compiled, cfg.rpc, cfg.rpc_key)
    cell.notes["remote"] = dict(ctx.state.rpc_device, upload_s=round(remote.upload_s, 3), lib_bytes=remote.lib_bytes,
                                   baselines="none timed: they would run on this host; eager here is the parity reference")
    cell.stage = "run"
    log(f"{tag} uploaded {remote.lib_bytes / 1e6:.1f} MB to a server of key {cfg.rpc_key!r} at {cfg.rpc} in {remote.upload_s:.1f} s; "
        "TVM runs and is timed there")
    return remote


def measure_compiled(ctx: CellContext, loaded, case, compiled) -> None:
    """Parity against eager, the baselines, the timing: everything after the build (here, or on the
    machine that measures a bundle; `tinfo` is None there)."""
    cfg, cell, tag, workdir, torch_device = ctx.cfg, ctx.cell, ctx.tag, ctx.workdir, ctx.torch_device
    if torch_device == "cuda":
        case.module.to("cuda")
        case.inputs = tuple(x.to("cuda") for x in case.inputs)
    eager = bl.prepare_eager(case, torch_device)
    ref = eager.run()
    cell.parity = Parity.from_json(compare(ref, compiled(*case.inputs), cfg.tol, case.output_names))
    rel_l2 = cell.parity.rel_l2 if cell.parity.rel_l2 is not None else float("nan")
    built = f"built in {cell.timings['build_s']:.1f} s" if "build_s" in cell.timings else "the shared build"
    log(f"{tag} {built}; parity rel L2 {rel_l2:.2e} "
        f"({'ok' if cell.parity.ok else 'MISMATCH: ' + cell.parity.reason})")
    if cfg.val_text and cfg.scenario == "prefill":
        _text_metrics(ctx, loaded, compiled, case)
    request = bl.BaselineRequest(case, torch_device, cfg.threads, workdir, compiled,
                                 onnx_file=workdir / ONNX_FILE if cell.frontend == "onnx" else None)
    prepared = _prepare_baselines(ctx, request, ref)
    if cfg.baselines:
        prepared = {"eager": eager, **prepared}
        cell.baselines["eager"] = Baseline("ok", setup_s=0.0, info={})
    timers = {"tvm": compiled.timer(case.inputs), **{n: p.timer for n, p in prepared.items()}}
    stats, cell.timing = time_backends(cfg.plan(), timers, tag, remote=bool(cfg.rpc))
    cell.tvm = stats["tvm"]
    for name in prepared:
        cell.baselines[name].latency = stats[name]
        cell.speedup[name] = round(stats[name].median / stats["tvm"].median, 4)
    if cfg.memory:
        cell.memory = backend_memory(ctx, case, compiled, prepared)
    cell.status = "ok" if cell.parity.ok else "mismatch"
    if not cell.parity.ok:
        cell.error = f"parity: {cell.parity.reason}"
    versus = (f", eager {stats['eager'].median:.3f} ms, speedup {cell.speedup['eager']:.3f}x" if "eager" in stats else " (timed alone)")
    log(f"{tag} {cell.status}: TVM median {stats['tvm'].median:.3f} ms{versus}")


def backend_memory(ctx: CellContext, case, compiled, prepared: dict) -> dict:
    """Each backend of the cell loaded and run alone in a fresh process (bench.pipeline.memory), one after
    the other, after the timing; and the model's weight bytes. What could not be measured says why."""
    cfg, tag = ctx.cfg, ctx.tag
    weights = sum(p.numel() * p.element_size() for p in case.module.parameters())
    memory: dict = dict(method=METHOD, weights_mb=round(weights / 2**20, 1), backends={})
    why = ("host memory is not the GPU's: measured on the CPU only" if ctx.torch_device != "cpu"
           else "TVM runs on an RPC server" if cfg.rpc
           else "a build of another TVM environment or a bundle: measured for this environment's Relax builds" if ctx.tinfo is None
           else None)
    if why:
        memory["skipped"] = why
        return memory
    directory = ctx.workdir / "memory"
    directory.mkdir(exist_ok=True)
    inputs = directory / "inputs.npz"
    save_arrays(inputs, [x.detach().cpu().numpy() for x in case.inputs])
    common = dict(threads=cfg.threads, inputs=str(inputs), model=ctx.cell.model, weights=cfg.weights, seed=cfg.seed,
                  dtype=cfg.dtype, scenario=cfg.scenario, batch=cfg.batch, seq_len=cfg.seq_len, past_len=cfg.past_len,
                  shapes=cfg.shapes)
    alone = {"tvm": compiled.alone, **{name: p.alone for name, p in prepared.items()}}
    log(f"{tag} memory: {', '.join(alone)}, each alone in a fresh process")
    for name, spec_of in alone.items():
        try:
            spec = {**common, **spec_of(directory)}
        except Exception as e:  # noqa: BLE001 - this backend's memory is not measured; the others are
            memory["backends"][name] = dict(error=f"not measured: {short_error(e)}")
            continue
        memory["backends"][name] = measure_alone(spec, directory, name)
    said = [f"{n} {m['peak_mb']:.0f} MB" if "peak_mb" in m else f"{n} ({m['error']})" for n, m in memory["backends"].items()]
    log(f"{tag} peak memory alone: {', '.join(said)}; weights {memory['weights_mb']:.1f} MB")
    return memory


def _prepare_baselines(ctx: CellContext, request, ref) -> dict:
    """Every baseline asked for but eager, set up from the registry and checked against eager's outputs;
    one that fails is recorded in the cell, and the cell goes on without it."""
    cfg, cell, tag = ctx.cfg, ctx.cell, ctx.tag
    prepared = {}
    for name in (b for b in cfg.baselines if b != "eager"):
        try:
            if name == "untuned":
                log(f"{tag} building the untuned baseline (no tuning database)")
            prepared[name] = bl.BASELINES[name].prepare(request)
            base_par = Parity.from_json(compare(ref, prepared[name].run(), cfg.tol if cfg.dtype == "float32" else 1e-1,
                                                request.case.output_names))
            cell.baselines[name] = Baseline("ok" if base_par.ok else "mismatch", setup_s=round(prepared[name].setup_s, 3),
                                            parity=base_par, info=prepared[name].info)
        except Exception as e:  # noqa: BLE001 - a failed baseline is recorded, the cell goes on
            prepared.pop(name, None)
            cell.baselines[name] = Baseline("failed", error=short_error(e))
            log(f"{tag} baseline {name} failed: {cell.baselines[name].error}")
    return prepared


def time_backends(plan, timers: dict, tag: str, remote: bool = False) -> tuple[dict[str, Latency], dict]:
    """Time `timers` by `plan`: (the Latency of each backend, the record of how: the method, the solo
    check, the machine probe and any flags, which go to stderr too)."""
    log(f"{tag} timing {', '.join(timers)}: {plan.describe()}")
    probe = MachineProbe()
    m = measure(timers, plan, progress=round_progress(tag))
    timing = m.summary(plan)
    timing["machine"] = machine = probe.result()
    flags = [f"solo check: {f}" for f in m.flags()]
    if remote:  # the probe sees this host, where only the parity reference ran; the device is a server's
        machine["note"] = "this host's load, not the device's (with --rpc TVM runs on a server; on loopback its work counts here)"
    elif not machine["quiet"]:
        flags.append(machine["warning"])
    timing["flags"] = flags
    for f in flags:
        log(f"{tag} WARNING {f}")
    return {n: Latency.from_seconds(s) for n, s in m.samples.items()}, timing


def _text_metrics(ctx: CellContext, loaded, compiled, case) -> None:
    """Validation loss on the held-out 10% of --val-text (needs batch 1): eager over the whole split
    (the model's validation loss), and eager against TVM over its first --val-tokens tokens (an
    untuned TVM build can be ~100x slower than eager: the whole split would take it many minutes)."""
    import torch

    cfg, cell, tag = ctx.cfg, ctx.cell, ctx.tag
    if cfg.batch != 1:
        cell.notes["val_text"] = "not computed: validation loss needs --batch 1"
        return
    toks = tokenize(loaded, read_text(cfg.val_text))
    ids = split_ids(toks.ids, "val")
    if len(ids) <= cfg.seq_len:
        cell.notes["val_text"] = f"not computed: the validation split has {len(ids)} tokens, fewer than --seq-len + 1"
        return
    with torch.inference_mode():
        split_nll = window_loss(case.module, ids, cfg.seq_len)
    part = ids[: cfg.val_tokens + 1] if cfg.val_tokens else ids
    m = text_parity(loaded, compiled, case.module, part, cfg.seq_len, cfg.seq_len)
    cell.metrics = {f"val_{k}": v for k, v in m.items()}
    cell.metrics.update(val_tokenizer=toks.tokenizer, val_split_tokens=len(ids) - 1, val_split_eager_nll=round(split_nll, 6))
    log(f"{tag} validation loss (last 10% of {Path(cfg.val_text).name}, {len(ids) - 1} tokens): eager {split_nll:.4f} nats/token; "
        f"first {m['tokens_scored']} tokens: eager {m['eager_nll']:.4f}, TVM {m['tvm_nll']:.4f} "
        f"(relative difference {m['nll_rel_diff']:.1e})")
    if m["nll_rel_diff"] > TEXT_TOL:
        cell.parity.ok = False
        cell.parity.reason = f"validation loss differs by {m['nll_rel_diff']:.2e} relative (> {TEXT_TOL:g})"


