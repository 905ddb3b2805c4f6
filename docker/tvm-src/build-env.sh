#!/bin/bash
# TVM from a source checkout into a Python environment: the default build recipe of `--tvm git:REF`
# (bench/core/tvm_build.py), called as
#   build-env.sh SRC_DIR OUT_DIR
# SRC_DIR is a checkout of the commit; OUT_DIR becomes a virtual environment whose `import tvm` is the build:
# the wheel that build-wheel.sh beside this file makes (the recipe docker/Dockerfile's tvm-build stage runs
# too; its environment variables, e.g. LLVM_CONFIG, TVM_BUILD_CUDA, TVM_BUILD_DIR, SUBMODULE_MIRRORS,
# BUILD_JOBS, CC/CXX, are documented there), the apache-tvm-ffi that wheel was made against (the floor of
# its requirement), and a .pth file appending the harness's packages (GPTBENCH_FALLBACK_PATH).
set -euo pipefail
src=${1:?usage: build-env.sh SRC_DIR OUT_DIR}
out=${2:?usage: build-env.sh SRC_DIR OUT_DIR}
py=${GPTBENCH_PYTHON:-python3}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$(dirname "${BASH_SOURCE[0]}")/build-wheel.sh" "$src" "$wheels"
"$py" -m venv "$out"
"$out/bin/pip" install --quiet --no-deps "$wheels"/*.whl
ffi=$("$out/bin/python" -c 'import importlib.metadata as m, re
for r in m.requires(next(d.metadata["Name"] for d in m.distributions() if d.metadata["Name"] in ("apache-tvm", "tvm")) or []):
    x = re.match(r"apache-tvm-ffi\s*(>=|==|~=)\s*([0-9][\w.]*)", r)
    if x and "extra" not in r: print(x[2]); break')
if [[ -n "$ffi" ]]; then "$out/bin/pip" install --quiet --no-deps "apache-tvm-ffi==$ffi"; fi
# The build's CMake options, which newer TVM no longer reports itself (bench/core/tvm_envs.py reads them).
cache="${TVM_BUILD_DIR:-$HOME/.cache/gptbench/tvm-build}/CMakeCache.txt"
if [[ -f "$cache" ]]; then sed -nE 's/^(USE_[A-Z0-9_]+):[A-Z]+=(.*)$/\1=\2/p' "$cache" > "$out/gptbench-cmake-options.txt"; fi
site=$("$out/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tr ':' '\n' <<< "${GPTBENCH_FALLBACK_PATH:-}" > "$site/gptbench-fallback.pth"
"$out/bin/python" -c 'import tvm; print("build-env.sh: TVM", tvm.__version__, "in", tvm.__file__)'
