"""The TVM environments a cell can run in: one explicit list.

- `0.27`: the pinned `apache-tvm` wheel of this project's own environment (Relax only).
- `0.19`: TVM v0.19.0, the last release with Relay (and an older Relax), built from source into
  its own virtual environment by `make tvm-relay` (`.venv-relay/`; numpy < 2). Its interpreter runs
  the cells of the Relay frontends, in a process of their own (bench.pipeline.env_worker).

A cell for an environment that is not installed is recorded with the command that installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TvmEnv:
    name: str
    package: str  # the distribution that provides `tvm` there
    python_env: str  # variable that points at another interpreter for it
    default_python: str  # relative to the repository
    setup: str  # what installs it

    def python(self) -> str:
        return os.environ.get(self.python_env) or str(REPO / self.default_python)


ENVS: dict[str, TvmEnv] = {e.name: e for e in [
    TvmEnv("0.27", "apache-tvm", "GPTBENCH_TVM027_PYTHON", ".venv/bin/python", "make setup"),
    TvmEnv("0.19", "tvm", "GPTBENCH_TVM019_PYTHON", ".venv-relay/bin/python", "make tvm-relay"),
]}


def current() -> str | None:
    """The environment this interpreter is (by the TVM distribution installed in it)."""
    for env in ENVS.values():
        try:
            if metadata.version(env.package).startswith(env.name + "."):
                return env.name
        except metadata.PackageNotFoundError:
            continue
    return None


@cache
def missing_reason(name: str) -> str | None:
    """None when `name`'s interpreter exists and imports its TVM, else why not (with the fix)."""
    if name == current():
        return None
    env = ENVS[name]
    python = env.python()
    if not Path(python).exists():
        return f"the TVM {name} environment is not installed ({python} not found): run `{env.setup}`"
    try:
        out = subprocess.run([python, "-c", "import tvm; print(tvm.__version__)"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        return f"the TVM {name} environment at {python} does not run ({e}): run `{env.setup}`"
    version = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
    if not version.startswith(name + "."):
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the TVM {name} environment at {python} does not import TVM {name} ({version or why}): run `{env.setup}`"
    return None


def worker_command(name: str) -> list[str]:
    return [sys.executable if name == current() else ENVS[name].python(), "-m", "bench.pipeline.env_worker"]
