# gpt-frontend-bench: the two commands a new user needs are `make bench` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: gpu-kit history-site setup bench lint test test-fast test-slow test-docker docker docker-build docker-build-cuda docker-check-cuda docker-build-relay clean tvm-relay

# xgboost (MetaSchedule's cost model) is, on Linux x86_64, a CUDA build that pulls nvidia-nccl-cu12, which CPU
# tuning never loads: where pip installed that library, both are swapped for xgboost-cpu of the same version (the
# same `xgboost` module, without CUDA), as the cpu image does (docker/Dockerfile, docker/README.md).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	if $(BIN)/python -m pip show --quiet nvidia-nccl-cu12 2>/dev/null; then \
		v="$$($(BIN)/python -m pip show xgboost | sed -n 's/^Version: //p')"; \
		$(BIN)/python -m pip uninstall --yes --quiet xgboost nvidia-nccl-cu12 \
		&& $(BIN)/python -m pip install --quiet --no-deps "xgboost-cpu==$$v"; \
	fi
	touch $@

setup: $(STAMP)

# The main benchmark on the embedded default model: CPU only, no downloads. TVM is tuned on this
# machine for at most TUNE_BUDGET (every frontend of the run, one session) when TUNE_CACHE has no database for this TVM, CPU and core count
# (a second run finds it and tunes nothing); the report shows tuned TVM next to eager PyTorch, ONNX
# Runtime and the same TVM pipeline untuned. --fast-math: GELU's erf and the softmax's exp as
# TVM's vectorisable approximations (see README). Where the training text is at hand (it is not
# part of the repository), the report also gets the model's validation loss through eager
# PyTorch and through every TVM build.
VAL_TEXT ?= $(wildcard ../shared/data/tinyshakespeare.txt)
TUNE_BUDGET ?= 4m
TUNE_CACHE ?= results/tuning

# The default benchmark's run arguments: `make bench` runs them here, `make docker` in the cpu image.
BENCH_RUN = --model nanogpt-shakespeare-char --frontend export,onnx,fx --target llvm \
	--scenario prefill --batch 1 --seq-len 128 --warmup 5 --repeat 30 --baselines eager,ort,untuned \
	--fast-math --tune-budget $(TUNE_BUDGET) --tune-cache $(TUNE_CACHE)

