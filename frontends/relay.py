"""Relay, through TVM v0.19 (the last release that has it): `relay-torch` and `relay-onnx`.

These frontends run in the TVM 0.19 environment (`make tvm-relay`, bench.core.tvm_envs); a run asks
for them like any other frontend and their cells run in that environment's interpreter.

- relay-torch: `torch.jit.trace` → `relay.frontend.from_pytorch`. Its own check lists every
  TorchScript op it lacks at once ("The following operators are not implemented: [...]"); the
  cell records them as unsupported ops.
- relay-onnx: the TorchScript ONNX exporter (`torch.onnx.export(dynamo=False)`, opset 17: Relay's
  importer predates the dynamo exporter's opset 18 files) → `relay.frontend.from_onnx` with the
  weights frozen in. Every ONNX op type its converter table lacks is listed at once, before import.

Built with `relay.build` at opt_level 3 (bench.pipeline.relay_cell), run by the graph executor.
"""

from __future__ import annotations

import ast
import re
from collections import Counter

from frontends.base import (
    Frontend,
    FrontendError,
    Imported,
    ImportRequest,
    short_error,
    timed,
)
from frontends.onnx_import import TORCHSCRIPT_OPSET, export_onnx_torchscript


def relay_op_counts(mod) -> dict[str, int]:
    """Calls per Relay operator in `main` (the analogue of relax_ops)."""
    from tvm import relay

    counts: Counter = Counter()

    def visit(node):
        if isinstance(node, relay.Call) and isinstance(node.op, type(relay.op.get("add"))):
            counts[node.op.name] += 1

    relay.analysis.post_order_visit(mod["main"], visit)
    return dict(sorted(counts.items()))


class _Relay(Frontend):
    relay = True
    supports_symbolic = False


class RelayTorchFrontend(_Relay):
    name = "relay-torch"
    tvm_api = "tvm.relay.frontend.from_pytorch"
    title = "torch.jit.trace → relay.frontend.from_pytorch (TVM 0.19)"

    def import_model(self, req: ImportRequest) -> Imported:
        import torch
        from tvm import relay

        timings: dict[str, float] = {}
        try:
            with timed(timings, "export_s"), torch.no_grad():
                traced = torch.jit.trace(req.module, tuple(req.inputs), check_trace=False)
        except Exception as e:  # noqa: BLE001 - a failed trace is a result
            raise FrontendError(self.name, "export", short_error(e)) from e
        ops = Counter(n.kind() for n in traced.inlined_graph.nodes() if n.kind().startswith("aten::"))
        shapes = [(n, tuple(x.shape)) for n, x in zip(req.input_names, req.inputs, strict=True)]
        try:
            with timed(timings, "import_s"):
                mod, params = relay.frontend.from_pytorch(traced, shapes)
        except NotImplementedError as e:
            missing = re.search(r"not implemented: (\[.*?\])", str(e))
            if missing:
                raise FrontendError(self.name, "import", "", unsupported=ast.literal_eval(missing.group(1))) from e
            raise FrontendError(self.name, "import", short_error(e)) from e
        except Exception as e:  # noqa: BLE001
            raise FrontendError(self.name, "import", short_error(e)) from e
        return Imported(mod, params, dict(sorted(ops.items())), relay_op_counts(mod), timings)


class RelayOnnxFrontend(_Relay):
    name = "relay-onnx"
    tvm_api = "tvm.relay.frontend.from_onnx"
    title = f"torch.onnx.export (TorchScript, opset {TORCHSCRIPT_OPSET}) → relay.frontend.from_onnx (TVM 0.19)"

    def import_model(self, req: ImportRequest) -> Imported:
        from tvm import relay
        from tvm.relay.frontend import onnx as relay_onnx

        timings: dict[str, float] = {}
        path = req.workdir / "model-relay.onnx"
        try:
            with timed(timings, "export_s"):
                model = export_onnx_torchscript(req, path)
        except Exception as e:  # noqa: BLE001
            raise FrontendError(self.name, "export", short_error(e)) from e
        ops = Counter(n.op_type for n in model.graph.node)
        missing = sorted(set(ops) - set(relay_onnx._get_convert_map(TORCHSCRIPT_OPSET)))
        if missing:
            raise FrontendError(self.name, "import", "", unsupported=missing)
        try:
            with timed(timings, "import_s"):
                mod, params = relay.frontend.from_onnx(model, {n: tuple(x.shape) for n, x in zip(req.input_names, req.inputs, strict=True)},
                                                       freeze_params=True)
        except Exception as e:  # noqa: BLE001
            raise FrontendError(self.name, "import", short_error(e)) from e
        notes = dict(onnx_exporter=f"TorchScript (dynamo=False), opset {TORCHSCRIPT_OPSET}", onnx_bytes=path.stat().st_size)
        return Imported(mod, params, dict(sorted(ops.items())), relay_op_counts(mod), timings, notes=notes)
