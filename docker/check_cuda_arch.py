"""Which CUDA architecture does the image's TVM compile a GPT's kernels for? Run inside the
`cuda-check` image (docker/Dockerfile), no GPU needed:

    python /opt/gptbench/check_cuda_arch.py sm_86 [sm_90 ...] [--out DIR]

For each arch it runs the harness as a user would on a build host,

    gptbench run --model nanogpt-tiny --weights random --frontend export --target cuda \\
        --cuda-arch ARCH --bundle DIR/ARCH/bundle --no-isolate --out DIR/ARCH/results

then takes the bundle's exported library (lib.so) apart: TVM built with USE_CUDA=ON compiles the
kernels when it builds the module (its `tvm_callback_cuda_compile` hook, nvcc here:
TVM_CUDA_COMPILE_MODE=nvcc), and export_library embeds the result, an NVIDIA fatbin, in lib.so.
Each fatbin found is written out and listed with `cuobjdump --list-elf` / `--list-ptx` (and the
`.target` line of any PTX). The check passes when there is at least one fatbin, every cubin in it
is for exactly ARCH and every PTX (if any) is for ARCH's virtual arch; it fails, one line on stderr,
on anything else: another arch, CUDA C source left uncompiled (TVM's CUDA runtime did not load at
build time), or an arch this nvcc does not know (refused before the harness runs).

Prints one JSON object (per arch: what cuobjdump listed, the harness's wall time); exit 0 when every
arch passed, 1 when one did not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def cuobjdump(args: list[str], path: Path) -> list[str]:
    proc = subprocess.run(["cuobjdump", *args, str(path)], capture_output=True, text=True)
    if proc.returncode != 0 and "does not contain" not in proc.stderr:
        fail(f"cuobjdump {' '.join(args)} {path}: {proc.stderr.strip() or proc.returncode}")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def check_arch(arch: str, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["gptbench", "run", "--model", "nanogpt-tiny", "--weights", "random", "--frontend", "export",
           "--target", "cuda", "--cuda-arch", arch, "--bundle", str(out / "bundle"), "--no-isolate",
           "--out", str(out / "results")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = round(time.perf_counter() - t0, 1)
    (out / "gptbench.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["?"]
        fail(f"{arch}: `{' '.join(cmd)}` exited {proc.returncode}: {tail[0]}")
    libs = sorted((out / "bundle").glob("*/lib.so"))
    if not libs:
        fail(f"{arch}: the bundle has no lib.so ({out / 'bundle'})")
    result = dict(arch=arch, command=" ".join(cmd), harness_wall_s=wall, libraries=[])
    want_elf, want_ptx = arch, "compute_" + arch.removeprefix("sm_")
    for lib in libs:
        blob = lib.read_bytes()
        found = fatbins(blob)
        entry = dict(library=str(lib), bytes=len(blob), fatbins=[])
        result["libraries"].append(entry)
        if not found:
            why = "CUDA C source left for the runtime to compile" if b"__global__" in blob else "no CUDA code"
            fail(f"{arch}: {lib} holds no compiled kernels ({why}): TVM's CUDA runtime did not load at "
                 "build time (libcuda.so.1 missing?), so TVM did not call nvcc")
        for n, fb in enumerate(found):
            path = out / f"{lib.parent.name}.{n}.fatbin"
            path.write_bytes(fb)
            elf = cuobjdump(["--list-elf"], path)
            ptx = cuobjdump(["--list-ptx"], path)
            targets = sorted({m for m in re.findall(r"^\s*\.target\s+(\S+)", "\n".join(cuobjdump(["--dump-ptx"], path)), re.M)}) if ptx else []
            elf_archs = sorted({m for line in elf for m in re.findall(r"\b(sm_\d+[af]?)\b", line)})
            ptx_archs = sorted({m for line in ptx for m in re.findall(r"\b(sm_\d+[af]?|compute_\d+[af]?)\b", line)})
            entry["fatbins"].append(dict(file=str(path), bytes=len(fb), elf=elf, ptx=ptx, elf_archs=elf_archs,
                                         ptx_archs=ptx_archs, ptx_targets=targets))
            if not elf:
                fail(f"{arch}: {path} holds no cubin (cuobjdump --list-elf listed nothing)")
            if elf_archs != [want_elf]:
                fail(f"{arch}: the embedded cubins are for {', '.join(elf_archs) or '?'}, not exactly {want_elf}")
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
              f"PTX {', '.join(sorted({x for f in fb for x in f['ptx_archs']})) or 'none'}; harness {r['harness_wall_s']} s",
              file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
