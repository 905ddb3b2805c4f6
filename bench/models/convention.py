"""The zoo's calling conventions for the models written here (nanoGPT, minGPT), whose forward is
`forward(idx, past=None, return_cache=False)`; the Hugging Face family has its own (bench.models.hf_gpt2)."""

from __future__ import annotations

import torch
import torch.nn as nn


class Prefill(nn.Module):
    """input_ids (B, T) -> logits (B, T, V)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)


class Prompt(nn.Module):
    """input_ids (B, T) -> (logits (B, T, V), present (L, 2, B, nh, T, hs)): generation's first step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor):
        return self.model(input_ids, return_cache=True)


class Decode(nn.Module):
    """(input_ids (B, T), past (L, 2, B, nh, P, hs)) -> (logits (B, T, V), present (L, 2, B, nh, P+T, hs))."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, past: torch.Tensor):
        return self.model(input_ids, past)
