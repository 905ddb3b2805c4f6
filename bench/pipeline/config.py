"""A run's plan, in two parts:

- `RunConfig`: the flags, frozen. Constructing one checks and normalises them without touching a file,
  TVM or the network (a bad value is a ValueError naming the flag, which the CLI prints as one line with
  exit 2), so rebuilding it in a worker process from JSON is cheap and repeats nothing.
- `RunState`: what the run learns and makes: the remote device's description, why --threads' default
  was lowered, the tuning databases --tune-budget found or made, a symbolic sweep's shared builds.
  `prepare(cfg)` makes it, doing the checks that read files, import TVM or ask an RPC tracker.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from bench.baselines import BASELINES
from bench.core.env import usable_cores
from bench.core.errors import UserError, unknown
from bench.core.files import check_text_file
from bench.core.tvm_envs import current, parse_envs
from bench.measure.parity import DEFAULT_TOL
from bench.measure.timing import TimingPlan
from bench.models import MODELS, WEIGHT_CHOICES, get_spec
from bench.record import Cell
from bench.scenarios import SCENARIOS, SHAPES, check_fits
from bench.targets import TARGETS, make_target
from bench.targets.remote import check_key, device_info, parse_address
from bench.tuning.database import validate_database
from bench.tuning.progress import cut_label, read_progress
from frontends import FRONTENDS, choices, unknown_frontend

DTYPES = ("float32", "float16")



FAIL_ON = ("mismatch", "any", "none")



@dataclass(frozen=True)
class RunConfig:
    models: list[str]
    frontends: list[str]
    target: str = "llvm"
    scenario: str = "prefill"
    batch: int = 1
    seq_len: int = 128
    past_len: int = 128
    sweep: list = field(default_factory=list)  # [batch, seq_len, past_len] of each shape of a `run` sweep (empty: the one above)
    new_tokens: int = 32
    warmup: int = TimingPlan.warmup
    repeat: int = TimingPlan.repeat
    threads: int = 0  # 0: every usable core
    shapes: str = "static"
    weights: str = "auto"
    baselines: list[str] = field(default_factory=lambda: ["eager"])
    dtype: str = "float32"
    tol: float = 0.0  # 0: the dtype's default (1e-5 for float32)
    db: str | None = None
    foreign_db: bool = False  # apply --db although it was tuned for another CPU of the same kind (bench.tuning.transfer)
    cuda_arch: str | None = None
    isolate: bool = True
    seed: int = 0
    cell_timeout: float = 0.0  # seconds; 0: none
    val_text: str | None = None  # text whose last 10% gives a validation loss, eager and TVM (prefill, batch 1)
    val_tokens: int = 4096  # eager and TVM are compared on the split's first N tokens (0: all of it)
    dlight: bool = False  # add dlight's CPU default schedules (GEMV, Reduction) to the llvm pipeline
    fast_math: bool = False  # approximate erf/tanh/exp/softmax that vectorise (bench.build.rewrites)
    tune_budget: float = 0.0  # seconds: tune each model for at most this long when no database is cached for it
    tune_cache: str = "results/tuning"  # where --tune-budget looks for and keeps databases
    timing: str = TimingPlan.method  # blocks | interleaved (see bench.measure.timing)
    block: int = TimingPlan.block  # timed calls per block
    solo: int = TimingPlan.solo  # calls per backend in the solo check (0: none)
    bundle: str | None = None  # build and export each cell here, to be measured elsewhere (bench.pipeline.bundle)
    rpc: str | None = None  # HOST:PORT of an RPC tracker: TVM runs on a server of rpc_key (bench.targets.remote)
    rpc_key: str | None = None
    tvm: list[str] | None = None  # TVM environments as --tvm gives them (bench.core.tvm_envs); None: each frontend's own
    tvm_src: str | None = None  # the TVM repository git:REF environments are built from
    tvm_recipe: str | None = None  # the build recipe of git:REF environments (bench.core.tvm_build)
    blas: bool = False  # Relay cells: GEMMs through BLAS (-libs=cblas)
    offload: str | None = None  # Relax cells: matmuls to this library before the pipeline (bench.build.relax.offload)
    memory: bool = False  # each backend's memory, in a fresh process of its own after the timing (bench.pipeline.memory)
    tuned_after: list[float] = field(default_factory=list)  # seconds of tuning (inf: all): one cell per cut (bench.tuning.progress)
    tuning_cut: float | None = None  # one point of --tuned-after: the database as it was after this many seconds of tuning

    def __post_init__(self) -> None:
        """Each step checks its flags in turn (the first bad value is the error) and fills the defaults; no I/O."""
        self._check_names()
        self._check_target_options()
        self._check_sizes()
        self._check_baselines_and_tuning()
        self._fill_defaults_and_check_options()
        relay = self._check_relay()
        self._check_bundle(relay)
        if self.rpc is not None:
            self._check_rpc(relay)
        self._check_tuning_cuts()
        if self.foreign_db and self.db is None:
            raise ValueError("--foreign-db applies a --db tuned on another CPU: give the --db")
        self._check_models()

    def _set(self, **values) -> None:
        """Normalise a flag while the frozen configuration is being checked (__post_init__ only)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _check_names(self) -> None:
        """Models, frontends, target, scenario, shape mode and dtype: known (and frontends available)."""
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

    def _check_target_options(self) -> None:
        """--dlight, --dtype and --cuda-arch: what the target's registry entry (bench.targets) takes."""
        target = TARGETS[self.target]
        if self.dlight and not target.cpu_rules:
            raise ValueError(f"--dlight adds dlight's CPU rules to a CPU pipeline; the {self.target} pipeline has dlight's GPU rules already")
        if self.dtype not in target.dtypes:
            takes = " or ".join(t.name for t in TARGETS.values() if self.dtype in t.dtypes)
            raise ValueError(f"--dtype {self.dtype} is for --target {takes}" + (f" ({target.dtype_note})" if target.dtype_note else ""))
        if self.cuda_arch and not target.takes_arch:
            raise ValueError(f"--cuda-arch {self.cuda_arch} is for --target cuda; this run's target is {self.target}")
        if self.offload is not None and self.offload not in target.offloads:
            takes = [f"{t.name} ({', '.join(t.offloads)})" for t in TARGETS.values() if t.offloads]
            raise ValueError(f"--offload {self.offload}: --target {self.target} offloads to no library; offloading is for --target "
                             + ", ".join(takes))
        if self.offload and (self.db or self.tune_budget):
            raise ValueError("--offload with a tuning database is not supported yet (the database's tasks would have to be "
                             "extracted after the offload): drop --db/--tune-budget, or --offload")

    def _check_sizes(self) -> None:
        """Token counts, repeats and timeouts in range; symbolic shapes need a size torch.export keeps symbolic."""
        for name in ("batch", "seq_len", "past_len", "new_tokens", "repeat"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.threads < 0 or self.cell_timeout < 0 or self.tol < 0:
            raise ValueError("--warmup, --threads, --cell-timeout and --tol must not be negative")
        if self.scenario in ("prefill", "classify") and self.shapes == "symbolic" and self.seq_len < 2:
            raise ValueError("symbolic shapes need --seq-len >= 2 (torch.export specialises sizes 0 and 1)")
        if self.scenario == "decode" and self.shapes == "symbolic" and self.past_len < 2:
            raise ValueError("symbolic shapes need --past-len >= 2 (torch.export specialises sizes 0 and 1)")

    def _check_baselines_and_tuning(self) -> None:
        """--baselines known (none: TVM alone, else eager first) and --db/--tune-budget consistent with them."""
        if "none" in self.baselines:
            if len(self.baselines) > 1:
                raise ValueError("--baselines none times TVM alone; it cannot be combined with other baselines")
            self._set(baselines=[])
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
            raise ValueError("--tune-budget tunes prefill, decode or classify; for generate, tune each with `gptbench tune` and pass --db")
        if self.tune_budget and self.shapes != "static":
            raise ValueError("--tune-budget needs --shapes static (MetaSchedule tunes fixed shapes)")
        if self.baselines and "eager" not in self.baselines:
            self._set(baselines=["eager", *self.baselines])

    def _fill_defaults_and_check_options(self) -> None:
        """The timing plan, threads and tolerance defaults; --val-tokens and --cell-timeout."""
        self.plan()  # validates --timing, --block, --solo
        self._set(threads=self.threads or usable_cores(), tol=self.tol or DEFAULT_TOL[self.dtype])
        if self.val_tokens < 0:
            raise ValueError("--val-tokens must not be negative")
        if self.cell_timeout and not self.isolate:
            raise ValueError("--cell-timeout needs cells in their own process: drop --no-isolate (a cell in this process cannot be killed)")

    def _check_relay(self) -> list[str]:
        """--tvm environments known; the Relay frontends' limits. Returns this run's Relay frontends."""
        try:
            parse_envs(self.tvm or [], self.tvm_src)
        except UserError as e:
            raise ValueError(str(e)) from None
        if self.tvm_src and not any(t.split("=", 1)[-1].startswith("git:") for t in self.tvm or []):
            raise ValueError("--tvm-src is the repository of a git:REF environment: name one in --tvm")
        relay = [f for f in self.frontends if FRONTENDS[f].relay]
        if relay and (self.target != "llvm" or self.dtype != "float32" or self.shapes != "static" or self.scenario == "generate"):
            raise ValueError(f"{', '.join(relay)}: the Relay cells take --target llvm, float32, --shapes static, prefill or decode")
        if self.blas and not relay:
            raise ValueError("--blas is for the Relay frontends (relay-onnx, relay-torch): -libs=cblas on their target")
        return relay

    def _check_bundle(self, relay: list[str]) -> None:
        """--bundle: prefill or decode cells of the export frontend, measured elsewhere."""
        if relay and self.bundle is not None:
            raise ValueError("--bundle takes --frontend export")
        if self.bundle is not None:
            if self.scenario == "generate" or self.val_text:
                raise ValueError("--bundle packs prefill or decode cells (no --val-text): measure generation where it is built")
            if any(f != "export" for f in self.frontends):
                raise ValueError("--bundle takes --frontend export (its weights are named, so the measuring side rebuilds them)")

    def _check_tuning_cuts(self) -> None:
        """--tuned-after: distinct cuts of a database (--db's progress log is read by prepare; --tune-budget's
        is made by this run, or found in its cache and read by each cell)."""
        if not self.tuned_after:
            return
        if not (self.db or self.tune_budget):
            raise ValueError("--tuned-after cuts a tuning database: give --db or --tune-budget")
        if any(t < 0 for t in self.tuned_after) or len(set(self.tuned_after)) != len(self.tuned_after):
            raise ValueError("--tuned-after takes distinct durations (e.g. 1m,2m,5m,all)")

    def shape_points(self) -> list[RunConfig]:
        """One configuration per shape of a sweep (`run --batch 1,4 --seq-len 32,128`), each checked as the
        run's own; the run itself when it has one shape."""
        return [replace(self, batch=b, seq_len=s, past_len=p, sweep=[]) for b, s, p in self.sweep] or [self]

    def tuning_points(self) -> list[RunConfig]:
        """One configuration per --tuned-after cut (the run itself when there is none); `all` is the
        whole database, as without the flag."""
        if not self.tuned_after:
            return [self]
        return [replace(self, tuned_after=[], tuning_cut=None if math.isinf(t) else t) for t in self.tuned_after]

    def _check_models(self) -> None:
        """Each model fits the scenario's tokens (on every shape of a sweep)."""
        for m in self.models:
            spec = get_spec(m)
            for _b, seq_len, past_len in self.sweep or [(self.batch, self.seq_len, self.past_len)]:
                try:
                    check_fits(spec, self.scenario, seq_len, past_len, self.new_tokens)
                except UserError as e:
                    raise ValueError(str(e)) from None

    def _check_rpc(self, relay: list[str]) -> None:
        parse_address(self.rpc)
        if self.target != "llvm" or relay or self.bundle or self.scenario == "generate" or self.tune_budget:
            raise ValueError("--rpc runs llvm prefill or decode cells of the Relax frontends on the device "
                             "(no --bundle, Relay, generate or --tune-budget: tune with `gptbench tune --rpc`, then --db)")
        if self.baselines == ["eager"]:  # the default: eager is the parity reference only
            self._set(baselines=[])
        if self.baselines:
            raise ValueError("--rpc times TVM on the device alone (a baseline would run on this host): "
                             "use --baselines none; eager here still gives the parity reference")

    def plan(self):
        return TimingPlan(warmup=self.warmup, repeat=self.repeat, method=self.timing, block=self.block, solo=self.solo)

    def cells(self) -> list[tuple[str, str, str]]:
        """(model, frontend, TVM environment): each frontend in its own environment, or with --tvm
        every frontend in every environment asked for (a pair that cannot run is recorded as such)."""
        if self.tvm is None:
            return [(m, f, default_env(f)) for m in self.models for f in self.frontends]
        names = [s.name for s in parse_envs(self.tvm, self.tvm_src)]
        return [(m, f, env) for m in self.models for env in names for f in self.frontends]

    def env_specs(self) -> list:
        """The --tvm environments (bench.core.tvm_envs.EnvSpec), parsed."""
        return parse_envs(self.tvm or [], self.tvm_src)


# Each flag's default, in one place: the CLI's flags and help read these (the timing plan's come from TimingPlan).
DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}


