"""The embedded pretrained model: training code, the committed checkpoint, loss through TVM."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest
import torch

from bench.core.errors import UserError
from bench.models import MODELS, load_model

DATA = Path(__file__).parent / "data"
SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
SPEC = MODELS["nanogpt-shakespeare-char"]


def test_pretrain_smoke_writes_a_loadable_checkpoint_and_card(gptbench, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text((DATA / "sonnet18.txt").read_text() * 4)
    code, _, err = gptbench("pretrain", "--data", text, "--preset", "smoke", "--out", tmp_path / "ckpt")
    assert code == 0, err
    ckpt = torch.load(tmp_path / "ckpt" / "ckpt.pt", weights_only=True)
    assert ckpt["format"] == "gptbench-checkpoint-v1" and ckpt["family"] == "nanogpt"
    assert ckpt["config"]["vocab_size"] == len(ckpt["vocab"]) == len(set(text.read_text()))
    meta = ckpt["meta"]
    assert meta["steps"] == 30 and meta["val_loss"] > 0 and len(meta["history"]) == 2
    assert meta["history"][-1]["train"] < meta["history"][0]["train"] + 0.5  # it trains, not diverges
    card = (tmp_path / "ckpt" / "MODEL_CARD.md").read_text()
    assert f"{meta['val_loss']} nats/char" in card and "90%" in card
    # a checkpoint of another architecture is refused for the zoo entry, with the difference named
    with pytest.raises(UserError, match="does not match nanogpt-shakespeare-char's architecture"):
        load_model("nanogpt-shakespeare-char", str(tmp_path / "ckpt" / "ckpt.pt"))


def test_pretrain_bad_input_is_a_usage_error(gptbench, tmp_path):
    code, _, err = gptbench("pretrain", "--data", tmp_path / "missing.txt", "--out", tmp_path)
    assert code == 2 and "no such file" in err
    code, _, err = gptbench("pretrain", "--data", DATA / "sonnet18.txt", "--preset", "huge", "--out", tmp_path)
    assert code == 2 and "unknown preset 'huge'" in err


def test_the_committed_checkpoint_is_pretrained_and_good():
    lm = load_model("nanogpt-shakespeare-char")
    assert lm.weights.kind == "pretrained"
    assert lm.vocab and len(lm.vocab) == 65
    meta = lm.extra
    assert meta["val_loss"] <= 1.6, meta["val_loss"]
    assert (SPEC.checkpoint_path().parent / "MODEL_CARD.md").is_file()


def test_shakespeare_model_loss_through_tvm_matches_eager(gptbench, tmp_path):
    code, out, err = gptbench("ppl", "--model", "nanogpt-shakespeare-char", "--text", DATA / "sonnet18.txt", "--stride", "64",
                              "--out", tmp_path)
    assert code == 0, err
    m = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]["metrics"]
    assert m["nll_rel_diff"] <= 1e-4
    assert m["eager_nll"] < 2.5  # a trained char model on Shakespeare's own sonnet; random init gives ~4.2


def test_generate_shakespeare_through_tvm(gptbench):
    code, out, err = gptbench("generate", "--model", "nanogpt-shakespeare-char", "--prompt", "ROMEO:", "--new-tokens", "60", "--check")
    assert code == 0, err
    assert out.startswith("ROMEO:") and len(out.strip()) > 40
    assert "identical to eager" in err


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason=f"{SHAKESPEARE} not present (the text is not part of this repository)")
def test_validation_loss_on_the_held_out_split_eager_and_tvm(gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", "nanogpt-shakespeare-char", "--frontend", "export", "--seq-len", "128",
                              "--repeat", "2", "--warmup", "0", "--no-isolate", "--val-text", SHAKESPEARE, "--val-tokens", "1024",
                              "--out", tmp_path)
    assert code == 0, err
    m = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]["metrics"]
    # eager over the whole held-out split: the model card's validation loss
    assert m["val_split_tokens"] > 100_000
    assert m["val_split_eager_nll"] <= 1.6
    assert m["val_split_eager_nll"] == pytest.approx(load_model("nanogpt-shakespeare-char").extra["val_loss"], abs=1e-3)
    # eager against TVM on the split's first 1024 tokens
    assert m["val_tokens_scored"] == 1024
    assert m["val_nll_rel_diff"] <= 1e-4


def _made_text(n_lines: int = 80, seed: int = 0) -> str:
    """A text made here from characters of the model's vocabulary: lines of random words."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 7))) for _ in range(rng.randint(3, 8))]
        lines.append(" ".join(words).capitalize() + rng.choice(".,;:!?"))
    return "\n".join(lines) + "\n"


def test_validation_loss_on_the_held_out_split_of_a_text_the_test_makes(gptbench, tmp_path):
    """The shared-data test above, on a text made here: always runs. The split is `gptbench pretrain`'s
    held-out 10% and its eager loss is pretrain's validation loss there (as the model card's is on tiny
    Shakespeare); eager against TVM over the first --val-tokens of it."""
    from bench.measure.textdata import window_loss
    from bench.models.pretrain import CharData

    text = _made_text()
    lm = load_model("nanogpt-shakespeare-char")
    assert set(text) <= set(lm.vocab) and len(text) > 2000  # a char model: its vocabulary only
    path = tmp_path / "made.txt"
    path.write_text(text, encoding="utf-8")
    code, out, err = gptbench("run", "--model", "nanogpt-shakespeare-char", "--frontend", "export", "--seq-len", "32",
                              "--repeat", "2", "--warmup", "0", "--solo", "0", "--no-isolate", "--val-text", path, "--val-tokens", "64",
                              "--baselines", "none", "--out", tmp_path / "out")
    assert code == 0, err
    m = json.loads(next((tmp_path / "out").glob("*.json")).read_text())["cells"][0]["metrics"]
    held_out = CharData(text, lm.vocab).val  # what pretrain holds out of this text
    assert m["val_split_tokens"] == len(held_out) - 1 > 64 + 32
    with torch.inference_mode():
        pretrain_val_loss = window_loss(lm.module, held_out, 32)
    assert m["val_split_eager_nll"] == pytest.approx(pretrain_val_loss, abs=1e-5)
    assert m["val_tokens_scored"] == 64 and m["val_windows"] == 2  # --val-tokens caps the TVM comparison
    assert m["val_nll_rel_diff"] <= 1e-4


def test_validation_loss_mechanics_on_a_text_in_the_repository(gptbench, tmp_path):
    """--val-text without the shared data: the held-out 10% of a sonnet, eager and TVM, always run."""
    sonnet = Path(__file__).parent / "data" / "sonnet18.txt"
    code, out, err = gptbench("run", "--model", "nanogpt-shakespeare-char", "--frontend", "export", "--seq-len", "32",
                              "--repeat", "2", "--warmup", "0", "--solo", "0", "--no-isolate", "--val-text", sonnet, "--val-tokens", "0",
                              "--out", tmp_path)
    assert code == 0, err
    m = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]["metrics"]
    n_chars = len(sonnet.read_text(encoding="utf-8"))
    assert abs(m["val_split_tokens"] - n_chars // 10) <= 2  # the last 10%, in characters (char-level model)
    assert m["val_tokens_scored"] == m["val_split_tokens"]  # --val-tokens 0: all of it, through TVM too
    assert m["val_nll_rel_diff"] <= 1e-4
    assert m["val_split_eager_nll"] < 3.0  # trained on Shakespeare; random init gives ~4.2
