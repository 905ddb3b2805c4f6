"""Baselines TVM is measured against, in the same process and the same rounds.

- eager: the PyTorch module itself under `torch.inference_mode` (always measured: speedups are
  relative to it);
- compile: `torch.compile` (inductor, default mode); its first call, which compiles, is timed
  separately as setup;
- ort: ONNX Runtime on the `torch.onnx.export(dynamo=True)` file (the same file the `onnx`
  frontend imports when that frontend ran in the cell), CPU or CUDA execution provider,
  `intra_op_num_threads` = the run's thread count;
- untuned (only with `--db`): the same imported module built by the same pipeline without the
  tuning database, so the report carries tuned-vs-untuned latency from the same rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.build.relax import Compiled, build
from bench.measure.timing import torch_timer, wall_timer
from frontends.base import ImportRequest
from frontends.onnx_import import ONNX_FILE, export_onnx


@dataclass(frozen=True)
class BaselineRequest:
    """What a baseline may need to set itself up in one cell."""

    case: Any  # bench.scenarios.Case: the module and its inputs
    device: str  # the torch device: cpu | cuda
    threads: int
    workdir: Path  # a scratch directory of the cell
    compiled: Any = None  # the cell's TVM build (bench.build.relax.Compiled or a Relay cell's), with .untuned where it has one
    onnx_file: Path | None = None  # the onnx frontend's own file, when that frontend ran in the cell


@dataclass
class Prepared:
    name: str
    run: Callable  # () -> list of numpy outputs
    timer: Callable[[], float]
    setup_s: float
    info: dict
    # what a fresh process needs to load and run this backend alone (bench.pipeline.memory): its kind and
    # files, written into the directory given; None where it cannot be run alone
    alone: Callable[[Path], dict] | None = None


def _as_numpy_list(out) -> list:
    if isinstance(out, (tuple, list)):
        return [o.detach().float().cpu().numpy() for o in out]
    return [out.detach().float().cpu().numpy()]


def prepare_eager(case, device: str) -> Prepared:
    import torch

    def run():
        with torch.inference_mode():
            return _as_numpy_list(case.module(*case.inputs))

    return Prepared("eager", run, torch_timer(case.module, case.inputs, device), 0.0, {}, alone=lambda _dir: dict(kind="torch"))


def prepare_compile(case, device: str, mode: str | None = None, name: str = "compile") -> Prepared:
    """torch.compile (Inductor) of the case's module, in `mode` (None: its default), compiled by its first call."""
    import torch

    compiled = torch.compile(case.module, mode=mode)
    t0 = time.perf_counter()
    with torch.inference_mode():
        compiled(*case.inputs)
    setup = time.perf_counter() - t0
    # Inductor keeps a pool of compile-worker processes (children of this one) after compiling; on the
    # H200 host they used about one core while the cell was timed, which the machine probe rightly
    # flagged as load. Compiling is done: shut them down (a recompile, if any, runs in this process).
    from torch._inductor.async_compile import shutdown_compile_workers

    shutdown_compile_workers()

    def run():
        with torch.inference_mode():
            return _as_numpy_list(compiled(*case.inputs))

    return Prepared(name, run, torch_timer(compiled, case.inputs, device), setup,
                    dict(backend="inductor", mode=mode or "default", compile_workers="shut down after the first call"),
                    alone=lambda _dir: dict(kind="torch", compile=True, compile_mode=mode))


def prepare_ort(case, device: str, threads: int, onnx_path: Path | None, workdir: Path) -> Prepared:
    import onnxruntime as ort

    t0 = time.perf_counter()
    info: dict = {"onnx_reused": bool(onnx_path and onnx_path.is_file())}  # the onnx frontend's own file, else exported here
    if not info["onnx_reused"]:
        onnx_path = workdir / "ort" / ONNX_FILE
        export_onnx(ImportRequest(case.module, case.inputs, case.input_names, None, workdir), onnx_path)
    provider = "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"
    session = ort_session(onnx_path, threads, provider)
    info.update(session_options(session.get_session_options()), onnx_file=onnx_file_info(onnx_path))
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(case.inputs):
        raise RuntimeError(f"ONNX model takes {len(names)} inputs ({names}), the case has {len(case.inputs)}")
    feeds = {n: x.detach().cpu().numpy() for n, x in zip(names, case.inputs, strict=True)}
    setup = time.perf_counter() - t0
    info.update(provider=provider, ort=ort.__version__)

    def run():
        return session.run(None, feeds)

    return Prepared("ort", run, wall_timer(session.run, None, feeds), setup, info, alone=lambda _dir: dict(kind="ort", onnx=str(onnx_path)))


