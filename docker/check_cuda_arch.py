"""Which CUDA architecture does the image's harness compile a GPT's kernels for? Run inside the
`cuda-check` image (docker/Dockerfile), no GPU needed:

    python /opt/gptbench/check_cuda_arch.py sm_86 [sm_90 ...] [--out DIR]

For each arch, the two halves of the harness's build-here, measure-there path (bench/bundle.py):

1. build, as a user would on a host without a GPU:

       gptbench run --model nanogpt-tiny --weights random --frontend export --target cuda \\
           --cuda-arch ARCH --bundle DIR/ARCH/bundle --no-isolate --out DIR/ARCH/results

   with TVM_COMPILE_FORCE_FALLBACK=1, so that the exported library (lib.so) keeps the kernels as
   CUDA C, as a bundle is meant to and as PyPI's TVM does where no libcuda.so.1 is installed. (This
   image has one, Debian's, for TVM's CUDA runtime; with it TVM compiles the kernels while it
   builds, through its nvcc hook, outside any target scope: with no GPU to ask, that fails with
   "No CUDA architecture was specified or GPU detected", see docker/README.md.)
2. compile, as `gptbench measure` does on the GPU host: TVM's CUDA runtime is loaded
   (bench.targets.cuda.load_runtime), the harness's compile hook is registered for ARCH
   (bench.targets.cuda.jit, nvcc here: TVM_CUDA_COMPILE_MODE=nvcc; the GPU it would check is stood in
   for by one of ARCH's compute capability, and, for TVM's nvcc wrapper, which asks the current
   target or the GPU for the arch's major version even when given the arch, by ARCH's target
   scope), and lib.so is loaded: TVM compiles the kernels then. What the hook returns, an NVIDIA
   fatbin, is kept.

Each fatbin is listed with `cuobjdump --list-elf` / `--list-ptx` (and the `.target` line of any PTX).
The check passes when every cubin is for exactly ARCH and every PTX (if any) is for ARCH's virtual
arch; it fails, one line on stderr, on anything else, and refuses before building an arch this
nvcc does not know.

Prints one JSON object (per arch: the commands, what cuobjdump listed, wall times); exit 0 when
every arch passed, 1 when one did not, 2 on bad usage or an arch this nvcc does not know.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

FATBIN_MAGIC = 0xBA55ED50  # struct fatBinaryHeader { u32 magic; u16 version; u16 headerSize; u64 fatSize; }
HEADER = struct.Struct("<IHHQ")


def fail(msg: str, code: int = 1):
    print(f"check_cuda_arch: {msg}", file=sys.stderr)
    sys.exit(code)


def known_archs() -> list[str]:
    """The real archs (sm_XX) this nvcc can build for."""
    out = subprocess.run(["nvcc", "--list-gpu-code"], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip().startswith("sm_")]


def nvcc_release() -> str:
    out = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"release ([\d.]+)", out)
    return m[1] if m else "?"


def fatbins(blob: bytes) -> list[bytes]:
    """Every NVIDIA fatbin embedded in a file: TVM serializes the compiled module as raw bytes."""
    found, start = [], 0
    magic = struct.pack("<I", FATBIN_MAGIC)
    while (i := blob.find(magic, start)) >= 0:
        _, version, header_size, fat_size = HEADER.unpack_from(blob, i)
        end = i + header_size + fat_size
        if version == 1 and header_size == HEADER.size and end <= len(blob):
            found.append(blob[i:end])
            start = end
        else:
            start = i + 4
    return found


ENTRY = struct.Struct("<HHIQ")  # each entry: u16 kind (1 PTX, 2 ELF), u16, u32 headerSize, u64 payloadSize, ...
ENTRY_ARCH_AT = 28  # u32: the arch number (86 for sm_86 / compute_86)


def fatbin_entries(fb: bytes) -> list[str]:
    """What the fatbin's own entry headers say, independently of cuobjdump: "sm_86" for a cubin,
    "compute_86" for PTX."""
    _, _, header_size, fat_size = HEADER.unpack_from(fb, 0)
    out, off = [], header_size
    while off + ENTRY.size <= header_size + fat_size:
        kind, _, entry_size, payload = ENTRY.unpack_from(fb, off)
        (arch,) = struct.unpack_from("<I", fb, off + ENTRY_ARCH_AT)
        out.append({1: f"compute_{arch}", 2: f"sm_{arch}"}.get(kind, f"kind{kind}_{arch}"))
        off += entry_size + payload
    return out


def cuobjdump(args: list[str], path: Path) -> list[str]:
    proc = subprocess.run(["cuobjdump", *args, str(path)], capture_output=True, text=True)
    if proc.returncode != 0 and "does not contain" not in proc.stderr:
        fail(f"cuobjdump {' '.join(args)} {path}: {proc.stderr.strip() or proc.returncode}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def build_bundle(arch: str, out: Path) -> tuple[list[Path], dict]:
    """Step 1: the harness builds nanogpt-tiny for ARCH into a bundle; the kernels stay CUDA C."""
    cmd = ["gptbench", "run", "--model", "nanogpt-tiny", "--weights", "random", "--frontend", "export",
           "--target", "cuda", "--cuda-arch", arch, "--bundle", str(out / "bundle"), "--no-isolate",
           "--out", str(out / "results")]
    env = dict(os.environ, TVM_COMPILE_FORCE_FALLBACK="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = round(time.perf_counter() - t0, 1)
    (out / "gptbench.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["?"]
        fail(f"{arch}: `{' '.join(cmd)}` exited {proc.returncode}: {tail[0]}")
    libs = sorted((out / "bundle").glob("*/lib.so"))
    if not libs:
        fail(f"{arch}: the bundle has no lib.so ({out / 'bundle'})")
    for lib in libs:
        blob = lib.read_bytes()
        if b"__global__" not in blob or fatbins(blob):
            fail(f"{arch}: {lib} should hold the kernels as CUDA C (TVM_COMPILE_FORCE_FALLBACK=1), and does not")
    return libs, dict(command="TVM_COMPILE_FORCE_FALLBACK=1 " + " ".join(cmd), wall_s=wall)


def compile_like_measure(arch: str, lib: Path) -> tuple[list[bytes], dict]:
    """Step 2: load lib.so with the harness's compile hook for ARCH, as `gptbench measure` does."""
    import tvm
    import tvm_ffi

    from bench.targets.cuda import jit, load_runtime

    problem = load_runtime()
    if problem:
        fail(f"{arch}: {problem}")
    digits = arch.removeprefix("sm_").rstrip("af")
    stand_in = SimpleNamespace(compute_version=f"{digits[:-1]}.{digits[-1]}")  # the GPU jit checks against
    info = jit(arch, stand_in)
    hook = tvm_ffi.get_global_func("tvm_callback_cuda_compile")
    outputs: list[bytes] = []

    @tvm_ffi.register_global_func("tvm_callback_cuda_compile", override=True)
    def _keep(code):
        compiled = hook(code)
        outputs.append(bytes(compiled))
        return compiled

    t0 = time.perf_counter()
    # TVM's nvcc path reads the arch's major version from the current target, else from the GPU,
    # even when it is given the arch (tvm/support/nvcc.py, _compile_cuda_nvcc): with no GPU here,
    # ARCH's target stands in for it, as the compute capability above stands in for the device.
    with tvm.target.Target({"kind": "cuda", "arch": arch}):
        tvm.runtime.load_module(str(lib))
    info["load_wall_s"] = round(time.perf_counter() - t0, 1)
    if not outputs:
        fail(f"{arch}: loading {lib} compiled nothing (no CUDA module in it?)")
    return outputs, info


