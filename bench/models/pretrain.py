"""`gptbench pretrain`: train a nanoGPT-style character-level model on a text file.

As nanoGPT's shakespeare_char recipe: character vocabulary from the text, a 90/10 train/validation
split, random (B, T) windows, AdamW with warmup then cosine decay, gradient clipping. The
checkpoint holds the config, the weights, the vocabulary and how it was trained; `MODEL_CARD.md`
beside it says the same for people.

The validation loss reported in the card is the mean cross-entropy (nats per character) over the
whole validation split in non-overlapping windows of the context length, so it is deterministic
and can be recomputed through a TVM build (`bench.measure.textdata.window_loss`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.core.errors import UserError
from bench.measure.textdata import window_loss
from bench.models import CHECKPOINT_FORMAT
from bench.models.nanogpt import GPT, GPTConfig


@dataclass
class TrainConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    block_size: int = 128
    dropout: float = 0.1
    batch_size: int = 32
    max_iters: int = 3000
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337
    threads: int = 0  # 0: all cores

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "max_iters", "eval_iters"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not (0 < self.min_lr <= self.lr):
            raise ValueError(f"need 0 < min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")


# Presets: "char" is the one behind nanogpt-shakespeare-char; "smoke" is for tests.
PRESETS: dict[str, dict] = {
    "char": {},
    "smoke": dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=8, max_iters=30, eval_interval=15,
                  eval_iters=2, warmup_iters=5, dropout=0.0),
}


class CharData:
    """Character vocabulary and a 90/10 split of a text file."""

    def __init__(self, text: str, vocab: list[str] | None = None):
        import torch

        if len(text) < 1000:
            raise UserError(f"training text has {len(text)} characters; need at least 1000")
        self.vocab = vocab or sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.vocab)}
        unknown = set(text) - set(self.stoi)
        if unknown:
            raise UserError(f"text has characters outside the vocabulary: {''.join(sorted(unknown))[:40]!r}")
        data = torch.tensor([self.stoi[c] for c in text], dtype=torch.long)
        n = int(0.9 * len(data))
        self.train, self.val = data[:n], data[n:]

    @classmethod
    def from_file(cls, path: str | Path, vocab: list[str] | None = None) -> CharData:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot read training text {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text") from None
        return cls(text, vocab)

    def encode(self, s: str) -> list[int]:
        missing = sorted(set(s) - set(self.stoi))
        if missing:
            raise UserError(f"characters not in the model's vocabulary: {''.join(missing)!r}")
        return [self.stoi[c] for c in s]

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)


def get_batch(data, block_size: int, batch_size: int, gen):
    import torch

    ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=gen)
    x = torch.stack([data[i : i + block_size] for i in ix])  # (B, T)
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix])  # (B, T)
    return x, y


def lr_at(it: int, cfg: TrainConfig) -> float:
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / cfg.warmup_iters
    ratio = (it - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(1.0, ratio))) * (cfg.lr - cfg.min_lr)


def train(data_path: str, out_dir: str, cfg: TrainConfig, log=print) -> dict:
    """Train, write `ckpt.pt` and `MODEL_CARD.md` under out_dir, return the metadata."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = CharData.from_file(data_path)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    arch = dict(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                vocab_size=len(data.vocab))
    model = GPT(GPTConfig(**arch, dropout=cfg.dropout))
    history, wall = _train_loop(model, _optimizer(model, cfg), data, cfg, gen, log)
    model.eval()
    val = window_loss(lambda ids: model(ids), data.val, cfg.block_size)
    train_sample = window_loss(lambda ids: model(ids), data.train[: len(data.val)], cfg.block_size)
    meta = dict(
        preset_config=asdict(cfg),
        steps=cfg.max_iters,
        tokens_seen=cfg.max_iters * cfg.batch_size * cfg.block_size,
        wall_s=round(wall, 1),
        threads=torch.get_num_threads(),
        torch=str(torch.__version__),
        data=_data_meta(data_path, data),
        val_loss=round(val, 4),
        val_ppl=round(math.exp(val), 3),
        train_loss_same_size=round(train_sample, 4),
        history=history,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(dict(format=CHECKPOINT_FORMAT, family="nanogpt", config=arch, state_dict=state, vocab=data.vocab, meta=meta),
               out / "ckpt.pt")
    (out / "MODEL_CARD.md").write_text(model_card(arch, meta))
    log(f"val loss {val:.4f} nats/char (ppl {math.exp(val):.3f}) over the whole validation split; wrote {out / 'ckpt.pt'}")
    return meta


def _optimizer(model, cfg: TrainConfig):
    """AdamW with weight decay on the matrices only (not on biases and norms)."""
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, cfg.beta2))


