"""Building a Relax module for a target, and calling the result.

The pipeline is TVM's default per-target pipeline (`relax.get_default_pipeline(target)`: on CPU
LegalizeOps, FoldConstant, FuseOps, FuseTIR and lowering; on CUDA the same plus dlight's default
GPU schedules), spelled out pass by pass so that `gptbench passes` can time and disable each one.
With a tuning database, `MetaScheduleApplyDatabase` runs right after FuseTIR: every fused kernel
whose workload the database holds gets its tuned schedule, the others keep the default. A
database tuned with prepacked weights (`gptbench tune --prepack`) also lifts the weight layout
rewrites into `main_transform_params`, which `Compiled` runs once when it loads the module.
The pipeline's LegalizeOps keeps topi.take's "Fast mode segfaults" warning off the console (see
bench.core.quiet); builds and tuning runs get the same kernels as with TVM's own.

Under TVM 0.19's API (bench.core.tvm_compat; the Relax cells of that environment) `build` is
`build_legacy`: the same rewrites and legalize-and-fuse passes (0.27's CPU pipeline up to FuseTIR is
0.19's zero pipeline), then 0.19's relax.build for the lowering; untuned, always.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from bench.build.rewrites import rewrite_passes
from bench.core import quiet, tvm_compat
from bench.core.files import save_arrays
from bench.targets.remote import session

if TYPE_CHECKING:
    import numpy as np

PIPELINE_NAME = "gptbench.default_pipeline"  # the module pass wrapping the pipeline (see bench.pipeline.passes)


def _backend(target):
    from tvm.relax.backend.cpu_generic import pipeline as cpu_pipeline
    from tvm.relax.backend.cuda import pipeline as cuda_pipeline

    return cuda_pipeline if target.kind.name == "cuda" else cpu_pipeline


def _quiet_take(bb, call):
    """relax.take's own legalization (topi.take), with the C++ warning topi.take prints for its
    default mode="fast" kept off the console (bench.core.quiet); the kernel is the same."""
    from tvm.ir import Op

    with quiet.stderr_filtered(quiet.TVM_FAST_TAKE, "tvm"):
        return Op.get("relax.take").get_attr("FLegalize")(bb, call)


def legalize_ops(legacy: bool = False):
    """TVM's LegalizeOps as the default pipelines make it (no arguments), relax.take through `_quiet_take`;
    `legacy` (TVM 0.19, which has no legalization for relax.isnan: HF GPT-2's mask code through ONNX)
    also relax.isnan through topi.isnan."""
    from tvm import relax

    custom = {"relax.take": _quiet_take}
    if legacy:
        custom["relax.isnan"] = _isnan
    return relax.transform.LegalizeOps(customize_legalize_map=custom)


def _isnan(bb, call):
    from tvm import topi

    return bb.call_te(topi.isnan, call.args[0])


def _split_at_fusetir(target) -> tuple[list, list]:
    """TVM's default pipeline for `target` as (up to and including FuseTIR, the rest); its LegalizeOps
    is `legalize_ops()`."""
    backend = _backend(target)
    legalize = [legalize_ops() if p.info.name == "LegalizeOps" else p for p in backend.legalize_passes(target)]
    at = next(i for i, p in enumerate(legalize) if p.info.name == "FuseTIR") + 1
    return (list(backend.library_dispatch_passes(target)) + legalize[:at],
            legalize[at:] + list(backend.dataflow_lower_passes(target)) + list(backend.finalize_passes(target)))


def front_passes(target, fast_math: bool = False) -> list:
    """The harness's rewrites (bench.build.rewrites), then TVM's default pipeline up to and including FuseTIR."""
    return rewrite_passes(fast_math) + _split_at_fusetir(target)[0]


def tuning_passes(target, prepack: bool = False, fast_math: bool = False) -> list:
    """Up to and including FuseTIR: the module MetaSchedule extracts tasks from. A tuned build runs
    exactly these before MetaScheduleApplyDatabase, so the kernels' structural keys match.
    With `prepack`, weights are marked layout-free so tuned schedules may rewrite their layout."""
    from tvm import relax

    passes = front_passes(target, fast_math)
    if prepack:
        passes += [relax.transform.CanonicalizeBindings(), relax.transform.AttachAttrLayoutFreeBuffers()]
    return passes


def cpu_dlight_pass():
    """dlight's CPU default schedules (GEMV, Reduction): an opt-in extra for llvm targets (the CUDA
    default pipeline already applies dlight's GPU rules). Functions already scheduled, e.g. by a
    tuning database, are left alone."""
    dl = tvm_compat.dlight()
    return dl.ApplyDefaultSchedule(dl.cpu.GEMV(), dl.cpu.Reduction())


def pipeline_passes(target, with_db: bool = False, prepack: bool = False, dlight: bool = False, fast_math: bool = False) -> list:
    """The default Relax pipeline for `target` as a flat list of passes; with a tuning database,
    MetaScheduleApplyDatabase after FuseTIR (and, for prepacked weights, the passes that split the
    weight layout rewrite into `main_transform_params`); with `dlight` on llvm, dlight's CPU rules
    after that."""
    from tvm import relax

    passes = tuning_passes(target, prepack and with_db, fast_math)
    if with_db:
        passes.append(relax.transform.MetaScheduleApplyDatabase(enable_warning=False))
        if prepack:
            passes += [relax.transform.SplitLayoutRewritePreproc(), relax.transform.LiftTransformParams(),
                       relax.transform.FoldConstant()]
    if dlight and target.kind.name == "llvm":
        passes.append(cpu_dlight_pass())
    return passes + _split_at_fusetir(target)[1]


def count_kernels(mod) -> int:
    """The TIR functions (kernels) of a lowered module (by class name: `tvm.tir` moved between releases)."""
    return sum(type(f).__name__ == "PrimFunc" for _, f in mod.functions.items())


def make_pipeline(target, with_db: bool = False, prepack: bool = False, dlight: bool = False, fast_math: bool = False,
                  stats: dict | None = None):
    """The pipeline as one module pass; `stats`, where given, gets the lowered module's kernel count."""
    import tvm

    with target:  # MetaScheduleApplyDatabase reads the target when it is constructed
        passes = pipeline_passes(target, with_db, prepack, dlight, fast_math)

    @tvm.transform.module_pass(opt_level=0, name=PIPELINE_NAME)
    def _pipeline(mod, _ctx):
        with target:
            mod = tvm.transform.Sequential(passes)(mod)
        if stats is not None:
            stats["kernels"] = count_kernels(mod)
        return mod

    return _pipeline


def build(mod, target, db_dir: str | Path | None = None, disabled_passes=(), instruments=(), dlight: bool = False,
          fast_math: bool = False, prepack: bool = False, stats: dict | None = None):
    """(executable, seconds): tvm.compile through the harness's rewrites and the default pipeline (plus a
    tuning database, plus dlight's CPU rules). Under TVM 0.19's API: `build_legacy`, untuned. `stats`,
    where given, gets the kernel count of the lowered module."""
    import tvm

    if tvm_compat.legacy():
        if db_dir is not None or dlight or prepack:
            raise ValueError("TVM 0.19 builds Relax untuned with its zero pipeline: tuning databases, --prepack and --dlight are TVM 0.27's")
        return build_legacy(mod, target, disabled_passes, instruments, fast_math, stats)
    with ExitStack() as stack:
        if db_dir is not None:
            ms = tvm_compat.meta_schedule()
            stack.enter_context(ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural"))
        stack.enter_context(
            tvm.transform.PassContext(opt_level=3, disabled_pass=list(disabled_passes), instruments=list(instruments))
        )
        # The target's scope around the whole compile: where TVM's CUDA runtime loads (a host with
        # libcuda), it compiles the kernels here, and takes the arch from this scope (else from the GPU).
        stack.enter_context(target)
        t0 = time.perf_counter()
        ex = tvm.compile(mod, target=target, relax_pipeline=make_pipeline(target, db_dir is not None, prepack, dlight, fast_math, stats))
        return ex, time.perf_counter() - t0


class OffloadUnavailable(Exception):
    """This TVM build has no codegen for the library asked; `info` says what would have gone to it."""

    def __init__(self, message: str, info: dict) -> None:
        super().__init__(message)
        self.info = info


def offload(mod, library: str) -> tuple[object, dict]:
    """`mod` with the calls `library` takes (its Relax patterns: matmuls, with a bias add or a transpose fused)
    partitioned out and compiled by the library's codegen (RunCodegen), before the rest of the pipeline, as MLC-LLM
    does. Returns (module, what went: the offloaded functions and their calls from main). OffloadUnavailable, with
    what would have gone, where this build has no codegen for it (the PyPI wheel has none: TVM built with
    USE_CUBLAS=ON has `relax.ext.cublas`)."""
    import tvm
    from tvm import relax
    from tvm.relax.backend.cuda.cublas import partition_for_cublas

    partitioned = {"cublas": partition_for_cublas}[library](mod)
    funcs = [gv.name_hint for gv, f in partitioned.functions.items() if f.attrs is not None and f.attrs.get("Codegen") == library]
    main = str(partitioned["main"])  # calls print as `lv = NAME(args)`
    calls = {name: len(re.findall(rf"(?<![\w.]){re.escape(name)}\(", main)) for name in funcs}
    info = dict(library=library, functions=len(funcs), calls=sum(calls.values()), by_function=calls)
    if tvm.get_global_func(f"relax.ext.{library}", allow_missing=True) is None:
        raise OffloadUnavailable(f"this TVM build has no {library} codegen (relax.ext.{library} is absent, as in the PyPI wheel): "
                                 f"{info['calls']} matmul calls of main would go to {library}; build TVM with USE_{library.upper()}=ON "
                                 "(docker/'s tvm-build stage) and run in that environment", info)
    return relax.transform.RunCodegen()(partitioned), info


LEGACY_PIPELINE = ("TVM 0.19 (untuned): the harness's rewrites, then Relax's zero pipeline (LegalizeOps, AnnotateTIROpPattern, "
                   "FoldConstant, FuseOps, FuseTIR) and relax.build's default_build lowering")


def legacy_passes(fast_math: bool = False) -> list:
    """TVM 0.19's Relax pipeline before lowering. 0.19 has no per-target default pipeline (no
    tvm.relax.backend.cpu_generic) and its relax.build only lowers, so: the harness's rewrites, then the
    passes of 0.19's zero pipeline (`relax.get_pipeline("zero")`, less its tuning-database step), the same
    legalize-and-fuse passes as 0.27's CPU pipeline up to FuseTIR."""
    from tvm import relax

    t = relax.transform
    return rewrite_passes(fast_math) + [legalize_ops(legacy=True), t.AnnotateTIROpPattern(), t.FoldConstant(), t.FuseOps(), t.FuseTIR()]


def build_legacy(mod, target, disabled_passes=(), instruments=(), fast_math: bool = False, stats: dict | None = None):
    """(executable, seconds) under TVM 0.19's API: `legacy_passes`, then relax.build (default_build: lowering only)."""
    import tvm
    from tvm import relax

    with tvm.transform.PassContext(opt_level=3, disabled_pass=list(disabled_passes), instruments=list(instruments)), target:
        t0 = time.perf_counter()
        mod = tvm.transform.Sequential(legacy_passes(fast_math))(mod)
        if stats is not None:
            stats["kernels"] = count_kernels(mod)
        ex = relax.build(mod, target=target)
        return ex, time.perf_counter() - t0


def _flatten(out) -> list:
    if isinstance(out, tvm_compat.tensor_class()):
        return [out]
    items = []
    for o in out:
        items.extend(_flatten(o))
    return items


class Compiled:
    """A built module on a device, with its weights: call it, time it.

    `imported`: the frontend's ImportResult it was built from, where the cell keeps it (the profile reads it);
    `untuned`: inputs -> the `untuned` baseline (bench.baselines.Prepared), where the cell can build one."""

    def __init__(self, ex, device, params, func: str = "main", lib_path: Path | None = None, imported=None, untuned=None):
        import tvm

        self.imported = imported
        self.untuned = untuned
        self.device = device
        self.func = func
        self.ex = ex
        self.lib_path = lib_path  # where `ex` was loaded from (load_library), else None: it is exported when needed
        self.raw_params = list(params)  # as imported, before any layout transform
        self.vm = tvm_compat.virtual_machine()(ex, device)  # the runtime's VM: a module loaded by a runtime-only TVM works too
        if tvm_compat.device_kind(device) == tvm_compat.device_kind(tvm.cpu()):
            self.params = list(params)
        else:
            self.params = [tvm_compat.to_device(p.numpy(), device) for p in params]
        self.prepacked = self.vm.module.implements_function(f"{func}_transform_params")
        if self.prepacked:  # weights in the layout the tuned kernels chose, computed once at load
            self.params = list(self.vm[f"{func}_transform_params"](self.params))

    def _args(self, inputs) -> list:
        import numpy as np

        return [tvm_compat.to_device(np.ascontiguousarray(as_numpy(x)), self.device) for x in inputs] + self.params

    def __call__(self, *inputs) -> list[np.ndarray]:
        return [o.numpy() for o in _flatten(self.vm[self.func](*self._args(inputs)))]

    def timer(self, inputs):
        """A zero-argument callable giving seconds for one call (TVM's time_evaluator)."""
        args = self._args(inputs)
        evaluator = self.vm.time_evaluator(self.func, self.device, number=1, repeat=1)
        return lambda: float(evaluator(*args).results[0])

    def alone(self, directory: Path, name: str = "tvm") -> dict:
        """This build as a fresh process loads it (bench.pipeline.memory): the exported library and the
        weights as imported (the process transforms them as this one did)."""
        lib, params = Path(directory) / f"{name}.so", Path(directory) / f"{name}-params.npz"
        if self.lib_path is not None:  # a library loaded from a file cannot be exported again: the file is the build
            shutil.copyfile(self.lib_path, lib)
        else:
            self.ex.export_library(str(lib))
        save_arrays(params, [p.numpy() for p in self.raw_params])
        return dict(kind="tvm", lib=str(lib), params=str(params))


def load_library(path: str | Path):
    """A build exported by `export_library`, loaded into this process (Compiled takes it as an executable)."""
    import tvm

    return tvm.runtime.load_module(str(path))


class RemoteCompiled(Compiled):
    """Compiled on an RPC session's device (bench.targets.remote): the outputs are fetched one tensor at a
    time, since a tuple returned over RPC stays on the device. It keeps the session (`remote`) alive as long as
    itself, and says what the upload took."""

    def __init__(self, ex, device, params, remote, upload_s: float, lib_bytes: int):
        super().__init__(ex, device, params)
        self.remote, self.upload_s, self.lib_bytes = remote, upload_s, lib_bytes

    def __call__(self, *inputs) -> list[np.ndarray]:
        self.vm.set_input(self.func, *self._args(inputs))
        self.vm.invoke_stateful(self.func)
        return [o.numpy() for o in _flatten(self.vm.get_outputs(self.func))]


def as_numpy(x) -> np.ndarray:
    import numpy as np

    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def remote_compiled(compiled, address: str, key: str):
    """`compiled` exported, uploaded to a server of the key and loaded there (bench.build.relax.Compiled
    on the device: its calls run there, its timer is the device's own time evaluator)."""
    remote = session(address, key)
    with tempfile.TemporaryDirectory(prefix="gptbench-rpc-") as tmp:
        path = Path(tmp) / "tvm.so"
        compiled.ex.export_library(str(path))
        t0 = time.perf_counter()
        remote.upload(str(path))
        upload_s, lib_bytes = time.perf_counter() - t0, path.stat().st_size
    return RemoteCompiled(remote.load_module("tvm.so"), remote.cpu(), compiled.raw_params, remote, upload_s, lib_bytes)
