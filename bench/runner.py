"""The matrix runner: models × frontends on one target and scenario, one cell at a time.

A cell: build the model (labelled weights) → eager reference outputs → frontend import (op
counts; every unsupported op on failure) → TVM build → parity vs eager → latency of TVM and the
baselines in alternating blocks (bench.timing) → peak RSS. Whatever fails is recorded in the cell with its stage and
reason (`import_failed`, `build_failed`, `run_failed`, `mismatch`, `crashed`, `no_device`) and
the run goes on with the next cell.

By default every cell runs in its own spawned process (`isolate=True`): a crash inside TVM or
LLVM (a segfault, an abort) becomes a `crashed` cell instead of ending the run, and the peak RSS
is the cell's own.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.baselines import BASELINES
from bench.errors import UserError
from bench.scenarios import SCENARIOS, SHAPES, check_fits

STATUSES = ("ok", "mismatch", "import_failed", "build_failed", "run_failed", "crashed", "no_device", "timeout", "interrupted", "bundled")
DTYPES = ("float32", "float16")
FAIL_ON = ("mismatch", "any", "none")
TEXT_TOL = 1e-4  # eager and TVM losses on real text must agree to this relative difference


@dataclass
class RunConfig:
    models: list[str]
    frontends: list[str]
    target: str = "llvm"
    scenario: str = "prefill"
    batch: int = 1
    seq_len: int = 128
    past_len: int = 128
    new_tokens: int = 32
    warmup: int = 5
    repeat: int = 30
    threads: int = 0  # 0: every usable core
    shapes: str = "static"
    weights: str = "auto"
    baselines: list[str] = field(default_factory=lambda: ["eager"])
    dtype: str = "float32"
    tol: float = 0.0  # 0: the dtype's default (1e-5 for float32)
    db: str | None = None
    cuda_arch: str | None = None
    isolate: bool = True
    seed: int = 0
    cell_timeout: float = 0.0  # seconds; 0: none
    val_text: str | None = None  # text whose last 10% gives a validation loss, eager and TVM (prefill, batch 1)
    val_tokens: int = 4096  # eager and TVM are compared on the split's first N tokens (0: all of it)
    dlight: bool = False  # add dlight's CPU default schedules (GEMV, Reduction) to the llvm pipeline
    fast_math: bool = False  # approximate erf/tanh/exp/softmax that vectorise (bench.rewrites)
    tune_budget: float = 0.0  # seconds: tune each model for at most this long when no database is cached for it
    tune_cache: str = "results/tuning"  # where --tune-budget looks for and keeps databases
    dbs: dict = field(default_factory=dict)  # model -> database found or made by --tune-budget
    tuned_now: dict = field(default_factory=dict)  # model -> what tuning this run did (trials, seconds)
    timing: str = "blocks"  # blocks | interleaved (see bench.timing)
    block: int = 5  # timed calls per block
    solo: int = 10  # calls per backend in the solo check (0: none)
    bundle: str | None = None  # build and export each cell here, to be measured elsewhere (bench.bundle)
    rpc: str | None = None  # HOST:PORT of an RPC tracker: TVM runs on a server of rpc_key (bench.remote)
    rpc_key: str | None = None
    rpc_device: dict = field(default_factory=dict)  # what a server of the key said about its CPU
    tvm: list[str] | None = None  # TVM environments (bench.tvm_envs); None: each frontend's own
    blas: bool = False  # Relay cells: GEMMs through BLAS (-libs=cblas)

    def __post_init__(self) -> None:
        from bench.env import usable_cores
        from bench.errors import unknown
        from bench.models import MODELS, WEIGHT_CHOICES, get_spec
        from bench.parity import DEFAULT_TOL
        from bench.targets import TARGETS
        from frontends import FRONTENDS, choices, unknown_frontend

        if not self.models:
            raise ValueError("no model given; `gptbench models` lists them")
        if not self.frontends:
            raise ValueError(f"no frontend given; choose from: {choices()}")
        for m in self.models:
            if m not in MODELS:
                raise ValueError(str(unknown("model", m, list(MODELS))))
        for f in self.frontends:
            if f not in FRONTENDS:
                raise ValueError(str(unknown_frontend(f)))
            reason = FRONTENDS[f].unavailable_reason()
            if reason:
                raise ValueError(f"frontend {f!r} is unavailable: {reason}")
        if len(set(self.models)) != len(self.models) or len(set(self.frontends)) != len(self.frontends):
            raise ValueError("a model or frontend is named twice")
        if self.target not in TARGETS:
            raise ValueError(str(unknown("target", self.target, list(TARGETS))))
        if self.scenario not in SCENARIOS:
            raise ValueError(str(unknown("scenario", self.scenario, list(SCENARIOS))))
        if self.shapes not in SHAPES:
            raise ValueError(str(unknown("shape mode", self.shapes, list(SHAPES))))
        if self.dtype not in DTYPES:
            raise ValueError(str(unknown("dtype", self.dtype, list(DTYPES))))
        if self.dlight and self.target != "llvm":
            raise ValueError("--dlight adds dlight's CPU rules to the llvm pipeline; the cuda pipeline has dlight's GPU rules already")
        if self.dtype == "float16" and self.target != "cuda":
            raise ValueError("--dtype float16 is for --target cuda (eager PyTorch has no fast fp16 CPU path to compare with)")
        for name in ("batch", "seq_len", "past_len", "new_tokens", "repeat"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.threads < 0 or self.cell_timeout < 0 or self.tol < 0:
            raise ValueError("--warmup, --threads, --cell-timeout and --tol must not be negative")
        if self.scenario == "prefill" and self.shapes == "symbolic" and self.seq_len < 2:
            raise ValueError("symbolic shapes need --seq-len >= 2 (torch.export specialises sizes 0 and 1)")
        if self.scenario == "decode" and self.shapes == "symbolic" and self.past_len < 2:
            raise ValueError("symbolic shapes need --past-len >= 2 (torch.export specialises sizes 0 and 1)")
        if "none" in self.baselines:
            if len(self.baselines) > 1:
                raise ValueError("--baselines none times TVM alone; it cannot be combined with other baselines")
            self.baselines = []
        for b in self.baselines:
            if b not in BASELINES:
                raise ValueError(str(unknown("baseline", b, [*BASELINES, "none"])))
        if "untuned" in self.baselines and not (self.db or self.tune_budget):
            raise ValueError("the untuned baseline is TVM without a tuning database: it needs --db or --tune-budget")
        if self.tune_budget < 0:
            raise ValueError("--tune-budget must not be negative")
        if self.tune_budget and self.db:
            raise ValueError("--tune-budget finds or makes a database itself; drop --db (or drop --tune-budget to use yours)")
        if self.tune_budget and self.scenario == "generate":
            raise ValueError("--tune-budget tunes prefill or decode; for generate, tune each with `gptbench tune` and pass --db")
        if self.tune_budget and self.shapes != "static":
            raise ValueError("--tune-budget needs --shapes static (MetaSchedule tunes fixed shapes)")
        if self.baselines and "eager" not in self.baselines:
            self.baselines = ["eager", *self.baselines]
        self.plan()  # validates --timing, --block, --solo
        self.threads = self.threads or usable_cores()
        self.tol = self.tol or DEFAULT_TOL[self.dtype]
        if self.val_tokens < 0:
            raise ValueError("--val-tokens must not be negative")
        if self.val_text is not None:
            check_text_file("--val-text", self.val_text)
        if self.cuda_arch and self.target != "cuda":
            raise ValueError(f"--cuda-arch {self.cuda_arch} is for --target cuda; this run's target is {self.target}")
        if self.cell_timeout and not self.isolate:
            raise ValueError("--cell-timeout needs cells in their own process: drop --no-isolate (a cell in this process cannot be killed)")
        from bench.tvm_envs import ENVS

        for env in self.tvm or []:
            if env not in ENVS:
                raise ValueError(str(unknown("TVM environment", env, list(ENVS))))
        relay = [f for f in self.frontends if FRONTENDS[f].tvm_env == "0.19"]
        if relay and (self.target != "llvm" or self.dtype != "float32" or self.shapes != "static" or self.scenario == "generate"):
            raise ValueError(f"{', '.join(relay)}: the Relay cells take --target llvm, float32, --shapes static, prefill or decode")
        if self.blas and not relay:
            raise ValueError("--blas is for the Relay frontends (relay-onnx, relay-torch): -libs=cblas on their target")
        if relay and self.bundle is not None:
            raise ValueError("--bundle takes --frontend export")
        if self.bundle is not None:
            if self.scenario == "generate" or self.val_text:
                raise ValueError("--bundle packs prefill or decode cells (no --val-text): measure generation where it is built")
            if any(f != "export" for f in self.frontends):
                raise ValueError("--bundle takes --frontend export (its weights are named, so the measuring side rebuilds them)")
        if self.rpc is not None:
            self._check_rpc(relay)
        if self.db is not None:
            if not Path(self.db).is_dir():
                raise ValueError(f"--db {self.db}: no such tuning database directory (create one with `gptbench tune`)")
            from bench.tuning import validate_database

            try:
                meta = validate_database(self.db, self.target_info())
            except UserError as e:
                raise ValueError(str(e)) from None
            if bool(meta.get("fast_math")) != self.fast_math:
                raise ValueError(f"--db {self.db} was tuned {'with' if meta.get('fast_math') else 'without'} --fast-math: its kernels "
                                 f"are for that pipeline; run {'with' if meta.get('fast_math') else 'without'} --fast-math or use another --db")
        for m in self.models:
            spec = get_spec(m)
            try:
                check_fits(spec, self.scenario, self.seq_len, self.past_len, self.new_tokens)
            except UserError as e:
                raise ValueError(str(e)) from None
            if self.weights == "pretrained" and spec.pretrained_source() is None:
                raise ValueError(f"--weights pretrained: none for {m} on this machine (looked in: {spec.pretrained_help()}); "
                                 "use --weights auto|random or a PATH")
        if self.weights not in WEIGHT_CHOICES and not Path(self.weights).exists():
            raise ValueError(f"--weights {self.weights}: no such file or directory (or one of {', '.join(WEIGHT_CHOICES)})")

    def _check_rpc(self, relay: list[str]) -> None:
        from bench.remote import check_key, device_info, parse_address

        parse_address(self.rpc)
        if self.target != "llvm" or relay or self.bundle or self.scenario == "generate" or self.tune_budget:
            raise ValueError("--rpc runs llvm prefill or decode cells of the Relax frontends on the device "
                             "(no --bundle, Relay, generate or --tune-budget: tune with `gptbench tune --rpc`, then --db)")
        if self.baselines == ["eager"]:  # the default: eager is the parity reference only
            self.baselines = []
        if self.baselines:
            raise ValueError("--rpc times TVM on the device alone (a baseline would run on this host): "
                             "use --baselines none; eager here still gives the parity reference")
        if not self.rpc_device:
            self.rpc_device = device_info(self.rpc, self.rpc_key, check_key(self.rpc, self.rpc_key))
            self.threads = self.rpc_device.get("threads") or self.threads

    def target_info(self):
        """This run's target: this host's CPU, or the remote device's with --rpc."""
        from bench.targets import make_target

        return make_target(self.target, self.threads, self.cuda_arch, mcpu=self.rpc_device.get("mcpu"))

    def db_for(self, model: str) -> str | None:
        """The tuning database a model's cells build with: --db, else the one --tune-budget found or made."""
        return self.dbs.get(model) or self.db

    def plan(self):
        from bench.timing import TimingPlan

        return TimingPlan(warmup=self.warmup, repeat=self.repeat, method=self.timing, block=self.block, solo=self.solo)

    def cells(self) -> list[tuple[str, str, str]]:
        """(model, frontend, TVM environment): each frontend in its own environment, or with --tvm
        every frontend in every environment asked for (a pair that cannot run is recorded as such)."""
        from frontends import FRONTENDS

        if self.tvm is None:
            return [(m, f, FRONTENDS[f].tvm_env) for m in self.models for f in self.frontends]
        return [(m, f, env) for m in self.models for env in self.tvm for f in self.frontends]