def _estimate(model, data: CharData, cfg: TrainConfig) -> dict[str, float]:
    """Mean loss over eval_iters random batches of each split (the same batches every time)."""
    import torch
    from torch.nn import functional as F

    model.eval()
    out = {}
    egen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for split, d in (("train", data.train), ("val", data.val)):
            losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
                      for x, y in (get_batch(d, cfg.block_size, cfg.batch_size, egen) for _ in range(cfg.eval_iters))]
            out[split] = sum(losses) / len(losses)
    model.train()
    return out


def _train_loop(model, opt, data: CharData, cfg: TrainConfig, gen, log) -> tuple[list[dict], float]:
    """max_iters steps with the learning-rate schedule and gradient clipping, an estimate every
    eval_interval steps and at the end; (the estimates, wall seconds)."""
    import torch
    from torch.nn import functional as F
    from tqdm import tqdm

    history = []
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(range(cfg.max_iters), desc="pretrain", unit="it")
    for it in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(it, cfg)
        x, y = get_batch(data.train, cfg.block_size, cfg.batch_size, gen)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (it + 1) % cfg.eval_interval == 0 or it + 1 == cfg.max_iters:
            est = _estimate(model, data, cfg)
            history.append(dict(iter=it + 1, wall_s=round(time.perf_counter() - t0, 1), **est))
            log(f"iter {it + 1}: train {est['train']:.4f}  val {est['val']:.4f}  ({history[-1]['wall_s']} s)")
    return history, time.perf_counter() - t0


def _data_meta(data_path: str, data: CharData) -> dict:
    text_bytes = Path(data_path).read_bytes()
    return dict(file=Path(data_path).name, chars=len(data.train) + len(data.val), sha256=hashlib.sha256(text_bytes).hexdigest(),
                split="first 90% train, last 10% validation")


def model_card(arch: dict, meta: dict) -> str:
    cfg = meta["preset_config"]
    hist = "\n".join(f"| {h['iter']} | {h['wall_s']} | {h['train']:.4f} | {h['val']:.4f} |" for h in meta["history"])
    training = (f"{meta['steps']} steps of batch {cfg['batch_size']} × {cfg['block_size']} ({meta['tokens_seen']:,} characters seen), "
                f"AdamW lr {cfg['lr']} → {cfg['min_lr']} (warmup {cfg['warmup_iters']}, cosine), weight decay {cfg['weight_decay']}, "
                f"dropout {cfg['dropout']}, seed {cfg['seed']}")
    return f"""# nanogpt-shakespeare-char

A nanoGPT-style character-level GPT (`bench/models/nanogpt.py`) trained on this machine by
`gptbench pretrain` on tiny Shakespeare (public domain; the text itself is not in this repository).

| | |
|---|---|
| architecture | {arch['n_layer']} layers, {arch['n_head']} heads, {arch['n_embd']} embedding, context {arch['block_size']}, vocabulary {arch['vocab_size']} characters |
| data | `{meta['data']['file']}`, {meta['data']['chars']:,} characters, sha256 `{meta['data']['sha256'][:16]}…`; {meta['data']['split']} |
| training | {training} |
| wall time | {meta['wall_s']} s on {meta['threads']} CPU threads, torch {meta['torch']} |
| **validation loss** | **{meta['val_loss']} nats/char** (perplexity {meta['val_ppl']}), whole validation split, non-overlapping windows of {arch['block_size']} |
| train loss (same measure, first {meta['data']['chars'] // 10:,} train chars) | {meta['train_loss_same_size']} |

Loss during training (random batches, {cfg['eval_iters']} per estimate):

| iter | wall s | train | val |
|---|---|---|---|
{hist}

Reproduce: `gptbench pretrain --data ../shared/data/tinyshakespeare.txt --preset char --out bench/checkpoints/nanogpt-shakespeare-char`

```json
{json.dumps({k: meta[k] for k in ('steps', 'wall_s', 'val_loss', 'val_ppl')})}
```
"""
