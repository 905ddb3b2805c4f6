#!/usr/bin/env bash
# Build and run the `cpu` image of docker/Dockerfile with whichever container engine is here: docker
# (when its daemon answers), else podman. Called by `make docker-build` and `make docker`; run it from
# the repository root.
#
#   docker/engine.sh build          build $IMAGE from docker/Dockerfile --target cpu
#   docker/engine.sh run ARGS...    gptbench ARGS... in $IMAGE, with $RESULTS mounted at /app/results
#   docker/engine.sh build-cuda     TVM from source for $CUDA_ARCH (stage tvm-build), then $CUDA_TARGET
#                                   (default cuda-check: the harness, that TVM and a CPU torch; or cuda)
#   docker/engine.sh check-cuda [sm_XX...]  docker/check_cuda_arch.py in the cuda-check image: which arch
#                                   the harness compiles a GPT's CUDA kernels for (default sm_$CUDA_ARCH);
#                                   no GPU needed
#   docker/engine.sh build-relay    TVM v0.19.0 from source (stage tvm019-build), then $RELAY_IMAGE (stage
#                                   relay: the cpu image plus TVM 0.19 with Relay in /opt/venv-relay)
#   docker/engine.sh engine         print the engine that would be used
#
# Environment (all optional):
#   ENGINE           docker or podman (default: docker if `docker info` works, else podman)
#   IMAGE            image tag (default localhost/gptbench:cpu)
#   RESULTS          the host folder mounted at /app/results, where `--out results/` writes (default ./results)
#   BASE_IMAGE       the image to build on (default: the Dockerfile's pinned PYTHON_IMAGE where the
#                    engine has it or can pull it; else a Debian bookworm base made here once with
#                    mmdebstrap from Debian's archive, $DEBIAN_BASE, and reused)
#   DEBIAN_BASE      tag of that base (default localhost/gptbench-base:bookworm)
#   FIND_LINKS       folders whose *.whl pip may use inside the build, copied into docker/wheels/
#                    (default: this machine's pip find-links, $PIP_FIND_LINKS or
#                    `pip config get global.find-links`; empty: none)
#   TORCH_INDEX_URL  passed as the build arg (default: PyTorch's CPU index, or empty when FIND_LINKS
#                    gave docker/wheels/ a CPU torch of the pinned version)
#   PIP_INDEX_URL    passed as the build arg (default the Dockerfile's, https://pypi.org/simple)
#   ENGINE_RUN_FLAGS extra flags for `docker run` / `podman run` (e.g. --gpus all, --cpus 2)
# build-cuda and check-cuda only:
#   CUDA_ARCH        the arch TVM is built for, without sm_ (default 86)
#   CUDA_IMAGE       the tvm-build base (default: the Dockerfile's pinned CUDA image where the engine has
#                    it or can pull it; else the Debian base above, with CUDA_TOOLKIT=debian)
#   CUDA_TOOLKIT     image or debian (default: image with the CUDA image, debian on the Debian base:
#                    Debian's nvidia-cuda-toolkit 11.8 from non-free)
#   TVM_SRC          a local TVM checkout (a git work tree, submodules checked out) to build instead of
#                    cloning the pinned tag: hard-linked into docker/tvm-src/tvm/ for the build, removed
#                    after. TVM_COMMIT (default: its HEAD) and TVM_REF (default: its exact tag, else
#                    empty: then the wheel's version is git describe's) are passed along.
#   LLVM_VERSION     default: the Dockerfile's (17, Ubuntu 24.04's) with the CUDA image, 16 on Debian
#   BUILD_JOBS       parallel compile jobs (default: all cores)
#   CUDA_TARGET      the stage to build after tvm-build (default cuda-check)
#   CUDA_CHECK_IMAGE the cuda-check image's tag (default localhost/gptbench:cuda-check-sm$CUDA_ARCH)
# build-relay only:
#   RELAY_IMAGE      the image's tag (default localhost/gptbench:relay)
#   TVM019_MIRRORS   a folder of local git repositories OWNER/NAME (apache/tvm with its tags, dmlc/dlpack,
#                    dmlc/dmlc-core, agauniyal/rang) to build from instead of GitHub: cloned (bare, hard
#                    links) into docker/tvm-src/mirrors/ for the build, removed after
#   BUILD_JOBS       as above
#
# Bad usage or a missing engine: one line on stderr, exit 2.
set -euo pipefail

