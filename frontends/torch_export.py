"""torch.export → Relax (`tvm.relax.frontend.torch.from_exported_program`).

The module is exported with `torch.export.export` (symbolic dims through `torch.export.Dim` when
asked), decomposed to core ATen ops as TVM's importer would do itself, checked against the
importer's converter table (so every unsupported op is listed at once), then imported with the
weights kept as function inputs.

Two workarounds, recorded in the report when used: `aten.cat` drops empty 1-D inputs (Hugging
Face's DynamicCache starts each layer from `torch.tensor([])` and concatenates onto it; PyTorch
accepts the 1-D empty tensor beside 4-D ones, Relax's concat does not), and a float16 `aten.addmm`,
`aten.mm` or `aten.matmul` keeps its dtype (TVM's converters make every such product float32).
"""

from __future__ import annotations

from collections import Counter
from functools import partial

from bench.core import tvm_compat
from frontends.base import (
    Frontend,
    FrontendError,
    Imported,
    ImportRequest,
    detach,
    relax_op_counts,
    short_error,
    tensor_type,
    timed,
    torch_dynamic_shapes,
)


def _is_empty_1d(var) -> bool:
    ty = tensor_type(var)
    shape = getattr(ty, "shape", None)
    if shape is None or getattr(ty, "ndim", -1) != 1:
        return False
    try:
        return int(shape[0]) == 0
    except (TypeError, ValueError):  # symbolic length
        return False


def _cat_dropping_empty(node, importer):
    from tvm import relax

    args = importer.retrieve_args(node)
    axis = args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    tensors = [t for t in args[0] if not _is_empty_1d(t)]
    if len(tensors) == 1:
        return tensors[0]
    return importer.block_builder.emit(relax.op.concat(tensors, axis=axis))


def _addmm_in_input_dtype(node, importer):
    """aten.addmm whose result keeps its inputs' dtype. TVM 0.27's converter fixes the matmul's
    out_dtype to float32, so a float16 addmm (GPT-2's Conv1D layers) adds a float16 bias to a float32
    product and fails to type-check. Here a non-float32 addmm accumulates in float32 and casts the
    sum back, as cuBLAS does; float32 takes TVM's own converter, unchanged."""
    from tvm import relax

    x, y, z = importer.retrieve_args(node)[:3]
    dtype = tensor_type(y).dtype
    if dtype == "float32":
        return importer._addmm(node)
    alpha, beta = node.kwargs.get("alpha", 1), node.kwargs.get("beta", 1)
    bb = importer.block_builder
    res = bb.emit(relax.op.matmul(y, z, out_dtype="float32"))
    if alpha != 1:
        res = bb.emit(relax.op.multiply(res, relax.const(alpha, "float32")))
    if beta != 0:
        bias = bb.emit(relax.op.astype(x, "float32"))
        if beta != 1:
            bias = bb.emit(relax.op.multiply(bias, relax.const(beta, "float32")))
        res = bb.emit(relax.op.add(bias, res))
    return bb.emit(relax.op.astype(res, dtype))


def _matmul_in_input_dtype(node, importer):
    """aten.mm / aten.matmul whose result keeps its inputs' dtype (TVM 0.27 makes it float32, and the
    float32 then spreads through the graph by type promotion: a float16 GPT-2's logits came out
    float32). Non-float32 products accumulate in float32 and are cast back; float32 takes TVM's own
    converter, unchanged."""
    import operator
    from functools import partial

    from tvm import relax

    a, b = importer.retrieve_args(node)[:2]
    dtype = tensor_type(a).dtype
    if dtype == "float32":
        return importer._binary_op(partial(relax.op.linear_algebra.matmul, out_dtype="float32"), operator.matmul)(node)
    res = importer.block_builder.emit(relax.op.matmul(a, b, out_dtype="float32"))
    return importer.block_builder.emit(relax.op.astype(res, dtype))


def _stack_as_concat(node, importer):
    """aten.stack for TVM 0.19's importer, which has no converter for it (nor Relax 0.19 a stack op):
    every input gets an axis at `dim`, then they are concatenated along it (exact)."""
    from tvm import relax

    args = importer.retrieve_args(node)
    dim = args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    tensors = list(args[0])
    axis = dim if dim >= 0 else dim + tensor_type(tensors[0]).ndim + 1
    bb = importer.block_builder
    return bb.emit(relax.op.concat([bb.emit(relax.op.expand_dims(t, axis)) for t in tensors], axis=axis))


def _same(node, importer):
    """aten.alias / aten.contiguous for TVM 0.19's importer: the tensor itself (Relax values have no aliasing or strides)."""
    return importer.env[node.args[0]]


def _masked_fill(node, importer):
    """aten.masked_fill.Scalar for TVM 0.19's importer (minGPT's causal mask): where(mask, value, x), exact."""
    from tvm import relax

    x, mask, value = importer.retrieve_args(node)[:3]
    return importer.block_builder.emit(relax.op.where(mask, relax.const(value, tensor_type(x).dtype), x))


# TVM 0.19 only, beside CUSTOM_CONVERTERS: op -> (converter, what it emits, for the report)
LEGACY = {"stack.default": (_stack_as_concat, "expand_dims + concat"), "alias.default": (_same, "the tensor itself"),
          "contiguous.default": (_same, "the tensor itself"), "masked_fill.Scalar": (_masked_fill, "where(mask, value, x)")}