def ort_session(onnx_path, threads: int, provider: str = "CPUExecutionProvider"):
    """The harness's ONNX Runtime session on `onnx_path`: `threads` intra-op threads, one inter-op, one provider
    (the baseline, its independent timer and its memory process all open it so)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider not in available:
        raise RuntimeError(f"ONNX Runtime has no {provider} (available: {', '.join(available)})")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(onnx_path), opts, providers=[provider])


def session_options(opts) -> dict:
    """The ONNX Runtime session settings that decide its speed, as the report records them."""
    try:
        spinning = opts.get_session_config_entry("session.intra_op.allow_spinning")
    except Exception:  # noqa: BLE001 - not set: ONNX Runtime's default
        spinning = "1 (default)"
    return dict(graph_optimization_level=str(opts.graph_optimization_level).split(".")[-1],
                intra_op_num_threads=opts.intra_op_num_threads, inter_op_num_threads=opts.inter_op_num_threads,
                execution_mode=str(opts.execution_mode).split(".")[-1], allow_spinning=spinning)


def onnx_file_info(path: Path) -> dict:
    import hashlib

    data = Path(path).read_bytes()
    extra = sum(f.stat().st_size for f in Path(path).parent.glob("*.data"))  # external weights, if any
    return dict(name=Path(path).name, bytes=len(data) + extra, sha256=hashlib.sha256(data).hexdigest()[:16])


def prepare_untuned(imported, tinfo, inputs, dlight: bool = False, fast_math: bool = False) -> Prepared:
    """TVM without the tuning database: the tuning's own baseline."""
    ex, build_s = build(imported.mod, tinfo.target, None, dlight=dlight, fast_math=fast_math)
    compiled = Compiled(ex, tinfo.device(), imported.params)
    return Prepared("untuned", lambda: compiled(*inputs), compiled.timer(inputs), build_s,
                    {"what": "same import and pipeline, no tuning database", "build_s": round(build_s, 3)},
                    alone=lambda directory: compiled.alone(directory, "untuned"))


@dataclass(frozen=True)
class BaselineKind:
    """One baseline: its name, what it is (the CLI's help), how it is set up from a BaselineRequest, its colour in
    the plots and the history site, and whether it needs only the model (no TVM build, no ONNX export: a bundle's
    measuring host and TVM 0.19's environment can time it)."""

    name: str
    summary: str
    prepare: Callable[[BaselineRequest], Prepared]
    color: str
    model_only: bool = False


# The registry, in the order reports and plots show the baselines. `--baselines none` times TVM alone (eager
# still runs once, for parity). The entries call the module's functions by name at call time, so a test can
# replace one.
BASELINE_LIST = [
    BaselineKind("eager", "eager PyTorch (the control, always timed)", lambda r: prepare_eager(r.case, r.device), "#7f7f7f",
                 model_only=True),
    BaselineKind("compile", "torch.compile", lambda r: prepare_compile(r.case, r.device), "#ff7f0e", model_only=True),
    BaselineKind("compile-max", 'torch.compile(mode="max-autotune-no-cudagraphs"): Inductor autotunes its matmul templates',
                 lambda r: prepare_compile(r.case, r.device, "max-autotune-no-cudagraphs", "compile-max"), "#b35806", model_only=True),
    BaselineKind("ort", "ONNX Runtime", lambda r: prepare_ort(r.case, r.device, r.threads, r.onnx_file, r.workdir), "#9467bd"),
    # the cell's build knows its untuned twin: the same pipeline without the database (prepare_untuned), or a
    # Relay cell's plain relay.build (bench.pipeline.relay_cell)
    BaselineKind("untuned", "TVM without the --db: the tuning gain", lambda r: _untuned(r.compiled, r.case.inputs), "#e377c2"),
]
BASELINES = {b.name: b for b in BASELINE_LIST}
MODEL_ONLY = tuple(b.name for b in BASELINE_LIST if b.model_only)  # what `measure` and TVM 0.19's cells can time


def baselines_help(names=None) -> str:
    """--baselines' help: the named baselines (default all), each with what it is."""
    names = None if names is None else set(names)
    return "; ".join(f"{b.name}: {b.summary}" for b in BASELINE_LIST if names is None or b.name in names)


def _untuned(compiled, inputs) -> Prepared:
    if compiled.untuned is None:
        raise RuntimeError("this cell's build has no untuned twin (a shared, loaded or remote build): nothing to compare with")
    return compiled.untuned(inputs)
