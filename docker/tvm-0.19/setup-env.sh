#!/bin/bash
# The TVM 0.19 environment (Relay) for the relay-onnx / relay-torch frontends: `make tvm-relay`.
#   setup-env.sh VENV [WHEEL]
# With WHEEL (a tvm-0.19.0 wheel, e.g. ../shared/wheels/tvm-0.19.0-cp311-cp311-linux_x86_64.whl) it
# installs that; without, it builds TVM v0.19.0 from source first (build.sh beside this file, about
# 40 minutes on 2 cores). The wheel links Debian's libLLVM-14 and OpenBLAS: they are installed with
# apt where missing (as root), else the script says what to install.
set -euo pipefail
venv=${1:?usage: setup-env.sh VENV [WHEEL]}
wheel=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
need=()
ldconfig -p | grep -q 'libopenblas.so.0' || need+=(libopenblas0)
ldconfig -p | grep -q 'libLLVM-14.so.1' || need+=(libllvm14)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tvm-relay: installing ${need[*]} (Debian packages TVM 0.19 links against)" >&2
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
  else
    echo "tvm-relay: error: TVM 0.19 needs the Debian packages ${need[*]}: apt-get install ${need[*]}" >&2; exit 2
  fi
fi
py=$(command -v python3.11 || true)
[ -n "$py" ] || { echo "tvm-relay: error: python3.11 not found (the TVM 0.19 wheel is built for CPython 3.11)" >&2; exit 2; }
if [ -z "$wheel" ]; then
  echo "tvm-relay: no prebuilt wheel given: building TVM v0.19.0 from source (docker/tvm-0.19/build.sh)" >&2
  wheel=$("$here/build.sh")
fi
[ -f "$wheel" ] || { echo "tvm-relay: error: no wheel at $wheel" >&2; exit 2; }
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# TVM 0.19 predates numpy 2; onnx 1.17 is the newest its ONNX importer was tested with; torch and
# transformers are the main environment's pins, so the models and their weights are the same.
"$venv/bin/python" -m pip install -q "$wheel" -r "$here/requirements.txt"
"$venv/bin/python" -c "import tvm; from tvm import relay; assert tvm.__version__.startswith('0.19'), tvm.__version__; print('tvm-relay: TVM', tvm.__version__, 'with Relay in', '$venv')"
touch "$venv/.installed-stamp"
