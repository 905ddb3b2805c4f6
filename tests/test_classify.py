"""The classify scenario: a sequence-classification head pooled at the last non-pad token (HF's
GPT2ForSequenceClassification for the GPT-2 family, the same head on nanoGPT and minGPT), on padded pairs,
through the frontends, with parity on the class logits and the predicted labels' agreement."""

from __future__ import annotations

import json

import pytest
import torch

from bench.models import load_model
from bench.models.classify import NUM_LABELS, pad_id
from bench.scenarios import SCENARIOS, make_case, padded_pairs


def test_padded_pairs_end_in_padding_and_are_seeded():
    spec = load_model("gpt2-tiny", "random").spec
    ids = padded_pairs(spec, 8, 16, seed=3)
    pad = pad_id(spec)
    assert ids.shape == (8, 16) and torch.equal(ids, padded_pairs(spec, 8, 16, seed=3))
    for row in ids:
        n = int((row != pad).sum())
        assert 8 <= n <= 15, "a row is at least half the length and ends in padding"
        assert bool((row[:n] != pad).all()) and bool((row[n:] == pad).all()), "right padding, no pad inside"


@pytest.mark.parametrize("model", ["gpt2-tiny", "nanogpt-tiny", "mingpt-tiny"])
def test_a_row_is_classified_at_its_last_token_whatever_the_padding(model):
    """Pooling at the last non-pad token: a padded row's logits are those of the same tokens unpadded."""
    loaded = load_model(model, "random", seed=0)
    case = make_case(loaded, "classify", 4, 16, 0, "static", seed=0)
    ids = case.inputs[0]
    with torch.inference_mode():
        logits = case.module(ids)
        assert logits.shape == (4, NUM_LABELS)
        for b in range(4):
            n = int((ids[b] != pad_id(loaded.spec)).sum())
            alone = case.module(ids[b:b + 1, :n])
            torch.testing.assert_close(logits[b], alone[0], rtol=1e-5, atol=1e-6)


def test_classify_is_named_by_its_sequence_length():
    from bench.tuning.database import default_db_dir

    class Info:  # the target key's inputs
        spec = {"kind": "llvm", "mcpu": "znver4", "num-cores": 2}

    assert SCENARIOS["classify"].length == "seq_len"
    assert default_db_dir("gpt2", "classify", 4, 64, 128, Info, True).name == "gpt2-classify-b4-t64-prepack"


def test_classify_runs_through_every_relax_frontend_with_parity(gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", "gpt2-tiny,nanogpt-tiny,mingpt-tiny", "--frontend", "export,onnx",
                              "--scenario", "classify", "--batch", "4", "--seq-len", "16", "--warmup", "1", "--repeat", "3",
                              "--solo", "0", "--memory", "off", "--out", tmp_path, "--no-history")
    assert code == 0, err
    report = json.loads(next(tmp_path.glob("*-run.json")).read_text())
    cells = report["cells"]
    assert len(cells) == 6
    for c in cells:
        assert c["scenario"] == "classify" and c["status"] == "ok", (c["model"], c["frontend"], c.get("error"))
        assert c["parity"]["ok"] and c["parity"]["rel_l2"] <= 1e-5
        assert c["parity"]["top1_agree"] == 1.0, "TVM predicts eager's label for every pair"
