#!/usr/bin/env bash
# Repeated runs with nothing changed, for the history's false-positive rate (docs/history.md):
# N runs each of the default model (tuned TVM through export, eager and ONNX Runtime beside it)
# and of nanogpt-tiny (untuned), alternating, reports into OUT. Nothing else should run meanwhile.
#   scripts/history-noise.sh N OUT [TUNE_CACHE]
set -euo pipefail
n=${1:?usage: scripts/history-noise.sh N OUT [TUNE_CACHE]}
out=${2:?usage: scripts/history-noise.sh N OUT [TUNE_CACHE]}
cache=${3:-results/tuning}
gptbench=${GPTBENCH:-gptbench}
mkdir -p "$out"
nohist=$($gptbench run --help | grep -q -- --no-history && echo --no-history || true)  # an older gptbench has no store
for i in $(seq 1 "$n"); do
  echo "== run $i of $n ($(date -u +%H:%M:%S))"
  $gptbench run --model nanogpt-shakespeare-char --frontend export --target llvm --scenario prefill --batch 1 \
    --seq-len 128 --baselines eager,ort --fast-math --tune-budget 5m --tune-cache "$cache" $nohist \
    --name noise-default --out "$out" | tail -1
  $gptbench run --model nanogpt-tiny --frontend export --baselines eager,ort $nohist \
    --name noise-tiny --out "$out" | tail -1
done
