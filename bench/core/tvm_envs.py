"""The TVM builds a cell can run in: the compiler under test, as an environment (an interpreter whose
`import tvm` is that build).

`--tvm` takes a comma-separated list of `[NAME=]WHAT`, WHAT one of:

- `0.27`: this project's own environment (`make setup`: the pinned `apache-tvm` wheel, Relax only);
- `0.19`: TVM v0.19.0 with Relay, in `.venv-relay/` (`make tvm-relay`);
- `pypi:VERSION`: the `apache-tvm` release VERSION from the package index, in a cached virtual
  environment the harness makes once (bench.core.tvm_build): that wheel and the `apache-tvm-ffi` it was
  released against, beside this project's torch and everything else;
- `git:REF`: TVM built from commit REF of `--tvm-src DIR_OR_URL` by a build recipe, cached by commit;
- a path to a Python interpreter (`NAME=` required): a developer's own build, `pip install -e` of a checkout.

NAME labels the environment in cells and reports (default: `0.27`, `0.19`, `pypi-VERSION`, `git-REF`).
An environment is checked by what it can do, never by its version string (`probe`): whether it imports
TVM, its version and git commit, LLVM, which importers it has (Relay or not), whether it has the
`tvm.compile` API (bench.core.tvm_compat). Every cell records that identity (`identity`).

A cell runs in the process's own environment (`current()`, named by GPTBENCH_TVM_ENV, else `0.27`) or,
through `launcher(name)`, in another environment's interpreter (bench.pipeline.env_worker). An
interpreter of the same Python version as this one gets this environment's packages appended to its
path (after its own): its `tvm` (and whatever else it has) wins, and torch, onnx and the harness's other
dependencies need not be installed there; an interpreter that has no `tvm` of its own never gets this one.
The two environments this project installs (0.27, 0.19) are complete and get no such path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench.core.errors import UserError

REPO = Path(__file__).resolve().parents[2]
DEFAULT = "0.27"  # the environment a process is when GPTBENCH_TVM_ENV does not say otherwise
CURRENT_VAR = "GPTBENCH_TVM_ENV"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@dataclass(frozen=True)
class TvmEnv:
    """One of the two environments this project installs itself."""

    name: str
    python_env: str  # variable that points at another interpreter for it
    default_python: str  # relative to the repository
    setup: str  # what installs it

    def python(self) -> str:
        return os.environ.get(self.python_env) or str(REPO / self.default_python)


ENVS: dict[str, TvmEnv] = {e.name: e for e in [
    TvmEnv("0.27", "GPTBENCH_TVM027_PYTHON", ".venv/bin/python", "make setup"),
    TvmEnv("0.19", "GPTBENCH_TVM019_PYTHON", ".venv-relay/bin/python", "make tvm-relay"),
]}


@dataclass(frozen=True)
class EnvSpec:
    """A parsed `--tvm` entry. kind: builtin (ENVS), python (an interpreter), pypi (a release), git (a commit)."""

    name: str
    kind: str
    value: str  # the builtin's name, the interpreter's path, the version, the git ref
    src: str | None = None  # git: the repository (a directory or URL)

    @property
    def text(self) -> str:
        """The entry as `--tvm` takes it back (what a worker process is given)."""
        what = {"builtin": self.value, "python": self.value, "pypi": f"pypi:{self.value}", "git": f"git:{self.value}"}[self.kind]
        return f"{self.name}={what}" if self.kind == "python" or self.name != default_name(self.kind, self.value) else what


def default_name(kind: str, value: str) -> str:
    return {"builtin": value, "pypi": f"pypi-{value}", "git": f"git-{value}"}.get(kind, value)


def parse_env(text: str, tvm_src: str | None = None) -> EnvSpec:
    """`[NAME=]WHAT` (module docstring) as an EnvSpec; UserError naming what is wrong. No I/O beyond
    checking that a named interpreter exists."""
    text = text.strip()
    name, sep, what = text.partition("=")
    if not sep:
        name, what = "", text
    if sep and not NAME.match(name):
        raise UserError(f"--tvm {text!r}: {name!r} is not a usable name (letters, digits, . _ + -; at most 64)")
    if what in ENVS:
        spec = EnvSpec(name or what, "builtin", what)
    elif what.startswith("pypi:"):
        version = what[5:]
        if not re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", version):
            raise UserError(f"--tvm {text!r}: pypi:VERSION wants an apache-tvm version such as pypi:0.26.0")
        spec = EnvSpec(name or default_name("pypi", version), "pypi", version)
    elif what.startswith("git:"):
        ref = what[4:]
        if not ref or not tvm_src:
            raise UserError(f"--tvm {text!r}: git:REF needs a ref and --tvm-src DIR_OR_URL (the TVM repository to build it from)")
        spec = EnvSpec(name or default_name("git", re.sub(r"[^A-Za-z0-9._+-]", "-", ref)[:60]), "git", ref, tvm_src)
    elif "/" in what or what.startswith("python"):
        if not name:
            raise UserError(f"--tvm {text!r}: give an interpreter a name: NAME={what}")
        path = Path(what).expanduser()
        if not path.exists():
            raise UserError(f"--tvm {text!r}: no interpreter at {path}; give the python of the environment whose `import tvm` is the build")
        spec = EnvSpec(name, "python", str(path.absolute()))
    else:
        hint = f" (a release from the package index is pypi:{what})" if re.fullmatch(r"[0-9]+\.[0-9][0-9A-Za-z.+-]*", what) else ""
        raise UserError(f"unknown TVM environment {what!r}{hint}; choose {', '.join(ENVS)}, pypi:VERSION, git:REF (with --tvm-src) "
                        "or NAME=/path/to/python")
    if not NAME.match(spec.name):
        raise UserError(f"--tvm {text!r}: the name {spec.name!r} is not usable here: give one, NAME={what}")
    return spec


def parse_envs(texts: list[str], tvm_src: str | None = None) -> list[EnvSpec]:
    specs = [parse_env(t, tvm_src) for t in texts]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"--tvm names an environment twice ({', '.join(names)}): give each its own NAME=")
    for s in specs:
        register(s)
    return specs


_REGISTERED: dict[str, EnvSpec] = {}


def register(spec: EnvSpec) -> None:
    """Make `spec.name` known to this process (its interpreter is then `python_of(spec.name)`)."""
    old = _REGISTERED.get(spec.name)
    if old is not None and old != spec:
        probe.cache_clear()
    _REGISTERED[spec.name] = spec


def spec_of(name: str) -> EnvSpec:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in ENVS:
        return EnvSpec(name, "builtin", name)
    raise UserError(f"unknown TVM environment {name!r}; choose from: {', '.join([*ENVS, *_REGISTERED])}")


def current() -> str:
    """The environment this process is: GPTBENCH_TVM_ENV (set for a run inside another environment), else `0.27`."""
    return os.environ.get(CURRENT_VAR) or DEFAULT


def python_of(name: str) -> str:
    """The interpreter of environment `name` (it may not exist yet: a pypi or git one not made)."""
    spec = spec_of(name)
    if spec.kind == "builtin":
        return ENVS[spec.value].python()
    if spec.kind == "python":
        return spec.value
    return str(env_dir(spec) / "bin" / "python")


def setup_hint(name: str) -> str:
    spec = spec_of(name)
    if spec.kind == "builtin":
        return f"run `{ENVS[spec.value].setup}`"
    if spec.kind == "python":
        return "give the interpreter of an environment that has TVM installed"
    return "a run that names it makes it first; that failed or was skipped"


# ---------------------------------------------------------------------------- made environments
def cache_root() -> Path:
    return Path(os.environ.get("GPTBENCH_ENV_CACHE") or Path.home() / ".cache" / "gptbench" / "tvm-envs")


def env_dir(spec: EnvSpec) -> Path:
    if spec.kind == "pypi":
        return cache_root() / f"pypi-{spec.value}-py{sys.version_info[0]}{sys.version_info[1]}"
    if spec.kind == "git":
        return cache_root() / f"git-{resolve_commit(spec.src, spec.value)}"
    raise ValueError(f"{spec.kind} environments are not made by the harness")


_COMMITS: dict[tuple[str, str], str] = {}


def resolve_commit(src: str | None, ref: str) -> str:
    """The full hash of `ref` in the repository `src` (a local directory, or a URL cloned once into the cache)."""
    if not src:
        raise UserError(f"git:{ref} needs --tvm-src DIR_OR_URL")
    key = (src, ref)
    if key not in _COMMITS:
        repo = local_repo(src)
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], capture_output=True, text=True)
        if out.returncode != 0 or not out.stdout.strip():
            raise UserError(f"git:{ref}: no such commit, branch or tag in {src}")
        _COMMITS[key] = out.stdout.strip()
    return _COMMITS[key]


def local_repo(src: str) -> Path:
    """A directory git can read for `src`: itself, or a bare clone of a URL in the cache."""
    path = Path(src).expanduser()
    if path.exists():
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True, text=True)
        if out.returncode != 0:
            raise UserError(f"--tvm-src {src}: not a git repository")
        return path
    if "://" not in src and not src.startswith("git@"):
        raise UserError(f"--tvm-src {src}: no such directory (give a TVM checkout, a bare mirror or a URL)")
    mirror = cache_root() / "src" / hashlib.sha256(src.encode()).hexdigest()[:16]
    if not mirror.exists():
        import shutil
        import tempfile

        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.", dir=mirror.parent))
        try:
            out = subprocess.run(["git", "clone", "--bare", "--quiet", src, str(tmp / "repo.git")], capture_output=True, text=True)
            if out.returncode != 0:
                raise UserError(f"--tvm-src {src}: cannot clone it ({(out.stderr.strip().splitlines() or ['no output'])[-1]})")
            os.rename(tmp / "repo.git", mirror)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return mirror



# ------------------------------------------------------------------------------------- launching
def fallback_paths() -> list[str]:
    """This environment's package directories: appended to another interpreter's path (same Python only)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


