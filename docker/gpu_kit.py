"""A TVM compiler kit for a GPU host that has Python and torch but no TVM (and no network).

The kit is TVM's Python package with its compiler library (`libtvm_compiler.so`, about 250 MB), tvm-ffi,
and what MetaSchedule and NVRTC need beside them (ml_dtypes, xgboost-cpu, psutil, cloudpickle, tornado,
typing_extensions, cuda-bindings), each the wheel for the GPU host's Python, unpacked into one `site/`
folder less TVM's sources and headers (`src/`, `include/`, `3rdparty/`), compressed with `xz -9e` and
cut into parts small enough to travel beside the repository (a transfer of at most 64 MiB carries the
tracked tree too). `MANIFEST.json` names every part with its size and sha256.

    python docker/gpu_kit.py pack [--out .gpukit] [--python 3.12] [--tvm-wheel WHEEL] [--part-mib N]
    python docker/gpu_kit.py check [.gpukit]            # every part present and intact
    python docker/gpu_kit.py unpack [.gpukit] --into DIR  # then: . DIR/env.sh

`pack` downloads the wheels (pip, binary only, for `--python` on manylinux x86_64) unless `--wheels DIR`
holds them; `--tvm-wheel` packs another apache-tvm wheel (a source build's, e.g. docker/'s tvm-build
stage with cuBLAS) in place of the pinned PyPI one. The kit is written whole into a temporary folder
and renamed into place. `unpack` checks every part first (a missing or damaged part is one line, exit 2,
naming it), then decompresses into DIR (also renamed into place) and writes DIR/env.sh, which puts
`site/` on PYTHONPATH and the pip NVIDIA libraries (nvrtc, cudart) of the host's Python on
LD_LIBRARY_PATH. Standard library only: the GPU host runs it from the checkout without installing anything.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import lzma
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

FORMAT = "gptbench-gpu-kit-v1"
SCHEMA = "gptbench.gpu-kit"  # as the harness's other JSON files name their kind
MANIFEST = "MANIFEST.json"
PART = "kit.tar.xz.{:03d}"
TRANSFER_MIB = 64  # what one call to a lent GPU machine carries, the tracked tree included
MARGIN_MIB = 2  # the manifest, untracked files and rounding
STRIP = ("tvm/src", "tvm/include", "tvm/3rdparty")  # C++ sources and headers: neither the runtime nor codegen reads them
CUDA_BINDINGS = "13.5.0"  # NVRTC's Python bindings for the CUDA 13 driver of the lent GPU machines
# (distribution, where its version comes from): the pin in pyproject.toml, the version installed here (xgboost-cpu:
# xgboost's, which `make setup` may have swapped for xgboost-cpu), or fixed
PACKAGES = (("apache-tvm", "pin"), ("apache-tvm-ffi", "pin"), ("ml_dtypes", "here"), ("xgboost-cpu", "xgboost"),
            ("psutil", "here"), ("cloudpickle", "here"), ("tornado", "here"), ("typing_extensions", "here"),
            ("cuda-bindings", CUDA_BINDINGS))
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
REPO = Path(__file__).resolve().parent.parent
EXIT_USAGE = 2


class KitError(Exception):
    """What is wrong, in one line (exit 2)."""


# ------------------------------------------------------------------------------------------ pack
def requirements(repo: Path = REPO) -> list[str]:
    """`name==version` of every package of the kit: pyproject's pins for TVM, this environment's versions for
    the rest (xgboost-cpu at xgboost's), cuda-bindings fixed."""
    text = (repo / "pyproject.toml").read_text()
    out = []
    for name, source in PACKAGES:
        if source == "pin":
            m = re.search(rf'"{re.escape(name)}==([^"]+)"', text)
            if not m:
                raise KitError(f"pyproject.toml pins no {name}")
            version = m[1]
        elif source in ("here", "xgboost"):
            version = installed(*((name,) if source == "here" else ("xgboost-cpu", "xgboost")))
        else:
            version = source
        out.append(f"{name}=={version}")
    return out


def installed(*dists: str) -> str:
    """The version installed here of the first of `dists` that is."""
    for dist in dists:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    raise KitError(f"{dists[-1]} is not installed here: run `make setup` first (the kit takes this environment's versions)")


def download(reqs: list[str], python: str, into: Path) -> None:
    """The wheels of `reqs` for CPython `python` on manylinux x86_64, without their dependencies."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", python,
           "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(into), *reqs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise KitError(f"pip could not download the kit's wheels for Python {python}: {last}")


def _wheel_name(path: Path) -> str:
    return path.name.split("-")[0].replace("_", "-").lower()


def unpack_wheels(wheels: list[Path], site: Path) -> dict[str, int]:
    """Every wheel unzipped into `site` (a wheel's files are its installed layout), less STRIP; bytes stripped per path."""
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            z.extractall(site)
    stripped = {}
    for rel in STRIP:
        d = site / rel
        if d.is_dir():
            stripped[rel] = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            shutil.rmtree(d)
    return stripped


def tracked_bytes(repo: Path = REPO) -> int | None:
    """The size of the repository's tracked files (what every transfer carries), or None outside a git checkout."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum((repo / n.decode()).stat().st_size for n in names if n and (repo / n.decode()).is_file())


def default_part_bytes(repo: Path = REPO) -> int:
    """The largest part that travels beside the tracked tree in one transfer."""
    tracked = tracked_bytes(repo)
    if tracked is None:
        return 40 << 20
    return max(1 << 20, (TRANSFER_MIB - MARGIN_MIB) * (1 << 20) - tracked)


def write_parts(site: Path, out: Path, part_bytes: int) -> tuple[list[dict], str, int]:
    """site/ as tar.xz, cut into parts of at most part_bytes: (parts, the whole stream's sha256, bytes before compression)."""
    raw = out / "kit.tar"
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(site, arcname="site")
    raw_bytes = raw.stat().st_size
    xz = out / "kit.tar.xz"
    if shutil.which("xz"):  # xz on every core: about as many times faster as there are cores
        if subprocess.run(["xz", "-9e", "-T0", str(raw)]).returncode != 0:
            raise KitError("xz failed compressing the kit")
    else:
        with raw.open("rb") as src, lzma.open(xz, "wb", preset=9 | lzma.PRESET_EXTREME) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        raw.unlink()
    parts, whole = [], hashlib.sha256()
    with xz.open("rb") as src:
        for i in range(10_000):
            chunk = src.read(part_bytes)
            if not chunk:
                break
            name = PART.format(i)
            (out / name).write_bytes(chunk)
            whole.update(chunk)
            parts.append(dict(name=name, bytes=len(chunk), sha256=hashlib.sha256(chunk).hexdigest()))
    xz.unlink()
    return parts, whole.hexdigest(), raw_bytes


def pack(out: Path, python: str, part_bytes: int, wheels_dir: Path | None = None, tvm_wheel: Path | None = None,
         extra: tuple[str, ...] = (), log=print) -> dict:
    """The kit in `out` (replaced whole); returns its manifest."""
    t0 = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gpukit-", dir=out.parent) as tmp:
        stage, wheels = Path(tmp) / "kit", Path(tmp) / "wheels"
        stage.mkdir()
        wheels.mkdir()
        if wheels_dir is None:
            reqs = [*requirements(), *extra]
            if tvm_wheel is not None:
                reqs = [r for r in reqs if not r.startswith("apache-tvm==")]
            log(f"downloading {len(reqs)} wheels for Python {python}: {', '.join(reqs)}")
            download(reqs, python, wheels)
        else:
            for w in Path(wheels_dir).glob("*.whl"):
                shutil.copy(w, wheels / w.name)
        if tvm_wheel is not None:
            shutil.copy(tvm_wheel, wheels / Path(tvm_wheel).name)
        found = sorted(wheels.glob("*.whl"))
        if not any(_wheel_name(w) == "apache-tvm" for w in found):
            raise KitError(f"no apache-tvm wheel among {', '.join(w.name for w in found) or 'none'}")
        site = Path(tmp) / "site"
        stripped = unpack_wheels(found, site)
        log(f"unpacked {len(found)} wheels ({sum(f.stat().st_size for f in site.rglob('*') if f.is_file()) >> 20} MiB, "
            f"less {sum(stripped.values()) >> 20} MiB of TVM sources and headers); compressing with xz -9e")
        parts, digest, raw_bytes = write_parts(site, stage, part_bytes)
        manifest = dict(schema=SCHEMA, format=FORMAT, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), python=python,
                        packages=[dict(wheel=w.name, sha256=hashlib.sha256(w.read_bytes()).hexdigest()) for w in found],
                        stripped=stripped, tar_bytes=raw_bytes, xz_sha256=digest, part_limit=part_bytes, parts=parts,
                        pack_s=round(time.perf_counter() - t0, 1))
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    total = sum(p["bytes"] for p in parts)
    log(f"wrote {out}: {len(parts)} part(s), {total / (1 << 20):.1f} MiB ({raw_bytes / (1 << 20):.0f} MiB unpacked), "
        f"each at most {part_bytes / (1 << 20):.1f} MiB, in {manifest['pack_s']} s")
    return manifest


# ------------------------------------------------------------------------------------ check, unpack
def read_manifest(kit: Path) -> dict:
    path = Path(kit) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise KitError(f"{path}: no such file: not a kit (make one with `make gpu-kit`), or its manifest was not carried") from None
    except (OSError, json.JSONDecodeError) as e:
        raise KitError(f"{path} is unreadable or not JSON ({e}): carry the kit's manifest again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("parts"), list):
        raise KitError(f"{path} is not a {FORMAT} manifest")
    return manifest


def check(kit: Path) -> dict:
    """The manifest, after checking every part it names is here with its size and sha256; KitError naming every
    missing part at once, or the first damaged one."""
    kit = Path(kit)
    manifest = read_manifest(kit)
    missing = [p["name"] for p in manifest["parts"] if not (kit / p["name"]).is_file()]
    if missing:
        raise KitError(f"{kit}: {len(missing)} of {len(manifest['parts'])} parts missing: {', '.join(missing)} "
                       "(carry them, one call each, to the same warm machine)")
    for p in manifest["parts"]:
        data = (kit / p["name"]).read_bytes()
        if len(data) != p["bytes"] or hashlib.sha256(data).hexdigest() != p["sha256"]:
            raise KitError(f"{kit / p['name']}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}..., but the "
                           f"manifest says {p['bytes']} bytes, {p['sha256'][:12]}...: damaged in transit; carry it again")
    return manifest


class _Parts:
    """The parts read as one stream."""

    def __init__(self, paths: list[Path]) -> None:
        self.files = [p.open("rb") for p in paths]
        self.i = 0

    def read(self, n: int = -1) -> bytes:
        out = b""
        while self.i < len(self.files) and (n < 0 or len(out) < n):
            chunk = self.files[self.i].read(-1 if n < 0 else n - len(out))
            if not chunk:
                self.files[self.i].close()
                self.i += 1
                continue
            out += chunk
        return out


NVIDIA_LIBS = ("import glob, os, site; print(' '.join(sorted({os.path.dirname(p) for s in site.getsitepackages() "
               "for p in glob.glob(os.path.join(s, 'nvidia', '*', 'lib', 'lib*.so*'))})))")
ENV_SH = """# Source this (. {dest}/env.sh): TVM from the kit on PYTHONPATH, the pip NVIDIA libraries of python3 on LD_LIBRARY_PATH.
export PYTHONPATH="{dest}/site${{PYTHONPATH:+:$PYTHONPATH}}"
for d in $(python3 -c "{libs}" 2>/dev/null); do
  LD_LIBRARY_PATH="$d${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
done
export LD_LIBRARY_PATH
"""


def unpack(kit: Path, dest: Path, log=print) -> dict:
    """The kit, checked, into `dest` (written whole, then renamed; a `dest` holding this kit already is kept)."""
    t0 = time.perf_counter()
    kit, dest = Path(kit), Path(dest).resolve()
    manifest = check(kit)
    have = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if manifest["python"] != have:
        raise KitError(f"the kit is for Python {manifest['python']}; this is Python {have}: pack one with --python {have}")
    done = dest / MANIFEST
    if done.is_file() and json.loads(done.read_text()).get("xz_sha256") == manifest["xz_sha256"]:
        log(f"{dest} already holds this kit")
        return manifest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp-", dir=dest.parent))
    try:
        with lzma.open(_Parts([kit / p["name"] for p in manifest["parts"]])) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Python before 3.12's extraction filters
                tar.extractall(tmp)  # noqa: S202 - our own archive, its sha256 checked above
        (tmp / "env.sh").write_text(ENV_SH.format(dest=dest, libs=NVIDIA_LIBS))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"unpacked {len(manifest['parts'])} part(s) into {dest} in {time.perf_counter() - t0:.1f} s; now: . {dest}/env.sh")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_kit.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="download, strip, compress and cut the kit")
    pk.add_argument("--out", default=str(REPO / ".gpukit"), help="the kit's folder (default .gpukit, ignored by git)")
    pk.add_argument("--python", default="3.12", help="the GPU host's Python, MAJOR.MINOR (default 3.12: the lent machines')")
    pk.add_argument("--part-mib", type=float, default=0, help="largest part in MiB (default: what travels beside the tracked tree)")
    pk.add_argument("--wheels", default=None, help="pack the wheels in this folder instead of downloading them")
    pk.add_argument("--tvm-wheel", default=None, help="an apache-tvm wheel to pack instead of the pinned PyPI one")
    pk.add_argument("--with", dest="extra", action="append", default=[], metavar="PKG==VERSION",
                    help="another wheel the host lacks (e.g. scipy==1.16.3 for the harness); repeatable")
    ck = sub.add_parser("check", help="every part of a kit present and intact")
    ck.add_argument("kit", nargs="?", default=str(REPO / ".gpukit"))
    up = sub.add_parser("unpack", help="check, then unpack a kit; prints the env.sh to source")
    up.add_argument("kit", nargs="?", default=str(REPO / ".gpukit"))
    up.add_argument("--into", required=True, help="where to unpack (replaced whole)")
    args = p.parse_args(argv)
    try:
        if args.command == "pack":
            if not re.fullmatch(r"3\.\d{1,2}", args.python):
                raise KitError(f"--python {args.python!r}: give MAJOR.MINOR, e.g. 3.12")
            if args.part_mib < 0:
                raise KitError("--part-mib must not be negative")
            for flag, path in (("--wheels", args.wheels), ("--tvm-wheel", args.tvm_wheel)):
                if path and not Path(path).exists():
                    raise KitError(f"{flag} {path}: no such file or folder")
            part = int(args.part_mib * (1 << 20)) if args.part_mib else default_part_bytes()
            pack(Path(args.out), args.python, part, Path(args.wheels) if args.wheels else None,
                 Path(args.tvm_wheel) if args.tvm_wheel else None, tuple(args.extra))
        elif args.command == "check":
            m = check(Path(args.kit))
            print(f"{args.kit}: {len(m['parts'])} part(s) intact, for Python {m['python']}")
        else:
            unpack(Path(args.kit), Path(args.into))
    except KitError as e:
        print(f"gpu_kit.py {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
