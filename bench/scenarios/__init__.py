"""Scenarios: what is measured, as a module and its inputs. One registry, SCENARIOS: a new scenario is one
entry (its module and inputs, the tokens it needs, the length its shape is named by) plus its tests.

- prefill: input_ids (B, T) -> logits (B, T, V): a prompt's forward pass.
- decode:  input_ids (B, 1), past (L, 2, B, nh, P, hs) -> logits (B, 1, V), present: one
  generation step with a KV cache of P tokens (the dominant cost of generation). The past is what
  the eager model computes for a random prompt of P tokens, so its values are realistic.
- generate: greedy generation of N new tokens after a T-token prompt (prefill once, then decode
  steps with a growing cache); compared as tokens/s with identical token ids required.
- classify: input_ids (B, T), right-padded -> class logits (B, 2): the model with a sequence-classification
  head pooled at each row's last non-pad token (bench.models.classify; HF's GPT2ForSequenceClassification
  for the GPT-2 family), on a batch of padded pairs. The top-1 agreement is the predicted labels' agreement.

Inputs are drawn from a seeded generator: the same command gives the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.core.errors import UserError
from bench.models import decode_module, prefill_module, prompt_module


@dataclass
class Case:
    module: object  # torch.nn.Module with the scenario's signature
    inputs: tuple  # torch tensors
    input_names: list[str]
    output_names: list[str]
    dynamic: dict | None  # symbolic dims for the frontends, None when static
    notes: dict = field(default_factory=dict)  # what the module is, beyond its scenario (into each cell's notes)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    length: str  # the flag its shape is named and swept by: "seq_len" (T tokens) or "past_len" (a KV cache of P)
    tokens: Callable[[int, int, int], int]  # (seq_len, past_len, new_tokens) -> the context it needs
    what: Callable[[int, int, int], str]  # (seq_len, past_len, new_tokens) -> those tokens in the flags' words, for a message
    case: Callable | None  # (loaded, batch, seq_len, past_len, symbolic, seed) -> Case; None: not one call (generate)


def _prefill(loaded, batch, seq_len, _past_len, symbolic, seed) -> Case:
    ids = random_ids(loaded.spec, batch, seq_len, seed)
    dynamic = {"input_ids": {1: ("seq", 2, loaded.spec.context)}} if symbolic else None
    return Case(prefill_module(loaded), (ids,), ["input_ids"], ["logits"], dynamic)


def _decode(loaded, batch, _seq_len, past_len, symbolic, seed) -> Case:
    ids = random_ids(loaded.spec, batch, 1, seed)
    past = past_for(loaded, batch, past_len, seed)
    dynamic = {"past": {4: ("past", 2, loaded.spec.context - 1)}} if symbolic else None
    return Case(decode_module(loaded), (ids, past), ["input_ids", "past"], ["logits", "present"], dynamic)


def _classify(loaded, batch, seq_len, _past_len, symbolic, seed) -> Case:
    from bench.models.classify import classify_module

    ids = padded_pairs(loaded.spec, batch, seq_len, seed)
    dynamic = {"input_ids": {1: ("seq", 2, loaded.spec.context)}} if symbolic else None
    module, notes = classify_module(loaded, seed)
    return Case(module, (ids,), ["input_ids"], ["logits"], dynamic, notes)


SCENARIO_LIST: list[Scenario] = [
    Scenario("prefill", "a prompt's forward pass: logits for every position", "seq_len", lambda t, p, n: t,
             lambda t, p, n: f"--seq-len {t}", _prefill),
    Scenario("decode", "one generation step with a KV cache of --past-len tokens", "past_len", lambda t, p, n: p + 1,
             lambda t, p, n: f"--past-len {p} + 1 new token", _decode),
    Scenario("generate", "greedy generation: prefill, then --new-tokens decode steps", "seq_len", lambda t, p, n: t + n,
             lambda t, p, n: f"--seq-len {t} + --new-tokens {n}", None),
    Scenario("classify", "sequence classification of padded pairs, pooled at the last non-pad token", "seq_len",
             lambda t, p, n: t, lambda t, p, n: f"--seq-len {t}", _classify),
]
SCENARIOS: dict[str, Scenario] = {s.name: s for s in SCENARIO_LIST}
SHAPES = ("static", "symbolic")


def shape_text(scenario: str, batch: int, seq_len: int, past_len: int) -> str:
    """'b1 × 128', or 'b1 × past 128' for a scenario whose shape is named by its past length (decode); a scenario
    that is not in the registry (an older report's, `ppl`) by its sequence length."""
    entry = SCENARIOS.get(scenario)
    return f"b{batch} × " + (f"past {past_len}" if entry is not None and entry.length == "past_len" else str(seq_len))


def check_fits(spec, scenario: str, seq_len: int, past_len: int, new_tokens: int) -> None:
    """UserError when the scenario's tokens exceed the model's context."""
    sc = SCENARIOS[scenario]
    need = sc.tokens(seq_len, past_len, new_tokens)
    if need > spec.context:
        raise UserError(f"{spec.name}: {sc.what(seq_len, past_len, new_tokens)} = {need} tokens exceeds the model's context of {spec.context}")


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


def padded_pairs(spec, batch: int, seq_len: int, seed: int):
    """(B, T) ids of `batch` pairs (two random sentences each, concatenated as GPT-2 classifiers take a pair),
    right-padded: each row's length is seeded in [T/2, T-1], so every row ends in padding; no pad id inside."""
    import torch

    from bench.models.classify import pad_id

    gen = torch.Generator().manual_seed(seed)
    pad = pad_id(spec)
    ids = torch.randint(0, pad, (batch, seq_len), generator=gen, dtype=torch.long)  # ids below pad: never a pad
    if seq_len >= 2:
        lengths = torch.randint(max(1, seq_len // 2), seq_len, (batch,), generator=gen)
        ids[torch.arange(seq_len) >= lengths[:, None]] = pad
    return ids


def make_case(loaded, scenario: str, batch: int, seq_len: int, past_len: int, shapes: str, seed: int = 0) -> Case:
    sc = SCENARIOS.get(scenario)
    if sc is None or sc.case is None:
        raise ValueError(f"make_case does not build scenario {scenario!r}")
    return sc.case(loaded, batch, seq_len, past_len, shapes == "symbolic", seed)
