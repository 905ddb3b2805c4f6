"""ONNX → Relax (`tvm.relax.frontend.onnx.from_onnx`).

The module is exported with `torch.onnx.export(dynamo=True)` (the TorchScript exporter,
`dynamo=False`, fails on HF GPT-2's `aten::diff`), written to the work directory (ONNX Runtime
reads the same file), checked against the importer's converter table (every unsupported op listed
at once) and imported with the weights kept as function inputs. Where onnxscript, which the dynamo
exporter needs, is missing (the TVM 0.19 environment), the TorchScript exporter at opset 17 writes
the file instead, for static shapes, and the cell's notes say so (`onnx_exporter`).
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path

from bench.core import quiet, tvm_compat
from frontends.base import (
    Frontend,
    FrontendError,
    Imported,
    ImportRequest,
    detach,
    relax_op_counts,
    short_error,
    timed,
    torch_dynamic_shapes,
)

ONNX_FILE = "model.onnx"
TORCHSCRIPT_OPSET = 17  # the TorchScript exporter's newest well-tested opset (as relay-onnx)


def torchscript_fallback() -> str | None:
    """Why this environment exports ONNX with the TorchScript exporter instead of the dynamo one, or None.
    The dynamo exporter needs onnxscript, which the TVM 0.19 environment (`make tvm-relay`) does not have."""
    import importlib.util

    if importlib.util.find_spec("onnxscript") is None:
        return f"TorchScript (dynamo=False), opset {TORCHSCRIPT_OPSET}: onnxscript, which the dynamo exporter needs, is not installed here"
    return None


def export_onnx_torchscript(req: ImportRequest, path: Path):
    """torch.onnx.export(dynamo=False) of the request to `path` (static shapes); returns the ModelProto."""
    import onnx
    import torch

    if req.dynamic:
        raise ValueError("the TorchScript ONNX exporter is used here for static shapes only (--shapes static)")
    path.parent.mkdir(parents=True, exist_ok=True)
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), torch.no_grad():
        torch.onnx.export(req.module, tuple(req.inputs), str(path), input_names=list(req.input_names), output_names=req.output_names,
                          opset_version=TORCHSCRIPT_OPSET, dynamo=False)
    return onnx.load(str(path))


def export_onnx(req: ImportRequest, path: Path):
    """torch.onnx.export(dynamo=True) of the request to `path`; returns the ModelProto."""
    import torch

    dynamic_shapes = torch_dynamic_shapes(req)
    quiet.silence_torchvision_skips()  # four known lines per export (bench.core.quiet)
    chatter = io.StringIO()  # the exporter prints its progress; keep it for error messages only
    with contextlib.redirect_stdout(chatter), torch.no_grad():
        program = torch.onnx.export(
            req.module,
            tuple(req.inputs),
            input_names=list(req.input_names),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
            report=False,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=_needs_external_data(req))
    return program.model_proto


def _needs_external_data(req: ImportRequest) -> bool:
    n_bytes = sum(p.numel() * p.element_size() for p in req.module.parameters())
    return n_bytes > 1_800_000_000  # protobuf's 2 GB limit on one file


def inline_scalar_initializers(model) -> int:
    """Turn every one-element initializer into a Constant node (in place); returns how many.

    With keep_params_in_input, `from_onnx` makes every initializer a weight parameter of `main`,
    scalars included (the 3.0 of GPT-2's `pow(x, 3)`, the 0.5 of GELU), so the Relax graph cannot
    see their values; torch.export hands the same scalars to Relax as constants."""
    import numpy as np

    return _as_constants(model, [t for t in model.graph.initializer if int(np.prod(t.dims)) <= 1])


def _as_constants(model, tensors: list) -> int:
    """Move these initializers into Constant nodes at the top of the graph (in place); returns how many."""
    import onnx

    names = {t.name for t in tensors}
    for t in reversed(tensors):
        model.graph.node.insert(0, onnx.helper.make_node("Constant", [], [t.name], value=t))
    keep_inits = [t for t in model.graph.initializer if t.name not in names]
    keep_inputs = [i for i in model.graph.input if i.name not in names]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep_inits)
    del model.graph.input[:]
    model.graph.input.extend(keep_inputs)
    return len(tensors)


def inline_mask_initializers(model) -> int:
    """Turn every initializer read only by Trilu nodes into a Constant node (in place); returns how many.

    That is the causal mask torch.onnx builds for `scaled_dot_product_attention(is_causal=True)`: a
    matrix of ones that Trilu makes triangular. As a weight parameter of `main` its Trilu and the
    comparison after it run at every call, fused into the attention's score kernel, whose schedule
    space TVM 0.27's MetaSchedule cannot generate (reverse-compute-at fails), so that kernel kept its
    default schedule; as a constant the mask is folded at build time, as torch.export's is."""
    readers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    return _as_constants(model, [t for t in model.graph.initializer if readers.get(t.name) == {"Trilu"}])


def scalar_constant_of_shape(model) -> int:
    """Replace each ConstantOfShape of an empty shape (a scalar: HF GPT-2's mask code has them) by a
    Constant node holding that scalar (in place); returns how many. TVM 0.19's from_onnx fails on them
    ("broadcast_to expects the input shape to have the number of ndim at least as the input tensor's")."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    consts = {n.output[0]: numpy_helper.to_array(a.t) for n in model.graph.node if n.op_type == "Constant"
              for a in n.attribute if a.name == "value"}
    consts.update({t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
    replaced = 0
    for i, node in enumerate(model.graph.node):
        shape = consts.get(node.input[0]) if node.op_type == "ConstantOfShape" and node.input else None
        if shape is None or shape.size != 0:
            continue
        value = next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"), np.zeros(1, np.float32))
        scalar = numpy_helper.from_array(value.reshape(()), name=node.output[0])
        model.graph.node[i].CopyFrom(onnx.helper.make_node("Constant", [], [node.output[0]], value=scalar))
        replaced += 1
    return replaced


def onnx_op_counts(model) -> Counter:
    """Op types of the main graph (inline local functions first)."""
    return Counter(node.op_type for node in model.graph.node)


class OnnxFrontend(Frontend):
    name = "onnx"
    tvm_api = "tvm.relax.frontend.onnx.from_onnx"
    title = "torch.onnx.export(dynamo=True) → relax.frontend.onnx.from_onnx"

    def import_model(self, req: ImportRequest) -> Imported:
        import onnx
        from tvm.relax.frontend.onnx import from_onnx
        from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

        timings: dict[str, float] = {}
        path = Path(req.workdir or ".") / ONNX_FILE
        try:
            with timed(timings, "export_s"):
                fallback = torchscript_fallback()
                model = export_onnx_torchscript(req, path) if fallback else export_onnx(req, path)
        except Exception as e:  # noqa: BLE001 - every export failure is a recorded result
            raise FrontendError(self.name, "export", short_error(e)) from e
        if model.functions:
            model = onnx.inliner.inline_local_functions(model)
        ops = onnx_op_counts(model)  # the exported graph's ops, before the change below
        patches = []
        n_scalars = inline_scalar_initializers(model)
        if n_scalars:
            patches.append(f"{n_scalars} scalar initializer(s) imported as constants, not weights (so that e.g. pow(x, 3) "
                           "can be rewritten; the torch.export path has them as constants already)")
        n_masks = inline_mask_initializers(model)
        if n_masks:
            patches.append(f"{n_masks} causal-mask initializer(s) (read only by Trilu) imported as constants, not weights (folded at "
                           "build time, as the torch.export path's mask is; as weights MetaSchedule cannot schedule the attention "
                           "kernel they fuse into)")
        if tvm_compat.legacy():
            n_cos = scalar_constant_of_shape(model)
            if n_cos:
                patches.append(f"{n_cos} ConstantOfShape of an empty shape imported as a scalar Constant "
                               "(TVM 0.19's from_onnx cannot broadcast to a 0-d shape)")
        supported = set(_get_convert_map()) | {"Constant", "If"}
        missing = [op for op in ops if op not in supported]
        if missing:
            raise FrontendError(self.name, "import", "", unsupported=missing)
        shape_dict = dtype_dict = None
        if not req.dynamic:
            shape_dict = {n: list(t.shape) for n, t in zip(req.input_names, req.inputs, strict=True)}
            dtype_dict = {n: str(t.dtype).replace("torch.", "") for n, t in zip(req.input_names, req.inputs, strict=True)}
        try:
            with timed(timings, "import_s"):
                mod = from_onnx(model, shape_dict=shape_dict, dtype_dict=dtype_dict, keep_params_in_input=True)
                mod, params = detach(mod)
        except Exception as e:  # noqa: BLE001
            raise FrontendError(self.name, "import", short_error(e)) from e
        notes = dict(onnx_file=str(path), opset=next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None))
        if fallback:
            notes["onnx_exporter"] = fallback
        return Imported(mod, params, dict(sorted(ops.items())), relax_op_counts(mod), timings, patches=patches, notes=notes)