BOOT = """import importlib.util, os, runpy, sys
if sys.version_info[:2] == ({major}, {minor}):
    own = [m for m in ("tvm", "tvm_ffi") if importlib.util.find_spec(m) is None]
    sys.path.extend(p for p in os.environ.get("GPTBENCH_FALLBACK_PATH", "").split(os.pathsep) if p and p not in sys.path)
    for m in own:  # an interpreter without TVM must not borrow this environment's
        sys.modules[m] = None
mod = sys.argv[1]
sys.argv = [mod] + sys.argv[2:]
runpy.run_module(mod, run_name="__main__", alter_sys=True)
"""


def launcher(name: str) -> list[str]:
    """The command that runs `python -m MODULE ARGS...` in environment `name`: append MODULE and ARGS."""
    python = sys.executable if name == current() else python_of(name)
    return [python, "-c", BOOT.format(major=sys.version_info[0], minor=sys.version_info[1])]


def launch_env(name: str, extra: dict | None = None) -> dict:
    """The process environment for `launcher(name)`: the harness importable from its checkout; for an
    environment this project does not install completely itself (an interpreter, a pypi or git build),
    this environment's packages as the fallback path. The 0.19 environment has its own numpy, onnx and
    no onnxscript on purpose (its exporter is TorchScript's): it gets no fallback."""
    env = dict(os.environ)
    if (REPO / "pyproject.toml").exists():  # a checkout: the other interpreter imports the harness from it
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    builtin = name in ENVS and spec_of(name).kind == "builtin"
    env["GPTBENCH_FALLBACK_PATH"] = "" if builtin else os.pathsep.join(fallback_paths())
    env.update(extra or {})
    return env