IMAGE=${IMAGE:-localhost/gptbench:cpu}
DEBIAN_BASE=${DEBIAN_BASE:-localhost/gptbench-base:bookworm}
DOCKERFILE=docker/Dockerfile
WHEELS=docker/wheels

say() { echo "docker/engine.sh: $*" >&2; }
die() { say "$*"; exit 2; }

[ -f "$DOCKERFILE" ] || die "run me from the repository root (no $DOCKERFILE here)"

pick_engine() {
    if [ -n "${ENGINE:-}" ]; then
        case "$ENGINE" in docker | podman) ;; *) die "ENGINE=$ENGINE: choose docker or podman" ;; esac
        command -v "$ENGINE" > /dev/null || die "ENGINE=$ENGINE is not installed"
        echo "$ENGINE"
    elif command -v docker > /dev/null && timeout 20 docker info > /dev/null 2>&1; then
        echo docker
    elif command -v podman > /dev/null; then
        echo podman
    else
        die "no container engine: install docker (with its daemon running) or podman (apt-get install podman)"
    fi
}

# podman's defaults where they work. In a sandbox like this one they do not: crun refuses hybrid
# cgroups ("cgroups in hybrid mode not supported") and podman's default ulimits may not be set
# ("setrlimit RLIMIT_NOFILE: Operation not permitted"); runc with these ulimits works there.
sandbox=()
podman_sandbox_flags() {
    local probe=(podman run --rm --network none) flags=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
    command -v runc > /dev/null && flags+=(--runtime runc)
    "${probe[@]}" "$IMAGE" --help > /dev/null 2>&1 && return 0
    if "${probe[@]}" "${flags[@]}" "$IMAGE" --help > /dev/null 2>&1; then
        say "podman cannot start containers here with its defaults; using: ${flags[*]}"
        sandbox=("${flags[@]}")
        return 0
    fi
    local hint=""
    command -v runc > /dev/null || hint="; install runc (apt-get install runc), which works where crun refuses hybrid cgroups"
    die "podman cannot start a container here: $("${probe[@]}" "$IMAGE" --help 2>&1 | tail -1)" \
        "(with ${flags[*]}: $("${probe[@]}" "${flags[@]}" "$IMAGE" --help 2>&1 | tail -1))$hint"
}

image_exists() { "$engine" image inspect "$1" > /dev/null 2>&1; }

image_mb() { echo $(($("$engine" image inspect --format '{{.Size}}' "$1") / 1000000)); }

pinned_python_image() { sed -n 's/^ARG PYTHON_IMAGE=//p' "$DOCKERFILE"; }

# Debian bookworm from Debian's archive, as the notes' recipe: python3 3.11 (the pinned image has 3.12;
# the harness supports >= 3.10 and cp311 wheels exist for every pin). The host's own extra CA
# certificates go in too, so that pip inside the build trusts the same TLS proxy the host does.
make_debian_base() {
    command -v mmdebstrap > /dev/null ||
        die "cannot make $DEBIAN_BASE: mmdebstrap is not installed (apt-get install mmdebstrap), or pull $(pinned_python_image)"
    local tar hooks=() start=$SECONDS
    tar=$(mktemp -d)/rootfs.tar
    if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
        say "adding this host's CA certificates (/usr/local/share/ca-certificates) to $DEBIAN_BASE"
        hooks=(--customize-hook="copy-in /usr/local/share/ca-certificates /usr/local/share"
               --customize-hook='chroot "$1" update-ca-certificates')
    fi
    mmdebstrap --quiet --variant=apt --include=ca-certificates,python3,python3-venv "${hooks[@]}" bookworm "$tar"
    "$engine" import --change 'CMD ["python3"]' "$tar" "$DEBIAN_BASE" > /dev/null
    rm -rf "$(dirname "$tar")"
    say "made $DEBIAN_BASE in $((SECONDS - start)) s ($(image_mb "$DEBIAN_BASE") MB)"
}

base_image() {
    local pinned
    pinned=$(pinned_python_image)
    if [ -n "${BASE_IMAGE:-}" ]; then
        echo "$BASE_IMAGE"
    elif image_exists "$pinned"; then
        echo "$pinned"
    elif image_exists "$DEBIAN_BASE"; then
        say "base: reusing $DEBIAN_BASE, made earlier from Debian's archive (the pinned $pinned is not here)"
        echo "$DEBIAN_BASE"
    elif timeout 300 "$engine" pull "$pinned" > /dev/null 2>&1; then
        echo "$pinned"
    else
        say "base: cannot pull $pinned (no route to its registry); making an equivalent base $DEBIAN_BASE" \
            "from Debian's archive with mmdebstrap (about 2 minutes, once: it is reused next time)"
        make_debian_base
        echo "$DEBIAN_BASE"
    fi
}

