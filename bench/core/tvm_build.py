"""Making the TVM environments that `--tvm` names and this project does not install itself, once each,
into a cache (GPTBENCH_ENV_CACHE, default ~/.cache/gptbench/tvm-envs):

- `pypi-VERSION-pyXY/`: a virtual environment with `apache-tvm==VERSION` and the `apache-tvm-ffi` that
  release was made against (the floor of its requirement: a newer tvm-ffi need not load an older TVM's
  library, e.g. 0.25.0 fails on 0.1.14 with an undefined symbol), both without dependencies; a `.pth`
  file appends this project's packages (torch, onnx, numpy, ...) after them.
- `git-COMMIT/`: TVM built from that commit by a build recipe: an executable called as
  `RECIPE SRC_DIR OUT_DIR` that leaves an interpreter at `OUT_DIR/bin/python` whose `import tvm` is the
  build (its environment has GPTBENCH_PYTHON, the harness's interpreter, and GPTBENCH_FALLBACK_PATH, the
  harness's package directories, for a recipe that makes a virtual environment beside them). The default
  recipe is `docker/tvm-src/build-env.sh` (CMake, LLVM from Debian, ccache, CUDA off unless
  TVM_BUILD_CUDA=ON). SRC_DIR is the commit checked out in a shared clone of --tvm-src kept at one path
  per source (`checkout/HASH/`), so that a recipe's build directory and ccache see the same paths from one
  commit to the next and a nearby commit recompiles only what it changed; builds from one source take a
  lock on it, one at a time.

Each is built in a temporary directory beside its final place and renamed when it works: an
interrupted or failed build leaves nothing a later run would take for a finished one. Every failure is
a UserError of one line (exit 2) naming what failed and where its log is.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.core.errors import UserError
from bench.core.files import atomic_write
from bench.core.tvm_envs import META, REPO, EnvSpec, cache_root, env_dir, fallback_paths, local_repo, read_meta, resolve_commit

DEFAULT_RECIPE = REPO / "docker" / "tvm-src" / "build-env.sh"


def ready(spec: EnvSpec) -> bool:
    return spec.kind in ("builtin", "python") or (env_dir(spec) / "bin" / "python").exists()


def ensure(spec: EnvSpec, log, recipe: str | None = None) -> dict | None:
    """Make `spec`'s environment unless it is there; returns what making it took (None: nothing made)."""
    if ready(spec):
        return None
    return make_pypi(spec, log) if spec.kind == "pypi" else make_git(spec, log, recipe)


def _run(cmd: list[str], what: str, log_file: Path, cwd: Path | None = None, env: dict | None = None) -> None:
    """Run a build step, its output appended to log_file; UserError with its last line when it fails."""
    with log_file.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env, stdin=subprocess.DEVNULL).returncode
        except OSError as e:
            raise UserError(f"{what}: cannot run {cmd[0]} ({e.strerror or e})") from None
    if code != 0:
        raise UserError(f"{what} failed (exit {code}): {failure_line(log_file.read_text(errors='replace'))} (log: {log_file})")


