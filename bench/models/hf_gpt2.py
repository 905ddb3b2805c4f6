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


def make_config(arch: dict):
    from transformers import GPT2Config

    vocab = arch["vocab_size"]
    # GPT-2's <|endoftext|> is the last id; keep that true for the small vocabularies too.
    return GPT2Config(**arch, bos_token_id=vocab - 1, eos_token_id=vocab - 1)


def random_init(arch: dict) -> nn.Module:
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel(make_config(arch))


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


class HFClassify(nn.Module):
    """input_ids (B, T), right-padded -> logits (B, num_labels): transformers' GPT2ForSequenceClassification
    (its own pooling at the last non-pad token), with an all-ones attention mask as HFPrefill (a right pad is
    after the pooled token, so causal attention never sees it)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @classmethod
    def around(cls, lm: nn.Module, score: nn.Linear, pad: int) -> HFClassify:
        """The classifier on `lm`'s transformer (shared, not copied) with `score` as its head."""
        from transformers import GPT2ForSequenceClassification

        config = lm.config.__class__.from_dict({**lm.config.to_dict(), "num_labels": score.out_features, "pad_token_id": pad})
        with torch.device("meta"):  # its own transformer and head are replaced: allocate neither
            clf = GPT2ForSequenceClassification(config)
        clf.transformer, clf.score = lm.transformer, score
        return cls(clf)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits  # (B, num_labels)


# The family's interface (bench.models.families).
from_arch = random_init
prefill, prompt, decode = HFPrefill, HFPrompt, HFDecode

# torch 2.13's core-ATen decomposition of scaled_dot_product_attention gives its output other strides than the
# export traced, and HF GPT-2's Conv1D view of it then fails for a batch > 1 ("Cannot view a tensor with shape
# (B, T, C) and strides ..."): the same failure any HF GPT-2 prefill at batch > 1 records through export. The
# classifier, whose batch is the point, runs HF's eager attention (the same math: matmul, mask, softmax, matmul).
CLASSIFY_ATTENTION = "eager"


def classify(model: nn.Module, score: nn.Linear, pad: int):
    """transformers' GPT2ForSequenceClassification on `model`'s transformer, with HF's eager attention (above)."""
    model.config._attn_implementation = CLASSIFY_ATTENTION
    note = f"HF {CLASSIFY_ATTENTION} attention (torch.export's SDPA decomposition fails at batch > 1)"
    return HFClassify.around(model, score, pad), {"attention": note}
