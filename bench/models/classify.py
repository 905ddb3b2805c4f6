"""Sequence classification: a GPT with a classification head, pooled at the last token that is not padding.

The seed's way is Hugging Face's `GPT2ForSequenceClassification`: the transformer's last hidden states go
through `score`, a bias-free Linear (n_embd -> num_labels), and each row's logits are taken at its last
non-pad token (the rightmost position whose id is not `pad_token_id`). The GPT-2 family uses that class
itself (bench.models.hf_gpt2); nanoGPT and minGPT get the same head and the same pooling here. The head's weights are a seeded
random init (no trained head is on this machine): the cell's weights say so.

    classify: input_ids (B, T) int64, right-padded with PAD -> logits (B, num_labels)
"""

from __future__ import annotations

import torch
import torch.nn as nn

from bench.models.families import FAMILIES

NUM_LABELS = 2  # a pair is paraphrase or not (MRPC)


def pad_id(spec) -> int:
    """The padding id: the last id of the vocabulary (GPT-2's <|endoftext|>, which GPT-2 classifiers pad with)."""
    return spec.vocab_size - 1


def last_non_pad(input_ids: torch.Tensor, pad: int) -> torch.Tensor:
    """(B,) the index of each row's rightmost token that is not `pad`, computed as transformers does."""
    non_pad = (input_ids != pad).to(torch.int32)  # (B, T)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)  # (T,)
    return (positions * non_pad).argmax(-1)  # (B,)


def score_head(n_embd: int, seed: int) -> nn.Linear:
    """The classification head, seeded: N(0, 0.02) as GPT-2 initialises its linear layers."""
    head = nn.Linear(n_embd, NUM_LABELS, bias=False)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.02, generator=torch.Generator().manual_seed(seed + 2))
    return head


class LastTokenClassifier(nn.Module):
    """A nanoGPT or minGPT whose LM head became the classification head: its logits (B, T, num_labels),
    pooled at each row's last non-pad token."""

    def __init__(self, model: nn.Module, pad: int):
        super().__init__()
        self.model = model
        self.pad = pad

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids)  # (B, T, num_labels)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)  # (B,)
        return logits[rows, last_non_pad(input_ids, self.pad)]  # (B, num_labels)


def with_head(model: nn.Module, head_attr: str, score: nn.Linear, pad: int) -> tuple[nn.Module, dict]:
    """A model of this repository (nanoGPT, minGPT) whose LM head, the attribute `head_attr`, becomes `score`,
    pooled at the last non-pad token: a family's `classify` (bench.models.families)."""
    setattr(model, head_attr, score)
    return LastTokenClassifier(model, pad), {}


def classify_module(loaded, seed: int) -> tuple[nn.Module, dict]:
    """(input_ids (B, T) -> logits (B, num_labels), notes). The loaded model is taken over: its family
    (bench.models.families) puts the seeded classification head where its LM head was."""
    spec = loaded.spec
    module, family_notes = FAMILIES[spec.family].torch().classify(loaded.module, score_head(spec.n_embd, seed), pad_id(spec))
    notes = dict(labels=NUM_LABELS, pad_id=pad_id(spec), head=f"seeded random init (seed {seed + 2}): no trained head here",
                 pooling="last non-pad token", **family_notes)
    return module.eval(), {"classify": notes}
