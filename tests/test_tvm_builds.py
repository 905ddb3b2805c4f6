"""Any TVM build as an environment (bench.core.tvm_envs, bench.core.tvm_build): a developer's interpreter
with a dev version, a PyPI release the harness installs itself, a git commit built by a recipe; each
checked by what it can do, and its identity in every cell and report. Synthetic builds (tests/synthetic)
stand in for a developer's TVM: this project's TVM with a start-up patch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.core.errors import UserError
from bench.core.tvm_envs import parse_env
from tests.synthetic import RECIPE, make_env, make_repo, patch_source

FAST = ["--seq-len", "16", "--repeat", "5", "--warmup", "1", "--solo", "0"]


def cells_of(out) -> list[dict]:
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())["cells"]


@pytest.fixture(scope="module")
def dev_python(tmp_path_factory):
    """A developer's build: TVM reporting version 0.28.dev0."""
    return make_env(tmp_path_factory.mktemp("envs") / "dev", patch_source("0.28.dev0"))


@pytest.mark.parametrize("text, kind, name, value", [
    ("0.27", "builtin", "0.27", "0.27"), ("base=0.19", "builtin", "base", "0.19"), ("pypi:0.26.0", "pypi", "pypi-0.26.0", "0.26.0"),
    ("old=pypi:0.25.0", "pypi", "old", "0.25.0")])
def test_tvm_entries_parse_to_a_named_environment(text, kind, name, value):
    spec = parse_env(text)
    assert (spec.kind, spec.name, spec.value) == (kind, name, value)
    assert parse_env(spec.text) == spec  # what a worker is given parses back to the same environment


@pytest.mark.parametrize("text, message", [
    ("0.18", "unknown TVM environment '0.18' (a release from the package index is pypi:0.18)"),
    ("/usr/bin/python3", "give an interpreter a name: NAME=/usr/bin/python3"),
    ("x=/no/such/python", "no interpreter at /no/such/python"),
    ("git:main", "git:REF needs a ref and --tvm-src"),
    ("a b=0.27", "'a b' is not a usable name"),
    ("pypi:latest", "pypi:VERSION wants an apache-tvm version")])
def test_bad_tvm_entries_are_one_line_each(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_env(text)


def test_a_developers_build_with_a_dev_version_runs_and_every_cell_records_its_identity(gptbench, tmp_path, dev_python):
    code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export,relay-onnx", "--tvm", f"mine={dev_python}", *FAST,
                              "--out", tmp_path)
    assert code == 0, err[-3000:]
    by = {c["frontend"]: c for c in cells_of(tmp_path)}
    export = by["export"]
    assert export["status"] == "ok" and export["parity"]["rel_l2"] < 1e-5 and export["tvm_env"] == "mine", export["error"]
    assert export["variant"] == "tvm-mine" and export["notes"]["kernels"] > 0
    ident = export["notes"]["tvm_build"]
    assert ident["version"] == "0.28.dev0" and ident["python"] == str(dev_python) and ident["api"] == "compile" and ident["llvm"]
    relay = by["relay-onnx"]  # a frontend the build lacks: a recorded cell with the reason
    assert relay["status"] == "import_failed" and relay["stage"] == "env" and "TVM 0.28.dev0 (environment mine) has no Relay" in relay["error"]
    assert "- mine: TVM 0.28.dev0 (commit" in out and str(dev_python) in out


def test_an_interpreter_without_tvm_is_a_recorded_cell_and_never_borrows_this_tvm(gptbench, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--tvm", f"bare={bare}/bin/python", *FAST,
                            "--out", tmp_path / "out")
    assert code == 0, err
    (cell,) = cells_of(tmp_path / "out")
    assert cell["status"] == "import_failed" and cell["stage"] == "env"
    assert "does not import TVM" in cell["error"] and "no module named 'tvm'" in cell["error"]


def test_a_missing_interpreter_is_exit_2_in_one_line(gptbench, tmp_path):
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--tvm", f"x={tmp_path}/nope/python", "--out", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "no interpreter at" in err