def check_text_file(flag: str, path: str) -> None:
    """ValueError unless path is a readable UTF-8 text file (checked before any work starts)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {path}: is a directory; give a UTF-8 text file")
    if not p.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    try:
        head = p.open("rb").read(1 << 16)
    except OSError as e:
        raise ValueError(f"{flag} {path}: cannot read it ({e.strerror or e})") from None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the 64 KiB boundary
            raise ValueError(f"{flag} {path}: not UTF-8 text (byte {e.start}: {head[e.start]:#04x}); give a text file") from None
    if b"\x00" in head:
        raise ValueError(f"{flag} {path}: holds NUL bytes: a binary file, not text")


def configure_threads(threads: int) -> None:
    """Same thread count for TVM's pool (read at its first use), PyTorch and OpenMP."""
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


ID_FIELDS = ("model", "frontend", "target", "scenario", "batch", "seq_len", "past_len", "new_tokens", "shapes", "dtype")


def round_progress(tag: str, every_s: float = 15.0):
    """A progress callback for `measure` that speaks up at most every `every_s` seconds."""
    state = {"last": time.perf_counter()}

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - state["last"] >= every_s and done < total:
            state["last"] = now
            log(f"{tag} timing round {done}/{total}")

    return report


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


def _blank_cell(cfg: RunConfig, model: str, frontend: str, env: str | None = None) -> dict:
    from frontends import FRONTENDS

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


