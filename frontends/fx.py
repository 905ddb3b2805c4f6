"""torch.fx → Relax (`tvm.relax.frontend.torch.from_fx`).

`torch.fx.symbolic_trace` records the module's Python-level calls (nn.Module calls, torch
functions, tensor methods); `from_fx` converts them with static input shapes. Symbolic tracing
cannot follow data-dependent Python control flow (Hugging Face GPT-2 has it) nor attribute
access such as `idx.device` on a traced value; such failures are reported, not worked around.
"""

from __future__ import annotations

from collections import Counter

from frontends.base import (
    Frontend,
    FrontendError,
    Imported,
    ImportRequest,
    detach,
    relax_op_counts,
    short_error,
    timed,
)


def _node_key(gm, node) -> str | None:
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    if node.op == "call_method":
        return str(node.target)
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__
    return None


def _supported(importer, gm, node) -> bool:
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)) in importer.convert_map
    return _node_key(gm, node) in importer.convert_map


class FxFrontend(Frontend):
    name = "fx"
    tvm_api = "tvm.relax.frontend.torch.from_fx"
    title = "torch.fx.symbolic_trace → relax.frontend.torch.from_fx"
    supports_symbolic = False

    def import_model(self, req: ImportRequest) -> Imported:
        import torch
        from tvm.relax.frontend.torch import from_fx
        from tvm.relax.frontend.torch.fx_translator import TorchFXImporter

        if req.dynamic:
            raise FrontendError(self.name, "import", "from_fx takes static input shapes only (use --shapes static)")
        timings: dict[str, float] = {}
        try:
            with timed(timings, "export_s"):
                gm = torch.fx.symbolic_trace(req.module)
        except Exception as e:  # noqa: BLE001 - every trace failure is a recorded result
            raise FrontendError(self.name, "export", short_error(e)) from e
        importer = TorchFXImporter()
        ops: Counter = Counter()
        missing = set()
        for node in gm.graph.nodes:
            key = _node_key(gm, node)
            if key is None:
                continue
            ops[key] += 1
            if not _supported(importer, gm, node):
                missing.add(key)
        if missing:
            raise FrontendError(self.name, "import", "", unsupported=sorted(missing))
        input_info = [(tuple(t.shape), str(t.dtype).replace("torch.", "")) for t in req.inputs]
        try:
            with timed(timings, "import_s"):
                mod = from_fx(gm, input_info, keep_params_as_input=True, unwrap_unit_return_tuple=True)
                mod, params = detach(mod)
        except Exception as e:  # noqa: BLE001
            raise FrontendError(self.name, "import", short_error(e)) from e
        return Imported(mod, params, dict(sorted(ops.items())), relax_op_counts(mod), timings)
