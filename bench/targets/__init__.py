"""Compilation targets, one registry entry each (`TARGET_LIST`): `llvm` (this CPU) and `cuda`.

Targets are built in TVM 0.27's JSON-dict form (CLI strings with options are rejected there):
- llvm: `{"kind": "llvm", "mcpu": <host cpu from LLVM>, "num-cores": threads}`; the mcpu is
  detected on every run (never hard-coded: a tuning database is only valid for the mcpu it was
  tuned on).
- cuda: `{"kind": "cuda", "arch": "sm_XX"}` with an llvm host. The arch comes from `--cuda-arch`,
  else from the visible GPU, else from the `GPTBENCH_CUDA_ARCH` environment variable (set by the
  Docker image to the architecture TVM was built for). A CUDA build compiles without a GPU; it
  runs only where TVM's runtime has CUDA and a device is present.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from bench.core.env import host_mcpu
from bench.core.errors import UserError, unknown
from bench.targets import cuda

CUDA_ARCH_ENV = "GPTBENCH_CUDA_ARCH"


@dataclass(frozen=True)
class Target:
    """One compilation target: what the CLI, the configuration checks, the cells and tuning read of it."""

    name: str
    summary: str  # what it compiles for, in --target's help
    device_type: str  # TVM's device (tvm.device(device_type, 0)) and torch's, where the device is present
    gpu: bool  # kernels run on a GPU: built here without one, run only where one is
    dtypes: tuple[str, ...]  # the --dtype values a run on it takes
    make: Callable[[str | None, dict], TargetInfo]  # (--cuda-arch, the llvm host's spec) -> the TVM target
    dtype_note: str = ""  # why it takes no other dtype
    cpu_rules: bool = False  # a CPU pipeline: --dlight adds dlight's CPU rules, tuning uses CPU tensor intrinsics
    takes_arch: bool = False  # --cuda-arch picks the architecture its kernels are scheduled for
    ablations: tuple[str, ...] = ()  # passes of its own pipeline `gptbench passes` ablates besides the common ones
    offloads: tuple[str, ...] = ()  # libraries --offload can hand its matmuls to (bench.build.relax.offload)
    load_runtime: Callable[[], str | None] | None = None  # a runtime-only TVM: load the device's runtime (None, or why not)
    jit: Callable[[str, object], dict] | None = None  # (arch, device) -> what it records: kernels compiled when a build loads

    def tvm_device(self):
        import tvm

        return tvm.device(self.device_type, 0)


@dataclass
class TargetInfo:
    kind: str
    target: object  # tvm.target.Target
    spec: dict  # the JSON-dict form, for the report
    device_available: bool
    device_reason: str  # why it cannot run, when device_available is False
    arch_source: str = ""  # cuda: where the arch came from

    def device(self):
        return TARGETS[self.kind].tvm_device()

    @property
    def torch_device(self) -> str:
        """Where eager PyTorch runs beside this target: the GPU when TVM can run there, else the CPU."""
        entry = TARGETS[self.kind]
        return entry.device_type if entry.gpu and self.device_available else "cpu"


def normalize_arch(arch: str) -> str:
    """'90', 'sm90', 'sm_90', '9.0', 'sm_90a' -> 'sm_90[a]'; UserError for anything that is not a
    CUDA compute capability (major 3-12, one minor digit, optional a/f suffix)."""
    s = str(arch).strip().lower()
    m = re.fullmatch(r"(?:sm_?)?(\d{1,2})(\d)([af]?)", s) or re.fullmatch(r"(\d{1,2})\.(\d)([af]?)", s)
    if not m or not 3 <= int(m.group(1)) <= 12:
        raise UserError(f"bad CUDA architecture {arch!r}: expected a compute capability such as sm_86, sm_90, sm_90a, 90 or 9.0")
    return f"sm_{m.group(1)}{m.group(2)}{m.group(3)}"


def gpu_arch() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return f"sm_{major}{minor}"
    except Exception:  # noqa: BLE001 - no usable GPU is an answer, not an error
        return None
    return None


def cuda_runtime_status() -> tuple[bool, str]:
    import tvm

    if not tvm.runtime.enabled("cuda"):
        return False, "this TVM build has no CUDA runtime (tvm.runtime.enabled('cuda') is False: no libcuda/driver here)"
    if not tvm.cuda(0).exist:
        return False, "no CUDA device visible (tvm.cuda(0).exist is False); with Docker use --gpus all"
    return True, ""


def _llvm(_arch: str | None, llvm: dict) -> TargetInfo:
    import tvm

    return TargetInfo("llvm", tvm.target.Target(llvm), llvm, True, "")


def _cuda(cuda_arch: str | None, llvm: dict) -> TargetInfo:
    import tvm

    if cuda_arch:
        arch, source = normalize_arch(cuda_arch), "--cuda-arch"
    elif gpu_arch():
        arch, source = gpu_arch(), "visible GPU"
    elif os.environ.get(CUDA_ARCH_ENV):
        arch, source = normalize_arch(os.environ[CUDA_ARCH_ENV]), f"${CUDA_ARCH_ENV}"
    else:
        raise UserError(
            "--target cuda needs a CUDA architecture: no GPU is visible and "
            f"${CUDA_ARCH_ENV} is unset; pass --cuda-arch (e.g. sm_90 for H100, sm_80 for A100, sm_89 for L4)"
        )
    spec = {"kind": "cuda", "arch": arch}
    ok, reason = cuda_runtime_status()
    target = tvm.target.Target(spec, host=llvm)
    return TargetInfo("cuda", target, {**spec, "host": llvm}, ok, reason, source)


TARGET_LIST = [
    Target("llvm", "this CPU (LLVM; the mcpu detected on every run)", "cpu", gpu=False, dtypes=("float32",), make=_llvm,
           dtype_note="eager PyTorch has no fast fp16 CPU path to compare with", cpu_rules=True),
    # ablations: dlight's default GPU schedules
    Target("cuda", "an NVIDIA GPU (CUDA; arch from --cuda-arch, the visible GPU or $" + CUDA_ARCH_ENV + ")", "cuda", gpu=True,
           dtypes=("float32", "float16"), make=_cuda, takes_arch=True, ablations=("ApplyDefaultSchedule",), offloads=("cublas",),
           load_runtime=cuda.load_runtime, jit=cuda.jit),
]
TARGETS = {t.name: t for t in TARGET_LIST}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise unknown("target", name, list(TARGETS))
    return TARGETS[name]


def make_target(kind: str, threads: int, cuda_arch: str | None = None, mcpu: str | None = None) -> TargetInfo:
    """The TVM target of a registry entry, with an llvm host on this CPU (`mcpu`: another machine's, a remote device's with
    `--rpc`; default this host's)."""
    return get_target(kind).make(cuda_arch, {"kind": "llvm", "mcpu": mcpu or host_mcpu(), "num-cores": int(threads)})