def test_a_pypi_version_that_does_not_exist_is_exit_2_and_leaves_nothing_in_the_cache(gptbench, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTBENCH_ENV_CACHE", str(tmp_path / "cache"))
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--tvm", "pypi:0.0.999", *FAST, "--out", tmp_path / "out")
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("gptbench run: error: pypi:0.0.999: installing apache-tvm==0.0.999 failed") and "log:" in line
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["logs"]  # no half-made environment


def test_pypi_release_beside_the_pinned_one(gptbench, tmp_path):
    """The issue's first 'done when': a PyPI release the harness installs itself (once; cached) runs the
    Relax frontends beside this project's TVM in one report, each cell with its build's identity."""
    code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export,onnx", "--tvm", "0.27,pypi:0.26.0", *FAST,
                              "--out", tmp_path)
    assert code == 0, err[-3000:]
    by = {(c["frontend"], c["tvm_env"]): c for c in cells_of(tmp_path)}
    for frontend in ("export", "onnx"):
        old = by[frontend, "pypi-0.26.0"]
        assert old["status"] == "ok" and old["parity"]["rel_l2"] < 1e-5, old["error"]
        assert old["notes"]["tvm_build"]["version"] == "0.26.0" and old["notes"]["tvm_build"]["tvm_ffi"] == "apache-tvm-ffi 0.1.13.post2"
        assert by[frontend, "0.27"]["notes"]["tvm_build"]["version"] == "0.27.0.post1"
    assert "- pypi-0.26.0: TVM 0.26.0 (commit c7b458e94" in out