def execute_cell(cfg: RunConfig, model: str, frontend: str, env: str | None = None) -> dict:
    """Run one cell in this process; never raises for a failure of the model, frontend or TVM."""
    cell = _blank_cell(cfg, model, frontend, env)
    t_cell = time.perf_counter()
    try:
        if cell["tvm_env"] == "0.19":
            from bench.relay_cell import execute_relay

            execute_relay(cfg, model, frontend, cell, log)
        else:
            _execute(cfg, model, frontend, cell)
    except Exception as e:  # noqa: BLE001 - a failed cell is a result
        from frontends.base import short_error

        status = {"export": "import_failed", "import": "import_failed", "build": "build_failed"}.get(cell["stage"], "run_failed")
        cell.update(status=status, error=short_error(e), traceback=traceback.format_exc(limit=8))
    cell["timings"]["cell_s"] = round(time.perf_counter() - t_cell, 3)
    cell["peak_rss_mb"] = peak_rss_mb()
    return cell


def load_cell_model(cfg: RunConfig, model: str, cell: dict):
    """The cell's model with its labelled weights, in the run's dtype, on this process's threads."""
    import torch

    from bench.models import load_model

    configure_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    cell["stage"] = "model"
    loaded = load_model(model, cfg.weights, seed=cfg.seed)
    if cfg.dtype == "float16":
        loaded.module.half()
    cell["weights"] = asdict(loaded.weights)
    cell["n_params"] = loaded.n_params
    return loaded


