"""The model zoo: one explicit list of GPT models, and how to build each one.

Every model is used through the same calling conventions (`prefill_module`, `prompt_module`,
`decode_module`):
    prefill: input_ids (B, T) int64 -> logits (B, T, V)
    prompt:  input_ids (B, T) int64 -> logits (B, T, V), present (L, 2, B, nh, T, hs)
    decode:  input_ids (B, T) int64, past (L, 2, B, nh, P, hs) -> logits (B, T, V), present (L, 2, B, nh, P+T, hs)

Weights are always labelled: `random` (seeded init of the exact architecture), `pretrained`
(an embedded checkpoint, or the local Hugging Face cache; never downloaded) or a PATH.
`auto` takes pretrained weights where they are available and random init otherwise, and says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import UserError, unknown
from bench.models import archs
from bench.models.families import FAMILIES, Family

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
WEIGHT_CHOICES = ("auto", "random", "pretrained")
CHECKPOINT_FORMAT = "gptbench-checkpoint-v1"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # a name in bench.models.families.FAMILIES
    arch: dict  # n_layer, n_head, n_embd, context, vocab
    summary: str
    checkpoint: str | None = None  # embedded checkpoint, relative to bench/checkpoints/

    @property
    def kind(self) -> Family:
        """The family's record: its torch code and what weights it can carry."""
        return FAMILIES[self.family]

    @property
    def n_layer(self) -> int:
        return self.arch["n_layer"]

    @property
    def n_head(self) -> int:
        return self.arch["n_head"]

    @property
    def n_embd(self) -> int:
        return self.arch["n_embd"]

    @property
    def context(self) -> int:
        return self.arch.get("block_size") or self.arch["n_positions"]

    @property
    def vocab_size(self) -> int:
        return self.arch["vocab_size"]

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def past_shape(self, batch: int, past_len: int) -> tuple[int, ...]:
        return (self.n_layer, 2, batch, self.n_head, past_len, self.head_size)

    def checkpoint_path(self) -> Path | None:
        return CHECKPOINT_DIR / self.checkpoint if self.checkpoint else None

    def pretrained_source(self) -> str | None:
        """Where pretrained weights would come from on this machine, or None."""
        if self.checkpoint:
            path = self.checkpoint_path()
            return str(path) if path.is_file() else None
        if self.kind.hf_hub:
            return archs.cached_hub_id(self.name)
        return None

    def pretrained_help(self) -> str:
        if self.checkpoint:
            return f"embedded checkpoint bench/checkpoints/{self.checkpoint}"
        if self.kind.hf_hub:
            ids = archs.HF_HUB_IDS.get(self.name)
            if ids:
                return f"local HF cache ({ids[0]})"
        return "none (random init only)"


def _member(family: str, name: str, preset: str, summary: str) -> ModelSpec:
    return ModelSpec(name, family, dict(FAMILIES[family].presets[preset]), summary)


def _nano(name, preset, summary):
    return _member("nanogpt", name, preset, summary)


def _min(name, preset, summary):
    return _member("mingpt", name, preset, summary)


def _hf(name, summary):
    return _member("hf-gpt2", name, name, summary)


SHAKESPEARE_ARCH = dict(n_layer=4, n_head=4, n_embd=256, block_size=128, vocab_size=65)

