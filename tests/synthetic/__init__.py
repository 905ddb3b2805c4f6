"""Synthetic TVM builds for the tests: this project's TVM with a start-up patch (tests/synthetic/recipe.sh).

`patch_source(...)` writes the module a synthetic build imports at start-up: it can give TVM a
developer's version string and change LegalizeOps so that every matmul is computed twice (a compiler
change whose cost ab must see). `make_repo` makes a tiny git repository whose commits change that module, for bisect.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RECIPE = Path(__file__).with_name("recipe.sh")


def patch_source(version: str = "0.28.dev0", matmul_twice: bool = False) -> str:
    """The start-up module of a synthetic build: TVM with `version`; with `matmul_twice`, LegalizeOps lowers
    every relax.matmul to eight identical matmul kernels averaged (the same result, exactly: sums of equal
    terms by powers of two; eight times the matmul work, a compiler change that makes nanogpt-tiny several
    times slower untuned, far beyond the noise of a 2-core machine that runs two test workers)."""
    return f'''"""Synthetic TVM change (gptbench tests)."""
import tvm
from tvm import relax

tvm.__version__ = {version!r}
MATMUL_TWICE = {matmul_twice!r}
if MATMUL_TWICE:
    _matmul = tvm.ir.Op.get("relax.matmul").get_attr("FLegalize")

    def _twice(bb, call):
        parts = [_matmul(bb, call) for _ in range(8)]
        while len(parts) > 1:  # pairwise: 8 equal terms sum exactly
            parts = [relax.op.add(parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]
        dtype = (getattr(call, "ty", None) or call.struct_info).dtype
        return relax.op.multiply(parts[0], relax.const(0.125, dtype))

    tvm.ir.register_op_attr("relax.matmul", "FLegalize", _twice, level=11)
'''


def make_env(where: Path, source: str) -> Path:
    """A synthetic build of `source` (tvm_patch.py's text) at `where`; returns its python."""
    src = where.with_name(where.name + "-src")
    src.mkdir(parents=True, exist_ok=True)
    (src / "tvm_patch.py").write_text(source)
    env = dict(os.environ, GPTBENCH_PYTHON=sys.executable, GPTBENCH_FALLBACK_PATH=os.pathsep.join(_fallback()))
    subprocess.run([str(RECIPE), str(src), str(where)], check=True, env=env, capture_output=True)
    return where / "bin" / "python"


def _fallback() -> list[str]:
    from bench.core.tvm_envs import fallback_paths

    return fallback_paths()


def git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def make_repo(repo: Path, commits: list[tuple[str, dict]]) -> list[str]:
    """A git repository with one commit per (subject, files) (a file's text None: removed); returns the hashes."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    hashes = []
    for subject, files in commits:
        for name, text in files.items():
            if text is None:
                (repo / name).unlink()
            else:
                (repo / name).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", subject)
        hashes.append(git(repo, "rev-parse", "HEAD"))
    return hashes