def test_git_ref_builds_once_by_commit_with_the_recipe_and_a_bad_ref_or_failed_build_is_exit_2(gptbench, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTBENCH_ENV_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "tvm"
    good, broken = make_repo(repo, [("a dev build", {"tvm_patch.py": patch_source("0.28.dev1")}),
                                    ("a commit that does not compile", {"BUILD_FAILS": "synthetic compile error\n"})])
    args = ["run", "--model", "nanogpt-tiny", "--frontend", "export", *FAST, "--tvm-src", repo, "--tvm-recipe", RECIPE]
    code, _, err = gptbench(*args, "--tvm", "main=git:main~1", "--out", tmp_path / "a")
    assert code == 0, err[-3000:]
    (cell,) = cells_of(tmp_path / "a")
    assert cell["status"] == "ok" and cell["notes"]["tvm_build"]["version"] == "0.28.dev1"
    assert (tmp_path / "cache" / f"git-{good}" / "gptbench-env.json").exists()
    code, _, err = gptbench(*args, "--tvm", f"again=git:{good[:8]}", "--out", tmp_path / "b")  # the same commit: built once
    assert code == 0 and "building" not in err, err[-2000:]
    code, _, err = gptbench(*args, "--tvm", "git:no-such-branch", "--out", tmp_path / "c")
    assert code == 2 and err.strip().splitlines()[-1].endswith(f"git:no-such-branch: no such commit, branch or tag in {repo}")
    code, _, err = gptbench(*args, "--tvm", "git:main", "--out", tmp_path / "d")
    assert code == 2 and "synthetic build: error: synthetic compile error" in err.strip().splitlines()[-1]
    # nothing half-built: the finished build, the logs, and the source's kept checkout (one per source, locked while used)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(["checkout", "logs", f"git-{good}"])


def test_the_default_recipe_refuses_a_tree_that_is_not_tvm_in_one_line(gptbench, tmp_path, monkeypatch):
    """docker/tvm-src/build-env.sh, the recipe of a real TVM commit, checks its input before an hour of compiling."""
    monkeypatch.setenv("GPTBENCH_ENV_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "not-tvm"
    make_repo(repo, [("a", {"README.md": "not TVM\n"})])
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--tvm", "git:main", "--tvm-src", repo, *FAST, "--out", tmp_path / "o")
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert "building git:main" in line and "is not a TVM source tree" in line
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["checkout", "logs"]


def test_tune_budget_tunes_another_environment_in_its_own_process_into_a_database_of_its_own(gptbench, tmp_path, dev_python):
    """--tune-budget tunes every environment of the run that can tune for the same budget: a developer's build
    (a dev version: its database is keyed by its interpreter too, so two dev builds never share one) in a
    process of its interpreter, and its cells build with that database and time the untuned build beside it."""
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--tvm", f"mine={dev_python}", *FAST,
                            "--tune-budget", "40s", "--tune-cache", tmp_path / "tuning", "--baselines", "eager,untuned", "--out", tmp_path / "o")
    assert code == 0, err[-3000:]
    (cell,) = cells_of(tmp_path / "o")
    assert cell["status"] == "ok" and cell["tvm_env"] == "mine", cell["error"]
    db = cell["tuning"]["path"]
    assert "/tvm-0.28.dev0-" in db and db.startswith(str(tmp_path / "tuning"))
    assert "tuned_in_this_run" in cell["tuning"] and cell["baselines"]["untuned"]["latency"]["n"] == 5
    assert "tuning in TVM mine (its own process)" in err


@pytest.mark.parametrize("log, line", [
    ("-- Found ZLIB\nCMake Error at /x/FindPackageHandleStandardArgs.cmake:233 (message):\n  Could NOT find zstd (missing: zstd_LIBRARY)\n"
     "-- Configuring incomplete, errors occurred!\nERROR: Failed building wheel for apache-tvm\n",
     "CMake Error at /x/FindPackageHandleStandardArgs.cmake:233 (message): Could NOT find zstd (missing: zstd_LIBRARY)"),
    ("[1/9] Building CXX object a.o\n/src/a.cc:3:1: error: unknown type name 'x'\n1 error generated.\nninja: build stopped\n"
     "ERROR: Failed to build one or more wheels\n", "/src/a.cc:3:1: error: unknown type name 'x'"),
    ("WARNING: Location 'file:///opt/pypi' is ignored\nERROR: No matching distribution found for apache-tvm==9.9\n",
     "ERROR: No matching distribution found for apache-tvm==9.9"),
    ("build-env.sh: needs LLVM >= 15\n", "build-env.sh: needs LLVM >= 15"),
    ("", "no output"),
])
def test_a_failed_build_is_told_by_the_line_that_says_why(log, line):
    """A build that fails is one line of the error: the compiler's or CMake's first error (with the line
    CMake puts its message on), else pip's ERROR, else the last line; never a pip warning."""
    from bench.core.tvm_build import failure_line

    assert failure_line(log) == line


def _fake_tool(bin_dir, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text("#!/bin/bash\n" + script)
    (bin_dir / name).chmod(0o755)


@pytest.mark.parametrize("env, tools, message", [
    ({"TVM_BUILD_CUDA": "ON", "CUDA_ARCH": "90"}, {}, "TVM_BUILD_CUDA=ON needs nvcc on PATH"),
    ({"TVM_BUILD_CUDA": "ON", "CUDA_ARCH": "native"}, {"nvcc": ""}, "CUDA_ARCH='native': want an explicit number such as 90 or 90a"),
    ({"TVM_BUILD_CUDA": "ON", "CUDA_ARCH": "100"}, {"nvcc": 'case $1 in --version) echo "Cuda compilation tools, release 11.8, V11.8.89";;'
                                                            ' --list-gpu-arch) printf "compute_86\\ncompute_90\\n";; esac'},
     "CUDA_ARCH=100: nvcc of CUDA 11.8 has no compute_100; it has: compute_86 compute_90"),
    ({"TVM_BUILD_CUDA": "ON", "CUDA_ARCH": "90", "USE_CUTLASS": "ON"},
     {"nvcc": 'case $1 in --version) echo "release 11.8, V11.8.89";; --list-gpu-arch) echo compute_90;; esac'},
     "USE_CUTLASS=ON needs CUDA >= 12 (C++20 CUDA sources); this nvcc is CUDA 11"),
    ({"TVM_BUILD_CUDA": "yes"}, {}, "TVM_BUILD_CUDA='yes': ON or OFF"),
    ({"LLVM_CONFIG": "llvm-config-fake"}, {"llvm-config-fake": "echo 14.0.6"}, "needs LLVM >= 15 (llvm-config; found 'llvm-config-fake')"),
    ({"LLVM_CONFIG": "llvm-config-fake"}, {"llvm-config-fake": 'case $1 in --version) echo 16.0.6;; *) echo /nowhere/libPolly.a;; esac'},
     "LLVM 16's static libraries need what is not installed (/nowhere/libPolly.a is missing): apt-get install libpolly-16-dev"),
])
def test_the_build_recipe_refuses_what_it_can_check_before_compiling(tmp_path, env, tools, message):
    """docker/tvm-src/build-wheel.sh (the image's tvm-build stage and `--tvm git:REF` both run it) checks
    the CUDA toolkit and arch, CUTLASS against CUDA, and LLVM's version and static libraries in seconds,
    one line and exit 2 each, rather than an hour into the build. Fake nvcc/llvm-config stand in."""
    import os

    from bench.core.tvm_envs import REPO

    tree = tmp_path / "tvm"
    (tree / "python" / "tvm").mkdir(parents=True)
    (tree / "CMakeLists.txt").write_text("project(tvm)\n")
    for name, script in tools.items():
        _fake_tool(tmp_path / "bin", name, script)
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    out = subprocess.run(["bash", str(REPO / "docker" / "tvm-src" / "build-wheel.sh"), str(tree), str(tmp_path / "wheels")],
                         capture_output=True, text=True, env=dict(os.environ, PATH=path, **env), timeout=60)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("build-wheel.sh: " + message.split(" (")[0]), out.stderr
    assert message in out.stderr
    assert not (tmp_path / "wheels").exists()


def test_envs_makes_a_build_ahead_and_says_what_each_environment_is(gptbench, tmp_path, monkeypatch):
    """`gptbench envs`: makes a git:REF build not made yet (before any benchmark, e.g. in CI), then prints
    each environment's identity, frontends and how it was made; an interpreter without TVM is exit 1 with
    the reason, one that does not exist exit 2."""
    monkeypatch.setenv("GPTBENCH_ENV_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "tvm"
    (good,) = make_repo(repo, [("a dev build", {"tvm_patch.py": patch_source("0.28.dev3")})])
    code, out, err = gptbench("envs", "--tvm", "0.27,mine=git:main", "--tvm-src", repo, "--tvm-recipe", RECIPE)
    assert code == 0, err[-3000:]
    assert f"tvm mine: building {good[:12]} (a dev build)" in err
    lines = out.splitlines()
    assert lines[0].startswith("0.27: TVM 0.27.0.post1 (commit ") and "frontends: export, onnx, fx; API: compile" in lines[1]
    # TVM 0.27's tvm.support.libinfo() returns fixed values (USE_CUDA "ON" whatever the build): not taken for flags
    assert "build flags: unknown: this TVM has no support.GetLibInfo" in lines[1]
    mine = lines.index(next(ln for ln in lines if ln.startswith("mine: TVM 0.28.dev3 ")))
    assert "frontends: export, onnx, fx" in lines[mine + 1]
    assert lines[mine + 2].startswith(f"  made by the harness: git {good[:12]} (a dev build), in ")
    code, out, _ = gptbench("envs", "--tvm", f"bare={sys.executable.replace('.venv', 'no-such-venv')}")
    assert code == 2
    code, out, _ = gptbench("envs", "--tvm", "sys=/usr/bin/python3")
    assert code == 1 and out.startswith("sys: the TVM environment sys at /usr/bin/python3 does not import TVM"), out


def test_a_builds_cmake_options_left_by_the_recipe_are_its_flags(gptbench, tmp_path):
    """A build made by this project's recipe leaves its CMake options beside its interpreter
    (build-env.sh: gptbench-cmake-options.txt, from the CMake cache); the identity takes the options that
    are set from there, none that are off, left to detection, or CMake's placeholder paths."""
    python = make_env(tmp_path / "env", patch_source("0.28.dev5"))
    (tmp_path / "env" / "gptbench-cmake-options.txt").write_text(
        "USE_LLVM=/usr/bin/llvm-config-16 --link-static\nUSE_CUDA=OFF\nUSE_GTEST=AUTO\nUSE_HEXAGON_SDK=/path/to/sdk\nUSE_RPC=ON\n")
    code, out, err = gptbench("envs", "--tvm", f"mine={python}")
    assert code == 0, err
    assert "build flags: USE_LLVM=/usr/bin/llvm-config-16 --link-static, USE_RPC=ON\n" in out, out
