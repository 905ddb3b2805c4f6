#!/bin/bash
# TVM 0.25.0 vs 0.26.0 vs 0.27.0.post1 from PyPI, untuned, every Relax frontend, as measured on 2026-12-06
# (2-core AMD EPYC, quiet: nothing else running). From the repository root after `make setup`; the
# harness makes the two older releases' environments itself the first time (bench/core/tvm_build.py).
# Each `ab` alternates its two builds A B B A, every cell in its own process of its build's interpreter.
set -euo pipefail
out=results/reference/releases-20261206
g=.venv/bin/gptbench
# the default model, prefill 128: release over release, A/B with a verdict per cell
for pair in "0.25=pypi:0.25.0,0.26=pypi:0.26.0" "0.26=pypi:0.26.0,0.27=0.27"; do
  $g ab --model nanogpt-shakespeare-char --frontend export,onnx,fx --tvm "$pair" --repeat 10 --warmup 2 --solo 5 \
    --name "default-prefill-${pair%%=*}-to-$(cut -d, -f2 <<< "$pair" | cut -d= -f1)" --out "$out" || true  # exit 1: a regression, reported
done
# the default model, decode 127+1 (its context is 128), and GPT-2 124M decode 128+1: the three releases in one run each
$g run --model nanogpt-shakespeare-char --frontend export,onnx,fx --scenario decode --past-len 127 \
  --tvm 0.25=pypi:0.25.0,0.26=pypi:0.26.0,0.27 --repeat 20 --warmup 3 --name default-decode --out "$out"
$g run --model gpt2 --weights random --frontend export,onnx --scenario decode --tvm 0.25=pypi:0.25.0,0.26=pypi:0.26.0,0.27 \
  --repeat 10 --warmup 2 --name gpt2-decode --out "$out"
# GPT-2 124M prefill 128: untuned TVM takes about 35 s a call here, so 3 timed calls and export only
$g run --model gpt2 --weights random --frontend export --tvm 0.25=pypi:0.25.0,0.26=pypi:0.26.0,0.27 \
  --repeat 3 --warmup 1 --solo 0 --block 3 --name gpt2-prefill --out "$out"
# then: run-ab-and-tuned.sh
