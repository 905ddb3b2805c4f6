"""What running a CUDA build needs beside TVM's compiler, for a host that has only TVM's runtime (a bundle measured
on a GPU host, bench.pipeline.bundle): TVM's CUDA runtime library loaded, and the kernels (CUDA C in TVM 0.27's
modules) compiled for the build's arch when the library loads."""

from __future__ import annotations

import os
import time
from pathlib import Path


class ArchMismatch(Exception):
    """The GPU here is not the architecture the kernels were scheduled for."""


def load_runtime() -> str | None:
    """TVM's CUDA runtime (libtvm_runtime_cuda, beside libtvm_runtime) is loaded by the compiler's
    backend registration, which a runtime-only TVM skips: load it here. None, or why it failed."""
    from tvm.base import _LOADED_LIBS
    from tvm_ffi.libinfo import load_lib_ctypes

    if "tvm_runtime_cuda" in _LOADED_LIBS:
        return None
    try:
        _LOADED_LIBS["tvm_runtime_cuda"] = load_lib_ctypes(package="tvm", target_name="tvm_runtime_cuda", mode="RTLD_LOCAL",
                                                           extra_lib_paths=[Path(_LOADED_LIBS["tvm_runtime"]._name).resolve().parent])
    except (OSError, RuntimeError) as e:
        return f"TVM's CUDA runtime did not load here: {str(e).splitlines()[0]}"
    return None


def jit(arch: str, device) -> dict:
    """TVM 0.27 keeps a CUDA module's kernels as CUDA C and compiles them when the runtime loads the
    library, through the `tvm_callback_cuda_compile` hook. Register one for the build's arch (after
    checking the GPU is that arch): NVRTC where the cuda-bindings package is installed, else nvcc
    ($TVM_CUDA_COMPILE_MODE chooses). Returns what it will record."""
    import tvm_ffi
    from tvm.support import nvcc

    have = "sm_" + str(device.compute_version).replace(".", "")
    if have.rstrip("af") != arch.rstrip("af"):
        raise ArchMismatch(f"the bundle's kernels were scheduled for {arch}; this GPU is {have}: build the bundle with --cuda-arch {have}")
    try:
        import cuda.bindings.nvrtc  # noqa: F401

        default = "nvrtc"
    except ImportError:
        default = "nvcc"
    compiler = os.environ.get("TVM_CUDA_COMPILE_MODE", default).lower()
    info = dict(compiler=compiler, arch=arch, kernels_compiled=0, compile_s=0.0)  # filled in by the hook as it runs

    @tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
    def _compile(code):
        t0 = time.perf_counter()
        out = nvcc.compile_cuda(code, target_format="cubin" if compiler == "nvrtc" else "fatbin", arch=arch, compiler=compiler)
        info["kernels_compiled"] += 1
        info["compile_s"] = round(info["compile_s"] + time.perf_counter() - t0, 3)
        return out

    return info
