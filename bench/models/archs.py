"""The zoo's architectures as plain data, importable without torch.

`gptbench models`, `--help` and every usage error (an unknown model, a shape beyond a model's
context) need only these tables; the model classes in nanogpt, mingpt and hf_gpt2 take their
presets from here, so each architecture is written down once.
"""

from __future__ import annotations

# nanoGPT presets: name -> (n_layer, n_head, n_embd, block_size, vocab_size)
NANOGPT: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=128, vocab_size=512),  # 0.14M
    "mini": dict(n_layer=4, n_head=4, n_embd=128, block_size=256, vocab_size=4096),  # 1.4M
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=8192),  # 13.9M
    "medium": dict(n_layer=8, n_head=8, n_embd=512, block_size=512, vocab_size=16384),  # 33.8M
    "124m": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304),  # 124.5M
}

# minGPT presets: minGPT's model_type table, plus a test-size "tiny" and GPT-2 124M.
MINGPT: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=128, vocab_size=512),  # 0.17M
    "nano": dict(n_layer=3, n_head=3, n_embd=48, block_size=128, vocab_size=1024),  # 0.19M
    "micro": dict(n_layer=4, n_head=4, n_embd=128, block_size=256, vocab_size=4096),  # 1.9M
    "mini": dict(n_layer=6, n_head=6, n_embd=192, block_size=256, vocab_size=8192),  # 5.9M
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257),  # 163.0M (untied head)
}

# Hugging Face GPT-2: name -> (n_layer, n_head, n_embd, n_positions, vocab_size)
HF_GPT2: dict[str, dict] = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257),  # 124.4M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024, n_positions=1024, vocab_size=50257),  # 354.8M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280, n_positions=1024, vocab_size=50257),  # 774.0M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600, n_positions=1024, vocab_size=50257),  # 1557.6M
    "distilgpt2": dict(n_layer=6, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257),  # 81.9M
    "gpt2-tiny": dict(n_layer=2, n_head=2, n_embd=64, n_positions=128, vocab_size=1000),  # 0.17M, test size
}

# Hub ids to look for in the local Hugging Face cache (never downloaded).
HF_HUB_IDS: dict[str, tuple[str, ...]] = {
    "gpt2": ("openai-community/gpt2", "gpt2"),
    "gpt2-medium": ("openai-community/gpt2-medium", "gpt2-medium"),
    "gpt2-large": ("openai-community/gpt2-large", "gpt2-large"),
    "gpt2-xl": ("openai-community/gpt2-xl", "gpt2-xl"),
    "distilgpt2": ("distilbert/distilgpt2", "distilgpt2"),
    "gpt2-tiny": (),
}

def param_count(arch: dict, untied_head: bool) -> int:
    """Parameters of a zoo architecture, counted without building it (tied weights once).

    Every family has the same GPT-2 block with biases: two LayerNorms (2E each), the QKV
    projection (3E² + 3E), the attention output (E² + E) and the MLP (4E² + 4E, 4E² + E), i.e.
    12E² + 13E per layer; plus token and position embeddings and the final LayerNorm.
    tests/test_models.py checks this against the torch modules for the whole zoo.
    """
    e, layers, vocab = arch["n_embd"], arch["n_layer"], arch["vocab_size"]
    context = arch.get("block_size") or arch["n_positions"]
    head = vocab * e if untied_head else 0  # an output projection of its own (bench.models.families)
    return vocab * e + context * e + layers * (12 * e * e + 13 * e) + 2 * e + head


def cached_hub_id(name: str) -> str | None:
    """The first hub id of `name` whose config is in the local Hugging Face cache, else None."""
    from huggingface_hub import try_to_load_from_cache

    for repo_id in HF_HUB_IDS.get(name, ()):
        hit = try_to_load_from_cache(repo_id, "config.json")
        if isinstance(hit, str):
            return repo_id
    return None
