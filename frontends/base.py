"""What every frontend takes and gives.

A frontend turns a PyTorch module (with named tensor inputs) into a Relax `IRModule` whose
weights are separate inputs (`params`), and says what it saw on the way: the ops of the source
graph, the Relax ops it produced, how long export and import took, and any workaround it applied.
A frontend that cannot take a model raises `FrontendError` naming the stage and, where the
reason is missing converters, every unsupported op at once.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ImportRequest:
    module: object  # torch.nn.Module in eval mode
    inputs: tuple  # example torch tensors, in argument order
    input_names: list[str]
    # symbolic dims: {"input_ids": {1: ("seq", 2, 128)}}; None for static shapes
    dynamic: dict[str, dict[int, tuple[str, int, int]]] | None = None
    workdir: Path | None = None  # where a frontend may write files (the ONNX model)
    output_names: list[str] | None = None  # the module's outputs, where the caller knows them


@dataclass
class Imported:
    mod: object  # tvm.IRModule, params detached
    params: list  # weights in argument order after the inputs (tvm tensors)
    source_ops: dict[str, int]
    relax_ops: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)  # export_s, import_s
    patches: list[str] = field(default_factory=list)  # workarounds applied, for the report
    notes: dict = field(default_factory=dict)
    param_names: list[str] | None = None  # the source module's name of each weight in `params`, where the frontend knows it


class FrontendError(Exception):
    """A model this frontend could not take. `stage` is export | import; `unsupported` lists ops."""

    def __init__(self, frontend: str, stage: str, message: str, unsupported: list[str] | None = None):
        self.frontend, self.stage, self.unsupported = frontend, stage, sorted(unsupported or [])
        if self.unsupported:
            message = f"{len(self.unsupported)} unsupported op(s): {', '.join(self.unsupported)}"
        super().__init__(f"{frontend} {stage}: {message}")


class Frontend:
    name: str = ""
    title: str = ""
    supports_symbolic: bool = True
    relay: bool = False  # a Relay importer (TVM <= 0.19): its cells run in an environment that has Relay
    tvm_api: str = ""  # the TVM importer it calls: a TVM build runs its cells only where this resolves (bench.core.tvm_envs.probe)

    def unavailable_reason(self) -> str | None:
        """None when this frontend can run with the installed TVM/torch, else why not."""
        return None

    def import_model(self, req: ImportRequest) -> Imported:  # pragma: no cover - abstract
        raise NotImplementedError


def torch_dynamic_shapes(req: ImportRequest) -> dict | None:
    """torch.export's `dynamic_shapes` for the request (input name -> {axis: Dim}, None for a static input): one Dim
    per name in `req.dynamic`, shared by every input that names it; None when every shape is static."""
    if not req.dynamic:
        return None
    from torch.export import Dim

    dims: dict[str, object] = {}
    return {name: {axis: dims.setdefault(d, Dim(d, min=lo, max=hi)) for axis, (d, lo, hi) in (req.dynamic.get(name) or {}).items()}
            or None for name in req.input_names}


@contextmanager
def timed(timings: dict, key: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = time.perf_counter() - t0


def short_error(e: BaseException, limit: int = 600) -> str:
    """The informative part of an exception: TVM's C++ errors put the message on the last line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip() or type(e).__name__
    if "## Exception summary" in text:  # torch.onnx's report: the first summary line is the cause
        summary = [ln for ln in text.split("## Exception summary", 1)[1].splitlines() if ln.strip()]
        text = summary[0] if summary else text
    if "\nWhile executing %" in text:  # torch.fx's interpreter (torch.export's decompositions): the cause is first,
        cause, rest = text.split("\nWhile executing %", 1)  # then the node, the model's source line, a tlparse hint
        where = re.search(r'File "([^"]+)", line (\d+)', rest)
        text = cause.strip() + (f" (at {Path(where[1]).name}:{where[2]}, node %{rest.split(' ', 1)[0]})" if where else "")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else text
    msg = f"{type(e).__name__}: {last}" if len(lines) > 1 else f"{type(e).__name__}: {text}"
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def relax_op_counts(mod) -> dict[str, int]:
    """Relax operator calls in every Relax function of `mod` (e.g. {'relax.matmul': 12})."""
    import tvm
    from tvm import relax

    counts: Counter = Counter()

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            counts[expr.op.name] += 1

    for _, func in mod.functions.items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return dict(sorted(counts.items()))


def detach(mod) -> tuple[object, list]:
    """Split weights off `main`: (module, [weights in argument order])."""
    from tvm import relax

    mod, params = relax.frontend.detach_params(mod)
    return mod, list(params.get("main", []))


def tensor_type(var):
    """The tensor type of a Relax var (0.27 calls it `ty`, older releases `struct_info`)."""
    return getattr(var, "ty", None) or getattr(var, "struct_info", None)
