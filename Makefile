# gpt-frontend-bench: the two commands a new user needs are `make bench` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup bench test test-slow clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

# The main benchmark on the embedded default model: CPU only, no downloads.
bench: $(STAMP)
	$(BIN)/gptbench run --model nanogpt-shakespeare-char --frontend export,onnx,fx --target llvm \
		--scenario prefill --batch 1 --seq-len 128 --warmup 5 --repeat 30 --name default --out results/

# The test suite (what .ci/run calls). Slow full-size runs are opt-in: `make test-slow`.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
