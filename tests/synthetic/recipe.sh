#!/bin/bash
# A synthetic TVM build recipe for the tests of `ab`, `bisect` and git:REF environments (bench.core.tvm_build).
# Called as recipe.sh SRC_DIR OUT_DIR like the real one (docker/tvm-src/build-env.sh), it "builds" a source
# tree holding tvm_patch.py: OUT_DIR becomes an environment whose TVM is this project's TVM with that
# module imported at start-up (it may rename the version, or change a pass of the pipeline).
# BUILD_FAILS in the tree makes the build fail, as a commit that does not compile would.
set -euo pipefail
src=$1
out=$2
if [ -f "$src/BUILD_FAILS" ]; then
  echo "synthetic build: error: $(cat "$src/BUILD_FAILS")" >&2
  exit 1
fi
"${GPTBENCH_PYTHON:?the harness sets GPTBENCH_PYTHON}" -m venv --without-pip "$out"
site=$("$out/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tr ':' '\n' <<< "$GPTBENCH_FALLBACK_PATH" > "$site/a-gptbench-fallback.pth"
cp "$src/tvm_patch.py" "$site/synthetic_tvm_patch.py"
echo "import synthetic_tvm_patch" > "$site/zz-synthetic-tvm-patch.pth"
echo "synthetic build of $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "$src") in $out"