ZOO: list[ModelSpec] = [
    ModelSpec(
        "nanogpt-shakespeare-char",
        "nanogpt",
        SHAKESPEARE_ARCH,
        "nanoGPT char-level model trained here on tiny Shakespeare (gptbench pretrain)",
        checkpoint="nanogpt-shakespeare-char/ckpt.pt",
    ),
    _nano("nanogpt-tiny", "tiny", "nanoGPT, SDPA attention, test size"),
    _nano("nanogpt-mini", "mini", "nanoGPT, SDPA attention"),
    _nano("nanogpt-small", "small", "nanoGPT, SDPA attention"),
    _nano("nanogpt-medium", "medium", "nanoGPT, SDPA attention"),
    _nano("nanogpt-124m", "124m", "nanoGPT at GPT-2 124M size"),
    _min("mingpt-tiny", "tiny", "minGPT/CS224N, explicit tril mask + masked_fill, test size"),
    _min("mingpt-nano", "nano", "minGPT gpt-nano"),
    _min("mingpt-micro", "micro", "minGPT gpt-micro"),
    _min("mingpt-mini", "mini", "minGPT gpt-mini"),
    _min("mingpt-gpt2", "gpt2", "minGPT at GPT-2 124M size"),
    _hf("gpt2-tiny", "HF GPT-2 architecture at test size"),
    _hf("distilgpt2", "HF DistilGPT-2"),
    _hf("gpt2", "HF GPT-2 124M"),
    _hf("gpt2-medium", "HF GPT-2 medium"),
    _hf("gpt2-large", "HF GPT-2 large"),
    _hf("gpt2-xl", "HF GPT-2 XL"),
]
MODELS: dict[str, ModelSpec] = {m.name: m for m in ZOO}


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise unknown("model", name, list(MODELS))
    return MODELS[name]


@dataclass
class WeightsInfo:
    """Which weights a model carries; written into every report cell."""

    kind: str  # "random" | "pretrained" | "path"
    source: str  # seed, checkpoint path, hub id or directory
    requested: str  # what the user asked for ("auto", "random", "pretrained" or the PATH)
    note: str = ""

    def label(self) -> str:
        return f"{self.kind}:{self.source}"


@dataclass
class LoadedModel:
    spec: ModelSpec
    module: object  # torch.nn.Module, eval mode
    weights: WeightsInfo
    n_params: int
    vocab: list[str] | None = None  # character vocabulary of a char-level checkpoint
    extra: dict = field(default_factory=dict)


def _init_random(spec: ModelSpec, seed: int):
    import torch

    torch.manual_seed(seed)
    return spec.kind.torch().from_arch(spec.arch)


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())  # shared (tied) tensors once


def meta_param_count(spec: ModelSpec) -> int:
    """Parameter count without allocating weights."""
    import torch

    with torch.device("meta"):
        return count_params(_init_random(spec, 0))


