"""The frontends: registry, unsupported-op listing, recorded failure reasons, parity of what imports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.build.relax import Compiled, build
from bench.core.env import usable_cores
from bench.models import load_model
from bench.scenarios import make_case
from bench.targets import make_target
from frontends import REGISTRY, get_frontend
from frontends.base import FrontendError, ImportRequest


def test_registry_names_are_unique_and_complete():
    names = [f.name for f in REGISTRY]
    assert len(names) == len(set(names))
    assert set(names) == {"export", "onnx", "fx", "relay-onnx", "relay-torch"}


def test_each_frontend_names_the_tvm_importer_a_build_must_have_and_its_default_environment():
    from bench.core.tvm_envs import ENVS, current
    from bench.pipeline.config import default_env

    assert {f.name: f.tvm_api for f in REGISTRY} == {
        "export": "tvm.relax.frontend.torch.from_exported_program", "onnx": "tvm.relax.frontend.onnx.from_onnx",
        "fx": "tvm.relax.frontend.torch.from_fx", "relay-onnx": "tvm.relay.frontend.from_onnx", "relay-torch": "tvm.relay.frontend.from_pytorch"}
    assert {f.name: default_env(f.name) for f in REGISTRY} == {"export": current(), "onnx": current(), "fx": current(),
                                                               "relay-onnx": "0.19", "relay-torch": "0.19"}
    assert all(default_env(f.name) in ENVS for f in REGISTRY)


class TwoUnsupported(torch.nn.Module):
    def forward(self, x):
        return torch.special.i0(x) + torch.special.erfcx(x)


@pytest.mark.parametrize("frontend", ["export", "fx"])
def test_every_unsupported_op_is_listed_at_once(frontend, tmp_path):
    req = ImportRequest(TwoUnsupported().eval(), (torch.randn(2, 3),), ["x"], None, tmp_path)
    with pytest.raises(FrontendError) as info:
        get_frontend(frontend).import_model(req)
    ops = info.value.unsupported
    assert len(ops) == 2, ops
    assert any("i0" in op for op in ops) and any("erfcx" in op for op in ops)
    assert "2 unsupported op(s)" in str(info.value)


def test_onnx_lists_ops_the_importer_lacks(tmp_path):
    class DetAndCelu(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.det(x).unsqueeze(-1).unsqueeze(-1) + torch.nn.functional.celu(x)

    req = ImportRequest(DetAndCelu().eval(), (torch.randn(2, 3, 3),), ["x"], None, tmp_path)
    with pytest.raises(FrontendError) as info:
        get_frontend("onnx").import_model(req)
    assert info.value.stage == "import"
    assert "Det" in info.value.unsupported


def test_fx_failure_on_hf_gpt2_says_why():
    lm = load_model("gpt2-tiny", "random")
    case = make_case(lm, "prefill", 1, 8, 0, "static")
    with pytest.raises(FrontendError) as info:
        get_frontend("fx").import_model(ImportRequest(case.module, case.inputs, case.input_names))
    assert info.value.stage == "export"
    assert "control flow" in str(info.value)


def test_fx_rejects_symbolic_shapes_clearly():
    lm = load_model("nanogpt-tiny", "random")
    case = make_case(lm, "prefill", 1, 8, 0, "symbolic")
    with pytest.raises(FrontendError, match="static input shapes only"):
        get_frontend("fx").import_model(ImportRequest(case.module, case.inputs, case.input_names, case.dynamic))


@pytest.mark.parametrize("model", ["nanogpt-tiny", "gpt2-tiny"])
def test_symbolic_sequence_length_export_runs_other_lengths(model):
    """A symbolic-shape build serves sequence lengths other than the example's, with parity."""
    lm = load_model(model, "random")
    case = make_case(lm, "prefill", 1, 16, 0, "symbolic")
    imported = get_frontend("export").import_model(ImportRequest(case.module, case.inputs, case.input_names, case.dynamic))
    tinfo = make_target("llvm", usable_cores())
    ex, _ = build(imported.mod, tinfo.target)
    compiled = Compiled(ex, tinfo.device(), imported.params)
    for t in (5, 16, 40):
        ids = torch.randint(0, lm.spec.vocab_size, (1, t), generator=torch.Generator().manual_seed(t))
        with torch.inference_mode():
            ref = case.module(ids).numpy()
        got = compiled(ids)[0]
        assert got.shape == ref.shape
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-5


def test_onnx_imports_the_causal_mask_as_a_constant(tmp_path):
    """torch.onnx's causal mask for is_causal attention (an initializer read only by Trilu) comes in as a constant, not a
    weight parameter, so it folds at build time (as a weight its tril fused into a kernel MetaSchedule cannot schedule)."""
    loaded = load_model("nanogpt-tiny", "random", seed=0)
    case = make_case(loaded, "prefill", 1, 128, 0, "static", 0)
    imported = get_frontend("onnx").import_model(ImportRequest(case.module, case.inputs, case.input_names, None, tmp_path))
    assert any(p.startswith("2 causal-mask initializer(s)") for p in imported.patches), imported.patches
    params = [str(v.name) for v in imported.mod["main"].params]
    trils = [ln for ln in imported.mod.script().splitlines() if "R.tril(" in ln]
    assert len(trils) == 2 and not any(f"R.tril({p}" in ln for ln in trils for p in params), trils


def test_a_torch_fx_interpreter_error_is_said_by_its_cause_and_where():
    """torch.export's decompositions end their errors with a tlparse hint; the cause is the first line."""
    from frontends.base import short_error

    err = ValueError("Cannot view a tensor with shape torch.Size([4, 16, 64]) and strides (64, 256, 1) as a tensor with shape (64, 64)!\n\n"
                     "While executing %view_7 : [num_users=1] = call_function[target=torch.ops.aten.view.default](args = (%reshape_1, [-1, 64]))\n"
                     "Original traceback:\nFile \"/x/transformers/pytorch_utils.py\", line 115, in forward\n"
                     "Use tlparse to see full graph. (https://github.com/pytorch/tlparse)")
    assert short_error(err) == ("ValueError: Cannot view a tensor with shape torch.Size([4, 16, 64]) and strides (64, 256, 1) as a "
                                "tensor with shape (64, 64)! (at pytorch_utils.py:115, node %view_7)")