def cell_case(cfg: RunConfig, loaded):
    """The scenario's inputs for the loaded model (float inputs in the run's dtype)."""
    from bench.scenarios import make_case

    case = make_case(loaded, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, cfg.shapes, cfg.seed)
    if cfg.dtype == "float16":
        case.inputs = tuple(x.half() if x.is_floating_point() else x for x in case.inputs)
    return case


def setup_cell(cfg: RunConfig, model: str, cell: dict):
    """Load the model and the target for a cell: (loaded, target info, torch device)."""
    loaded = load_cell_model(cfg, model, cell)
    tinfo = cfg.target_info()
    cell["target_spec"] = tinfo.spec
    torch_device = "cuda" if (cfg.target == "cuda" and tinfo.device_available) else "cpu"
    return loaded, tinfo, torch_device


def import_case(frontend: str, case, workdir: Path, cell: dict, tag: str):
    """The frontend's import of a case, recorded in `cell` (timings, op counts, workarounds, notes).
    None when the frontend could not take it: the cell says why (import_failed, unsupported ops)."""
    from frontends import get_frontend
    from frontends.base import FrontendError, ImportRequest

    cell["stage"] = "import"
    try:
        imported = get_frontend(frontend).import_model(ImportRequest(case.module, case.inputs, case.input_names, case.dynamic, workdir,
                                                                     case.output_names))
    except FrontendError as e:
        cell.update(status="import_failed", stage=e.stage, error=str(e), unsupported_ops=e.unsupported)
        log(f"{tag} import failed: {e}")
        return None
    cell["timings"].update({k: round(v, 3) for k, v in imported.timings.items()})
    cell.update(source_ops=imported.source_ops, relax_ops=imported.relax_ops, patches=imported.patches)
    cell["notes"].update({k: v for k, v in imported.notes.items() if k != "onnx_file"})
    return imported


