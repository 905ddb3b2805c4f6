"""Builds shared across the shapes of a sweep.

With `--shapes symbolic` a frontend that imports a symbolic length (the sequence for prefill and
classify, the KV cache for decode) gives one TVM build that runs every length. In a sweep
(`run --shapes symbolic --seq-len 32,64,128`) the first cell of each model × frontend × batch imports
and builds; it exports the build (library, weights as imported, what its import recorded) into the
run's build cache; every later length of it loads that build instead of importing and building
again, and checks parity against eager at its own length. Such a cell says which build it ran
(`notes.shared_build`), and the report lists them. Not shared: a build with the `untuned` baseline
(it rebuilds the import), a `--bundle`, or an `--rpc` device.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.core.files import load_arrays, save_arrays

META = "build.json"


def shared_dir(cfg, state, cell) -> Path | None:
    """Where this cell's build is shared (its model × frontend × batch in the run's build cache), or None."""
    if not state.build_cache or cfg.shapes != "symbolic" or "untuned" in cfg.baselines or cfg.bundle or cfg.rpc:
        return None
    return Path(state.build_cache) / f"{cell.model}-{cell.frontend}-b{cell.batch}"


def save(directory: Path, ex, params, cell) -> None:
    """The build and what its cell recorded of the import, for the sweep's later lengths (written whole, then renamed)."""
    tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True)
    ex.export_library(str(tmp / "lib.so"))
    save_arrays(tmp / "params.npz", [p.numpy() for p in params])
    (tmp / META).write_text(json.dumps(dict(
        built_at=dict(batch=cell.batch, seq_len=cell.seq_len, past_len=cell.past_len),
        timings={k: v for k, v in cell.timings.items() if k in ("export_s", "import_s", "build_s")},
        source_ops=cell.source_ops, relax_ops=cell.relax_ops, rewrites=cell.rewrites, patches=cell.patches, tuning=cell.tuning,
        kernels=cell.notes.get("kernels"))))
    try:
        tmp.rename(directory)
    except OSError:  # another process shared it first: theirs stands
        shutil.rmtree(tmp, ignore_errors=True)


def load(directory: Path, cell):
    """(library path, weights as imported); what the building cell recorded of the import goes into `cell`, and its
    notes say whose build it runs."""
    meta = json.loads((directory / META).read_text())
    params = load_arrays(directory / "params.npz")
    cell.source_ops, cell.relax_ops, cell.rewrites, cell.patches = meta["source_ops"], meta["relax_ops"], meta["rewrites"], meta["patches"]
    cell.tuning = meta.get("tuning")
    cell.notes["shared_build"] = dict(built_at=meta["built_at"], build_timings=meta["timings"])
    if meta.get("kernels") is not None:
        cell.notes["kernels"] = meta["kernels"]
    return directory / "lib.so", params
