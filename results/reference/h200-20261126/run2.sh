#!/bin/bash
# Measure the CUDA bundles on the lent GPU with TVM's runtime only (no compiler there).
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
mkdir -p /tmp/site /tmp/r
exec > >(tee -a /tmp/r/device.log) 2>&1
tar -C /tmp/site -xJf .gpu/tvm-runtime.tar.xz
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 3
CUDART=$(dirname "$(find /usr/local /opt /usr/lib -name 'libcudart.so.13*' 2>/dev/null | head -1)")
export PYTHONPATH=/tmp/site:$PWD TVM_USE_RUNTIME_LIB=1 PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=$CUDART:${LD_LIBRARY_PATH:-}
echo "libcudart from $CUDART"
ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -5
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv
python3 -c "import tvm, torch; print('tvm', tvm.__version__, 'runtime_only', tvm.base._RUNTIME_ONLY, 'torch', torch.__version__, torch.cuda.get_device_name(0))"
run() {  # bundle, seconds, baselines, repeat
  echo "=== $1 ($(($(date +%s) - START)) s since start)"
  timeout -s INT -k 10 "$2" python3 -m bench.cli measure ".gpu/bundles/$1" --baselines "$3" --warmup 10 --repeat "$4" --out /tmp/r --name "$1" 2>&1 \
    | grep -v -e "Warning: Fast mode" -e "^|" -e "^$"
  echo "=== $1 rc=${PIPESTATUS[0]}"
  tar -C /tmp -czf "$OUT/reports.tgz" r
}
run tiny 40 eager 30
tiny_ok() { python3 -c "import json,glob,sys; r=json.load(open(glob.glob('/tmp/r/*-tiny.json')[0])); sys.exit(r['cells'][0]['status'] != 'ok')" 2>/dev/null; }
if ! tiny_ok; then  # NVRTC failed? try nvcc
  export TVM_CUDA_COMPILE_MODE=nvcc; rm -f /tmp/r/*-tiny.*; run tiny 40 eager 30
fi
run gpt2-prefill-float32 80 eager,compile 100
run gpt2-prefill-float16 80 eager,compile 100
run gpt2-decode-float32 80 eager,compile 100
run gpt2-decode-float16 80 eager,compile 100
run char-prefill-float32 45 eager,compile 100
run char-prefill-float16 45 eager,compile 100
run gpt2-prefill-float16-b8-s256 80 eager,compile 50
echo "done in $(($(date +%s) - START)) s"
grep -h "^| " /tmp/r/*.md | grep -v -e "---" -e "^| model | frontend | backend" | cut -c1-400