def import_and_build(cfg: RunConfig, frontend: str, case, tinfo, workdir: Path, cell: dict, tag: str):
    """Frontend import and TVM build of a case, recorded in `cell`. Returns (Compiled or None).
    None means the cell's status says why (import_failed, build_failed, no_device, or bundled: exported
    with --bundle, to be measured elsewhere)."""
    from bench.build import Compiled, build
    from frontends.base import short_error

    imported = import_case(frontend, case, workdir, cell, tag)
    if imported is None:
        return None
    cell["stage"] = "build"
    from bench.rewrites import rewrite_counts

    cell["rewrites"] = rewrite_counts(imported.mod, cfg.fast_math, imported.relax_ops)
    log(f"{tag} imported ({sum(imported.relax_ops.values())} Relax op calls); building for {cfg.target}")
    db = cfg.db_for(cell["model"])
    if db:
        from bench.tuning import check_database

        cell["tuning"] = check_database(db, tinfo, imported.mod)
        cell["tuning"].update(cfg.tuned_now.get(cell["model"]) or {})
    elif (cfg.tuned_now.get(cell["model"]) or {}).get("tuning_error"):
        cell["notes"]["tuning_error"] = cfg.tuned_now[cell["model"]]["tuning_error"]
    try:
        ex, build_s = build(imported.mod, tinfo.target, db, dlight=cfg.dlight, fast_math=cfg.fast_math)
    except Exception as e:  # noqa: BLE001 - a build failure is a result
        cell.update(status="build_failed", error=short_error(e))
        log(f"{tag} build failed: {cell['error']}")
        return None
    cell["timings"]["build_s"] = round(build_s, 3)
    if cfg.bundle:
        from bench.bundle import write_cell

        write_cell(cfg, cell, case, imported, ex, log)
        return None
    if not tinfo.device_available:
        cell.update(status="no_device", stage="run", error=f"built for {tinfo.spec} in {build_s:.1f} s; not run: {tinfo.device_reason}")
        log(f"{tag} {cell['error']}")
        return None
    cell["stage"] = "run"
    compiled = Compiled(ex, tinfo.device(), imported.params)
    compiled.imported = imported
    return compiled


def _execute(cfg: RunConfig, model: str, frontend: str, cell: dict) -> None:
    tag = f"[{model} × {frontend}]"
    loaded, tinfo, torch_device = setup_cell(cfg, model, cell)
    if cfg.scenario == "generate":
        from bench.generate import generate_cell

        return generate_cell(cfg, loaded, frontend, tinfo, torch_device, cell, log)
    case = cell_case(cfg, loaded)
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        workdir = Path(tmp)
        log(f"{tag} {loaded.n_params / 1e6:.2f}M params, weights {loaded.weights.label()}; importing")
        compiled = import_and_build(cfg, frontend, case, tinfo, workdir, cell, tag)
        if compiled is None:
            return
        if cfg.rpc:
            compiled = _on_device(cfg, compiled, cell, tag)
        measure_compiled(cfg, loaded, case, compiled, cell, tag, frontend, tinfo, torch_device, workdir)


def _on_device(cfg: RunConfig, compiled, cell: dict, tag: str):
    from bench.remote import remote_compiled

    cell["stage"] = "upload"
    remote = remote_compiled(compiled, cfg.rpc, cfg.rpc_key)
    cell["notes"]["remote"] = dict(cfg.rpc_device, upload_s=round(remote.upload_s, 3), lib_bytes=remote.lib_bytes,
                                   baselines="none timed: they would run on this host; eager here is the parity reference")
    cell["stage"] = "run"
    log(f"{tag} uploaded {remote.lib_bytes / 1e6:.1f} MB to a server of key {cfg.rpc_key!r} at {cfg.rpc} in {remote.upload_s:.1f} s; "
        "TVM runs and is timed there")
    return remote


