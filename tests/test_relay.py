"""Relay through TVM 0.19 (`make tvm-relay`): cells in that environment's interpreter, beside Relax
cells in this one, in one report. Skipped, with the reason, where the 0.19 environment is missing."""

from __future__ import annotations

import json

import pytest

from bench.core.tvm_envs import missing_reason

MISSING = missing_reason("0.19")
needs_relay = pytest.mark.skipif(MISSING is not None, reason=f"no TVM 0.19 environment: {MISSING}")
FAST = ["--repeat", "3", "--warmup", "1", "--solo", "0"]


def cells_of(out) -> list[dict]:
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())["cells"]


@needs_relay
def test_relay_frontends_beside_relax_in_one_report_with_parity(gptbench, tmp_path):
    code, _, err = gptbench("run", "--model", "gpt2-tiny,nanogpt-tiny", "--frontend", "export,relay-onnx,relay-torch", "--seq-len", "16",
                            *FAST, "--out", tmp_path)
    assert code == 0, err[-3000:]
    cells = cells_of(tmp_path)
    assert [(c["model"], c["frontend"], c["tvm_env"]) for c in cells] == [
        (m, f, "0.27" if f == "export" else "0.19") for m in ("gpt2-tiny", "nanogpt-tiny") for f in ("export", "relay-onnx", "relay-torch")]
    for c in cells:
        assert c["status"] == "ok", (c["frontend"], c["error"])
        assert c["parity"]["rel_l2"] <= 1e-5
        assert c["tvm"]["n"] == 3
    relay = [c for c in cells if c["tvm_env"] == "0.19"]
    assert all(c["variant"] == "tvm-0.19" and c["notes"]["tvm_version"] == "0.19.0" for c in relay)
    assert all(c["target_spec"].startswith("llvm -mcpu=") and c["relax_ops"] for c in relay)  # Relay op counts
    onnx = next(c for c in relay if c["frontend"] == "relay-onnx")
    assert "TorchScript" in onnx["notes"]["onnx_exporter"] and onnx["source_ops"].get("MatMul")
    torch_cell = next(c for c in relay if c["frontend"] == "relay-torch")
    assert any(op.startswith("aten::") for op in torch_cell["source_ops"])
    md = next(tmp_path.glob("*.md")).read_text()
    assert "relay-torch | tvm-0.19 | ok" in md


@needs_relay
def test_tvm_axis_records_pairs_that_cannot_run_and_blas_is_a_variant(gptbench, tmp_path):
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export,relay-onnx", "--tvm", "0.27,0.19", "--blas",
                            "--scenario", "decode", "--past-len", "12", *FAST, "--out", tmp_path)
    assert code == 0, err[-3000:]
    by = {(c["frontend"], c["tvm_env"]): c for c in cells_of(tmp_path)}
    assert set(by) == {("export", "0.27"), ("relay-onnx", "0.27"), ("export", "0.19"), ("relay-onnx", "0.19")}
    assert by["export", "0.27"]["status"] == "ok"
    relay = by["relay-onnx", "0.19"]
    assert relay["status"] == "ok", relay["error"]
    assert relay["variant"] == "tvm-0.19+cblas" and "-libs=cblas" in relay["target_spec"]
    assert len(relay["parity"]["outputs"]) == 2  # logits and the present KV cache
    for pair in (("relay-onnx", "0.27"), ("export", "0.19")):
        assert by[pair]["status"] == "import_failed" and by[pair]["stage"] == "env"
        assert "runs in TVM" in by[pair]["error"]
    assert len({c["id"] for c in by.values()}) == 4  # compare can tell every cell apart


def test_a_missing_environment_is_a_recorded_cell_with_the_command_that_installs_it(gptbench, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTBENCH_TVM019_PYTHON", str(tmp_path / "no-such-python"))
    missing_reason.cache_clear()
    try:
        code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "relay-torch", "--seq-len", "8", *FAST, "--out", tmp_path)
    finally:
        missing_reason.cache_clear()
    assert code == 0, err
    (cell,) = cells_of(tmp_path)
    assert cell["status"] == "import_failed" and cell["stage"] == "env"
    assert "make tvm-relay" in cell["error"] and "no-such-python" in cell["error"]