# The wheels of FIND_LINKS into docker/wheels/ (hard links where possible), stale ones out.
stage_wheels() {
    local links dir
    links=${FIND_LINKS-${PIP_FIND_LINKS:-$(python3 -m pip config get global.find-links 2> /dev/null || true)}}
    find "$WHEELS" -maxdepth 1 -name '*.whl' -delete
    for dir in $links; do
        dir=${dir#file://}
        [ -d "$dir" ] || continue
        find "$dir" -maxdepth 1 -name '*.whl' -exec cp -l {} "$WHEELS/" \; 2> /dev/null ||
            find "$dir" -maxdepth 1 -name '*.whl' -exec cp {} "$WHEELS/" \;
    done
    ls "$WHEELS"/*.whl > /dev/null 2>&1 && say "wheels offered to pip in the build: $(cd "$WHEELS" && echo ./*.whl)"
    return 0
}

cmd_build() {
    local base torch_version torch_index args=()
    base=$(base_image)
    stage_wheels
    torch_version=$(sed -n 's/^ARG TORCH_VERSION=//p' "$DOCKERFILE")
    if [ -n "${TORCH_INDEX_URL+set}" ]; then
        torch_index=$TORCH_INDEX_URL
    elif compgen -G "$WHEELS/torch-${torch_version}+cpu-*.whl" > /dev/null; then
        torch_index=""  # the CPU wheel is here: no need for PyTorch's index (unreachable on some hosts)
    else
        torch_index=https://download.pytorch.org/whl/cpu
    fi
    args=(--build-arg "PYTHON_IMAGE=$base" --build-arg "TORCH_INDEX_URL=$torch_index")
    [ -n "${PIP_INDEX_URL:-}" ] && args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
    if [ "$engine" = podman ]; then
        # docker format: OCI images drop SHELL, and the stages' RUNs need bash. chroot isolation and no
        # pulls: what works in an unprivileged sandbox; harmless elsewhere.
        args+=(--format docker --isolation chroot --pull=never)
    fi
    say "building $IMAGE with $engine on $base"
    local start=$SECONDS
    "$engine" build -f "$DOCKERFILE" --target cpu "${args[@]}" -t "$IMAGE" .
    say "built $IMAGE in $((SECONDS - start)) s ($(image_mb "$IMAGE") MB)"
}

pinned_cuda_image() { sed -n 's/^ARG CUDA_IMAGE=//p' "$DOCKERFILE"; }

# The CUDA base and toolkit: CUDA_IMAGE/CUDA_TOOLKIT if given; the pinned CUDA image where the engine
# has it or can pull it; else the Debian base of the cpu image with Debian's CUDA toolkit.
cuda_base() {
    local pinned
    pinned=$(pinned_cuda_image)
    if [ -n "${CUDA_IMAGE:-}" ]; then
        echo "$CUDA_IMAGE ${CUDA_TOOLKIT:-image}"
    elif image_exists "$pinned" || timeout 300 "$engine" pull "$pinned" > /dev/null 2>&1; then
        echo "$pinned ${CUDA_TOOLKIT:-image}"
    else
        local base
        base=$(base_image)
        say "cuda: cannot pull $pinned (no route to its registry); building on $base with" \
            "Debian's nvidia-cuda-toolkit (CUDA 11.8, non-free)"
        echo "$base ${CUDA_TOOLKIT:-debian}"
    fi
}

cuda_arch() {
    local arch=${CUDA_ARCH:-86}
    echo "${arch#sm_}"
}

cmd_build_cuda() {
    local arch base toolkit target tag llvm args=() start=$SECONDS
    arch=$(cuda_arch)
    read -r base toolkit <<< "$(cuda_base)"
    target=${CUDA_TARGET:-cuda-check}
    tag=${CUDA_CHECK_IMAGE:-localhost/gptbench:cuda-check-sm$arch}
    [ "$target" = cuda ] && tag=${IMAGE_CUDA:-localhost/gptbench:cuda-sm$arch}
    llvm=${LLVM_VERSION:-}
    [ -z "$llvm" ] && [ "$toolkit" = debian ] && llvm=16  # bookworm: llvm-15-dev lists a libPolly.a that no package ships
    args=(--build-arg "CUDA_IMAGE=$base" --build-arg "CUDA_TOOLKIT=$toolkit" --build-arg "CUDA_ARCH=$arch")
    [ -n "$llvm" ] && args+=(--build-arg "LLVM_VERSION=$llvm")
    [ -n "${BUILD_JOBS:-}" ] && args+=(--build-arg "BUILD_JOBS=$BUILD_JOBS")
    rm -rf docker/tvm-src/tvm
    if [ -n "${TVM_SRC:-}" ]; then
        [ -e "$TVM_SRC/.git" ] || die "TVM_SRC=$TVM_SRC is not a git checkout of TVM"
        [ -f "$TVM_SRC/3rdparty/tvm-ffi/CMakeLists.txt" ] ||
            die "TVM_SRC=$TVM_SRC has no 3rdparty/tvm-ffi: check out its submodules (git submodule update --init --recursive)"
        local commit ref
        commit=${TVM_COMMIT-$(git -C "$TVM_SRC" rev-parse HEAD)}
        ref=${TVM_REF-$(git -C "$TVM_SRC" describe --tags --exact-match 2> /dev/null || true)}
        cp -al "$TVM_SRC/." docker/tvm-src/tvm/ 2> /dev/null || { rm -rf docker/tvm-src/tvm; cp -a "$TVM_SRC/." docker/tvm-src/tvm/; }
        trap 'rm -rf docker/tvm-src/tvm' EXIT
        say "TVM source: $TVM_SRC at $commit ($(git -C "$TVM_SRC" describe --tags))${ref:+, tag $ref}"
        args+=(--build-arg TVM_SOURCE=local --build-arg "TVM_COMMIT=$commit" --build-arg "TVM_REF=$ref")
    else
        [ -n "${TVM_REF+set}" ] && args+=(--build-arg "TVM_REF=$TVM_REF")
        [ -n "${TVM_COMMIT+set}" ] && args+=(--build-arg "TVM_COMMIT=$TVM_COMMIT")
    fi
    if [ "$target" = cuda-check ]; then
        stage_wheels
        local torch_version
        torch_version=$(sed -n 's/^ARG TORCH_VERSION=//p' "$DOCKERFILE")
        if [ -n "${TORCH_INDEX_URL+set}" ]; then
            args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
        elif compgen -G "$WHEELS/torch-${torch_version}+cpu-*.whl" > /dev/null; then
            args+=(--build-arg "TORCH_INDEX_URL=")
        fi
        [ -n "${PIP_INDEX_URL:-}" ] && args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
    fi
    [ "$engine" = podman ] && args+=(--format docker --isolation chroot --pull=never)
    say "building $tag (--target $target, TVM for sm_$arch, CUDA toolkit: $toolkit) with $engine on $base"
    "$engine" build -f "$DOCKERFILE" --target "$target" "${args[@]}" -t "$tag" .
    say "built $tag in $((SECONDS - start)) s ($(image_mb "$tag") MB)"
}

# The torch index build arg of the cpu-based stages: PyTorch's CPU index, or empty where docker/wheels/
# has the pinned CPU torch (call after stage_wheels).
torch_index_args() {
    local torch_version
    torch_version=$(sed -n 's/^ARG TORCH_VERSION=//p' "$DOCKERFILE")
    if [ -n "${TORCH_INDEX_URL+set}" ]; then
        echo "--build-arg=TORCH_INDEX_URL=$TORCH_INDEX_URL"
    elif compgen -G "$WHEELS/torch-${torch_version}+cpu-*.whl" > /dev/null; then
        echo "--build-arg=TORCH_INDEX_URL="
    fi
    [ -n "${PIP_INDEX_URL:-}" ] && echo "--build-arg=PIP_INDEX_URL=$PIP_INDEX_URL"
    return 0
}

RELAY_REPOS=(apache/tvm dmlc/dlpack dmlc/dmlc-core agauniyal/rang)

# Before any engine is looked for: a wrong TVM019_MIRRORS is a usage error wherever.
check_relay_mirrors() {
    local repo
    [ -n "${TVM019_MIRRORS:-}" ] || return 0
    for repo in "${RELAY_REPOS[@]}"; do
        [ -e "$TVM019_MIRRORS/$repo" ] || die "TVM019_MIRRORS=$TVM019_MIRRORS has no $repo (it needs ${RELAY_REPOS[*]})"
    done
}

cmd_build_relay() {
    local base tag repo args=() start=$SECONDS
    base=$(base_image)
    tag=${RELAY_IMAGE:-localhost/gptbench:relay}
    stage_wheels
    mapfile -t args < <(torch_index_args)
    args+=(--build-arg "PYTHON_IMAGE=$base")
    [ -n "${BUILD_JOBS:-}" ] && args+=(--build-arg "BUILD_JOBS=$BUILD_JOBS")
    rm -rf docker/tvm-src/mirrors
    if [ -n "${TVM019_MIRRORS:-}" ]; then
        trap 'rm -rf docker/tvm-src/mirrors' EXIT
        for repo in "${RELAY_REPOS[@]}"; do
            git clone --bare --quiet "$TVM019_MIRRORS/$repo" "docker/tvm-src/mirrors/$repo"
        done
        git -C docker/tvm-src/mirrors/apache/tvm rev-parse -q --verify refs/tags/v0.19.0 > /dev/null ||
            die "TVM019_MIRRORS=$TVM019_MIRRORS: apache/tvm has no tag v0.19.0"
        say "TVM 0.19 source: the mirrors in $TVM019_MIRRORS (${RELAY_REPOS[*]})"
        args+=(--build-arg TVM019_SOURCE=local)
    fi
    [ "$engine" = podman ] && args+=(--format docker --isolation chroot --pull=never)
    say "building $tag (--target relay: TVM v0.19.0 from source, then the cpu image plus it) with $engine on $base"
    "$engine" build -f "$DOCKERFILE" --target relay "${args[@]}" -t "$tag" .
    say "built $tag in $((SECONDS - start)) s ($(image_mb "$tag") MB)"
}

cmd_check_cuda() {
    local arch tag archs=("$@")
    arch=$(cuda_arch)
    tag=${CUDA_CHECK_IMAGE:-localhost/gptbench:cuda-check-sm$arch}
    image_exists "$tag" || die "no image $tag: build it first (make docker-build-cuda CUDA_ARCH=$arch)"
    [ ${#archs[@]} -gt 0 ] || archs=("sm_$arch")
    local flags=(--rm --network none --entrypoint python)
    if [ "$engine" = podman ]; then
        IMAGE=$tag podman_sandbox_flags
        flags+=("${sandbox[@]}")
    fi
    # shellcheck disable=SC2086  # ENGINE_RUN_FLAGS is a list of flags
    "$engine" run "${flags[@]}" ${ENGINE_RUN_FLAGS:-} "$tag" /opt/gptbench/check_cuda_arch.py "${archs[@]}"
}

cmd_run() {
    [ $# -gt 0 ] || die "run: give gptbench arguments, e.g. docker/engine.sh run models"
    image_exists "$IMAGE" || die "no image $IMAGE: build it first (make docker-build)"
    local results=${RESULTS:-results}
    mkdir -p "$results"
    local volume flags=(--rm --network none)
    volume="$(cd "$results" && pwd):/app/results"
    if [ "$engine" = docker ]; then
        # reports owned by you, not root
        flags+=(--user "$(id -u):$(id -g)" -e HOME=/tmp)
    else
        # Rootless podman maps the container's root to you, so no --user.
        podman_sandbox_flags
        flags+=("${sandbox[@]}")
        if command -v selinuxenabled > /dev/null && selinuxenabled; then
            volume+=":Z"  # relabel for SELinux hosts (Fedora, RHEL)
        fi
    fi
    flags+=(-v "$volume")
    # shellcheck disable=SC2086  # ENGINE_RUN_FLAGS is a list of flags
    "$engine" run "${flags[@]}" ${ENGINE_RUN_FLAGS:-} "$IMAGE" "$@"
}

[ $# -gt 0 ] || die "usage: docker/engine.sh build | run GPTBENCH-ARGS... | build-cuda | check-cuda [sm_XX...] | build-relay | engine"
command=$1
shift
case "$command" in
    build | run | build-cuda | check-cuda | build-relay | engine) ;;
    *) die "unknown command '$command': choose build, run, build-cuda, check-cuda, build-relay or engine" ;;
esac
[ "$command" = build-relay ] && check_relay_mirrors
engine=$(pick_engine)
case "$command" in
    build) cmd_build "$@" ;;
    run) cmd_run "$@" ;;
    build-cuda) cmd_build_cuda "$@" ;;
    check-cuda) cmd_check_cuda "$@" ;;
    build-relay) cmd_build_relay "$@" ;;
    engine) echo "$engine" ;;
esac
