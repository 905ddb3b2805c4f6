#!/bin/bash
# Build TVM v0.19.0 (Relay + Relax, LLVM 14, OpenBLAS, no CUDA) into a wheel; prints the wheel's path.
#   TVM_SRC=DIR   a git checkout or bare mirror of apache/tvm with its tags (default: clone TVM_GIT)
#   TVM_GIT=URL   default https://github.com/apache/tvm
# Pins: tag v0.19.0 (commit c4dc0c29ff); submodules at the commits that tag pins (only the three an
# LLVM-only build needs). It ran end to end in docker/Dockerfile's tvm019-build stage (2026-11-26: 864 ninja
# steps; the whole relay image in 38 minutes on 2 cores, docker/README.md). BUILD_JOBS: parallel compile jobs.
set -euo pipefail
work=${TVM_BUILD_DIR:-$PWD/build/tvm-0.19}
mkdir -p "$work"
src="$work/src"
if [ ! -d "$src/.git" ] && [ ! -f "$src/HEAD" ]; then
  git clone --no-checkout "${TVM_SRC:-${TVM_GIT:-https://github.com/apache/tvm}}" "$src" >&2
fi
cd "$src"
git -c advice.detachedHead=false checkout -f refs/tags/v0.19.0 >&2
[ "$(git rev-parse --short=10 HEAD)" = c4dc0c29ff ] || { echo "build.sh: v0.19.0 is not c4dc0c29ff here" >&2; exit 2; }
sub() {  # path owner/repo commit: a pinned submodule from GitHub, or from $SUBMODULE_MIRRORS/owner/repo
  local path=$1 repo=$2 commit=$3
  if [ -e "$path/.git" ] || [ -n "$(ls -A "$path" 2>/dev/null)" ]; then return 0; fi
  git clone -q "${SUBMODULE_MIRRORS:-https://github.com}/$repo" "$path" >&2
  git -C "$path" checkout -q "$commit"
}
sub 3rdparty/dlpack dmlc/dlpack e2bdd3bee8cb6501558042633fa59144cc8b7f5f
sub 3rdparty/dmlc-core dmlc/dmlc-core 3031e4a61a98f49f07a42cfdec6242340fb2fd8c
sub 3rdparty/rang agauniyal/rang cabe04d6d6b05356fa8f9741704924788f0dd762
command -v clang-14 >/dev/null || { echo "build.sh: needs clang-14, llvm-14-dev, libopenblas-dev, cmake, ninja-build (apt)" >&2; exit 2; }
mkdir -p build && cd build
# Not cmake/config.cmake: it sets USE_LIBBACKTRACE AUTO over the command line and then wants that submodule.
CC=clang-14 CXX=clang++-14 cmake -G Ninja .. -DCMAKE_BUILD_TYPE=Release -DUSE_LLVM=/usr/bin/llvm-config-14 \
  -DUSE_LIBBACKTRACE=OFF -DUSE_CUDA=OFF -DHIDE_PRIVATE_SYMBOLS=ON -DUSE_GTEST=OFF -DUSE_CCACHE=OFF -DUSE_BLAS=openblas >&2
ninja -j"${BUILD_JOBS:-$(nproc)}" tvm tvm_runtime >&2
cd ../python && rm -rf dist && python3.11 setup.py bdist_wheel >&2
ls "$PWD"/dist/tvm-0.19.0-*.whl
