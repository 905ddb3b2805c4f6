#!/bin/bash
# After run-untuned.sh, the same session (2026-12-06, 2-core AMD EPYC, quiet):
# 1. the A/B command as a new user runs it: pypi:0.26.0 against the pinned 0.27 on nanogpt-tiny and
#    the default model, every setting at its default (30 samples, A B B A), untuned;
# 2. the default model tuned in each release for the same budget (3 minutes each, MetaSchedule, each release
#    in a process of its own interpreter: bench/pipeline/autotune.py), in one run with the untuned pipeline
#    as a baseline in every cell. The databases go to a scratch directory (not committed): a rerun tunes again.
set -euo pipefail
out=results/reference/releases-20261206
g=.venv/bin/gptbench
$g ab --model nanogpt-tiny,nanogpt-shakespeare-char --frontend export,onnx --tvm base=pypi:0.26.0,new=0.27 \
  --name ab-0.26-vs-0.27 --out "$out" || true  # exit 1 would be a regression: reported
$g run --model nanogpt-shakespeare-char --frontend export,onnx --tvm 0.25=pypi:0.25.0,0.26=pypi:0.26.0,0.27 --fast-math \
  --tune-budget 3m --tune-cache "${TUNE_CACHE:-/tmp/gptbench-release-tuning}" --baselines eager,untuned --name default-prefill-tuned --out "$out"
