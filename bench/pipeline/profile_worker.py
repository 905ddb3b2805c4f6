"""One frontend's profile in this interpreter, for a profile whose parent is another TVM environment's:
`python -m bench.pipeline.profile_worker CONFIG.json FRONTEND OUT.json` (bench.pipeline.profile.profile_in_env)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from bench.core.files import atomic_write
from bench.core.procs import die_with_parent
from bench.pipeline.config import run_from_json
from bench.pipeline.profile import profile_frontend
from frontends.base import short_error


def main(argv: list[str]) -> int:
    cfg_path, frontend, out = argv
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    cfg, state = run_from_json(json.loads(Path(cfg_path).read_text()))
    try:
        result, _keys = profile_frontend(cfg, state, frontend)  # the structural keys stay here: they are this TVM's objects
    except Exception as e:  # noqa: BLE001 - recorded, the parent goes on
        result = dict(frontend=frontend, status="profile_failed", error=short_error(e))
    atomic_write(Path(out), json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