def worker_command(name: str) -> list[str]:
    return [*launcher(name), "bench.pipeline.env_worker"]


# ---------------------------------------------------------------------------------------- probing
def capabilities(importers: list[str]) -> dict:
    """What the TVM of this process is and can do (run in the environment probed: `python -m bench.core.tvm_envs`)."""
    info: dict = dict(python=sys.executable, python_version=f"{sys.version_info[0]}.{sys.version_info[1]}")
    try:
        import tvm
    except Exception as e:  # noqa: BLE001 - whatever stops the import is the answer
        halted = isinstance(e, ImportError) and "halted" in str(e)  # BOOT's block: it has no tvm of its own
        last = "no module named 'tvm' in this interpreter" if halted else (str(e).strip().splitlines() or [""])[-1]
        info["error"] = f"{type(e).__name__}: {last}"
        return info
    info.update(version=str(tvm.__version__), path=str(Path(tvm.__file__).parent), api="compile" if hasattr(tvm, "compile") else "legacy")
    info.update(_build_info(tvm))
    info["importers"] = {dotted: _resolves(dotted) for dotted in importers}
    info["relay"] = _resolves("tvm.relay.build")
    return info


def _build_info(tvm) -> dict:
    """Git commit, build flags (those a build turned on), LLVM, CUDA, tvm-ffi."""
    from importlib import metadata

    out: dict = {}
    libinfo: dict = {}
    native = _global_func(tvm, "support.GetLibInfo")
    if native is not None:  # the build's own record of its CMake options (TVM <= 0.24, 0.19 included)
        try:
            libinfo = {str(k): str(v) for k, v in native().items()}
        except Exception:  # noqa: BLE001
            libinfo = {}
    commit = None
    try:
        from tvm import _version  # setuptools-scm's stamp of a wheel built from git

        commit = str(getattr(_version, "commit_id", "") or "").lstrip("g") or None
    except Exception:  # noqa: BLE001
        pass
    git = libinfo.get("GIT_COMMIT_HASH", "")
    out["commit"] = commit or (git if git and git != "NOT-FOUND" else None)
    if libinfo:
        out["flags"] = {k: v for k, v in sorted(libinfo.items()) if k.startswith("USE_") and _on(v)}
    else:
        # Newer TVM registers no support.GetLibInfo, and its tvm.support.libinfo() returns fixed values
        # (USE_CUDA "ON" in a CPU-only build), so they are not recorded. A build made by this project's
        # recipe leaves its CMake options beside its interpreter (docker/tvm-src/build-env.sh).
        options = Path(sys.prefix) / CMAKE_OPTIONS
        if options.is_file():
            pairs = [ln.strip().split("=", 1) for ln in options.read_text().splitlines() if "=" in ln]
            out["flags"] = {k: v for k, v in sorted(pairs) if _on(v)}
            out["flags_from"] = "its CMake cache"
        else:
            out["flags"] = None
            out["flags_from"] = "unknown: this TVM has no support.GetLibInfo, and tvm.support.libinfo() returns fixed values"
    try:
        out["llvm"] = int(tvm.target.codegen.llvm_version_major())
    except Exception:  # noqa: BLE001
        out["llvm"] = None
    try:
        out["cuda"] = bool(tvm.runtime.enabled("cuda"))
    except Exception:  # noqa: BLE001
        out["cuda"] = None
    for dist in ("apache-tvm-ffi", "apache-tvm", "tvm"):
        try:
            out.setdefault("distribution" if dist != "apache-tvm-ffi" else "tvm_ffi", f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return out


CMAKE_OPTIONS = "gptbench-cmake-options.txt"  # USE_X=VALUE lines a recipe may leave in the environment


def _on(value: str) -> bool:
    """A build option that is set: not off, not left to detection, not CMake's placeholder path."""
    return value not in ("OFF", "NOT-FOUND", "", "0", "none", "AUTO") and not value.startswith("/path/to/")


def _global_func(tvm, name: str):
    try:
        return tvm.get_global_func(name, allow_missing=True)
    except Exception:  # noqa: BLE001 - an API without allow_missing, or a lookup that fails: not there
        return None


def _resolves(dotted: str) -> bool:
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:  # noqa: BLE001 - not a module (or it fails to import): try the attribute path
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
            return True
        except AttributeError:
            return False
    return False


@cache
def probe(name: str, importers: tuple[str, ...] = ()) -> dict:
    """capabilities(importers) of environment `name`: in this process for the current one, else in its
    interpreter. `error` says why it cannot run a cell (not installed, no TVM, ...)."""
    if name == current():
        return capabilities(list(importers))
    python = python_of(name)
    if not Path(python).exists():
        return dict(python=python, error=f"not installed ({python} not found)")
    try:
        out = subprocess.run([*launcher(name), "bench.core.tvm_envs", *importers], capture_output=True, text=True,
                             timeout=300, env=launch_env(name))
    except (OSError, subprocess.SubprocessError) as e:
        return dict(python=python, error=f"does not run ({e})")
    lines = out.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return dict(python=python, error=f"does not run the probe ({why})")


def missing_reason(name: str, importers: tuple[str, ...] = ()) -> str | None:
    """None when `name`'s interpreter exists and imports TVM, else why not (with the fix)."""
    info = probe(name, importers)
    if "error" not in info:
        return None
    what = "is not installed" if "not installed" in info["error"] else f"at {info.get('python')} does not import TVM"
    return f"the TVM environment {name} {what} ({info['error']}): {setup_hint(name)}"


missing_reason.cache_clear = probe.cache_clear  # type: ignore[attr-defined]  # tests reset both at once


META = "gptbench-env.json"  # what the harness wrote of an environment it made (bench.core.tvm_build)


def read_meta(spec: EnvSpec) -> dict | None:
    """What the harness wrote of an environment it made (bench.core.tvm_build), or None: not made by it."""
    if spec.kind not in ("pypi", "git"):
        return None
    try:
        return json.loads((env_dir(spec) / META).read_text())
    except (OSError, ValueError, UserError):
        return None


def made(name: str) -> dict | None:
    """How the harness made `name` (kind, seconds; a release's version, a commit and its subject), or None."""
    meta = read_meta(spec_of(name))
    return {k: meta[k] for k in ("kind", "seconds", "version", "commit", "subject") if k in meta} if meta else None


def identity(name: str, importers: tuple[str, ...] = ()) -> dict:
    """What a cell records of its TVM: the environment's name, version, commit, LLVM, build flags, interpreter,
    and how the harness made it (`made`: a PyPI release installed or a commit built here, in how many seconds)."""
    info = probe(name, importers)
    keep = ("version", "commit", "llvm", "api", "flags", "flags_from", "tvm_ffi", "distribution", "python")
    out = dict(name=name, **{k: info.get(k) for k in keep if info.get(k) is not None})
    how = made(name)
    if how:
        out["made"] = how
    return out


def identity_line(ident: dict) -> str:
    """`base: TVM 0.26.0 (commit c7b458e94, LLVM 22, apache-tvm-ffi 0.1.14.post1) at /path/python`."""
    parts = [f"commit {ident['commit']}" if ident.get("commit") else "commit unknown"]
    if ident.get("llvm"):
        parts.append(f"LLVM {ident['llvm']}")
    if ident.get("tvm_ffi"):
        parts.append(ident["tvm_ffi"])
    how = ident.get("made") or {}
    if how.get("kind") == "git":
        parts.append(f"built here in {how.get('seconds')} s")
    elif how.get("kind") == "pypi":
        parts.append(f"installed here in {how.get('seconds')} s")
    return f"{ident.get('name')}: TVM {ident.get('version', '?')} ({', '.join(parts)}) at {ident.get('python', '?')}"


if __name__ == "__main__":  # the probe, run in the environment probed
    print(json.dumps(capabilities(sys.argv[1:]), default=str))
