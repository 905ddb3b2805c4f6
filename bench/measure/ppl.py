"""Perplexity on real text, eager and through a TVM build (`gptbench ppl`, and the validation
loss of `gptbench run --val-text`).

Tokenization, in this order: the character vocabulary of a char-level checkpoint; the model's
Hugging Face tokenizer if it is in the local cache; otherwise UTF-8 bytes (ids 0-255, for models
whose vocabulary has at least 256 entries), which is labelled as such: a perplexity over bytes is
only comparable with itself, but eager-vs-TVM agreement is still a real test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import UserError
from bench.measure.textdata import perplexity


@dataclass
class Tokens:
    ids: list[int]
    tokenizer: str  # "char-vocab", "hf:<id>", "utf8-bytes"


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read text {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None


def tokenize(loaded, text: str) -> Tokens:
    spec = loaded.spec
    if loaded.vocab:
        stoi = {c: i for i, c in enumerate(loaded.vocab)}
        missing = sorted(set(text) - set(stoi))
        if missing:
            raise UserError(f"the text has characters outside {spec.name}'s vocabulary: {''.join(missing)[:40]!r}")
        return Tokens([stoi[c] for c in text], "char-vocab")
    if spec.kind.hf_hub and loaded.weights.kind == "pretrained":
        from transformers import AutoTokenizer

        hub_id = loaded.weights.source.removeprefix("hf-cache:")
        try:
            tok = AutoTokenizer.from_pretrained(hub_id, local_files_only=True)
            return Tokens(tok(text)["input_ids"], f"hf:{hub_id}")
        except OSError:
            pass  # weights cached without the tokenizer: fall through to bytes
    if spec.vocab_size >= 256:
        return Tokens(list(text.encode("utf-8")), "utf8-bytes")
    raise UserError(f"no tokenizer for {spec.name}: no character vocabulary, no cached HF tokenizer, vocabulary < 256 for bytes")


def split_ids(ids: list[int], split: str) -> list[int]:
    """all | val (the last 10%, as `gptbench pretrain` holds out) | train (the first 90%)."""
    n = int(0.9 * len(ids))
    return {"all": ids, "val": ids[n:], "train": ids[:n]}[split]


def text_parity(loaded, compiled, case_module, ids: list[int], length: int, stride: int) -> dict:
    """Sliding-window NLL and perplexity of `ids`, eager and TVM, and how far apart they are."""
    import torch

    def eager(x):
        with torch.inference_mode():
            return case_module(x)

    e = perplexity(eager, ids, length, stride)
    t = perplexity(lambda x: compiled(x)[0], ids, length, stride)
    rel = abs(t["nll"] - e["nll"]) / abs(e["nll"])
    return dict(eager_nll=round(e["nll"], 6), tvm_nll=round(t["nll"], 6), eager_ppl=round(e["ppl"], 4), tvm_ppl=round(t["ppl"], 4),
                nll_rel_diff=float(f"{rel:.3g}"), tokens_scored=e["tokens"], windows=e["windows"], window=length, stride=stride)