@dataclass
class RunState:
    """What a run learns and makes, beside its flags; it travels with them to a cell's process as JSON."""

    rpc_device: dict = field(default_factory=dict)  # what a server of --rpc-key said about its CPU
    threads_note: str | None = None  # why --threads' default was lowered (bench.measure.timing.default_threads)
    dbs: dict = field(default_factory=dict)  # model (or ENV|MODEL) -> database found or made by --tune-budget
    tuned_now: dict = field(default_factory=dict)  # model (or ENV|MODEL) -> what tuning this run did (trials, seconds)
    build_cache: str | None = None  # a symbolic sweep's builds, shared across its lengths (bench.pipeline.shared_build)

    def db_for(self, cfg: RunConfig, model: str) -> str | None:
        """The tuning database a model's cells build with: --db, else the one --tune-budget found or made."""
        return self.dbs.get(model) or cfg.db

    def target_info(self, cfg: RunConfig):
        """The run's target: this host's CPU, or the remote device's with --rpc."""
        return make_target(cfg.target, cfg.threads, cfg.cuda_arch, mcpu=self.rpc_device.get("mcpu"))

    def for_shape(self) -> RunState:
        """A copy for one shape of a sweep: each shape's tuning databases are its own."""
        return replace(self, dbs=dict(self.dbs), tuned_now=dict(self.tuned_now))


