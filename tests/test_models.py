"""The model zoo: registry, weights labelling, and the two calling conventions."""

from __future__ import annotations

import pytest
import torch

from bench.core.errors import UserError
from bench.models import (
    MODELS,
    ZOO,
    archs,
    decode_module,
    describe,
    load_model,
    meta_param_count,
    prefill_module,
)
from tests.conftest import TINY_MODELS


def test_zoo_names_are_unique_and_cover_the_issue():
    names = [m.name for m in ZOO]
    assert len(names) == len(set(names))
    for required in ["nanogpt-tiny", "nanogpt-124m", "mingpt-tiny", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2",
                     "gpt2-tiny", "nanogpt-shakespeare-char"]:
        assert required in MODELS


def test_every_family_is_one_record_whose_code_provides_the_interface():
    from bench.models.families import FAMILIES, FAMILY_LIST

    assert len(FAMILIES) == len(FAMILY_LIST)  # unique names
    assert {m.family for m in ZOO} <= set(FAMILIES)
    for family in FAMILY_LIST:
        code = family.torch()
        needed = ["from_arch", "prefill", "prompt", "decode", "classify"] + (["load_pretrained"] if family.hf_hub else [])
        assert not [n for n in needed if not callable(getattr(code, n, None))], (family.name, code.__name__)


@pytest.mark.parametrize("name,params", [("gpt2", 124_439_808), ("gpt2-xl", 1_557_611_200), ("distilgpt2", 81_912_576),
                                         ("nanogpt-124m", 124_475_904)])
def test_param_counts_match_the_published_architectures(name, params):
    assert describe(MODELS[name])["params"] == params


@pytest.mark.parametrize("name", list(MODELS))
def test_counted_parameters_equal_the_torch_modules(name):
    """`gptbench models` counts parameters from the architecture (no torch): it must agree with the
    module actually built, tied weights counted once (nanoGPT, HF) and minGPT's untied head twice."""
    spec = MODELS[name]
    assert archs.param_count(spec.arch, spec.kind.untied_head) == meta_param_count(spec)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_decode_with_cache_equals_prefill(name):
    """The KV-cache path must give the prefill's last-position logits: the decode scenario measures the real thing."""
    lm = load_model(name, "random")
    spec = lm.spec
    ids = torch.randint(0, spec.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = prefill_module(lm)(ids)  # (B, T, V)
        empty = torch.zeros(spec.past_shape(2, 0))
        _, past = decode_module(lm)(ids[:, :8], empty)
        step, present = decode_module(lm)(ids[:, 8:], past)
    assert past.shape == spec.past_shape(2, 8)
    assert present.shape == spec.past_shape(2, 9)
    torch.testing.assert_close(step[:, 0], full[:, 8], rtol=1e-5, atol=1e-5)


def test_random_weights_are_seeded_and_labelled():
    a, b = load_model("nanogpt-tiny", "random", seed=3), load_model("nanogpt-tiny", "random", seed=3)
    assert a.weights.kind == "random" and a.weights.source == "seed=3"
    for (ka, va), (_, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka


def test_auto_without_pretrained_weights_says_random_and_why():
    lm = load_model("gpt2-tiny", "auto")
    assert lm.weights.kind == "random"
    assert "no pretrained weights" in lm.weights.note


def test_pretrained_when_none_is_available_is_an_error_not_a_fallback():
    with pytest.raises(UserError, match="no pretrained weights for nanogpt-tiny"):
        load_model("nanogpt-tiny", "pretrained")


def test_unreadable_weights_path_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_model("nanogpt-tiny", str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_model("nanogpt-tiny", str(bad))


def test_hf_weights_path_round_trip(tmp_path):
    lm = load_model("gpt2-tiny", "random", seed=5)
    lm.module.save_pretrained(tmp_path)
    again = load_model("gpt2-tiny", str(tmp_path))
    assert again.weights.kind == "path"
    ids = torch.arange(10).unsqueeze(0)
    with torch.inference_mode():
        torch.testing.assert_close(prefill_module(again)(ids), prefill_module(lm)(ids))


def test_unknown_model_names_the_choices():
    with pytest.raises(UserError, match="unknown model 'gpt3'.*gpt2"):
        load_model("gpt3")
