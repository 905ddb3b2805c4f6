#!/bin/bash
# `gptbench bisect` end to end, as a user runs it, on a synthetic regression (2026-12-06, 2-core AMD EPYC
# znver3): a git repository of eight commits of "TVM" (tests/synthetic: this project's TVM with a start-up
# patch, built by tests/synthetic/recipe.sh in seconds), one of which changes LegalizeOps so that every
# matmul is lowered eight times over (the same result; several times slower untuned), and one of which
# does not build. bisect must check that --bad regresses, skip the commit that does not build, and name
# the regressing commit with its evidence. The repository is made in a scratch directory (not committed);
# the state file and every step's A/B report are kept here.
set -euo pipefail
out=results/reference/bisect-demo-20261206
repo=${BISECT_DEMO_REPO:-/tmp/gptbench-bisect-demo/tvm}
rm -rf "$repo" "$out"/bisect-*.json "$out"/steps
.venv/bin/python - "$repo" <<'PY'
import sys
from pathlib import Path
from tests.synthetic import make_repo, patch_source
commits = make_repo(Path(sys.argv[1]), [
    ("good: the base build (version 0.28.dev1)", {"tvm_patch.py": patch_source("0.28.dev1")}),
    ("docs: a note", {"NOTES.md": "notes\n"}),
    ("refactor: rename a helper", {"HELPER.md": "renamed\n"}),
    ("break the build", {"BUILD_FAILS": "synthetic compile error\n"}),
    ("fix the build", {"BUILD_FAILS": None}),
    ("LegalizeOps: lower every matmul eight times", {"tvm_patch.py": patch_source("0.28.dev1", matmul_twice=True)}),
    ("docs: more notes", {"NOTES.md": "more notes\n"}),
    ("tests: one more", {"TESTS.md": "one more\n"}),
])
print("\n".join(commits))
PY
good=$(git -C "$repo" rev-list --max-parents=0 HEAD)
GPTBENCH_ENV_CACHE=/tmp/gptbench-bisect-demo/cache .venv/bin/gptbench bisect --tvm-src "$repo" --tvm-recipe tests/synthetic/recipe.sh \
  --good "$good" --bad main --model nanogpt-tiny --frontend export --seq-len 32 --fail-on median:100% --out "$out/steps" \
  2>&1 | tee "$out/bisect.log"
