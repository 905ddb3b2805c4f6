#!/bin/bash
# The apache-tvm wheel from a TVM source checkout: the one build recipe of this project, called by
# docker/Dockerfile's tvm-build stage (CUDA) and by build-env.sh beside it (`--tvm git:REF`, CPU), as
#   build-wheel.sh SRC_DIR WHEEL_DIR
# `pip wheel --no-build-isolation` through scikit-build-core, with pinned build backends and these CMake
# defines: Release, LLVM linked statically (USE_LLVM="llvm-config --link-static"), HIDE_PRIVATE_SYMBOLS=ON
# (TVM's LLVM symbols must not clash with the ones PyTorch loads into the same process), SUMMARIZE=ON.
#
#   LLVM_CONFIG     default: the newest /usr/bin/llvm-config-N, N >= 15 (TVM rejects older); Debian:
#                   apt-get install llvm-16-dev libpolly-16-dev libzstd-dev zlib1g-dev
#   TVM_BUILD_CUDA  ON: CUDA and cuBLAS too (nvcc on PATH, CUDA_ARCH a number such as 90); default OFF
#   CUDA_ARCH       with CUDA: CMAKE_CUDA_ARCHITECTURES (no GPU to detect at build time)
#   USE_CUTLASS     with CUDA: ON adds CUTLASS kernels (CUDA >= 12; slow to build); default OFF
#   BUILD_TOOLS     a virtual environment that has the build backends (the image's /opt/venv); default:
#                   one made once in the cache with the pins below (BUILD_TOOLS_PINS)
#   TVM_BUILD_DIR   CMake's build directory, kept between builds so that a nearby commit recompiles only
#                   what it changed (default ~/.cache/gptbench/tvm-build); ccache, where installed, too
#   SUBMODULE_MIRRORS  DIR of mirrors DIR/OWNER/NAME: submodules come from there (a host without GitHub);
#                   one without a mirror is left out and named, a mirror without the pinned commit gives its
#                   newest commit, named too
#   BUILD_JOBS      parallel compile jobs (default: every core; each can take 2 GB)
#   CC, CXX         the compilers (clang is about 20% faster per file than gcc here)
# Exit 2 with one line for what can be checked before compiling (not a TVM tree, LLVM missing or too old,
# what a static LLVM link needs, a CUDA arch nvcc does not know); otherwise the compiler's exit status.
set -euo pipefail
me=build-wheel.sh
src=${1:?usage: build-wheel.sh SRC_DIR WHEEL_DIR}
wheels=${2:?usage: build-wheel.sh SRC_DIR WHEEL_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "$me: $*" >&2; exit 2; }
[[ -f "$src/CMakeLists.txt" && -d "$src/python/tvm" ]] || die "$src is not a TVM source tree (no CMakeLists.txt and python/tvm)"

cuda=${TVM_BUILD_CUDA:-OFF}
if [[ "$cuda" == ON ]]; then
  command -v nvcc > /dev/null || die "TVM_BUILD_CUDA=ON needs nvcc on PATH"
  [[ "${CUDA_ARCH:-}" =~ ^[0-9]+[af]?$ ]] || die "CUDA_ARCH='${CUDA_ARCH:-}': want an explicit number such as 90 or 90a"
  IFS=. read -r cuda_major cuda_minor < <(nvcc --version | sed -n 's/.*release \([0-9]*\.[0-9]*\),.*/\1/p')
  known=$(nvcc --list-gpu-arch)
  grep -qx "compute_${CUDA_ARCH%[af]}" <<< "$known" || die "CUDA_ARCH=$CUDA_ARCH: nvcc of CUDA $cuda_major.$cuda_minor has no compute_${CUDA_ARCH%[af]}; it has: ${known//$'\n'/ }"
  if [[ "${USE_CUTLASS:-OFF}" != OFF ]] && (( cuda_major < 12 )); then
    die "USE_CUTLASS=$USE_CUTLASS needs CUDA >= 12 (C++20 CUDA sources); this nvcc is CUDA $cuda_major"
  fi
elif [[ "$cuda" != OFF ]]; then
  die "TVM_BUILD_CUDA='$cuda': ON or OFF"
fi

llvm=${LLVM_CONFIG:-$(ls /usr/bin/llvm-config-* 2> /dev/null | sort -V | tail -1)}
if [[ -z "$llvm" ]] || ! command -v "$llvm" > /dev/null || (( $("$llvm" --version | cut -d. -f1) < 15 )); then
  die "needs LLVM >= 15 (llvm-config; found '${llvm:-none}'): apt-get install llvm-16-dev, or set LLVM_CONFIG"