def check_arch(arch: str, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    libs, build = build_bundle(arch, out)
    result = dict(arch=arch, build=build, libraries=[])
    want_elf, want_ptx = arch, "compute_" + arch.removeprefix("sm_")
    for lib in libs:
        compiled, info = compile_like_measure(arch, lib)
        entry = dict(library=str(lib), bytes=lib.stat().st_size, compile=info, fatbins=[])
        result["libraries"].append(entry)
        found = [fb for blob in compiled for fb in fatbins(blob)]
        if len(found) != len(compiled):
            fail(f"{arch}: the compile hook returned {len(compiled)} blob(s), {len(found)} of them fatbins")
        for n, fb in enumerate(found):
            path = out / f"{lib.parent.name}.{n}.fatbin"
            path.write_bytes(fb)
            elf = cuobjdump(["--list-elf"], path)
            ptx = cuobjdump(["--list-ptx"], path)
            targets = sorted(set(re.findall(r"^\s*\.target\s+(\S+)", "\n".join(cuobjdump(["--dump-ptx"], path)), re.M))) if ptx else []
            elf_archs = sorted({m for line in elf for m in re.findall(r"\b(sm_\d+[af]?)\b", line)})
            ptx_archs = sorted({m for line in ptx for m in re.findall(r"\b(sm_\d+[af]?|compute_\d+[af]?)\b", line)})
            headers = fatbin_entries(fb)
            entry["fatbins"].append(dict(file=str(path), bytes=len(fb), elf=elf, ptx=ptx, elf_archs=elf_archs,
                                         ptx_archs=ptx_archs, ptx_targets=targets, entry_headers=headers))
            per_cubin = sorted(m for line in elf for m in re.findall(r"\b(sm_\d+[af]?)\b", line)[:1])
            if sorted(h for h in headers if h.startswith("sm_")) != per_cubin:
                fail(f"{arch}: the fatbin's entry headers say {headers}, cuobjdump lists {elf + ptx}")
            if set(headers) - {want_elf, want_ptx}:
                fail(f"{arch}: the fatbin's entry headers say {', '.join(headers)}, not only {want_elf}/{want_ptx}")
            if not elf:
                fail(f"{arch}: {path} holds no cubin (cuobjdump --list-elf listed nothing)")
            if elf_archs != [want_elf]:
                fail(f"{arch}: the compiled kernels are for {', '.join(elf_archs) or '?'}, not exactly {want_elf}")
            if ptx and not set(ptx_archs) <= {want_elf, want_ptx}:
                fail(f"{arch}: the embedded PTX is for {', '.join(ptx_archs)}, not {want_ptx}")
            if targets and targets != [want_elf]:
                fail(f"{arch}: the embedded PTX says .target {', '.join(targets)}, not {want_elf}")
    result["ok"] = True
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archs", nargs="+", help="sm_XX (or XX) for each build, e.g. sm_86 sm_90")
    ap.add_argument("--out", default=None, help="where bundles and extracted fatbins go (default: a temporary folder)")
    args = ap.parse_args(argv)
    archs = []
    for a in args.archs:
        a = a if a.startswith("sm_") else f"sm_{a}"
        if not re.fullmatch(r"sm_\d+[af]?", a):
            fail(f"{a!r}: want sm_XX with a number, e.g. sm_86 or sm_90a", 2)
        archs.append(a)
    release, known = nvcc_release(), known_archs()
    for a in archs:
        if a not in known:
            fail(f"{a}: nvcc of CUDA {release} cannot build for it; it knows {' '.join(known)}", 2)
    out = Path(args.out or tempfile.mkdtemp(prefix="check-cuda-arch-"))
    report = dict(nvcc=release, archs={})
    for a in archs:
        report["archs"][a] = check_arch(a, out / a)
        r = report["archs"][a]
        fb = [f for lib in r["libraries"] for f in lib["fatbins"]]
        print(f"check_cuda_arch: {a}: {len(fb)} fatbin(s); cubins {', '.join(sorted({x for f in fb for x in f['elf_archs']}))}; "
              f"PTX {', '.join(sorted({x for f in fb for x in f['ptx_archs']})) or 'none'}; build {r['build']['wall_s']} s",
              file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