def measure_compiled(cfg: RunConfig, loaded, case, compiled, cell: dict, tag: str, frontend: str, tinfo, torch_device: str,
                     workdir: Path) -> None:
    """Parity against eager, the baselines, the timing: everything after the build (here, or on the
    machine that measures a bundle; `tinfo` is None there)."""
    from bench import baselines as bl
    from bench.parity import compare
    from frontends.base import short_error

    build_s = cell["timings"]["build_s"]
    if torch_device == "cuda":
        case.module.to("cuda")
        case.inputs = tuple(x.to("cuda") for x in case.inputs)
    eager = bl.prepare_eager(case, torch_device)
    ref = eager.run()
    got = compiled(*case.inputs)
    cell["parity"] = compare(ref, got, cfg.tol, case.output_names)
    log(f"{tag} built in {build_s:.1f} s; parity rel L2 {cell['parity'].get('rel_l2', float('nan')):.2e} "
        f"({'ok' if cell['parity']['ok'] else 'MISMATCH: ' + cell['parity']['reason']})")
    if cfg.val_text and cfg.scenario == "prefill":
        _text_metrics(cfg, loaded, compiled, case, cell, tag)
    prepared = {"eager": eager} if cfg.baselines else {}
    for name in cfg.baselines:
        if name == "eager":
            continue
        try:
            prepared[name] = _prepare_baseline(name, cfg, case, compiled, tinfo, torch_device, frontend, workdir, tag)
            base_par = compare(ref, prepared[name].run(), cfg.tol if cfg.dtype == "float32" else 1e-1, case.output_names)
            cell["baselines"][name] = dict(status="ok" if base_par["ok"] else "mismatch", setup_s=round(prepared[name].setup_s, 3),
                                           parity=base_par, info=prepared[name].info)
        except Exception as e:  # noqa: BLE001 - a failed baseline is recorded, the cell goes on
            prepared.pop(name, None)
            cell["baselines"][name] = dict(status="failed", error=short_error(e))
            log(f"{tag} baseline {name} failed: {cell['baselines'][name]['error']}")
    if "eager" in prepared:
        cell["baselines"]["eager"] = dict(status="ok", setup_s=0.0, parity=None, info={})
    timers = {"tvm": compiled.timer(case.inputs), **{n: p.timer for n, p in prepared.items()}}
    stats = time_backends(cfg.plan(), timers, cell, tag, remote=bool(cfg.rpc))
    cell["tvm"] = stats["tvm"].to_dict()
    for name in prepared:
        cell["baselines"][name]["latency"] = stats[name].to_dict()
        cell["speedup"][name] = round(stats[name].median / stats["tvm"].median, 4)
    cell["status"] = "ok" if cell["parity"]["ok"] else "mismatch"
    if not cell["parity"]["ok"]:
        cell["error"] = f"parity: {cell['parity']['reason']}"
    versus = (f", eager {stats['eager'].median:.3f} ms, speedup {cell['speedup']['eager']:.3f}x" if "eager" in stats else " (timed alone)")
    log(f"{tag} {cell['status']}: TVM median {stats['tvm'].median:.3f} ms{versus}")


def _prepare_baseline(name: str, cfg: RunConfig, case, compiled, tinfo, torch_device: str, frontend: str, workdir: Path, tag: str):
    from bench import baselines as bl

    if name == "compile":
        return bl.prepare_compile(case, torch_device)
    if name == "untuned":
        log(f"{tag} building the untuned baseline (no tuning database)")
        return bl.prepare_untuned(compiled.imported, tinfo, case.inputs, cfg.dlight, cfg.fast_math)
    if name == "ort":
        onnx_file = workdir / "model.onnx" if frontend == "onnx" else None
        return bl.prepare_ort(case, torch_device, cfg.threads, onnx_file, workdir)
    raise ValueError(f"no way to prepare baseline {name!r}")  # RunConfig rejects unknown names first


def time_backends(plan, timers: dict, cell: dict, tag: str, remote: bool = False) -> dict:
    """Time `timers` by `plan`; record the method and the solo check in `cell["timing"]` (flags go to
    stderr too). Returns Stats per backend."""
    from bench.timing import MachineProbe, Stats, measure

    log(f"{tag} timing {', '.join(timers)}: {plan.describe()}")
    probe = MachineProbe()
    m = measure(timers, plan, progress=round_progress(tag))
    cell["timing"] = m.summary(plan)
    cell["timing"]["machine"] = machine = probe.result()
    flags = [f"solo check: {f}" for f in m.flags()]
    if remote:  # the probe sees this host, where only the parity reference ran; the device is a server's
        machine["note"] = "this host's load, not the device's (with --rpc TVM runs on a server; on loopback its work counts here)"
    elif not machine["quiet"]:
        flags.append(machine["warning"])
    cell["timing"]["flags"] = flags
    for f in flags:
        log(f"{tag} WARNING {f}")
    return {n: Stats.from_seconds(s) for n, s in m.samples.items()}


