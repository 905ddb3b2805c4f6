"""Relax rewrites the harness puts in front of TVM's default pipeline (before legalisation).

Why: on llvm, TVM legalises the transcendental functions to scalar libm calls that neither LLVM
nor MetaSchedule can vectorise: `power` to `powf`, `exp` to `expf`, `tanh` to `tanhf`, and `erf`
to an Abramowitz–Stegun formula built on `expf`. GPT's activations are made of exactly these
(nanoGPT's GELU is erf-based, HF GPT-2's `gelu_new` is `0.5·x·(1 + tanh(√(2/π)(x + 0.044715·x³)))`),
so a tuned kernel for them stays scalar: 0.74 ms of a 7.3 ms tuned prefill for the GELU alone on
the default model (znver5, 2 threads), 4.1 ms × 12 layers for GPT-2's on znver3.

- `PowToMul` (always on, exact): `power(x, c)` with c a scalar constant 2, 3 or 4 becomes
  multiplications (`x·x·x`), which vectorise.
- `--fast-math` (opt-in, approximate): `nn.gelu` is decomposed into `0.5·x·(1 + erf(x/√2))`, then
  TVM's own `relax.transform.FastMathTransform` replaces `erf`, `tanh`, `exp` and `softmax` by
  TOPI's polynomial approximations (`fast_erf`, `fast_tanh`, `fast_exp`, `fast_softmax`), which
  vectorise. Their error is of the order of float32 rounding; parity against eager is checked
  as for every build.

Every cell records under `rewrites` how many calls each rewrite changed.

A tuning database is made for one setting of `--fast-math` (the kernels differ), so
`gptbench tune` records it and a build refuses a database made with the other.
"""

from __future__ import annotations

import math

from bench.core import tvm_compat
from frontends.base import relax_op_counts, tensor_type

POW_EXPONENTS = (2.0, 3.0, 4.0)


def _scalar_value(expr):
    """The Python float of a scalar relax constant, else None."""
    value = tvm_compat.constant_value(expr)
    if value is not None and len(value.shape) == 0:
        return float(value.numpy())
    return None


def _call_rewrite_pass(name: str, op_name: str, rewrite):
    """A module pass that replaces every call of the Relax op `op_name`, in every Relax function, by
    `rewrite(call)` (the call itself when that returns None)."""
    import tvm
    from tvm import relax

    @relax.expr_functor.mutator
    class _Rewriter(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if isinstance(call.op, tvm.ir.Op) and call.op.name == op_name:
                new = rewrite(call)
                return call if new is None else new
            return call

    @tvm.transform.module_pass(opt_level=0, name=name)
    def _pass(mod, _ctx):
        mutator = _Rewriter(mod)
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                mutator.builder_.update_func(gv, mutator.visit_expr(func))
        return mutator.builder_.get()

    return _pass


def _pow_as_products(call):
    from tvm import relax

    exponent = _scalar_value(call.args[1])
    if exponent not in POW_EXPONENTS:
        return None
    x = out = call.args[0]
    for _ in range(int(exponent) - 1):
        out = relax.op.multiply(out, x)
    return out


def _gelu_as_erf(call):
    from tvm import relax

    x = call.args[0]
    dtype = tensor_type(x).dtype

    def c(v):
        return relax.const(v, dtype)

    erf = relax.op.erf(relax.op.multiply(x, c(1 / math.sqrt(2))))
    return relax.op.multiply(relax.op.multiply(x, c(0.5)), relax.op.add(erf, c(1.0)))


def pow_to_mul():
    """A module pass: power(x, 2|3|4) -> products of x."""
    return _call_rewrite_pass("gptbench.PowToMul", "relax.power", _pow_as_products)


def decompose_gelu():
    """A module pass: nn.gelu(x) -> 0.5·x·(1 + erf(x/√2)), so that FastMathTransform reaches its erf."""
    return _call_rewrite_pass("gptbench.DecomposeGelu", "relax.nn.gelu", _gelu_as_erf)


def rewrite_passes(fast_math: bool = False) -> list:
    """The passes run before TVM's pipeline, in order (the same for tuning and for builds)."""
    from tvm import relax

    passes = [pow_to_mul()]
    if fast_math:
        passes += [decompose_gelu(), relax.transform.FastMathTransform()]
    return passes




def rewrite_counts(mod, fast_math: bool = False, op_counts: dict[str, int] | None = None) -> dict[str, int]:
    """How many calls each rewrite changes in `mod` (what a cell records under `rewrites`); `op_counts`:
    the module's Relax op counts when the caller has them already (an import records them)."""
    import tvm

    before = op_counts if op_counts is not None else relax_op_counts(mod)
    with tvm.transform.PassContext(opt_level=3):
        after_pow = relax_op_counts(pow_to_mul()(mod))
    out = {"PowToMul": before.get("relax.power", 0) - after_pow.get("relax.power", 0)}
    if fast_math:
        out["DecomposeGelu"] = before.get("relax.nn.gelu", 0)
        out["FastMathTransform"] = sum(before.get(op, 0) for op in ("relax.erf", "relax.tanh", "relax.exp", "relax.nn.softmax")) + out["DecomposeGelu"]
    return out