def failure_line(text: str) -> str:
    """The line of a build log that says why it failed: the first compiler/CMake/git error, else the first
    ERROR (pip's), else the last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for pattern in (r"\berror:|^CMake Error|^fatal:", r"\bERROR\b"):
        hits = [i for i, ln in enumerate(lines) if re.search(pattern, ln)]
        if hits:
            i = hits[0]
            if lines[i].startswith("CMake Error") and lines[i].endswith(":") and i + 1 < len(lines):
                return f"{lines[i]} {lines[i + 1]}"  # CMake says what on the next line
            return lines[i]
    return lines[-1] if lines else "no output"


def _staging(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


def _finish(tmp: Path, final: Path, meta: dict) -> None:
    atomic_write(tmp / META, json.dumps(meta, indent=1) + "\n")
    try:
        os.rename(tmp, final)
    except OSError:  # made meanwhile by another run: keep that one
        shutil.rmtree(tmp, ignore_errors=True)


def _begin(final: Path, log_name: str) -> tuple[Path, Path, float]:
    """(staging directory beside `final`, an emptied log file, the start time) of a make_* step."""
    tmp = _staging(final)
    log_file = _logs() / log_name
    log_file.write_text("")
    return tmp, log_file, time.perf_counter()


def _logs() -> Path:
    path = cache_root() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------- pypi
def make_pypi(spec: EnvSpec, log) -> dict:
    final = env_dir(spec)
    tmp, log_file, t0 = _begin(final, f"{final.name}.log")
    log(f"tvm {spec.name}: making a virtual environment with apache-tvm=={spec.value} (once; {final})")
    try:
        py = tmp / "bin" / "python"
        _run([sys.executable, "-m", "venv", "--without-pip", str(tmp)], "making the virtual environment", log_file)
        pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps", "--no-input"]
        _run([*pip, f"apache-tvm=={spec.value}"], f"pypi:{spec.value}: installing apache-tvm=={spec.value}", log_file)
        ffi = ffi_floor(tmp)
        if ffi:
            _run([*pip, f"apache-tvm-ffi=={ffi}"], f"pypi:{spec.value}: installing apache-tvm-ffi=={ffi}", log_file)
        _site_packages(py).joinpath("gptbench-fallback.pth").write_text("\n".join(fallback_paths()) + "\n")
        _run([str(py), "-c", "import tvm; print(tvm.__version__)"], f"pypi:{spec.value}: importing the installed TVM", log_file)
        meta = dict(kind="pypi", version=spec.value, tvm_ffi=ffi, seconds=round(time.perf_counter() - t0, 1))
        _finish(tmp, final, meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"tvm {spec.name}: ready in {meta['seconds']} s (apache-tvm {spec.value}, apache-tvm-ffi {ffi or 'none required'})")
    return meta


def _site_packages(py: Path) -> Path:
    return Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                               text=True, check=True).stdout.strip())


def ffi_floor(venv: Path) -> str | None:
    """The lowest apache-tvm-ffi the installed apache-tvm accepts (its `Requires-Dist: apache-tvm-ffi>=X`), else None."""
    for meta in venv.glob("lib/python*/site-packages/apache_tvm-*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            m = re.match(r"Requires-Dist:\s*apache-tvm-ffi\s*(?:\(\s*)?(>=|==|~=)\s*([0-9][\w.]*)", line)
            if m and "extra ==" not in line:
                return m[2]
    return None


# ------------------------------------------------------------------------------------------ git
def commit_subject(src: str, commit: str) -> str:
    out = subprocess.run(["git", "-C", str(local_repo(src)), "log", "-1", "--format=%s", commit], capture_output=True, text=True)
    return out.stdout.strip()


def make_git(spec: EnvSpec, log, recipe: str | None = None) -> dict:
    """Check out the commit in the source's kept clone, run the recipe into a staging directory, rename it
    into the cache."""
    commit = resolve_commit(spec.src, spec.value)
    final = env_dir(spec)
    recipe_path = Path(recipe or os.environ.get("GPTBENCH_TVM_RECIPE") or DEFAULT_RECIPE)
    if not recipe_path.is_file() or not os.access(recipe_path, os.X_OK):
        raise UserError(f"build recipe {recipe_path}: not an executable file")
    repo = local_repo(spec.src)
    work = cache_root() / "checkout" / hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
    work.parent.mkdir(parents=True, exist_ok=True)
    with open(work.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per source at a time (released when the file closes)
        if ready(spec):  # made by another run while this one waited
            return read_meta(spec) or {}
        tmp, log_file, t0 = _begin(final, f"git-{commit[:12]}.log")
        subject = commit_subject(spec.src, commit)
        log(f"tvm {spec.name}: building {commit[:12]} ({subject}) with {recipe_path} in {work}; log: {log_file}")
        try:
            if not (work / ".git").exists():
                clone = tmp / "src"
                _run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(repo), str(clone)], f"git:{spec.value}: cloning", log_file)
                os.rename(clone, work)
            _run(["git", "-c", "advice.detachedHead=false", "checkout", "--force", "--quiet", commit], f"git:{spec.value}: checking out", log_file, cwd=work)
            _run(["git", "clean", "-fdxq"], f"git:{spec.value}: cleaning the checkout", log_file, cwd=work)
            out = tmp / "env"
            _run([str(recipe_path), str(work), str(out)], f"building git:{spec.value} ({commit[:12]})", log_file,
                 env=dict(os.environ, GPTBENCH_FALLBACK_PATH=os.pathsep.join(fallback_paths()), GPTBENCH_PYTHON=sys.executable))
            if not (out / "bin" / "python").exists():
                raise UserError(f"building git:{spec.value}: the recipe {recipe_path} left no {out}/bin/python (log: {log_file})")
            meta = dict(kind="git", commit=commit, subject=subject, src=spec.src, recipe=str(recipe_path),
                        seconds=round(time.perf_counter() - t0, 1))
            _finish(out, final, meta)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"tvm {spec.name}: built {commit[:12]} in {meta['seconds']} s")
    return meta
