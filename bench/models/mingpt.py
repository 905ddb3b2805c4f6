"""A minGPT / CS224N-style GPT: the other attention op pattern.

After Karpathy's minGPT `model.py` and the Stanford CS224N GPT: separate key/query/value
projections, attention written out by hand with an explicit lower-triangular `tril` buffer,
`masked_fill(mask == 0, -1e10)`, softmax and `att @ v`, and the tanh "new GELU". A frontend sees
matmul/transpose/where/softmax here instead of one scaled_dot_product_attention op.

As in `nanogpt.py`, position ids come from a buffer and `forward` takes an optional stacked
KV cache `past` of shape (n_layer, 2, B, nh, P, hs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from bench.models.classify import with_head
from bench.models.convention import Decode, Prefill, Prompt


@dataclass
class MinGPTConfig:
    block_size: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MinGPTConfig.{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


class NewGELU(nn.Module):
    """GELU with the tanh approximation, as in Google BERT and OpenAI GPT."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: MinGPTConfig):
        super().__init__()
        self.key = nn.Linear(config.n_embd, config.n_embd)
        self.query = nn.Linear(config.n_embd, config.n_embd)
        self.value = nn.Linear(config.n_embd, config.n_embd)
        self.attn_drop = nn.Dropout(config.dropout)
        self.resid_drop = nn.Dropout(config.dropout)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        n = config.block_size
        self.register_buffer("mask", torch.tril(torch.ones(n, n)).view(1, 1, n, n))
        self.n_head = config.n_head
        self.head_size = config.n_embd // config.n_head

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None):
        B, T, C = x.size()
        k = self.key(x).view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        q = self.query(x).view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        v = self.value(x).view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        if past is None:
            p = 0
        else:
            p = past.size(3)
            k = torch.cat((past[0], k), dim=2)  # (B, nh, P+T, hs)
            v = torch.cat((past[1], v), dim=2)  # (B, nh, P+T, hs)
        present = torch.stack((k, v))  # (2, B, nh, P+T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_size))  # (B, nh, T, P+T)
        att = att.masked_fill(self.mask[:, :, p : p + T, : p + T] == 0, -1e10)
        att = F.softmax(att, dim=-1)
        att = self.attn_drop(att)
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_drop(self.proj(y)), present


class Block(nn.Module):
    def __init__(self, config: MinGPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            NewGELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None):
        a, present = self.attn(self.ln1(x), past)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, present


class MinGPT(nn.Module):
    def __init__(self, config: MinGPTConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        torch.nn.init.normal_(self.pos_emb, mean=0.0, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, past: torch.Tensor | None = None, return_cache: bool = False):
        """idx (B, T) -> logits (B, T, vocab); with `past` (L, 2, B, nh, P, hs) or `return_cache`
        also the new cache."""
        t = idx.size(1)
        p = 0 if past is None else past.size(4)
        x = self.drop(self.tok_emb(idx) + self.pos_emb[:, p : p + t, :])  # (B, T, C)
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, None if past is None else past[i])
            presents.append(present)
        logits = self.head(self.ln_f(x))  # (B, T, vocab)
        if past is None and not return_cache:
            return logits
        return logits, torch.stack(presents)  # (L, 2, B, nh, P+T, hs)


# The family's interface (bench.models.families): the zoo's calling conventions, fresh weights, and the
# classifier with its LM head `head` replaced.
prefill, prompt, decode = Prefill, Prompt, Decode


def from_arch(arch: dict) -> MinGPT:
    return MinGPT(MinGPTConfig(**arch))


def classify(model: MinGPT, score: nn.Linear, pad: int):
    return with_head(model, "head", score, pad)