def _text_metrics(cfg: RunConfig, loaded, compiled, case, cell: dict, tag: str) -> None:
    """Validation loss on the held-out 10% of --val-text (needs batch 1): eager over the whole split
    (the model's validation loss), and eager against TVM over its first --val-tokens tokens (an
    untuned TVM build can be ~100x slower than eager: the whole split would take it many minutes)."""
    import torch

    from bench.ppl import read_text, split_ids, text_parity, tokenize
    from bench.textdata import window_loss

    if cfg.batch != 1:
        cell["notes"]["val_text"] = "not computed: validation loss needs --batch 1"
        return
    toks = tokenize(loaded, read_text(cfg.val_text))
    ids = split_ids(toks.ids, "val")
    if len(ids) <= cfg.seq_len:
        cell["notes"]["val_text"] = f"not computed: the validation split has {len(ids)} tokens, fewer than --seq-len + 1"
        return
    with torch.inference_mode():
        split_nll = window_loss(case.module, ids, cfg.seq_len)
    part = ids[: cfg.val_tokens + 1] if cfg.val_tokens else ids
    m = text_parity(loaded, compiled, case.module, part, cfg.seq_len, cfg.seq_len)
    cell["metrics"] = {f"val_{k}": v for k, v in m.items()}
    cell["metrics"].update(val_tokenizer=toks.tokenizer, val_split_tokens=len(ids) - 1, val_split_eager_nll=round(split_nll, 6))
    log(f"{tag} validation loss (last 10% of {Path(cfg.val_text).name}, {len(ids) - 1} tokens): eager {split_nll:.4f} nats/token; "
        f"first {m['tokens_scored']} tokens: eager {m['eager_nll']:.4f}, TVM {m['tvm_nll']:.4f} "
        f"(relative difference {m['nll_rel_diff']:.1e})")
    if m["nll_rel_diff"] > TEXT_TOL:
        cell["parity"]["ok"] = False
        cell["parity"]["reason"] = f"validation loss differs by {m['nll_rel_diff']:.2e} relative (> {TEXT_TOL:g})"


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a run: the cells finished so far are kept (`cells`)."""

    def __init__(self, signame: str, exit_code: int, cells: list[dict]):
        super().__init__(signame)
        self.signame, self.exit_code, self.cells = signame, exit_code, cells


def _cell_worker(cfg: RunConfig, model: str, frontend: str, conn) -> None:
    import signal

    from bench.procs import die_with_parent

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    try:
        conn.send(execute_cell(cfg, model, frontend))
    finally:
        conn.close()


def run_isolated(cfg: RunConfig, model: str, frontend: str) -> dict:
    """execute_cell in a spawned process; a crash or timeout becomes the cell's status."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_cell_worker, args=(cfg, model, frontend, send), daemon=False)
    t0 = time.perf_counter()
    proc.start()
    send.close()
    result = None
    timeout = cfg.cell_timeout or None
    try:
        if recv.poll(timeout):
            result = recv.recv()
    except EOFError:
        result = None
    except BaseException:  # Ctrl-C or SIGTERM: the worker goes with us
        proc.kill()
        proc.join()
        raise
    if result is None and proc.is_alive():
        proc.kill()
    proc.join()
    if result is not None:
        return result
    elapsed = time.perf_counter() - t0
    return _lost_cell(cfg, model, frontend, None, elapsed, bool(timeout and elapsed >= timeout), proc.exitcode,
                      "worker process", "; last stage unknown — rerun with --no-isolate to see the traceback")


def _lost_cell(cfg: RunConfig, model: str, frontend: str, env: str | None, elapsed: float, timed_out: bool, code: int | None,
               who: str, hint: str = "") -> dict:
    """The cell of a worker that never reported: killed at --cell-timeout, or died (how)."""
    cell = _blank_cell(cfg, model, frontend, env)
    cell["timings"]["cell_s"] = round(elapsed, 3)
    if timed_out:
        cell.update(status="timeout", error=f"cell exceeded --cell-timeout {cfg.cell_timeout:g} s and was killed")
    else:
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        cell.update(error=f"{who} died ({how}) before reporting{hint}")
    return cell


def tuning_frontend(cfg: RunConfig) -> str:
    """The frontend whose import a --tune-budget database is tuned on: export where asked (its kernels
    are what the other frontends' builds match against as far as they can), else the first asked."""
    return "export" if "export" in cfg.frontends else cfg.frontends[0]


def ensure_tuned(cfg: RunConfig) -> None:
    """--tune-budget: for each model, use the cached database for (TVM version, target, model, scenario,
    shapes, fast-math) when there is one, else tune one for at most the budget and keep it. Fills
    cfg.dbs (model -> path) and cfg.tuned_now (model -> what this run's tuning did)."""
    from bench.targets import make_target
    from bench.tuning import default_db_dir, read_meta, tune, validate_database

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
        frontend = tuning_frontend(cfg)
        log(f"[{model}] no tuning database at {db}: tuning through {frontend} for at most {cfg.tune_budget:g} s")
        one = replace(cfg, models=[model], frontends=[frontend], db=None, dbs={}, tuned_now={})
        try:
            meta = tune(one, frontend, 0, db, True, None, log, budget_s=cfg.tune_budget)
        except Exception as e:  # noqa: BLE001 - the cells then run untuned and say why
            from frontends.base import short_error

            log(f"[{model}] tuning failed, its cells build untuned: {short_error(e)}")
            cfg.tuned_now[model] = dict(tuning_error=short_error(e))
            continue
        cfg.dbs[model] = str(db)
        cfg.tuned_now[model] = dict(tuned_in_this_run=meta["last_session"])
        log(f"[{model}] tuned {meta['last_session']['trials']} trials in {meta['last_session']['wall_s']} s "
            f"(stopped by {meta['last_session']['stopped_by']}): {db}")


