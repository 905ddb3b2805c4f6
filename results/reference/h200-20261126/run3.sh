#!/bin/bash
# Third pass: the default model's cells on a fresh machine, and what runs beside each cell.
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
run() {
  echo "=== $1 ($(($(date +%s) - START)) s since start)"; psnow
  timeout -s INT -k 10 "$2" python3 -m bench.cli measure ".gpu/bundles/$1" --baselines "$3" --warmup 10 --repeat "$4" --out /tmp/r --name "$1" 2>&1 \
    | grep -v -e "Warning: Fast mode" -e "^|" -e "^$" -e "^Latency" -e "^After the rounds" -e "^Environment" -e "^Built elsewhere"
  echo "=== $1 rc=${PIPESTATUS[0]}"; psnow
  tar -C /tmp -czf "$OUT/reports.tgz" r
}
run char-prefill-float32 45 eager,compile 100
run char-prefill-float16 45 eager,compile 100
run gpt2-decode-float16 80 eager,compile 100
sleep 5; psnow
echo "done in $(($(date +%s) - START)) s"
