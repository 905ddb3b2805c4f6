"""Greedy generation through a TVM build, and the `generate` scenario.

Generation is two compiled functions, as in any KV-cache decoder:
- prompt: input_ids (B, T) -> (logits, present (L, 2, B, nh, T, hs)), static shapes;
- decode: input_ids (B, 1), past (L, 2, B, nh, P, hs) -> (logits, present with P+1), with the
  past length P symbolic (`torch.export.Dim`), so one build serves every step.
The cache stays on the device between steps as TVM tensors; only the (B, 1, V) logits come back
to pick the next token (argmax, greedy). Eager PyTorch runs the same loop with the same modules.

The scenario times whole generations (prompt + N-1 decode steps), eager and TVM in alternating blocks, and
requires the generated token ids to be identical.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.build.relax import Compiled, build
from bench.measure.timing import wall_timer
from bench.models import decode_module, prompt_module
from bench.pipeline.cell import time_backends
from bench.record import Baseline, Cell, Parity
from bench.scenarios import past_for, random_ids
from bench.tuning.database import prepacked
from frontends import get_frontend
from frontends.base import FrontendError, ImportRequest, short_error

if TYPE_CHECKING:
    import numpy as np


@dataclass
class TVMGenerator:
    prompt: object  # bench.build.relax.Compiled
    decode: object  # bench.build.relax.Compiled

    def __call__(self, ids, new_tokens: int) -> np.ndarray:
        """Greedy: (B, T) prompt ids -> (B, new_tokens) generated ids."""
        import numpy as np
        import tvm

        dev = self.prompt.device
        outs = self.prompt.vm[self.prompt.func](*self.prompt._args([ids]))
        logits, present = outs[0], outs[1]
        tokens = []
        nxt = logits.numpy()[:, -1].argmax(-1)  # (B,)
        tokens.append(nxt)
        for _ in range(new_tokens - 1):
            step = tvm.runtime.tensor(nxt.reshape(-1, 1).astype("int64"), dev)
            outs = self.decode.vm[self.decode.func](step, present, *self.decode.params)
            logits, present = outs[0], outs[1]
            nxt = logits.numpy()[:, -1].argmax(-1)
            tokens.append(nxt)
        return np.stack(tokens, axis=1)


def eager_generate(prompt_mod, decode_mod, ids, new_tokens: int):
    """The same greedy loop in eager PyTorch: (B, new_tokens) ids."""
    import torch

    with torch.inference_mode():
        logits, present = prompt_mod(ids)
        nxt = logits[:, -1].argmax(-1)  # (B,)
        tokens = [nxt]
        for _ in range(new_tokens - 1):
            logits, present = decode_mod(nxt.unsqueeze(1), present)
            nxt = logits[:, -1].argmax(-1)
            tokens.append(nxt)
    return torch.stack(tokens, dim=1).cpu().numpy()


def build_generator(loaded, frontend: str, tinfo, batch: int, prompt_len: int, new_tokens: int, seed: int, db=None, log=print,
                    dlight: bool = False, fast_math: bool = False):
    """Import and build prompt + decode for a frontend; returns (TVMGenerator, info dict).
    Raises FrontendError on import failures and whatever the build raises."""
    spec = loaded.spec
    fe = get_frontend(frontend)
    ids = random_ids(spec, batch, prompt_len, seed)
    step = random_ids(spec, batch, 1, seed + 2)
    past = past_for(loaded, batch, max(prompt_len, 2), seed)
    max_past = min(spec.context - 1, prompt_len + new_tokens)
    info: dict = dict(timings={}, relax_ops={}, source_ops={}, patches=[])
    compiled = {}
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        for name, module, inputs, names, dynamic in (
            ("prompt", prompt_module(loaded), (ids,), ["input_ids"], None),
            ("decode", decode_module(loaded), (step, past), ["input_ids", "past"], {"past": {4: ("past", 2, max_past)}}),
        ):
            log(f"[{spec.name} × {frontend} generate] importing the {name} function")
            imported = fe.import_model(ImportRequest(module, inputs, names, dynamic, Path(tmp) / name))
            ex, build_s = build(imported.mod, tinfo.target, db, dlight=dlight, fast_math=fast_math, prepack=prepacked(db))
            compiled[name] = Compiled(ex, tinfo.device(), imported.params)
            for k, v in imported.timings.items():
                info["timings"][f"{name}_{k}"] = round(v, 3)
            info["timings"][f"{name}_build_s"] = round(build_s, 3)
            info["relax_ops"][name] = sum(imported.relax_ops.values())
            info["patches"] += [f"{name}: {p}" for p in imported.patches]
    return TVMGenerator(compiled["prompt"], compiled["decode"]), info


def generate_cell(cfg, loaded, frontend: str, tinfo, torch_device: str, cell: Cell, log) -> None:
    """The `generate` scenario for one cell (fills `cell` in place)."""
    tag = f"[{loaded.spec.name} × {frontend} generate]"
    gen = _build_cell_generator(cfg, loaded, frontend, tinfo, cell, tag, log)
    if gen is None:
        return
    if not tinfo.device_available:
        cell.set(status="no_device", stage="run", error=f"built for {tinfo.spec}; not run: {tinfo.device_reason}")
        return
    cell.stage = "run"
    ids = random_ids(loaded.spec, cfg.batch, cfg.seq_len, cfg.seed)
    prompt_mod, decode_mod = prompt_module(loaded), decode_module(loaded)
    if torch_device == "cuda":
        loaded.module.to("cuda")
        ids_dev = ids.to("cuda")
    else:
        ids_dev = ids
    eager_ids = eager_generate(prompt_mod, decode_mod, ids_dev, cfg.new_tokens)
    tvm_ids = gen(ids, cfg.new_tokens)
    cell.parity = _token_parity(eager_ids, tvm_ids)
    cell.notes["generated_ids"] = tvm_ids.tolist()
    log(f"{tag} {cfg.new_tokens} tokens: " + ("identical to eager" if cell.parity.ok else
                                              f"DIFFER from eager at token {cell.parity.first_divergence}"))
    timers = {"tvm": wall_timer(gen, ids, cfg.new_tokens),
              "eager": wall_timer(eager_generate, prompt_mod, decode_mod, ids_dev, cfg.new_tokens)}
    stats, cell.timing = time_backends(cfg.plan(), timers, tag)
    tokens = cfg.batch * cfg.new_tokens
    cell.tvm = stats["tvm"]
    cell.baselines["eager"] = Baseline("ok", setup_s=0.0, info={}, latency=stats["eager"])
    cell.speedup["eager"] = round(stats["eager"].median / stats["tvm"].median, 4)
    cell.metrics = dict(tvm_tokens_per_s=round(tokens / (stats["tvm"].median / 1e3), 2),
                        eager_tokens_per_s=round(tokens / (stats["eager"].median / 1e3), 2))
    cell.status = "ok" if cell.parity.ok else "mismatch"
    if not cell.parity.ok:
        cell.error = f"parity: {cell.parity.reason}"
    log(f"{tag} {cell.status}: TVM {cell.metrics['tvm_tokens_per_s']} tok/s, eager {cell.metrics['eager_tokens_per_s']} tok/s")


def _build_cell_generator(cfg, loaded, frontend: str, tinfo, cell: Cell, tag: str, log):
    """The cell's TVMGenerator, its import and build recorded in the cell; None when either failed."""
    cell.stage = "import"
    try:
        gen, info = build_generator(loaded, frontend, tinfo, cfg.batch, cfg.seq_len, cfg.new_tokens, cfg.seed, cfg.db, log,
                                    dlight=cfg.dlight, fast_math=cfg.fast_math)
    except FrontendError as e:
        cell.set(status="import_failed", stage=e.stage, error=str(e), unsupported_ops=e.unsupported)
        log(f"{tag} import failed: {e}")
        return None
    except Exception as e:  # noqa: BLE001 - a build failure is a result
        cell.set(status="build_failed", stage="build", error=short_error(e))
        log(f"{tag} build failed: {cell.error}")
        return None
    cell.timings.update(info["timings"])
    cell.timings["build_s"] = round(info["timings"]["prompt_build_s"] + info["timings"]["decode_build_s"], 3)
    cell.patches = info["patches"]
    cell.notes["relax_op_calls"] = info["relax_ops"]
    return gen


def _token_parity(eager_ids, tvm_ids) -> Parity:
    """Generated ids against eager's: identical, or the first new token that differs."""
    import numpy as np

    same = eager_ids.shape == tvm_ids.shape and bool((eager_ids == tvm_ids).all())
    first_diff = None if same else int(np.argmax((eager_ids != tvm_ids).any(axis=0)))
    return Parity(ok=same, tokens_identical=same, first_divergence=first_diff, tol=0,
                  reason="" if same else f"generated ids differ from eager at new token {first_diff}")