def load_checkpoint(path: Path, spec: ModelSpec) -> tuple[object, list[str] | None, dict]:
    """A `gptbench pretrain` checkpoint: (module, vocab, metadata)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a gptbench checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if ckpt.get("family") != spec.family:
        raise UserError(f"checkpoint {path} holds a {ckpt.get('family')} model, not {spec.family} ({spec.name})")
    arch = ckpt["config"]
    if not spec.kind.checkpoints:
        holders = "/".join(f.name for f in FAMILIES.values() if f.checkpoints)
        raise UserError(f"{spec.name}: gptbench checkpoints hold {holders} models only")
    mismatch = {k: (arch.get(k), v) for k, v in spec.arch.items() if arch.get(k) != v}
    if mismatch:
        raise UserError(f"checkpoint {path} does not match {spec.name}'s architecture: {mismatch} (checkpoint, zoo)")
    module = spec.kind.torch().from_arch(arch)
    module.load_state_dict(ckpt["state_dict"])
    return module, ckpt.get("vocab"), ckpt.get("meta", {})


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_model(name: str, weights: str = "auto", seed: int = 0) -> LoadedModel:
    """Build model `name` in eval mode with `weights` = auto | random | pretrained | PATH."""
    spec = get_spec(name)
    vocab, extra = None, {}
    if weights not in WEIGHT_CHOICES:  # a path
        module, vocab, extra = _load_path(spec, weights)
        info = WeightsInfo("path", str(Path(weights)), weights)
    elif weights == "random":
        module = _init_random(spec, seed)
        info = WeightsInfo("random", f"seed={seed}", weights)
    else:
        module, vocab, extra, info = _load_pretrained(spec, weights, seed)
    module.eval()
    return LoadedModel(spec, module, info, count_params(module), vocab, extra)


def _load_path(spec: ModelSpec, weights: str):
    """--weights PATH: a Hugging Face model directory (hf-gpt2) or a checkpoint. (module, vocab, meta)."""
    path = Path(weights)
    if not path.exists():
        raise UserError(f"--weights {weights}: no such file or directory (or use one of {', '.join(WEIGHT_CHOICES)})")
    if not spec.kind.hf_hub:
        return load_checkpoint(path, spec)
    if not (path / "config.json").is_file():
        raise UserError(f"--weights {weights}: not a Hugging Face model directory (no config.json)")
    try:
        module = spec.kind.torch().load_pretrained(str(path))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"--weights {weights}: cannot load a GPT-2 from it: {e}") from None
    cfg = module.config
    got = dict(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd)
    want = {k: spec.arch[k] for k in got}
    if got != want:
        raise UserError(f"--weights {weights}: architecture {got} is not {spec.name}'s {want}")
    return module, None, {}


def _load_pretrained(spec: ModelSpec, weights: str, seed: int):
    """--weights pretrained (an error where there are none) or auto (random where there are none).
    (module, vocab, meta, WeightsInfo)."""
    source = spec.pretrained_source()
    if source is None and weights == "pretrained":
        raise UserError(
            f"no pretrained weights for {spec.name} on this machine (looked in: {spec.pretrained_help()}); "
            "use --weights random, or --weights PATH to a local copy"
            + (
                " (e.g. one written by `save_pretrained` on a machine with hub access, or fill the HF cache "
                "with `huggingface-cli download` there and copy ~/.cache/huggingface)"
                if spec.kind.hf_hub
                else ""
            )
        )
    if source is None:
        info = WeightsInfo("random", f"seed={seed}", weights, note=f"auto: no pretrained weights ({spec.pretrained_help()})")
        return _init_random(spec, seed), None, {}, info
    if spec.checkpoint:
        module, vocab, extra = load_checkpoint(Path(source), spec)
        return module, vocab, extra, WeightsInfo("pretrained", f"{spec.checkpoint}@{_file_digest(Path(source))}", weights)
    return spec.kind.torch().load_pretrained(source), None, {}, WeightsInfo("pretrained", f"hf-cache:{source}", weights)


def prefill_module(loaded: LoadedModel):
    """input_ids (B, T) -> logits (B, T, V)."""
    return loaded.spec.kind.torch().prefill(loaded.module).eval()


def prompt_module(loaded: LoadedModel):
    """input_ids (B, T) -> (logits (B, T, V), present (L, 2, B, nh, T, hs)): generation's first step."""
    return loaded.spec.kind.torch().prompt(loaded.module).eval()


def decode_module(loaded: LoadedModel):
    """(input_ids (B, T), past (L, 2, B, nh, P, hs)) -> (logits (B, T, V), present (L, 2, B, nh, P+T, hs))."""
    return loaded.spec.kind.torch().decode(loaded.module).eval()


def describe(spec: ModelSpec) -> dict:
    """One row of `gptbench models`."""
    return dict(
        name=spec.name,
        family=spec.family,
        params=archs.param_count(spec.arch, spec.kind.untied_head),
        layers=spec.n_layer,
        heads=spec.n_head,
        embd=spec.n_embd,
        context=spec.context,
        vocab=spec.vocab_size,
        pretrained=spec.pretrained_help(),
        available="yes" if spec.pretrained_source() else "no",
        summary=spec.summary,
    )


__all__ = [
    "ZOO",
    "MODELS",
    "ModelSpec",
    "LoadedModel",
    "WeightsInfo",
    "get_spec",
    "load_model",
    "prefill_module",
    "prompt_module",
    "decode_module",
    "describe",
]
