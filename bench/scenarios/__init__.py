"""Scenarios: what is measured, as a module and its inputs.

- prefill: input_ids (B, T) -> logits (B, T, V): a prompt's forward pass.
- decode:  input_ids (B, 1), past (L, 2, B, nh, P, hs) -> logits (B, 1, V), present: one
  generation step with a KV cache of P tokens (the dominant cost of generation). The past is what
  the eager model computes for a random prompt of P tokens, so its values are realistic.
- generate: greedy generation of N new tokens after a T-token prompt (prefill once, then decode
  steps with a growing cache); compared as tokens/s with identical token ids required.

Inputs are drawn from a seeded generator: the same command gives the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import UserError
from bench.models import decode_module, prefill_module, prompt_module

SCENARIOS = ("prefill", "decode", "generate")
SHAPES = ("static", "symbolic")


@dataclass
class Case:
    module: object  # torch.nn.Module with the scenario's signature
    inputs: tuple  # torch tensors
    input_names: list[str]
    output_names: list[str]
    dynamic: dict | None  # symbolic dims for the frontends, None when static


def check_fits(spec, scenario: str, seq_len: int, past_len: int, new_tokens: int) -> None:
    """UserError when the scenario's tokens exceed the model's context."""
    need = {"prefill": seq_len, "decode": past_len + 1, "generate": seq_len + new_tokens}[scenario]
    if need > spec.context:
        what = {"prefill": f"--seq-len {seq_len}", "decode": f"--past-len {past_len} + 1 new token",
                "generate": f"--seq-len {seq_len} + --new-tokens {new_tokens}"}[scenario]
        raise UserError(f"{spec.name}: {what} = {need} tokens exceeds the model's context of {spec.context}")


def random_ids(spec, batch: int, length: int, seed: int):
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, spec.vocab_size, (batch, length), generator=gen, dtype=torch.long)


def past_for(loaded, batch: int, past_len: int, seed: int):
    """The eager model's KV cache after a random prompt of past_len tokens: (L, 2, B, nh, P, hs)."""
    import torch

    prompt = random_ids(loaded.spec, batch, past_len, seed + 1)
    with torch.inference_mode():
        _, present = prompt_module(loaded)(prompt)
    return present.clone()


def make_case(loaded, scenario: str, batch: int, seq_len: int, past_len: int, shapes: str, seed: int = 0) -> Case:
    spec = loaded.spec
    if scenario == "prefill":
        ids = random_ids(spec, batch, seq_len, seed)
        dynamic = {"input_ids": {1: ("seq", 2, spec.context)}} if shapes == "symbolic" else None
        return Case(prefill_module(loaded), (ids,), ["input_ids"], ["logits"], dynamic)
    if scenario == "decode":
        ids = random_ids(spec, batch, 1, seed)
        past = past_for(loaded, batch, past_len, seed)
        dynamic = {"past": {4: ("past", 2, spec.context - 1)}} if shapes == "symbolic" else None
        return Case(decode_module(loaded), (ids, past), ["input_ids", "past"], ["logits", "present"], dynamic)
    raise ValueError(f"make_case does not build scenario {scenario!r}")
