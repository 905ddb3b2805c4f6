#!/usr/bin/env bash
# The history's false-alarm rate and power, from committed runs (docs/history.md):
#   scripts/history-measure.sh DIR
# DIR/unchanged/: repeated runs with nothing changed (scripts/history-noise.sh made them);
# DIR/tvm-0.26/: the same cells run after a real change (TVM 0.26.0 in place of 0.27.0.post1).
# Writes DIR/evaluation-unchanged.md (scripts/history-evaluate.py), DIR/check-unchanged.md and
# DIR/check-after-tvm-0.26.md (`gptbench history check --all` and its exit code), from a store made
# afresh in DIR/history.sqlite (not kept).
set -euo pipefail
dir=${1:?usage: scripts/history-measure.sh DIR}
gptbench=${GPTBENCH:-gptbench}
python=${PYTHON:-python3}
store="$dir/history.sqlite"
rm -f "$store"
trap 'rm -f "$store"' EXIT
$gptbench history add "$dir/unchanged" --history "$store"
$python "$(dirname "$0")/history-evaluate.py" "$store" --out "$dir/evaluation-unchanged.md" >/dev/null
check() {  # the check's tables and messages, then its exit code
  set +e; $gptbench history check --history "$store" --all >"$1" 2>&1; echo "exit code: $?" >>"$1"; set -e
}
check "$dir/check-unchanged.md"
$gptbench history add "$dir/tvm-0.26" --history "$store"
check "$dir/check-after-tvm-0.26.md"
