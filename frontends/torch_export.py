"""torch.export → Relax (`tvm.relax.frontend.torch.from_exported_program`).

The module is exported with `torch.export.export` (symbolic dims through `torch.export.Dim` when
asked), decomposed to core ATen ops as TVM's importer would do itself, checked against the
importer's converter table (so every unsupported op is listed at once), then imported with the
weights kept as function inputs.

One workaround, recorded in the report when used: `aten.cat` drops empty 1-D inputs. Hugging
Face's DynamicCache starts each layer from `torch.tensor([])` and concatenates onto it; PyTorch
accepts the 1-D empty tensor beside 4-D ones, Relax's concat does not.
"""

from __future__ import annotations

from collections import Counter

from frontends.base import Frontend, FrontendError, Imported, ImportRequest, detach, relax_op_counts, short_error, tensor_type, timed


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


CUSTOM_CONVERTERS = {"cat.default": _cat_dropping_empty}


def export_program(req: ImportRequest):
    """torch.export.export of the request, with its symbolic dims."""
    import torch
    from torch.export import Dim

    dynamic_shapes = None
    if req.dynamic:
        dims: dict[str, object] = {}
        dynamic_shapes = {}
        for name in req.input_names:
            spec = req.dynamic.get(name)
            if not spec:
                dynamic_shapes[name] = None
                continue
            dynamic_shapes[name] = {}
            for axis, (dim_name, lo, hi) in spec.items():
                dims.setdefault(dim_name, Dim(dim_name, min=lo, max=hi))
                dynamic_shapes[name][axis] = dims[dim_name]
    with torch.no_grad():
        return torch.export.export(req.module, tuple(req.inputs), dynamic_shapes=dynamic_shapes)


def aten_op_counts(ep) -> Counter:
    return Counter(n.target.__name__ for n in ep.graph.nodes if n.op == "call_function")


class TorchExportFrontend(Frontend):
    name = "export"
    title = "torch.export → relax.frontend.torch.from_exported_program"

    def import_model(self, req: ImportRequest) -> Imported:
        from tvm.relax.frontend.torch import from_exported_program
        from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

        timings: dict[str, float] = {}
        try:
            with timed(timings, "export_s"):
                ep = export_program(req)
                ep = ep.run_decompositions()  # core ATen, as from_exported_program would
        except Exception as e:  # noqa: BLE001 - every export failure is a recorded result
            raise FrontendError(self.name, "export", short_error(e)) from e
        ops = aten_op_counts(ep)
        supported = set(ExportedProgramImporter().convert_map) | set(CUSTOM_CONVERTERS)
        missing = [op for op in ops if op not in supported]
        if missing:
            raise FrontendError(self.name, "import", "", unsupported=missing)
        try:
            with timed(timings, "import_s"):
                mod = from_exported_program(
                    ep,
                    keep_params_as_input=True,
                    unwrap_unit_return_tuple=True,
                    custom_convert_map=CUSTOM_CONVERTERS,
                    run_ep_decomposition=False,
                )
                mod, params = detach(mod)
        except Exception as e:  # noqa: BLE001
            raise FrontendError(self.name, "import", short_error(e)) from e
        patches = []
        if ops.get("cat.default") and _had_empty_cat(ep):
            patches.append("aten.cat: dropped empty 1-D inputs (HF DynamicCache's initial empty tensor)")
        return Imported(mod, params, dict(sorted(ops.items())), relax_op_counts(mod), timings, patches)


def _had_empty_cat(ep) -> bool:
    """Whether some aten.cat in the graph takes an empty 1-D tensor."""
    for n in ep.graph.nodes:
        if n.op == "call_function" and n.target.__name__ == "cat.default":
            for a in n.args[0]:
                val = getattr(a, "meta", {}).get("val")
                if val is not None and val.dim() == 1 and val.shape[0] == 0:
                    return True
    return False
