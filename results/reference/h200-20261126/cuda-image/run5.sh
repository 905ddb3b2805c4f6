#!/bin/bash
# Fifth pass (2026-11-26): the CUDA image's own TVM (built from source in docker/Dockerfile's tvm-build
# stage: TVM main 5d4dc87, CUDA 11.8 nvcc from Debian, USE_CUDA/USE_CUBLAS) on the H200. The bundles
# were built inside the image (gptbench run --target cuda --cuda-arch sm_90 --bundle; kernels compiled
# by nvcc to sm_90 cubin at build time); here the image's TVM runtime (libtvm_runtime*.so and the
# image's libcudart.so.11.0, carried in .gpu/image-runtime.tar.xz) loads and runs them.
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
mkdir -p /tmp/site /tmp/r /tmp/libs
exec > >(tee -a /tmp/r/device.log) 2>&1
tar -C /tmp/site -xJf .gpu/image-runtime.tar.xz
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD TVM_USE_RUNTIME_LIB=1 PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=/tmp/site/cuda11:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv
python3 -c "import tvm, torch; print('tvm', tvm.__version__, tvm.__file__, 'torch', torch.__version__, torch.cuda.get_device_name(0)); print('cuda runtime', tvm.runtime.enabled('cuda'))"
ldd /tmp/site/tvm/lib*/libtvm_runtime*.so 2>/dev/null | grep -i -e cuda -e cublas -e "not found"
run() {  # bundle, seconds, baselines, repeat
  echo "=== $1 ($(($(date +%s) - START)) s since start)"
  timeout -s INT -k 10 "$2" python3 -m bench.cli measure ".gpu/image-bundles/$1" --baselines "$3" --warmup 10 --repeat "$4" --out /tmp/r --name "image-$1" 2>&1 \
    | grep -v -e "^|" -e "^$" -e "^Latency" -e "^After the rounds" -e "^Environment" -e "^Built elsewhere"
  echo "=== $1 rc=${PIPESTATUS[0]}"
  tar -C /tmp -czf "$OUT/reports.tgz" r
}
run gpt2-prefill-float32 90 eager,compile 100
run gpt2-prefill-float16 90 eager,compile 100
run gpt2-decode-float32 90 eager,compile 100
run gpt2-decode-float16 90 eager,compile 100
echo "done in $(($(date +%s) - START)) s"
grep -h "^| " /tmp/r/*.md | grep -v -e "---" -e "^| model | frontend | backend" | cut -c1-400
