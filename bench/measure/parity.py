"""Numerical parity of a compiled model against eager PyTorch.

For each output: max absolute difference and relative L2 error ||got - ref|| / ||ref||; for the
logits (first output) also top-1 agreement, the fraction of positions whose argmax token is the
same. A cell passes when the worst relative L2 error is at most the tolerance and nothing is NaN
or of the wrong shape. Top-1 agreement is reported, not gated: on random-init models logits can
be near-ties, where a 1e-7 difference flips an argmax without being wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where outputs are compared: a usage error never needs numpy
    import numpy as np

DEFAULT_TOL = {"float32": 1e-5, "float16": 2e-2}


def compare(ref: list[np.ndarray], got: list[np.ndarray], tol: float, names: list[str] | None = None) -> dict:
    import numpy as np

    names = names or [f"out{i}" for i in range(len(ref))]
    result = dict(tol=tol, outputs={}, ok=True, reason="")
    if len(ref) != len(got):
        result.update(ok=False, reason=f"{len(got)} outputs, eager has {len(ref)}")
        return result
    worst_rel = worst_abs = 0.0
    for name, r, g in zip(names, ref, got, strict=True):
        r64, g64 = np.asarray(r, dtype=np.float64), np.asarray(g, dtype=np.float64)
        if r64.shape != g64.shape:
            result.update(ok=False, reason=f"{name}: shape {g64.shape}, eager has {r64.shape}")
            return result
        if not np.isfinite(g64).all():
            result.update(ok=False, reason=f"{name}: {int((~np.isfinite(g64)).sum())} non-finite values")
            return result
        diff = g64 - r64
        max_abs = float(np.abs(diff).max()) if diff.size else 0.0
        norm = float(np.linalg.norm(r64))
        rel = float(np.linalg.norm(diff) / norm) if norm > 0 else max_abs
        result["outputs"][name] = dict(max_abs=max_abs, rel_l2=rel)
        worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, max_abs)
    logits_ref, logits_got = np.asarray(ref[0]), np.asarray(got[0])
    result["top1_agree"] = float((logits_ref.argmax(-1) == logits_got.argmax(-1)).mean())
    result["max_abs"], result["rel_l2"] = worst_abs, worst_rel
    if worst_rel > tol:
        result.update(ok=False, reason=f"relative L2 error {worst_rel:.3g} > tolerance {tol:g}")
    return result
