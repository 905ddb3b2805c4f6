"""One cell in this interpreter, for a run whose parent is another TVM environment's:
`python -m bench.pipeline.env_worker CONFIG.json MODEL FRONTEND ENV OUT.json` (bench.pipeline.runner.run_in_env)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from bench.core.files import atomic_write
from bench.core.procs import die_with_parent
from bench.pipeline.config import run_from_json
from bench.pipeline.execute import execute_cell


def main(argv: list[str]) -> int:
    cfg_path, model, frontend, env, out = argv
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    cfg, state = run_from_json(json.loads(Path(cfg_path).read_text()))
    cell = execute_cell(cfg, state, model, frontend, env)
    atomic_write(Path(out), json.dumps(cell.to_json(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
