#!/bin/bash
# inside localhost/gptbench:cuda-check-sm86, /app/results = /tmp/imgb on the host
set -u
for s in prefill decode; do for d in float32 float16; do
  t0=$(date +%s)
  python -m bench.cli run --frontend export --target cuda --cuda-arch sm_90 --out /app/results/build-reports --model gpt2 --weights random \
    --scenario $s --seq-len 128 --past-len 128 --dtype $d --bundle /app/results/bundles/gpt2-$s-$d --name gpt2-$s-$d-image-build 2>&1 | grep -v "^|" | tail -4
  echo "=== gpt2-$s-$d: $(( $(date +%s) - t0 )) s"
done; done
