"""The environment a measurement was taken in: machine, versions, threads, git state."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "apache-tvm", "apache-tvm-ffi", "onnx", "onnxscript", "onnxruntime", "transformers", "numpy")
REPO = Path(__file__).resolve().parents[2]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that matter for GEMM speed."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                keep = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")
                return [f for f in keep if f in flags]
    except OSError:
        pass
    return []


def memory_gb() -> float | None:
    """Physical memory, GiB (MemTotal)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def hypervisor() -> str | None:
    """The hypervisor this machine runs under (lscpu's vendor, e.g. KVM), "unknown" where the CPU says it runs
    under one but not which, None on bare metal."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Hypervisor vendor:"):
                return line.split(":", 1)[1].strip()
        flagged = any(line.startswith("flags") and " hypervisor" in line for line in Path("/proc/cpuinfo").read_text().splitlines())
    except (OSError, subprocess.SubprocessError):
        return None
    return "unknown" if flagged else None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict:
    def git(*args) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return dict(commit=commit, dirty=bool(status) if status is not None else None)


def tvm_info() -> dict:
    import tvm

    info = dict(version=tvm.__version__, cuda_runtime=bool(tvm.runtime.enabled("cuda")))
    try:
        info["llvm"] = int(tvm.target.codegen.llvm_version_major())
    except Exception:  # noqa: BLE001
        info["llvm"] = None
    info["runtime_only"] = bool(getattr(tvm.base, "_RUNTIME_ONLY", False))  # no compiler: a `gptbench measure` of a bundle
    try:
        info["host_mcpu"] = host_mcpu()
    except Exception:  # noqa: BLE001 - needs the compiler library
        info["host_mcpu"] = None
    try:
        info["threads"] = int(tvm.get_global_func("runtime.NumThreads")())
    except Exception:  # noqa: BLE001
        info["threads"] = None
    return info


def gpu_info() -> dict | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        info = dict(name=props.name, capability=f"{props.major}.{props.minor}", memory_gb=round(props.total_memory / 2**30, 1),
                    torch_cuda=torch.version.cuda)
    except Exception:  # noqa: BLE001
        return None
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=True)
        info["driver"] = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        info["driver"] = None
    return info


def collect(threads: int | None = None) -> dict:
    """Everything a reader needs to trust (or distrust) a number."""
    import torch

    return dict(
        hostname=platform.node(),
        os=platform.platform(),
        python=platform.python_version(),
        cpu=cpu_model(),
        cpu_flags=cpu_flags(),
        cores=usable_cores(),
        memory_gb=memory_gb(),
        kernel=platform.release(),
        hypervisor=hypervisor(),
        threads=threads,
        torch_threads=torch.get_num_threads(),
        tvm=tvm_info(),
        gpu=gpu_info(),
        versions=versions(),
        git=git_state(),
    )


def host_mcpu() -> str:
    import tvm

    return str(tvm.target.Target.from_device(tvm.cpu()).attrs["mcpu"])
