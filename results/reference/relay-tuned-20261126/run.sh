#!/bin/bash
# Relay tuned (MetaSchedule's Relay integration, TVM 0.19) beside plain Relay, Relax 0.19 and Relax 0.27,
# as measured on 2026-11-26 (2-core znver5, quiet: nothing else running). From the repository root,
# after `make setup tvm-relay`. The Relax 0.27 databases are the committed ones in results/tuning
# (found, not tuned again); each Relay cell tunes its own database there for at most its budget.
# The committed default-prefill, gpt2-prefill and gpt2-decode reports are from a second run of those
# three commands, which found the Relay databases the first run had tuned (the first run's Relay cells
# tuned inside the process that then timed them; tuning now runs in a process of its own,
# bench/tuning/relay_tune.py; eager read as slow in the Relay cells either way: README). default-decode
# ran once, after that change. Its Relax 0.27 cell tuned the decode database in that run.
set -euo pipefail
out=results/reference/relay-tuned-20261126
g=.venv/bin/gptbench
common=(--tune-cache results/tuning --out "$out")
# the default model, prefill 128: Relax 0.27 (tuned), Relax 0.19 (untuned), Relay plain (the untuned baseline) and tuned
$g run --model nanogpt-shakespeare-char --frontend export,relay-onnx,relay-torch --tvm 0.27,0.19 --fast-math \
  --tune-budget 5m --baselines eager,ort,untuned --name default-prefill "${common[@]}"
# GPT-2 124M prefill 128 and decode 128+1 through relay-onnx: tuned, with plain Relay as the untuned baseline
$g run --model gpt2 --weights random --frontend relay-onnx --tune-budget 10m --baselines eager,untuned --name gpt2-prefill "${common[@]}"
$g run --model gpt2 --weights random --frontend relay-onnx --scenario decode --tune-budget 8m --baselines eager,untuned --name gpt2-decode "${common[@]}"
# the default model, decode 127+1 (its context is 128): as prefill (Relax 0.27 tunes its decode database first)
$g run --model nanogpt-shakespeare-char --frontend export,relay-onnx,relay-torch --tvm 0.27,0.19 --fast-math --scenario decode --past-len 127 \
  --tune-budget 5m --baselines eager,untuned --name default-decode "${common[@]}"