def prepare(cfg: RunConfig) -> tuple[RunConfig, RunState]:
    """The checks a configuration cannot make without I/O, in order (a ValueError naming the flag): --val-text
    readable; the --rpc device asked for its CPU (its thread count becomes the run's); --db a tuning database
    of this target and --fast-math setting, with a progress log for --tuned-after; the --weights asked for
    present. Returns the configuration (threads from the device with --rpc) and the run's state."""
    state = RunState()
    if cfg.val_text is not None:
        check_text_file("--val-text", cfg.val_text)
    if cfg.rpc is not None:
        state.rpc_device = device_info(cfg.rpc, cfg.rpc_key, check_key(cfg.rpc, cfg.rpc_key))
        cfg = replace(cfg, threads=state.rpc_device.get("threads") or cfg.threads)
    if cfg.db is not None:
        _check_database(cfg, state)
    _check_weights(cfg)
    return cfg, state


def _check_database(cfg: RunConfig, state: RunState) -> None:
    """--db: a tuning database for this target, tuned with this run's --fast-math setting (and --tuned-after's log)."""
    if not Path(cfg.db).is_dir():
        raise ValueError(f"--db {cfg.db}: no such tuning database directory (create one with `gptbench tune`)")
    if cfg.tuned_after:
        try:
            read_progress(cfg.db)
        except UserError as e:
            raise ValueError(f"--tuned-after: {e}") from None
    try:
        meta = validate_database(cfg.db, state.target_info(cfg), foreign=cfg.foreign_db)
    except UserError as e:
        raise ValueError(str(e)) from None
    if bool(meta.get("fast_math")) != cfg.fast_math:
        raise ValueError(f"--db {cfg.db} was tuned {'with' if meta.get('fast_math') else 'without'} --fast-math: its kernels "
                         f"are for that pipeline; run {'with' if meta.get('fast_math') else 'without'} --fast-math or use another --db")


