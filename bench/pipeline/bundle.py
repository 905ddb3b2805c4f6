"""Build on one machine, measure on another: `gptbench run --bundle DIR`, then `gptbench measure DIR`.

TVM's own deployment model is cross-compilation: the compiler (LLVM, 250 MB of `libtvm_compiler`)
runs where the model is built, and the device only needs TVM's runtime (5 MB) to load the
exported library. A bundle is that, for the harness:

    DIR/BUNDLE.json                 who built it: the build host's environment and the run's config
    DIR/<model>__<frontend>/lib.so   the exported library (for CUDA: the kernels' CUDA C, compiled
                                      by NVRTC or nvcc when the runtime loads it)
    DIR/<model>__<frontend>/cell.json the cell as recorded at build time (import and build timings,
                                      op counts, rewrites, tuning), the case (model, weights, seed,
                                      scenario, shapes, dtype), and the sha256 of every weight and
                                      input tensor

No weights travel (GPT-2's are 500 MB): the measuring side rebuilds the model and inputs from the
same zoo entry and seed, and refuses to measure unless every tensor hashes to what the build side
saw (a different torch or transformers that initialises differently is caught here, not read as a
parity failure). Then it runs the same measurement as `run` (parity against eager PyTorch on that
machine's device, baselines, the blocks timing) and writes an ordinary run report whose cells name
both machines. It needs only `import tvm` to give the runtime (`TVM_USE_RUNTIME_LIB=1` works).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench.baselines import MODEL_ONLY
from bench.build.relax import Compiled
from bench.core.env import cpu_flags
from bench.core.errors import Interrupted, UserError
from bench.pipeline.cell import CellContext, cell_case, load_cell_model, measure_compiled
from bench.pipeline.config import RunConfig
from bench.record import Cell, RecordError
from bench.targets import TARGETS
from frontends.base import short_error

SCHEMA, SCHEMA_VERSION = "gptbench.bundle", 1
LIB, CELL, TOP, INPUTS = "lib.so", "cell.json", "BUNDLE.json", "inputs.npz"
CASE_KEYS = ("weights", "seed", "scenario", "batch", "seq_len", "past_len", "shapes", "dtype", "tol")


def sha256(array) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _tensors(named) -> list[dict]:
    return [dict(name=n, shape=list(a.shape), dtype=str(a.dtype), sha256=sha256(a)) for n, a in named]


# ------------------------------------------------------------------------------------ build side
def check_bundle_dir(path: str) -> None:
    """A bundle goes into a new or empty directory (cells of two runs never mix)."""
    p = Path(path)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise UserError(f"--bundle {path}: exists and is not an empty directory; give a new one")


def start_bundle(cfg, env: dict, command: list[str]) -> None:
    p = Path(cfg.bundle)
    p.mkdir(parents=True, exist_ok=True)
    top = dict(schema=SCHEMA, schema_version=SCHEMA_VERSION, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               command=command, built_on=env, config=asdict(cfg))
    (p / TOP).write_text(json.dumps(top, indent=1, default=str) + "\n")


def write_cell(cfg, cell: Cell, case, imported, ex, log) -> None:
    """Export the built cell into the bundle (atomically: a directory renamed into place)."""
    import numpy as np

    tag = f"[{cell.model} × {cell.frontend}]"
    if imported.param_names is None:
        cell.set(status="build_failed", error=f"frontend {cell.frontend} does not name its weights: it cannot be bundled")
        return
    named = dict(case.module.named_parameters(remove_duplicate=False))
    params = [(n, p.numpy()) for n, p in zip(imported.param_names, imported.params, strict=True)]
    for n, a in params:  # the measuring side takes the weights from the module by these names
        if n not in named or not np.array_equal(named[n].detach().cpu().numpy(), a):
            cell.set(status="build_failed", error=f"weight {n} of the import is not the module's: the bundle could not be rebuilt")
            return
    final = Path(cfg.bundle) / f"{cell.model}__{cell.frontend}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    t0 = time.perf_counter()
    ex.export_library(str(tmp / LIB))
    export_s = time.perf_counter() - t0
    np.savez(tmp / INPUTS, **{n: x.detach().cpu().numpy() for n, x in zip(case.input_names, case.inputs, strict=True)})
    case_spec = {k: getattr(cfg, k) for k in CASE_KEYS}
    inputs = _tensors((n, x.detach().cpu().numpy()) for n, x in zip(case.input_names, case.inputs, strict=True))
    record = dict(schema=SCHEMA, schema_version=SCHEMA_VERSION, model=cell.model, frontend=cell.frontend, target=cfg.target,
                  case=case_spec, inputs=inputs, params=_tensors(params))
    cell.timings["export_s"] = round(export_s, 3)
    cell.set(status="bundled", stage="run", error=f"exported, not run here: measure it with `gptbench measure {cfg.bundle}`",
             bundle=dict(dir=str(final), lib_bytes=(tmp / LIB).stat().st_size))
    record["cell"] = cell.to_json()
    (tmp / CELL).write_text(json.dumps(record, indent=1, default=str) + "\n")
    tmp.chmod(0o755)
    tmp.rename(final)
    log(f"{tag} built in {cell.timings['build_s']:.1f} s; bundled into {final} ({cell.bundle['lib_bytes'] / 1e6:.1f} MB library, "
        f"{len(params)} weights by name); measure it with `gptbench measure {cfg.bundle}`")


# ---------------------------------------------------------------------------------- measure side
def read_bundle(path: str) -> tuple[dict, list[dict]]:
    """(BUNDLE.json, the cells' records), or a UserError saying what is wrong with `path`."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{path}: no such bundle directory (make one with `gptbench run --bundle {path} ...`)")
    try:
        top = json.loads((p / TOP).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a bundle ({TOP} unreadable: {e}); make one with `gptbench run --bundle`") from None
    if top.get("schema") != SCHEMA or top.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path}: bundle schema {top.get('schema')} v{top.get('schema_version')}; this harness reads {SCHEMA} v{SCHEMA_VERSION}")
    records = []
    for f in sorted(p.glob(f"*/{CELL}")):
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{f}: unreadable cell record ({e})") from None
        for need in (LIB, INPUTS):
            if not (f.parent / need).is_file():
                raise UserError(f"{f.parent}: the cell has no {need}")
        try:
            Cell.from_json(rec.get("cell"), f"{f}: cell")
        except RecordError as e:
            raise UserError(str(e)) from None
        rec["dir"] = str(f.parent)
        records.append(rec)
    if not records:
        raise UserError(f"{path}: the bundle holds no built cell (every cell of its run failed before the build, or it was interrupted)")
    return top, records


def measure_config(top: dict, records: list[dict], baselines: list[str], threads: int, timing: dict):
    """The RunConfig the measurement runs under: the build run's models, frontends, case and tolerance,
    with this machine's threads, baselines and timing plan."""
    for b in baselines:
        if b not in (*MODEL_ONLY, "none"):
            raise UserError(f"measure takes baselines {', '.join(MODEL_ONLY)} or none (got {b!r}): the untuned build "
                            "and ONNX Runtime's export are made on the build side, not in a bundle")
    built = top["config"]
    try:
        return RunConfig(models=sorted({r["model"] for r in records}), frontends=sorted({r["frontend"] for r in records}),
                         target=built["target"], baselines=list(baselines), threads=threads, isolate=False,
                         **{k: built[k] for k in CASE_KEYS}, **timing)
    except ValueError as e:
        raise UserError(str(e)) from None


def _check_cpu(top: dict) -> None:
    missing = sorted(set(top["built_on"].get("cpu_flags") or []) - set(cpu_flags()))
    if missing:
        raise UserError(f"this CPU lacks {', '.join(missing)}, which the bundle's build host had: its llvm libraries would "
                        "fault here; build the bundle for this CPU")


def measure_bundle(path: str, cfg, top: dict, records: list[dict], log) -> list[dict]:
    """Measure every cell of the bundle; a failed cell is recorded with its reason and the next goes on."""
    if not TARGETS[cfg.target].gpu:
        _check_cpu(top)
    cells = []
    for rec in records:
        cell = Cell.from_json(rec["cell"])
        cell.set(status="run_failed", stage="model", error=None)
        cell.bundle = dict(dir=rec["dir"], built_on=_host_line(top["built_on"]), built=top["created"],
                           build_git=top["built_on"].get("git"))
        tag = f"[{cell.model} × {cell.frontend}]"
        try:
            _measure_one(cfg, rec, cell, tag, log)
        except KeyboardInterrupt:
            cell.set(status="interrupted", error="interrupted (SIGINT) while measuring")
            raise Interrupted("SIGINT", 130, [*cells, cell]) from None
        except Exception as e:  # noqa: BLE001 - a failed cell is a result
            cell.set(status="run_failed", error=short_error(e))
            log(f"{tag} failed at {cell.stage}: {cell.error}")
        cells.append(cell)
    return cells


def _host_line(env: dict) -> str:
    tvm = env.get("tvm") or {}
    return f"{env.get('hostname')} ({env.get('cpu')}, {env.get('cores')} cores; TVM {tvm.get('version')}, LLVM {tvm.get('llvm')})"


class BundleMismatch(Exception):
    pass


def _verify(kind: str, expected: list[dict], got: list[tuple[str, object]]) -> None:
    have = _tensors(got)
    if [e["name"] for e in expected] != [h["name"] for h in have]:
        raise BundleMismatch(f"the rebuilt case has other {kind} than the bundle's")
    bad = [e["name"] for e, h in zip(expected, have, strict=True) if (e["shape"], e["dtype"], e["sha256"]) != (h["shape"], h["dtype"], h["sha256"])]
    if bad:
        raise BundleMismatch(f"{len(bad)} of {len(expected)} {kind} rebuilt here differ from the bundle's (first: {bad[0]}): this "
                             "machine's torch/transformers initialise the model differently; the build side's versions are in BUNDLE.json")


def _bundle_inputs(rec: dict, case, cell: Cell) -> tuple:
    """The bundle's own input tensors. Token ids must equal the ones rebuilt here; a float input (the
    decode scenario's KV cache, computed by eager PyTorch on the build host) may differ in its last
    bits on another CPU: the note says by how much, and the bundle's copy is used."""
    import numpy as np
    import torch

    saved = np.load(Path(rec["dir"]) / INPUTS)
    _verify("inputs", rec["inputs"], [(n, saved[n]) for n in case.input_names])
    out, notes = [], []
    for name, rebuilt in zip(case.input_names, case.inputs, strict=True):
        mine, theirs = rebuilt.detach().cpu().numpy(), saved[name]
        if np.array_equal(mine, theirs):
            notes.append(f"{name}: identical")
        elif np.issubdtype(theirs.dtype, np.floating) and mine.shape == theirs.shape:
            notes.append(f"{name}: the bundle's (rebuilt here it differs by at most {float(np.max(np.abs(mine.astype(np.float64) - theirs))):.1e})")
        else:
            raise BundleMismatch(f"input {name} rebuilt here is not the bundle's (token ids differ): another model or seed")
        out.append(torch.from_numpy(theirs.copy()))
    cell.notes["bundle_inputs"] = "; ".join(notes)
    return tuple(out)


def _measure_one(cfg, rec: dict, cell: Cell, tag: str, log) -> None:
    import tvm

    loaded = load_cell_model(cfg, rec["model"], cell)
    case = cell_case(cfg, loaded, cell)
    cell.stage = "verify"
    case.inputs = _bundle_inputs(rec, case, cell)
    named = dict(case.module.named_parameters(remove_duplicate=False))
    weights = [(p["name"], named[p["name"]].detach().cpu().numpy()) if p["name"] in named else None for p in rec["params"]]
    if None in weights:
        raise BundleMismatch("the rebuilt model lacks weights the bundle names")
    _verify("weights", rec["params"], weights)
    cell.stage = "load"
    target = TARGETS[cfg.target]
    problem = target.load_runtime() if target.load_runtime else None
    device = target.tvm_device()
    if problem or not device.exist:
        cell.set(status="no_device", error=problem or f"no {cfg.target} device visible to TVM's runtime here (tvm.{device} does not exist)")
        log(f"{tag} {cell.error}")
        return
    if target.jit:
        cell.notes[f"{target.name}_jit"] = target.jit(cell.target_spec["arch"], device)
    t0 = time.perf_counter()
    lib = tvm.runtime.load_module(str(Path(rec["dir"]) / LIB))
    compiled = Compiled(lib, device, [tvm.runtime.tensor(a) for _, a in weights])
    cell.timings["load_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    compiled(*case.inputs)  # the first call: CUDA kernels are compiled (NVRTC/nvcc) when first used
    cell.timings["first_call_s"] = round(time.perf_counter() - t0, 3)
    cell.stage = "run"
    torch_device = target.device_type
    log(f"{tag} loaded {LIB} in {cell.timings['load_s']:.1f} s, first call {cell.timings['first_call_s']:.1f} s; weights and inputs "
        f"match the bundle's ({len(weights)} + {len(case.inputs)} tensors by sha256)")
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        measure_compiled(CellContext(cfg, cell, tag, Path(tmp), torch_device=torch_device), loaded, case, compiled)