fi
# What a static LLVM link needs, checked now rather than at the link an hour on: every library file
# llvm-config names (Debian ships Polly's apart) and the compression headers LLVM's CMake looks for.
major=$("$llvm" --version | cut -d. -f1)
need=() absent=""
for f in $("$llvm" --link-static --libfiles); do [[ -e "$f" ]] || { absent=" ($f is missing)"; need+=("libpolly-$major-dev"); break; }; done
[[ -e /usr/include/zstd.h ]] || need+=(libzstd-dev)
[[ -e /usr/include/zlib.h ]] || need+=(zlib1g-dev)
(( ${#need[@]} == 0 )) || die "LLVM $major's static libraries need what is not installed$absent: apt-get install ${need[*]}"

cd "$src"
# Submodules, recursively. With SUBMODULE_MIRRORS only those that have a mirror there are checked out
# (an LLVM-only build needs 3rdparty/tvm-ffi and, inside it, dlpack and libbacktrace); each one left out
# is named. Without it, every submodule comes from its URL (a no-op where they are checked out already).
submodules() {  # DIR
  local dir=$1 key url name path repo pinned
  [[ -f "$dir/.gitmodules" ]] || return 0
  git -C "$dir" config -f .gitmodules --get-regexp '^submodule\..*\.url$' | while read -r key url; do
    name=${key#submodule.}; name=${name%.url}
    path=$(git -C "$dir" config -f .gitmodules --get "submodule.$name.path")
    if [[ -n "${SUBMODULE_MIRRORS:-}" ]]; then
      repo=$(sed -E 's#.*github\.com[/:]##; s#\.git$##' <<< "$url")
      if [[ ! -d "$SUBMODULE_MIRRORS/$repo" ]]; then
        echo "$me: $dir/$path: not checked out (no mirror $SUBMODULE_MIRRORS/$repo)" >&2; continue
      fi
      pinned=$(git -C "$dir" ls-tree HEAD "$path" | awk '{print $3}')
      if ! git -C "$SUBMODULE_MIRRORS/$repo" cat-file -e "$pinned^{commit}" 2> /dev/null; then
        # A stale mirror: its newest commit instead, said (the build log keeps it); a clone already there at
        # that commit stays as it is (new files would make every object that includes them recompile).
        if [[ "$(git -C "$dir/$path" rev-parse -q --verify HEAD 2> /dev/null)" != "$(git -C "$SUBMODULE_MIRRORS/$repo" rev-parse HEAD)" ]]; then
          rm -rf "${dir:?}/$path"
          git -c protocol.file.allow=always clone --quiet "$SUBMODULE_MIRRORS/$repo" "$dir/$path" < /dev/null
        fi
        echo "$me: $dir/$path: the mirror $SUBMODULE_MIRRORS/$repo lacks the pinned ${pinned:0:12}; took its HEAD $(git -C "$dir/$path" log -1 --format='%h %s') instead" >&2
        submodules "$dir/$path"; continue
      fi
      git -C "$dir" config "submodule.$name.url" "$SUBMODULE_MIRRORS/$repo"
    fi
    git -C "$dir" -c protocol.file.allow=always submodule update --init --quiet -- "$path" < /dev/null
    submodules "$dir/$path"
  done
}
if [[ -e .git ]]; then submodules "$src"; fi
[[ -f 3rdparty/tvm-ffi/CMakeLists.txt ]] || die "$src/3rdparty/tvm-ffi is empty: TVM's CMake needs that submodule (git submodule update --init --recursive, or SUBMODULE_MIRRORS)"

# The build backends, pinned (TVM's pyproject: scikit-build-core>=0.11, setuptools-scm>=8,
# mlc-z3-static>=4.16.0; cmake 3.31: TVM needs >= 3.24, CMake 4 rejects old third-party minimums).
pins=${BUILD_TOOLS_PINS:-pip==26.3 cmake==3.31.10 ninja==1.13.0 scikit-build-core==1.1.2 setuptools-scm==10.3.4 mlc-z3-static==5.3.1.post1}
tools=${BUILD_TOOLS:-${GPTBENCH_ENV_CACHE:-$HOME/.cache/gptbench/tvm-envs}/build-tools}
if [[ -z "${BUILD_TOOLS:-}" && ! -f "$tools/.complete" ]]; then  # made in place (a venv's scripts name its path), marked when whole
  # shellcheck disable=SC2086  # the pins are words
  rm -rf "$tools" && "${GPTBENCH_PYTHON:-python3}" -m venv "$tools" && "$tools/bin/python" -m pip install --quiet $pins && touch "$tools/.complete"
fi
[[ -x "$tools/bin/python" ]] || die "BUILD_TOOLS=$tools has no bin/python"

define=(-C cmake.build-type=Release -C "cmake.define.USE_LLVM=$llvm --link-static" -C cmake.define.HIDE_PRIVATE_SYMBOLS=ON
        -C "cmake.define.USE_CUDA=$cuda" -C "cmake.define.USE_CUBLAS=$cuda" -C cmake.define.SUMMARIZE=ON)
if [[ "$cuda" == ON ]]; then
  define+=(-C "cmake.define.CMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH" -C "cmake.define.USE_CUTLASS=${USE_CUTLASS:-OFF}")
  # nvcc older than CUDA 12.8: TVM's CUDA runtime (cuda_module.cc) sets a launch attribute CUDA 12.8
  # introduced (Blackwell's preferred cluster size) without a version guard; the patch adds one.
  if (( cuda_major * 100 + cuda_minor < 1208 )); then
    git apply --verbose "${TVM_CUDA_PATCH:-$here/../tvm-cuda-before-12.8.patch}"
    echo "$me: nvcc of CUDA $cuda_major.$cuda_minor < 12.8: applied tvm-cuda-before-12.8.patch (version guard in cuda_module.cc)" >&2
  fi
  # nvcc older than CUDA 12 has no C++20, which TVM's CMakeLists sets for CUDA sources; without CUTLASS
  # the build compiles no CUDA source (the model's kernels are compiled later, by nvcc or NVRTC), so 17.
  if (( cuda_major < 12 )); then
    grep -qx 'set(CMAKE_CUDA_STANDARD 20)' CMakeLists.txt && sed -i 's/^set(CMAKE_CUDA_STANDARD 20)$/set(CMAKE_CUDA_STANDARD 17)/' CMakeLists.txt
    echo "$me: nvcc of CUDA $cuda_major has no C++20: CMakeLists.txt's CMAKE_CUDA_STANDARD 20 set to 17 (this build compiles no CUDA source)" >&2
  fi
fi
# g++ older than 13: the link of libtvm_compiler.so fails on mlc-z3-static's libz3.a, built against GCC
# 13's libstdc++; there USE_Z3=OFF, TVM's stub prover (z3 only strengthens some arithmetic proofs).
if (( $(g++ -dumpversion | cut -d. -f1) < 13 )); then
  define+=(-C cmake.define.USE_Z3=OFF)
  echo "$me: g++ $(g++ -dumpversion) < 13: USE_Z3=OFF (mlc-z3-static's libz3.a needs GCC 13's libstdc++)" >&2
fi
# TVM's CMake bakes the wheel's version (0.27.devN+gHASH at a commit past a tag: a new one at every
# commit) into every object file as TVM_VERSION, so a nearby commit would recompile all of them and miss
# ccache. The objects get the version without its commit distance and hash (X.Y.dev0) instead; the
# wheel's metadata keeps the full one, and the harness records the commit. A release tag is unchanged.
version=$("$tools/bin/python" -c 'import setuptools_scm; print(setuptools_scm.get_version())' 2> /dev/null || true)
if [[ "$version" == *.dev* ]]; then define+=(-C "cmake.define.TVM_VERSION=${version%%.dev*}.dev0"); fi
if command -v ccache > /dev/null; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$src}  # paths relative to the checkout: another checkout's objects match
  define+=(-C cmake.define.CMAKE_C_COMPILER_LAUNCHER=ccache -C cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
echo "$me: building $(git log -1 --format='%h %s' 2> /dev/null || echo "$src") as apache-tvm ${version:-?} (LLVM $major, CUDA $cuda)" >&2
PATH="$tools/bin:$PATH" CMAKE_BUILD_PARALLEL_LEVEL="${BUILD_JOBS:-$(nproc)}" "$tools/bin/python" -m pip wheel -v --no-cache-dir \
  --no-build-isolation --no-deps --wheel-dir "$wheels" -C "build-dir=${TVM_BUILD_DIR:-$HOME/.cache/gptbench/tvm-build}" "${define[@]}" .
ls -l "$wheels"