def _check_weights(cfg: RunConfig) -> None:
    """The --weights asked for: pretrained weights on this machine for every model, or an existing PATH."""
    if cfg.weights == "pretrained":
        for m in cfg.models:
            spec = get_spec(m)
            if spec.pretrained_source() is None:
                raise ValueError(f"--weights pretrained: none for {m} on this machine (looked in: {spec.pretrained_help()}); "
                                 "use --weights auto|random or a PATH")
    if cfg.weights not in WEIGHT_CHOICES and not Path(cfg.weights).exists():
        raise ValueError(f"--weights {cfg.weights}: no such file or directory (or one of {', '.join(WEIGHT_CHOICES)})")


def run_json(cfg: RunConfig, state: RunState) -> dict:
    """A run's flags and state, for a worker process (run_from_json) or a report's `config` (one flat dict)."""
    return {**asdict(cfg), **asdict(state)}


def run_from_json(data: dict) -> tuple[RunConfig, RunState]:
    """run_json's inverse; keys of neither part (older fields of a report) are ignored."""
    def of(cls) -> dict:
        return {f.name: data[f.name] for f in fields(cls) if f.name in data}

    return RunConfig(**of(RunConfig)), RunState(**of(RunState))


RELAY_ENV = "0.19"  # where the Relay frontends' cells run unless --tvm says otherwise


