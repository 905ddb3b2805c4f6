"""Full-size runs: minutes each, opt-in (`make test-slow`, or `pytest -m slow`)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("frontend", ["export", "onnx"])
def test_gpt2_124m_prefill_parity(frontend, gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", "gpt2", "--weights", "random", "--frontend", frontend, "--seq-len", "32",
                              "--repeat", "2", "--warmup", "0", "--out", tmp_path)
    assert code == 0, err
    cell = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    assert cell["parity"]["rel_l2"] < 1e-5
    assert cell["n_params"] == 124_439_808


def test_gpt2_124m_decode_parity(gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", "gpt2", "--weights", "random", "--frontend", "export", "--scenario", "decode",
                              "--past-len", "64", "--repeat", "2", "--warmup", "0", "--out", tmp_path)
    assert code == 0, err
    cell = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    assert cell["parity"]["outputs"]["present"]["rel_l2"] < 1e-5