bench: $(STAMP)
	$(BIN)/gptbench run $(BENCH_RUN) $(if $(VAL_TEXT),--val-text $(VAL_TEXT)) --name default --out results/
	$(BIN)/gptbench plot results/*-default.json --out results/

# Results over time: every committed reference report (and every run of yours: `run` adds its report to
# results/history.sqlite) in the history store, then its dashboard, results/site/index.html (docs/history.md).
history-site: $(STAMP)
	$(BIN)/gptbench history add results/reference --history results/history.sqlite
	$(BIN)/gptbench history publish --history results/history.sqlite --out results/site

# TVM 0.19 (Relay) in its own environment, for --frontend relay-onnx,relay-torch: the prebuilt wheel
# where RELAY_WHEEL exists (../shared/wheels on these machines), else a source build of v0.19.0
# (docker/tvm-0.19/build.sh, about 40 minutes on 2 cores).
RELAY_VENV  ?= .venv-relay
RELAY_WHEEL ?= $(wildcard ../shared/wheels/tvm-0.19.0-cp311-cp311-linux_x86_64.whl)
RELAY_STAMP := $(RELAY_VENV)/.installed-stamp

$(RELAY_STAMP): docker/tvm-0.19/requirements.txt
	docker/tvm-0.19/setup-env.sh $(RELAY_VENV) $(RELAY_WHEEL)

tvm-relay: $(RELAY_STAMP)

# The test suite (what .ci/run calls): one pytest-xdist worker per usable core (at most 4), whole
# files per worker so module fixtures run once. Slow full-size runs are opt-in: `make test-slow`.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

# Lint (pyproject.toml's [tool.ruff]: the rule set and line length): `make test` runs it first, so a
# lint error fails the test run (and CI) before any test starts.
lint: $(STAMP)
	$(BIN)/ruff check .

# Where a prebuilt TVM 0.19 wheel is at hand the Relay environment is set up first (about 1 minute),
# so the Relay tests run; if that fails, or without the wheel, they are skipped and say why.
test: lint
	$(if $(RELAY_WHEEL),-$(MAKE) --no-print-directory tvm-relay)
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile --durations=15

# A TVM compiler kit for a GPU host without TVM (docker/gpu_kit.py; docs/gpu.md): .gpukit/, in parts that each
# travel beside the tracked tree. KIT_PYTHON: the host's Python (default 3.12).
KIT_PYTHON ?= 3.12
gpu-kit: $(STAMP)
	$(BIN)/python docker/gpu_kit.py pack --python $(KIT_PYTHON)

# The unit tier (tests/conftest.py: UNIT_MODULES), for after each edit: under a minute on 2 cores.
test-fast: lint
	$(BIN)/python -m pytest -q -m "unit and not docker" -p no:xdist --durations=5

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The image tests alone (also part of test-slow): build or reuse the cpu image, run a tiny model and
# `gptbench compare` in it. Skipped where neither docker nor podman is installed.
test-docker: $(STAMP)
	$(BIN)/python -m pytest -q -m docker

# The cpu image (docker/Dockerfile --target cpu) with docker, or podman where no docker daemon
# answers. Where the pinned base image's registry is out of reach, docker/engine.sh makes an
# equivalent Debian base with mmdebstrap once and reuses it (docker/README.md).
docker-build:
	docker/engine.sh build

# `make docker`: the cpu image (docker-build), then the default benchmark in it, BENCH_RUN as `make
# bench` runs it. results/ is mounted at /app/results: the report, its chart and TUNE_CACHE's
# databases are the host's (a database tuned for this CPU and core count is found, not tuned again;
# TUNE_CACHE must lie under results/). The training text, where at hand, is mounted read-only.
docker: docker-build
	$(if $(VAL_TEXT),ENGINE_RUN_FLAGS="-v $(abspath $(VAL_TEXT)):/data/val-text.txt:ro") docker/engine.sh run \
		run $(BENCH_RUN) $(if $(VAL_TEXT),--val-text /data/val-text.txt) --name docker --out results/
	docker/engine.sh run plot results/*-docker.json --out results/

# TVM from source with CUDA for one arch (docker/Dockerfile's tvm-build stage), then the cuda-check
# image: the harness on that TVM with a CPU torch. Where the CUDA image's registry is out of reach it
# builds on the Debian base with Debian's CUDA 11.8 toolkit; TVM_SRC=DIR builds a local TVM checkout
# instead of cloning the pinned tag (docker/README.md, "The CUDA source build here"). About an hour
# on 2 cores: run it under `nice` on a shared machine.
#   make docker-build-cuda CUDA_ARCH=86 [TVM_SRC=/path/to/tvm] [BUILD_JOBS=2]
#   make docker-check-cuda CUDA_ARCH=86 CHECK_ARCHS="sm_86 sm_90"
docker-build-cuda:
	docker/engine.sh build-cuda

docker-check-cuda:
	docker/engine.sh check-cuda $(CHECK_ARCHS)

# The relay image: the cpu image plus TVM v0.19.0 (Relay), built from source in the tvm019-build
# stage (docker/tvm-0.19/build.sh; TVM019_MIRRORS=DIR builds from local git mirrors). Then e.g.
# IMAGE=localhost/gptbench:relay docker/engine.sh run run --model nanogpt-tiny --frontend export,relay-onnx --tvm 0.27,0.19
docker-build-relay:
	docker/engine.sh build-relay

clean:
	rm -rf $(VENV) $(RELAY_VENV) .pytest_cache build *.egg-info
