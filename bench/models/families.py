"""The zoo's model families: one record each, the one place a family's abilities are written down.

A family's torch code is one module (one readable file, as nanoGPT's `model.py`) that provides
    from_arch(arch) -> nn.Module                       fresh weights of the architecture (the caller seeds torch)
    prefill(model), prompt(model), decode(model)       the zoo's calling conventions (bench.models)
    classify(model, score, pad) -> (nn.Module, notes)  `score` as its head, pooled at the last non-pad token
and, where `hf_hub` is set, load_pretrained(source) for a hub id in the local cache or a local directory.

A new family is that module, its presets in `archs`, one record here and its members in the ZOO
(bench.models). This module imports no torch: `gptbench models` and every usage error read it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from bench.models import archs


@dataclass(frozen=True)
class Family:
    name: str  # as reports and checkpoints name it
    code: str  # the module holding its torch code (above)
    presets: dict[str, dict]  # preset name -> architecture
    untied_head: bool = False  # the output projection has its own weight (else it is tied to the token embedding)
    checkpoints: bool = False  # `gptbench pretrain` checkpoints hold it; a --weights PATH is such a checkpoint
    hf_hub: bool = False  # pretrained weights and tokenizer from the local Hugging Face cache; a --weights PATH is a save_pretrained directory

    def torch(self) -> ModuleType:
        """The family's torch code (imported on first use)."""
        return importlib.import_module(self.code)


# The registry: one explicit list (tests/test_models.py checks that the names are unique and that each code
# module provides the interface above).
FAMILY_LIST: list[Family] = [
    Family("nanogpt", "bench.models.nanogpt", archs.NANOGPT, checkpoints=True),
    Family("mingpt", "bench.models.mingpt", archs.MINGPT, untied_head=True, checkpoints=True),
    Family("hf-gpt2", "bench.models.hf_gpt2", archs.HF_GPT2, hf_hub=True),
]
FAMILIES: dict[str, Family] = {f.name: f for f in FAMILY_LIST}
