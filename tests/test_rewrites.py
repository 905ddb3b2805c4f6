"""The harness's Relax rewrites: pow(x, 3) as products (always), fast math (opt-in), with parity."""

from __future__ import annotations

import numpy as np
import pytest

from bench.pipeline.config import RunConfig, RunState
from bench.pipeline.execute import execute_cell


def _power_module(exponent: float):
    import tvm
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 8), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.power(x, relax.const(exponent, "float32")))
            out = bb.emit_output(relax.op.add(y, x))
        bb.emit_func_output(out)
    return bb.get(), tvm


@pytest.mark.parametrize("exponent, rewritten", [(3.0, 1), (2.0, 1), (2.5, 0), (7.0, 0)])
def test_pow_to_mul_rewrites_small_integer_powers_only_and_keeps_the_values(exponent, rewritten):
    from bench.build.rewrites import pow_to_mul, rewrite_counts
    from frontends.base import relax_op_counts

    mod, tvm = _power_module(exponent)
    assert rewrite_counts(mod)["PowToMul"] == rewritten
    with tvm.transform.PassContext(opt_level=3):
        new = pow_to_mul()(mod)
    assert relax_op_counts(new).get("relax.power", 0) == 1 - rewritten
    x = np.random.default_rng(0).uniform(0.5, 2.0, (4, 8)).astype("float32")
    outs = []
    for m in (mod, new):
        ex = tvm.compile(m, target="llvm")
        vm = tvm.relax.VirtualMachine(ex, tvm.cpu())
        outs.append(vm["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6)
    np.testing.assert_allclose(outs[0], x ** exponent + x, rtol=1e-5)


@pytest.mark.parametrize("model, gelus, powers", [("gpt2-tiny", 0, 2), ("nanogpt-tiny", 2, 0), ("mingpt-tiny", 0, 2)])
@pytest.mark.parametrize("frontend", ["export", "onnx"])
def test_fast_math_builds_stay_within_tolerance_and_say_what_they_rewrote(model, gelus, powers, frontend):
    cfg = RunConfig(models=[model], frontends=[frontend], seq_len=16, warmup=0, repeat=2, solo=0, fast_math=True, isolate=False)
    cell = execute_cell(cfg, RunState(), model, frontend)
    assert cell.status == "ok", cell.error
    assert cell.parity.rel_l2 < 1e-5
    assert cell.variant == "+fastmath" and cell.id.endswith("|+fastmath")
    assert cell.rewrites["PowToMul"] == powers and cell.rewrites["DecomposeGelu"] == gelus
    assert cell.rewrites["FastMathTransform"] >= 2  # softmax in every layer at least
