"""The Hugging Face GPT-2 family (transformers' `GPT2LMHeadModel`), and wrappers that give it the
zoo's calling convention.

Architectures are written out here (no hub access at run time): a `--weights random` model is the
exact architecture with fresh weights; `pretrained` loads from the local Hugging Face cache only
(`local_files_only=True`), and a PATH is a directory `save_pretrained` wrote.

Two wrappers make HF GPT-2 exportable by every frontend:
- `HFPrefill(input_ids) -> logits`, with an explicit all-ones `attention_mask`: without one,
  transformers 5 adds a packed-sequence check `(diff(position_ids) != 1).cumsum(-1)` that TVM
  imports as a bool cumsum and then fails to compile.
- `HFDecode(input_ids, past) -> (logits, present)`, with the cache as one stacked tensor
  (n_layer, 2, B, nh, P, hs): HF's `DynamicCache` object can't cross an export boundary.
"""

from __future__ import annotations

import torch
import torch.nn as nn

# name: (n_layer, n_head, n_embd, n_positions, vocab_size), hub ids to look for in the local cache
ARCHS: dict[str, dict] = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257),  # 124.4M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024, n_positions=1024, vocab_size=50257),  # 354.8M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280, n_positions=1024, vocab_size=50257),  # 774.0M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600, n_positions=1024, vocab_size=50257),  # 1557.6M
    "distilgpt2": dict(n_layer=6, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257),  # 81.9M
    "gpt2-tiny": dict(n_layer=2, n_head=2, n_embd=64, n_positions=128, vocab_size=1000),  # 0.17M, test size
}

HUB_IDS: dict[str, tuple[str, ...]] = {
    "gpt2": ("openai-community/gpt2", "gpt2"),
    "gpt2-medium": ("openai-community/gpt2-medium", "gpt2-medium"),
    "gpt2-large": ("openai-community/gpt2-large", "gpt2-large"),
    "gpt2-xl": ("openai-community/gpt2-xl", "gpt2-xl"),
    "distilgpt2": ("distilbert/distilgpt2", "distilgpt2"),
    "gpt2-tiny": (),
}


def make_config(arch: dict):
    from transformers import GPT2Config

    vocab = arch["vocab_size"]
    # GPT-2's <|endoftext|> is the last id; keep that true for the small vocabularies too.
    return GPT2Config(**arch, bos_token_id=vocab - 1, eos_token_id=vocab - 1)


def random_init(arch: dict) -> nn.Module:
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel(make_config(arch))


def cached_hub_id(name: str) -> str | None:
    """The first hub id of `name` whose config is in the local Hugging Face cache, else None."""
    from huggingface_hub import try_to_load_from_cache

    for repo_id in HUB_IDS.get(name, ()):
        hit = try_to_load_from_cache(repo_id, "config.json")
        if isinstance(hit, str):
            return repo_id
    return None


def load_pretrained(source: str) -> nn.Module:
    """`source` is a hub id (read from the local cache only) or a local directory."""
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(source, local_files_only=True)


def cache_from_stacked(past: torch.Tensor, config):
    """A DynamicCache holding the stacked (L, 2, B, nh, P, hs) past."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    for i in range(past.shape[0]):
        cache.update(past[i, 0], past[i, 1], i)
    return cache


def stack_cache(cache, n_layer: int) -> torch.Tensor:
    """(L, 2, B, nh, P, hs) from a DynamicCache."""
    return torch.stack([torch.stack((cache.layers[i].keys, cache.layers[i].values)) for i in range(n_layer)])


class HFPrefill(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = torch.ones_like(input_ids)  # (B, T)
        return self.model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits  # (B, T, V)


class HFDecode(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, past: torch.Tensor):
        n_layer = past.shape[0]
        b, t = input_ids.shape
        cache = cache_from_stacked(past, self.model.config)
        mask = torch.ones(b, past.shape[4] + t, dtype=input_ids.dtype, device=input_ids.device)  # (B, P+T)
        out = self.model(input_ids=input_ids, past_key_values=cache, attention_mask=mask, use_cache=True)
        return out.logits, stack_cache(out.past_key_values, n_layer)  # (B, T, V), (L, 2, B, nh, P+T, hs)


class HFPrompt(nn.Module):
    """input_ids (B, T) -> (logits, present (L, 2, B, nh, T, hs)): the first step of generation."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor):
        out = self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=True)
        return out.logits, stack_cache(out.past_key_values, self.model.config.n_layer)