LEGACY_CONVERTERS = {op: fn for op, (fn, _) in LEGACY.items()}
CUSTOM_CONVERTERS = {"cat.default": _cat_dropping_empty, "addmm.default": _addmm_in_input_dtype, "mm.default": _matmul_in_input_dtype,
                     "matmul.default": _matmul_in_input_dtype}


def import_program(ep):
    """`from_exported_program` of a decomposed program, weights kept as inputs, with CUSTOM_CONVERTERS.
    TVM 0.19's takes no `custom_convert_map` (nor `run_ep_decomposition`): there the converters are set
    on its importer, which calls them with the node alone. Its converter table is for the program as
    exported (`softmax.int`, `layer_norm`, ...: its own from_exported_program calls run_decompositions
    and drops the result), so in 0.19 the program is imported undecomposed."""
    from tvm.relax.frontend.torch import exported_program_translator as ept

    if tvm_compat.legacy():
        importer = ept.ExportedProgramImporter()
        converters = {**CUSTOM_CONVERTERS, **LEGACY_CONVERTERS}
        importer.convert_map.update({op: partial(fn, importer=importer) for op, fn in converters.items()})
        return importer.from_exported_program(ep, keep_params_as_input=True, unwrap_unit_return_tuple=True, no_bind_return_tuple=False)
    return ept.from_exported_program(ep, keep_params_as_input=True, unwrap_unit_return_tuple=True, custom_convert_map=CUSTOM_CONVERTERS,
                                     run_ep_decomposition=False)


def export_program(req: ImportRequest):
    """torch.export.export of the request, with its symbolic dims."""
    import torch

    with torch.no_grad():
        return torch.export.export(req.module, tuple(req.inputs), dynamic_shapes=torch_dynamic_shapes(req))


def aten_op_counts(ep) -> Counter:
    return Counter(n.target.__name__ for n in ep.graph.nodes if n.op == "call_function")


class TorchExportFrontend(Frontend):
    name = "export"
    tvm_api = "tvm.relax.frontend.torch.from_exported_program"
    title = "torch.export → relax.frontend.torch.from_exported_program"

    def import_model(self, req: ImportRequest) -> Imported:
        from tvm.relax.frontend.torch.exported_program_translator import (
            ExportedProgramImporter,
        )

        timings: dict[str, float] = {}
        try:
            with timed(timings, "export_s"):
                ep = export_program(req)
                if not tvm_compat.legacy():  # TVM 0.19's importer converts the program as exported (see import_program)
                    ep = ep.run_decompositions()  # core ATen, as from_exported_program would
        except Exception as e:  # noqa: BLE001 - every export failure is a recorded result
            raise FrontendError(self.name, "export", short_error(e)) from e
        ops = aten_op_counts(ep)
        supported = set(ExportedProgramImporter().convert_map) | set(CUSTOM_CONVERTERS) | set(LEGACY_CONVERTERS if tvm_compat.legacy() else ())
        missing = [op for op in ops if op not in supported]
        if missing:
            raise FrontendError(self.name, "import", "", unsupported=missing)
        try:
            with timed(timings, "import_s"):
                mod, params = detach(import_program(ep))
        except Exception as e:  # noqa: BLE001
            raise FrontendError(self.name, "import", short_error(e)) from e
        # from_exported_program keeps the parameters (not buffers or constants, which it binds) as inputs,
        # in the order of ep.named_parameters(): their names let another process rebuild `params` from the module.
        names = [name for name, _ in ep.named_parameters()]
        if len(names) != len(params):
            names = None
        notes = {"aten_graph": "as exported, not decomposed to core ATen (TVM 0.19's importer converts that form)"} if tvm_compat.legacy() else {}
        return Imported(mod, params, dict(sorted(ops.items())), relax_op_counts(mod), timings, _patches(ep, ops), notes, names)


def _patches(ep, ops: Counter) -> list[str]:
    """The workarounds this import applied, for the report."""
    patches = []
    if ops.get("cat.default") and _had_empty_cat(ep):
        patches.append("aten.cat: dropped empty 1-D inputs (HF DynamicCache's initial empty tensor)")
    low = _low_precision_products(ep)
    if low:
        patches.append(f"{', '.join('aten.' + op for op in low)}: accumulated in float32 and cast back to the inputs' dtype "
                       "(TVM's converters give float32)")
    if tvm_compat.legacy():
        patches += [f"aten.{op.removesuffix('.default')}: the harness's converter (TVM 0.19's importer has none; {how})"
                    for op, (_, how) in LEGACY.items() if ops.get(op)]
    return patches


def _low_precision_products(ep) -> list[str]:
    """The matrix products of the graph (addmm, mm, matmul) computed in a dtype other than float32."""
    import torch

    ops = {n.target.__name__.removesuffix(".default") for n in ep.graph.nodes
           if n.op == "call_function" and n.target.__name__ in ("addmm.default", "mm.default", "matmul.default")
           and getattr(n.meta.get("val"), "dtype", torch.float32) != torch.float32}
    return sorted(ops)


def _had_empty_cat(ep) -> bool:
    """Whether some aten.cat in the graph takes an empty 1-D tensor."""
    for n in ep.graph.nodes:
        if n.op == "call_function" and n.target.__name__ == "cat.default":
            for a in n.args[0]:
                val = getattr(a, "meta", {}).get("val")
                if val is not None and val.dim() == 1 and val.shape[0] == 0:
                    return True
    return False