def run_cell(cfg: RunConfig, model: str, frontend: str, env: str) -> dict:
    """One cell, where it can run: this process, a spawned one, or the interpreter of another TVM
    environment; a pair that cannot run, or an environment not installed, is a recorded cell."""
    from bench.tvm_envs import current, missing_reason
    from frontends import FRONTENDS

    home = FRONTENDS[frontend].tvm_env
    reason = None
    if env != home:
        reason = (f"{frontend} runs in TVM {home} only in this harness (" +
                  ("Relay is gone from TVM 0.20 on" if home == "0.19" else "its Relax path is written for TVM 0.27's API") + ")")
    elif env != current():
        reason = missing_reason(env)
    if reason:  # recorded, not run
        cell = _blank_cell(cfg, model, frontend, env)
        cell.update(status="import_failed", stage="env", error=reason)
        log(f"[{model} × {frontend}] not run in TVM {env}: {reason}")
        return cell
    if env != current():
        return run_in_env(cfg, model, frontend, env)
    return run_isolated(cfg, model, frontend) if cfg.isolate else execute_cell(cfg, model, frontend, env)


def run_in_env(cfg: RunConfig, model: str, frontend: str, env: str) -> dict:
    """execute_cell in another TVM environment's interpreter (bench.env_worker); its logs go to our
    stderr, its cell comes back as JSON; a crash or a timeout becomes the cell's status."""
    import json
    import subprocess

    from bench.tvm_envs import REPO, worker_command

    with tempfile.TemporaryDirectory(prefix="gptbench-env-") as tmp:
        cfg_path, out = Path(tmp) / "config.json", Path(tmp) / "cell.json"
        # The tuning database and the tuning budget are the Relax cells' (this environment's)
        cfg_path.write_text(json.dumps(asdict(replace(cfg, isolate=False, db=None, tune_budget=0.0, dbs={}, tuned_now={}))))
        env_vars = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        t0 = time.perf_counter()
        proc = subprocess.Popen([*worker_command(env), str(cfg_path), model, frontend, env, str(out)], cwd=REPO, env=env_vars)
        try:
            code = proc.wait(timeout=cfg.cell_timeout or None)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if out.exists():
            return json.loads(out.read_text())
        return _lost_cell(cfg, model, frontend, env, time.perf_counter() - t0, code is None, code, f"the TVM {env} worker")


def run_matrix(cfg: RunConfig, on_cell=None) -> list[dict]:
    cells = []
    todo = cfg.cells()
    configure_threads(cfg.threads)
    import signal

    def on_term(_signum, _frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_term)
    current = None  # the cell in progress, when an interrupt comes
    try:
        if cfg.tune_budget:
            ensure_tuned(cfg)
        for i, (model, frontend, env) in enumerate(todo, 1):
            log(f"== cell {i}/{len(todo)}: {model} × {frontend} on {cfg.target} ({cfg.scenario}, batch {cfg.batch}, "
                f"{'seq ' + str(cfg.seq_len) if cfg.scenario != 'decode' else 'past ' + str(cfg.past_len)}, {cfg.shapes}; TVM {env})")
            current = (i, model, frontend, env)
            cell = run_cell(cfg, model, frontend, env)
            current = None
            cells.append(cell)
            if on_cell:
                on_cell(cell)
    except KeyboardInterrupt as e:  # during a cell, or during tuning before any
        signame = "SIGTERM" if str(e) == "SIGTERM" else "SIGINT"
        if current is not None:
            i, model, frontend, env = current
            cell = _blank_cell(cfg, model, frontend, env)
            cell.update(status="interrupted", error=f"{'SIGTERM' if signame == 'SIGTERM' else 'Ctrl-C (SIGINT)'} during this cell; "
                                                    f"{len(todo) - i} cell(s) after it not run")
            cells.append(cell)
        raise Interrupted(signame, 143 if signame == "SIGTERM" else 130, cells) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    return cells
