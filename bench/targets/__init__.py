"""Compilation targets: `llvm` (this CPU) and `cuda`.

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
from dataclasses import dataclass

from bench.core.env import host_mcpu
from bench.core.errors import UserError, unknown

TARGETS = ("llvm", "cuda")
CUDA_ARCH_ENV = "GPTBENCH_CUDA_ARCH"


@dataclass
class TargetInfo:
    kind: str
    target: object  # tvm.target.Target
    spec: dict  # the JSON-dict form, for the report
    device_available: bool
    device_reason: str  # why it cannot run, when device_available is False
    arch_source: str = ""  # cuda: where the arch came from

    def device(self):
        import tvm

        return tvm.cuda(0) if self.kind == "cuda" else tvm.cpu(0)

    @property
    def torch_device(self) -> str:
        """Where eager PyTorch runs beside this target: the GPU when TVM can run there, else the CPU."""
        return "cuda" if self.kind == "cuda" and self.device_available else "cpu"


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


def make_target(kind: str, threads: int, cuda_arch: str | None = None, mcpu: str | None = None) -> TargetInfo:
    """`mcpu`: another machine's CPU (a remote device's, `--rpc`); default this host's."""
    import tvm

    if kind not in TARGETS:
        raise unknown("target", kind, list(TARGETS))
    llvm = {"kind": "llvm", "mcpu": mcpu or host_mcpu(), "num-cores": int(threads)}
    if kind == "llvm":
        return TargetInfo(kind, tvm.target.Target(llvm), llvm, True, "")
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
    return TargetInfo(kind, target, {**spec, "host": llvm}, ok, reason, source)
