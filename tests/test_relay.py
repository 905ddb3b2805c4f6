"""Relay through TVM 0.19 (`make tvm-relay`): cells in that environment's interpreter, beside Relax
cells in this one, in one report; the Relax frontends there too, untuned. Skipped, with the reason,
where the 0.19 environment is missing."""

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
    relax = by["export", "0.19"]  # Relax in 0.19: --blas is relay.build's, not applied and said so
    assert relax["status"] == "ok", relax["error"]
    assert relax["variant"] == "tvm-0.19" and "-libs=cblas" not in relax["target_spec"] and "not applied" in relax["notes"]["blas"]
    assert len(relax["parity"]["outputs"]) == 2
    cannot = by["relay-onnx", "0.27"]
    assert cannot["status"] == "import_failed" and cannot["stage"] == "env" and "has no Relay" in cannot["error"]
    assert len({c["id"] for c in by.values()}) == 4  # compare can tell every cell apart


@needs_relay
def test_relax_frontends_in_tvm_019_beside_relay_and_relax_027(gptbench, tmp_path):
    """Issue 13: one report separates the frontend's effect (Relay vs Relax, in 0.19) from the version's (Relax 0.19 vs 0.27)."""
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export,onnx,fx,relay-onnx", "--tvm", "0.27,0.19", "--seq-len", "16",
                            *FAST, "--out", tmp_path)
    assert code == 0, err[-3000:]
    by = {(c["frontend"], c["tvm_env"]): c for c in cells_of(tmp_path)}
    assert len(by) == 8 and len({c["id"] for c in by.values()}) == 8
    for frontend in ("export", "onnx", "relay-onnx"):
        c = by[frontend, "0.19"]
        assert c["status"] == "ok" and c["parity"]["rel_l2"] < 1e-5, (frontend, c["error"])
        assert c["variant"] == "tvm-0.19" and c["notes"]["tvm_version"] == "0.19.0" and c["tvm"]["n"] == 3
    for frontend in ("export", "onnx"):
        relax = by[frontend, "0.19"]
        assert "zero pipeline" in relax["notes"]["pipeline"] and "untuned" in relax["notes"]["tuning"]
        assert relax["target_spec"] == by["relay-onnx", "0.19"]["target_spec"]  # the same target as Relay's
        assert relax["relax_ops"].get("relax.matmul") and relax["rewrites"] == {"PowToMul": 0}
        assert by[frontend, "0.27"]["status"] == "ok"
    assert "TorchScript" in by["onnx", "0.19"]["notes"]["onnx_exporter"]  # no onnxscript in the 0.19 environment
    assert any("aten.stack" in p for p in by["export", "0.19"]["patches"])
    fx = by["fx", "0.19"]  # runs there, and fails as in 0.27 (nanoGPT reads idx.device): a recorded failure with its reason
    assert fx["status"] == "import_failed" and fx["stage"] == "import" and "device" in fx["error"]
    assert by["relay-onnx", "0.27"]["stage"] == "env"
    md = next(tmp_path.glob("*.md")).read_text()
    assert "| export | tvm-0.19 | ok" in md and "| onnx | tvm-0.19 | ok" in md


def test_relax_in_tvm_019_is_recorded_not_run_outside_its_limits():
    from bench.pipeline.config import RunConfig
    from bench.pipeline.runner import env_reason

    cfg = RunConfig(models=["nanogpt-tiny"], frontends=["export"], scenario="generate", seq_len=16, new_tokens=4, tvm=["0.19"])
    assert "llvm, float32, --shapes static, prefill or decode" in env_reason(cfg, "export", "0.19")
    assert "has no Relay" in env_reason(cfg, "relay-torch", "0.27")


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


@needs_relay
def test_relay_tuning_finds_or_makes_its_database_and_times_plain_relay_as_untuned(gptbench, tmp_path):
    """--tune-budget with a Relay frontend: the cell tunes its own MetaSchedule database in TVM 0.19 (Relay
    integration), builds with it, and times the plain relay.build as the untuned baseline; a second run
    finds the database and tunes nothing."""
    cache = tmp_path / "cache"
    args = ["run", "--model", "nanogpt-tiny", "--frontend", "relay-onnx", "--seq-len", "16", "--tune-budget", "12",
            "--tune-cache", cache, "--baselines", "eager,untuned", *FAST]
    code, _, err = gptbench(*args, "--out", tmp_path / "first")
    assert code == 0, err[-3000:]
    (cell,) = cells_of(tmp_path / "first")
    assert cell["status"] == "ok" and cell["parity"]["ok"], cell.get("error")
    t = cell["tuning"]
    db = t["path"]
    assert db.startswith(str(cache / "tvm-0.19.0")) and db.endswith("nanogpt-tiny-prefill-b1-t16-relay-onnx"), db
    assert t["tuned_in_this_run"]["trials"] > 0 and t["records"] >= t["tuned_in_this_run"]["trials"]
    assert 1 <= t["matched"] <= t["tasks"], t
    assert cell["timings"]["tune_s"] > 0 and cell["timings"]["build_s"] > 0
    untuned = cell["baselines"]["untuned"]
    assert untuned["status"] == "ok" and "plain relay.build" in untuned["info"]["what"]
    assert cell["speedup"]["untuned"] > 0

    code, _, err = gptbench(*args, "--out", tmp_path / "second")
    assert code == 0, err[-3000:]
    (again,) = cells_of(tmp_path / "second")
    assert again["tuning"]["from_cache"] is True and "tuned_in_this_run" not in again["tuning"]
    assert (again["tuning"]["path"], again["tuning"]["records"], again["tuning"]["hash"]) == (db, t["records"], t["hash"])


