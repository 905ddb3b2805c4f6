#!/bin/bash
# One real source-build A/B (2026-12-06, 2-core AMD EPYC znver3, quiet machine): two commits of TVM's
# main built here from source by the project's recipe (docker/tvm-src/build-wheel.sh through
# build-env.sh), then `gptbench ab` on them.
#   base = 3dea168fe2  [BugFix][TE] Initialize nested reductions at the outermost reduction scope (#20116)
#   new  = cec83d1bad  [Fix][Relax] Track lowered reshape storage aliases (#20134): the next commit; it
#          changes src/relax/transform/static_plan_block_memory.cc (Relax's memory planning) only
# base is built cold (empty ccache, empty CMake build directory); new is the nearby commit: the kept
# build directory and ccache recompile what it changed. The harness logs each build's time; ccache's
# statistics after each build are kept beside the reports.
#
# Needs: a bare mirror of apache/tvm (TVM_SRC; here `fetch github:apache/tvm`), the submodules an
# LLVM-only build needs as mirrors DIR/OWNER/NAME (SUBMODULE_MIRRORS: apache/tvm-ffi, dmlc/dlpack,
# ianlancetaylor/libbacktrace; this host's dlpack mirror stops at DLPack 1.1, so its mirror here has one
# more commit carrying the DLPack 1.3 header of the apache-tvm-ffi 0.1.13.post2 wheel, which the recipe
# takes and names in the build log), and apt-get install llvm-16-dev libpolly-16-dev libzstd-dev
# zlib1g-dev clang-16 ccache.
set -euo pipefail
out=results/reference/source-ab-20261206
src=${TVM_SRC:-/work/.mirror/apache+tvm/repo}
export SUBMODULE_MIRRORS=${SUBMODULE_MIRRORS:-/work/tvm-mirrors} BUILD_JOBS=${BUILD_JOBS:-2}
export CC=${CC:-clang-16} CXX=${CXX:-clang++-16} CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/gptbench/ccache}
g=.venv/bin/gptbench
# 1. base, cold (what `ab` below would otherwise build first), alone, and what it is.
ccache -z > /dev/null
$g envs --tvm-src "$src" --tvm base=git:3dea168fe2 2>&1 | tee "$out/build-base.log"
ccache -s > "$out/ccache-after-base.txt"
# 2. the A/B: builds new (nearby), then alternates the two builds on the same cells (every default).
ccache -z > /dev/null
$g ab --tvm-src "$src" --tvm base=git:3dea168fe2,new=git:cec83d1bad --model nanogpt-tiny,nanogpt-shakespeare-char \
  --frontend export,onnx --name ab-src-3dea168-vs-cec83d1 --out "$out" 2>&1 | tee "$out/ab.log" || true  # exit 1 = a regression: reported
ccache -s > "$out/ccache-after-new.txt"
