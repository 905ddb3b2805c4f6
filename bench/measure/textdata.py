"""Loss and perplexity of a causal LM over a long token sequence, by sliding windows.

`logits_fn(ids)` maps a (1, T) int64 tensor to (1, T, V) logits (torch tensor or numpy array), so
the same code scores eager PyTorch and a TVM build. Every window has the same length T, so a
static-shape build serves.

Stride method (Hugging Face's "perplexity of fixed-length models"): windows start at 0, S, 2S, …;
each window scores only the tokens no earlier window scored, each with up to T-1 tokens of
context. Here the last window is shifted back to end exactly at the end of the text (instead of
being shorter), so it only gives its newest tokens more context.
With S = T this is non-overlapping windows: the cheapest, the usual "validation loss".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def _log_softmax(x: np.ndarray) -> np.ndarray:
    import numpy as np

    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def window_starts(n: int, length: int, stride: int) -> list[tuple[int, int]]:
    """[(begin, first scored position within the window)] for a sequence of n tokens."""
    if length < 2:
        raise ValueError(f"window length must be >= 2, got {length}")
    if not 1 <= stride <= length:
        raise ValueError(f"stride must be in [1, window length {length}], got {stride}")
    if n < length + 1:
        raise ValueError(f"need at least {length + 1} tokens for windows of {length}, got {n}")
    out, scored_to = [], 0  # targets ids[1..scored_to] are scored
    begin = 0
    while scored_to < n - 1:
        begin = min(begin, n - 1 - length)
        end = begin + length  # targets ids[begin+1 .. end]
        first = max(scored_to - begin, 0)  # window position whose target is the first unscored one
        out.append((begin, first))
        scored_to = end
        begin += stride
    return out


def score(logits_fn, ids, length: int, stride: int) -> tuple[float, int]:
    """(sum of negative log-likelihoods in nats, number of tokens scored) over the sequence `ids`."""
    import numpy as np
    import torch

    ids = torch.as_tensor(ids, dtype=torch.long)
    nll, count = 0.0, 0
    for begin, first in window_starts(len(ids), length, stride):
        x = ids[begin : begin + length].unsqueeze(0)  # (1, T)
        y = ids[begin + 1 : begin + 1 + length].numpy()  # (T,)
        logits = logits_fn(x)
        logits = logits.detach().numpy() if hasattr(logits, "detach") else np.asarray(logits)
        logp = _log_softmax(logits[0, first:])  # (T - first, V)
        nll -= float(logp[np.arange(len(logp)), y[first:]].sum())
        count += length - first
    return nll, count


def window_loss(logits_fn, ids, length: int) -> float:
    """Mean cross-entropy (nats/token) over non-overlapping windows of `length`."""
    nll, count = score(logits_fn, ids, length, length)
    return nll / count


def perplexity(logits_fn, ids, length: int, stride: int) -> dict:
    nll, count = score(logits_fn, ids, length, stride)
    return dict(nll=nll / count, ppl=math.exp(nll / count), tokens=count,
                windows=len(window_starts(len(ids), length, stride)))