def default_env(frontend: str) -> str:
    """The TVM environment a frontend's cells run in without --tvm: this process's, or TVM 0.19's for Relay."""
    return RELAY_ENV if FRONTENDS[frontend].relay else current()


def importers() -> tuple[str, ...]:
    """Every frontend's TVM importer: what probing an environment checks (bench.core.tvm_envs.probe)."""
    return tuple(sorted({f.tvm_api for f in FRONTENDS.values()}))


def variant_name(cfg: RunConfig, env: str | None = None, frontend: str | None = None) -> str | None:
    """The pipeline variant a cell was built with (part of its id: compare never matches two
    variants), and the TVM environment when it is not this process's. A Relax frontend in another
    environment keeps --fast-math (its rewrites run there), not --dlight nor a tuning cut (this
    process's tuning only)."""
    env = env or current()
    tuned = env == current()
    relax = tuned if frontend is None else not FRONTENDS[frontend].relay
    parts = ([] if tuned else [f"tvm-{env}"]) + (["+dlight"] if cfg.dlight and tuned else []) + \
        (["+fastmath"] if cfg.fast_math and relax else []) + (["+cblas"] if cfg.blas and not relax else []) + \
        ([f"+{cfg.offload}"] if cfg.offload and relax else []) + \
        ([f"+tuned@{cut_label(cfg.tuning_cut)}"] if cfg.tuning_cut is not None and tuned else [])
    return "".join(parts) or None


def new_cell(cfg: RunConfig, model: str, frontend: str, env: str | None = None) -> Cell:
    """The record a cell of this run starts from: what it measures, status `crashed` until it says otherwise."""
    env = env or default_env(frontend)
    return Cell(model=model, frontend=frontend, target=cfg.target, scenario=cfg.scenario, batch=cfg.batch,
                seq_len=cfg.seq_len if cfg.scenario != "decode" else 1,
                past_len=cfg.past_len if cfg.scenario == "decode" else 0,
                new_tokens=cfg.new_tokens if cfg.scenario == "generate" else 0,
                shapes=cfg.shapes, dtype=cfg.dtype, threads=cfg.threads, variant=variant_name(cfg, env, frontend), tvm_env=env,
                rss_scope="cell process" if cfg.isolate else "whole run (cells share a process)")
