#!/bin/bash
# TVM from a source checkout into a Python environment: the default build recipe of `--tvm git:REF`
# (bench/core/tvm_build.py), called as
#   build-env.sh SRC_DIR OUT_DIR
# SRC_DIR is a checkout of the commit; OUT_DIR becomes a virtual environment whose `import tvm` is the build
# (the wheel, the apache-tvm-ffi it asks for, and a .pth file appending the harness's packages).
#
# The wheel is built as docker/Dockerfile's tvm-build stage builds it (`pip wheel --no-build-isolation`
# with scikit-build-core, the same pinned build backends and CMake defines), for the CPU:
#   LLVM_CONFIG     default: the newest /usr/bin/llvm-config-N with N >= 15 (Debian: apt-get install llvm-16-dev)
#   TVM_BUILD_CUDA  ON adds CUDA and cuBLAS (needs nvcc); default OFF
#   TVM_BUILD_DIR   CMake's build directory, kept between commits so that a nearby commit recompiles only
#                   what it changed (default ~/.cache/gptbench/tvm-build); with ccache installed, compiles
#                   also go through it (CCACHE_DIR as ccache's own)
#   SUBMODULE_MIRRORS  DIR with bare mirrors DIR/OWNER/NAME of the submodules, for a host without GitHub
#   BUILD_JOBS      parallel compile jobs (default: every core; each can take 2 GB)
# Not yet run end to end on these machines (a cold build is about an hour on 2 cores): README, "Your TVM".
set -euo pipefail
src=${1:?usage: build-env.sh SRC_DIR OUT_DIR}
out=${2:?usage: build-env.sh SRC_DIR OUT_DIR}
py=${GPTBENCH_PYTHON:-python3}
if [[ ! -f "$src/CMakeLists.txt" || ! -d "$src/python/tvm" ]]; then
  echo "build-env.sh: $src is not a TVM source tree (no CMakeLists.txt and python/tvm)" >&2; exit 2
fi
llvm=${LLVM_CONFIG:-$(ls /usr/bin/llvm-config-* 2>/dev/null | sort -V | tail -1)}
if [[ -z "$llvm" || $("$llvm" --version | cut -d. -f1) -lt 15 ]]; then
  echo "build-env.sh: needs LLVM >= 15 (llvm-config; found '${llvm:-none}'): apt-get install llvm-16-dev, or set LLVM_CONFIG" >&2; exit 2
fi
cd "$src"
if [[ -f .gitmodules && -n "${SUBMODULE_MIRRORS:-}" ]]; then
  git config -f .gitmodules --get-regexp '^submodule\..*\.url$' | while read -r key url; do
    name=${key#submodule.}; name=${name%.url}
    repo=$(sed -E 's#.*github\.com[/:]##; s#\.git$##' <<< "$url")
    if [[ -d "$SUBMODULE_MIRRORS/$repo" ]]; then git config "submodule.$name.url" "$SUBMODULE_MIRRORS/$repo"; fi
  done
fi
[[ -f .gitmodules ]] && git submodule update --init --recursive --quiet
# The build backends, pinned as in docker/Dockerfile (tvm-build), in a venv of their own kept in the cache.
tools=${GPTBENCH_ENV_CACHE:-$HOME/.cache/gptbench/tvm-envs}/build-tools
if [[ ! -x "$tools/bin/pip" ]]; then
  "$py" -m venv "$tools.tmp" && "$tools.tmp/bin/pip" install --quiet "pip==26.3" "cmake==3.31.10" "ninja==1.13.0" \
    "scikit-build-core==1.1.2" "setuptools-scm==10.3.4" "mlc-z3-static==5.3.1.post1" && mv "$tools.tmp" "$tools"
fi
define=(-C cmake.build-type=Release -C "cmake.define.USE_LLVM=$llvm --link-static" -C cmake.define.HIDE_PRIVATE_SYMBOLS=ON
        -C "cmake.define.USE_CUDA=${TVM_BUILD_CUDA:-OFF}" -C "cmake.define.USE_CUBLAS=${TVM_BUILD_CUDA:-OFF}" -C cmake.define.SUMMARIZE=ON)
if command -v ccache > /dev/null; then
  define+=(-C cmake.define.CMAKE_C_COMPILER_LAUNCHER=ccache -C cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
if (( $(g++ -dumpversion | cut -d. -f1) < 13 )); then define+=(-C cmake.define.USE_Z3=OFF); fi  # as the Dockerfile says why
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
PATH="$tools/bin:$PATH" CMAKE_BUILD_PARALLEL_LEVEL="${BUILD_JOBS:-$(nproc)}" "$tools/bin/pip" wheel --no-build-isolation --no-deps \
  --wheel-dir "$wheels" -C "build-dir=${TVM_BUILD_DIR:-$HOME/.cache/gptbench/tvm-build}" "${define[@]}" .
"$py" -m venv "$out"
"$out/bin/pip" install --quiet --no-deps "$wheels"/*.whl
ffi=$("$out/bin/python" -c 'import importlib.metadata as m, re
for r in m.requires(next(d.metadata["Name"] for d in m.distributions() if d.metadata["Name"] in ("apache-tvm", "tvm")) or []):
    x = re.match(r"apache-tvm-ffi\s*(>=|==|~=)\s*([0-9][\w.]*)", r)
    if x and "extra" not in r: print(x[2]); break')
if [[ -n "$ffi" ]]; then "$out/bin/pip" install --quiet --no-deps "apache-tvm-ffi==$ffi"; fi
site=$("$out/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tr ':' '\n' <<< "${GPTBENCH_FALLBACK_PATH:-}" > "$site/gptbench-fallback.pth"
"$out/bin/python" -c 'import tvm; print("build-env.sh: TVM", tvm.__version__, "in", tvm.__file__)'
