#!/bin/bash
# Fourth pass (2026-11-26, after the redesign): the same bundles measured by the restructured harness
# (typed cell records; bundles written by the old code load through Cell.from_json).
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
mkdir -p /tmp/site /tmp/r
exec > >(tee -a /tmp/r/device.log) 2>&1
tar -C /tmp/site -xJf .gpu/tvm-runtime.tar.xz
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 3
CUDART=$(dirname "$(find /usr/local /opt /usr/lib -name 'libcudart.so.13*' 2>/dev/null | head -1)")
export PYTHONPATH=/tmp/site:$PWD TVM_USE_RUNTIME_LIB=1 PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=$CUDART:${LD_LIBRARY_PATH:-}
psnow() { echo "--- top processes:"; ps -eo pid,ppid,pcpu,etime,args --sort=-pcpu | head -6 | cut -c1-200; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv
run() {
  echo "=== $1 ($(($(date +%s) - START)) s since start)"; psnow
  timeout -s INT -k 10 "$2" python3 -m bench.cli measure ".gpu/bundles/$1" --baselines "$3" --warmup 10 --repeat "$4" --out /tmp/r --name "$1" 2>&1 \
    | grep -v -e "^|" -e "^$" -e "^Latency" -e "^After the rounds" -e "^Environment" -e "^Built elsewhere"
  echo "=== $1 rc=${PIPESTATUS[0]}"
  tar -C /tmp -czf "$OUT/reports.tgz" r
}
run tiny 40 eager 30
run gpt2-prefill-float16 80 eager,compile 100
run gpt2-decode-float16 80 eager,compile 100
run gpt2-prefill-float32 80 eager,compile 100
run char-prefill-float32 45 eager,compile 100
echo "done in $(($(date +%s) - START)) s"
grep -h "^| " /tmp/r/*.md | grep -v -e "---" -e "^| model | frontend | backend" | cut -c1-300
