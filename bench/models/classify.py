"""Sequence classification: a GPT with a classification head, pooled at the last token that is not padding.

The seed's way is Hugging Face's `GPT2ForSequenceClassification`: the transformer's last hidden states go
through `score`, a bias-free Linear (n_embd -> num_labels), and each row's logits are taken at its last
non-pad token (the rightmost position whose id is not `pad_token_id`). The GPT-2 family uses that class
itself; nanoGPT and minGPT get the same head and the same pooling here. The head's weights are a seeded
random init (no trained head is on this machine): the cell's weights say so.

    classify: input_ids (B, T) int64, right-padded with PAD -> logits (B, num_labels)
"""

from __future__ import annotations

import torch
import torch.nn as nn

from bench.models.hf_gpt2 import HFClassify

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


HEAD_ATTR = {"nanogpt": "lm_head", "mingpt": "head"}  # the LM head of each family's model


# torch 2.13's core-ATen decomposition of scaled_dot_product_attention gives its output other strides than the
# export traced, and HF GPT-2's Conv1D view of it then fails for a batch > 1 ("Cannot view a tensor with shape
# (B, T, C) and strides ..."): the same failure any HF GPT-2 prefill at batch > 1 records through export. The
# classifier, whose batch is the point, runs HF's eager attention (the same math: matmul, mask, softmax, matmul).
HF_ATTENTION = "eager"


def classify_module(loaded, seed: int) -> tuple[nn.Module, dict]:
    """(input_ids (B, T) -> logits (B, num_labels), notes). The loaded model is taken over: its LM head is replaced
    by the seeded classification head (HF GPT-2: its transformer goes into a GPT2ForSequenceClassification)."""
    spec = loaded.spec
    head = score_head(spec.n_embd, seed)
    notes = {"classify": dict(labels=NUM_LABELS, pad_id=pad_id(spec), head=f"seeded random init (seed {seed + 2}): no trained head here",
                              pooling="last non-pad token")}
    if spec.family == "hf-gpt2":
        loaded.module.config._attn_implementation = HF_ATTENTION
        notes["classify"]["attention"] = f"HF {HF_ATTENTION} attention (torch.export's SDPA decomposition fails at batch > 1)"
        return HFClassify.around(loaded.module, head, pad_id(spec)).eval(), notes
    setattr(loaded.module, HEAD_ATTR[spec.family], head)  # nanoGPT's wte keeps the embedding it was tied to
    return LastTokenClassifier(loaded.module, pad_id(spec)).eval(), notes