def test_budget_tuning_in_tvm_027_is_for_its_relax_cells_only():
    """A run with Relay frontends alone tunes nothing in TVM 0.27 (each Relay cell tunes its own database)."""
    from bench.pipeline.autotune import tuning_frontends
    from bench.pipeline.config import RunConfig

    def cfg(frontends, tvm=None):
        return RunConfig(models=["nanogpt-tiny"], frontends=frontends, tune_budget=10.0, tvm=tvm)

    assert tuning_frontends(cfg(["relay-onnx", "relay-torch"])) == []
    assert tuning_frontends(cfg(["relay-onnx", "onnx", "export"])) == ["onnx", "export"]
    assert tuning_frontends(cfg(["relay-onnx", "onnx"])) == ["onnx"]
    assert tuning_frontends(cfg(["export"], tvm=["0.19"])) == []


@needs_relay
def test_minGPT_through_export_in_tvm_019_with_the_harness_converters(gptbench, tmp_path):
    """TVM 0.19's from_exported_program lacks masked_fill.Scalar, alias and contiguous (minGPT's causal mask):
    the harness's converters import it with parity, and the report says which it used."""
    code, _, err = gptbench("run", "--model", "mingpt-tiny", "--frontend", "export", "--tvm", "0.19", "--seq-len", "16", *FAST, "--out", tmp_path)
    assert code == 0, err[-3000:]
    (cell,) = cells_of(tmp_path)
    assert cell["status"] == "ok" and cell["parity"]["rel_l2"] < 1e-5, cell["error"]
    assert any(p.startswith("aten.masked_fill.Scalar: the harness's converter") and "where(mask, value, x)" in p for p in cell["patches"])


@needs_relay
def test_gpt2_through_onnx_in_tvm_019_with_its_scalar_constant_of_shape_and_isnan(gptbench, tmp_path):
    """HF GPT-2's ONNX graph has ConstantOfShape of an empty shape (TVM 0.19's from_onnx cannot import it) and
    isnan (0.19's LegalizeOps has no rule): the harness imports the first as a scalar Constant and legalizes
    the second through topi.isnan, with parity, and the report says so."""
    code, _, err = gptbench("run", "--model", "gpt2-tiny", "--frontend", "onnx", "--tvm", "0.19", "--seq-len", "16", *FAST, "--out", tmp_path)
    assert code == 0, err[-3000:]
    (cell,) = cells_of(tmp_path)
    assert cell["status"] == "ok" and cell["parity"]["rel_l2"] < 1e-5, cell["error"]
    assert any("ConstantOfShape of an empty shape imported as a scalar Constant" in p for p in cell["patches"])


@needs_relay
def test_a_relax_cell_in_tvm_019_under_a_tune_budget_builds_untuned_and_says_so(gptbench, tmp_path):
    """--tune-budget with the untuned baseline and a Relax frontend in TVM 0.19 (nothing to tune there): the
    cell runs untuned, drops the untuned baseline with a note, and the run goes on (it crashed the run once)."""
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--tvm", "0.19", "--seq-len", "16",
                            "--tune-budget", "5", "--tune-cache", tmp_path / "cache", "--baselines", "eager,untuned", *FAST,
                            "--out", tmp_path)
    assert code == 0, err[-3000:]
    (cell,) = cells_of(tmp_path)
    assert cell["status"] == "ok" and "untuned" in cell["notes"]["tuning"], cell["error"]
    assert "untuned not run in the TVM 0.19 cells" in cell["notes"]["baselines"] and "untuned" not in cell["baselines"]
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing tuned: no 0.27 cell, a 0.19 Relax cell tunes nothing


def test_a_harness_failure_in_one_cell_is_recorded_and_the_run_goes_on(monkeypatch):
    from bench.pipeline import runner
    from bench.pipeline.config import RunConfig, RunState

    calls = []

    def run_cell(cfg, state, model, frontend, env):
        calls.append(frontend)
        if frontend == "onnx":
            raise ValueError("boom")
        cell = runner.new_cell(cfg, model, frontend, env)
        cell.set(status="ok")
        return cell

    monkeypatch.setattr(runner, "run_cell", run_cell)
    cells = runner.run_matrix(RunConfig(models=["nanogpt-tiny"], frontends=["onnx", "export"], seq_len=16), RunState())
    assert calls == ["onnx", "export"]
    assert [(c.frontend, c.status) for c in cells] == [("onnx", "crashed"), ("export", "ok")]
    assert cells[0].error == "the harness failed running this cell: ValueError: boom"
