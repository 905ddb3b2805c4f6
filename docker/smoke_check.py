"""Build-time check of a gptbench image: run by `docker build`, needs no GPU.

It fails the build (exit 1, one line per problem) unless:
  * torch, apache-tvm and apache-tvm-ffi are the pinned versions;
  * torch and tvm import into one process (the symbol clash that
    HIDE_PRIVATE_SYMBOLS=ON prevents shows up here or in the compile below);
  * TVM compiles and runs a small kernel on the CPU through LLVM;
  * xgboost (MetaSchedule's cost model) trains a booster;
  * with --cuda: torch is a CUDA build of the expected toolkit, apache-tvm was
    installed from the wheel built in this image (not PyPI's), and TVM emits
    CUDA C for GPTBENCH_CUDA_ARCH which nvcc then compiles for that sm_XX.

  * with --cuda none: torch is a CPU-only build (no multi-GB CUDA wheel in a CPU image).

Usage: python smoke_check.py --torch 2.13.0 --tvm 0.27.0.post1 --tvm-ffi 0.1.14.post1 --cuda 13.0|none
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata


def _base(version: str) -> str:
    """'2.13.0+cu130' -> '2.13.0' (drop the local label of PyTorch's index wheels)."""
    return version.split("+", 1)[0]


def check_versions(args: argparse.Namespace, problems: list[str]) -> None:
    for dist, want in (("torch", args.torch), ("apache-tvm", args.tvm), ("apache-tvm-ffi", args.tvm_ffi)):
        try:
            have = metadata.version(dist)
        except metadata.PackageNotFoundError:
            problems.append(f"{dist} is not installed (want {want})")
            continue
        if _base(have) != want:
            problems.append(f"{dist} is {have}, the pin is {want}")


def check_cpu_compile(problems: list[str]) -> None:
    import numpy as np
    import torch  # noqa: F401  (imported before tvm on purpose: the clash check)
    import tvm
    from tvm import te

    n = 64
    a_ph = te.placeholder((n,), name="A", dtype="float32")
    b_op = te.compute((n,), lambda i: a_ph[i] * 2.0 + 1.0, name="B")
    mod = tvm.IRModule({"main": te.create_prim_func([a_ph, b_op])})
    lib = tvm.compile(mod, target="llvm")
    dev = tvm.cpu()
    a = tvm.runtime.tensor(np.arange(n, dtype="float32"), dev)
    b = tvm.runtime.empty((n,), "float32", dev)
    lib["main"](a, b)
    want = np.arange(n, dtype="float32") * 2.0 + 1.0
    if not np.allclose(b.numpy(), want):
        problems.append("TVM's LLVM-compiled kernel returned wrong values")


def check_xgboost(problems: list[str]) -> None:
    """MetaSchedule's default cost model trains an xgboost booster after each measured batch."""
    import numpy as np
    import xgboost

    rng = np.random.default_rng(0)
    data = xgboost.DMatrix(rng.random((64, 4)), label=rng.random(64))
    booster = xgboost.train({"tree_method": "hist", "nthread": 1}, data, num_boost_round=4)
    if booster.predict(data).shape != (64,):
        problems.append("xgboost trained a booster that does not predict")


def check_cuda(cuda_version: str, problems: list[str]) -> None:
    import torch
    import tvm
    import tvm.s_tir as s_tir
    import tvm.support.nvcc as nvcc
    from tvm import te

    if not (torch.version.cuda or "").startswith(cuda_version):
        problems.append(f"torch is built for CUDA {torch.version.cuda}, the image has CUDA {cuda_version}")

    # apache-tvm must be the wheel built from source in this image: pip records a
    # direct_url.json (file://...) for a local wheel and none for a PyPI download.
    try:
        direct = metadata.distribution("apache-tvm").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    if not direct or not json.loads(direct).get("url", "").startswith("file://"):
        problems.append("apache-tvm did not come from the wheel built in this image")

    arch = os.environ.get("GPTBENCH_CUDA_ARCH", "")
    if not arch.startswith("sm_") or not arch[3:].rstrip("af").isdigit():
        problems.append(f"GPTBENCH_CUDA_ARCH={arch!r} is not of the form sm_XX")
        return

    n = 1024
    a_ph = te.placeholder((n,), name="A", dtype="float32")
    b_op = te.compute((n,), lambda i: a_ph[i] * 2.0 + 1.0, name="B")
    sch = s_tir.Schedule(tvm.IRModule({"main": te.create_prim_func([a_ph, b_op])}))
    (loop,) = sch.get_loops(sch.get_sblock("B"))
    bx, tx = sch.split(loop, factors=[None, 128])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    target = tvm.target.Target({"kind": "cuda", "arch": arch})
    with target:
        exe = tvm.compile(sch.mod, target=target)
        source = exe.mod.imports[0].inspect_source()
        if "__global__" not in source:
            problems.append("TVM's CUDA codegen emitted no kernel")
            return
        # nvcc is the compiler of record here: it rejects an arch the toolkit lacks
        # ("nvcc fatal : Unsupported gpu architecture ...").
        binary = nvcc.compile_cuda(source, target_format="fatbin", arch=arch, compiler="nvcc")
    if not binary:
        problems.append(f"nvcc produced no fatbin for {arch}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", required=True)
    parser.add_argument("--tvm", required=True)
    parser.add_argument("--tvm-ffi", required=True)
    parser.add_argument(
        "--cuda", required=True, help="CUDA major.minor of the image (enables the CUDA checks), or none"
    )
    args = parser.parse_args(argv)

    problems: list[str] = []
    check_versions(args, problems)
    check_cpu_compile(problems)
    check_xgboost(problems)
    if args.cuda == "none":
        import torch

        if torch.version.cuda is not None:
            problems.append(f"torch {torch.__version__} is a CUDA {torch.version.cuda} build in a CPU image")
    else:
        check_cuda(args.cuda, problems)
    for line in problems:
        print(f"smoke_check: {line}", file=sys.stderr)
    if not problems:
        print("smoke_check: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
