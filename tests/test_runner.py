"""Cells in their own process, failures recorded as results, the decode scenario, exit codes."""

from __future__ import annotations

import pytest

from bench.core.env import usable_cores
from bench.pipeline.config import RunConfig, RunState
from bench.pipeline.execute import execute_cell
from bench.pipeline.runner import run_isolated


def _cfg(**kw) -> RunConfig:
    base = dict(models=["nanogpt-tiny"], frontends=["export"], seq_len=16, warmup=0, repeat=3, threads=usable_cores())
    base.update(kw)
    return RunConfig(**base)


def test_isolated_cell_runs_in_a_spawned_process():
    cell = run_isolated(_cfg(), RunState(), "nanogpt-tiny", "export")
    assert cell.status == "ok", cell.error
    assert cell.rss_scope == "cell process"
    assert cell.parity.rel_l2 < 1e-5


def test_a_cell_killed_by_its_timeout_is_recorded_and_the_run_goes_on():
    cell = run_isolated(_cfg(cell_timeout=0.5), RunState(), "nanogpt-tiny", "export")
    assert cell.status == "timeout"
    assert "--cell-timeout" in cell.error


def test_a_frontend_failure_is_a_recorded_cell_not_an_exception():
    cell = execute_cell(_cfg(frontends=["fx"], models=["gpt2-tiny"], isolate=False), RunState(), "gpt2-tiny", "fx")
    assert cell.status == "import_failed"
    assert cell.stage == "export"
    assert "control flow" in cell.error


@pytest.mark.parametrize("model", ["nanogpt-tiny", "mingpt-tiny", "gpt2-tiny"])
@pytest.mark.parametrize("frontend", ["export", "onnx"])
def test_decode_step_with_kv_cache_matches_eager(model, frontend):
    cell = execute_cell(_cfg(models=[model], frontends=[frontend], scenario="decode", past_len=12, isolate=False), RunState(), model, frontend)
    assert cell.status == "ok", cell.error
    assert cell.parity.outputs["logits"]["rel_l2"] < 1e-5
    assert cell.parity.outputs["present"]["rel_l2"] < 1e-5
    assert cell.past_len == 12 and cell.seq_len == 1


def test_parity_mismatch_is_reported_and_fails_the_run(gptbench, tmp_path):
    """A tolerance no float computation meets turns every cell into `mismatch`, never `ok`, and exit 1."""
    code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "8", "--repeat", "2",
                              "--warmup", "0", "--tol", "1e-30", "--no-isolate", "--out", tmp_path)
    assert code == 1
    assert "| nanogpt-tiny | export | mismatch |" in out
    assert "parity mismatch" in err
    code, *_ = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "8", "--repeat", "2",
                        "--warmup", "0", "--tol", "1e-30", "--no-isolate", "--out", tmp_path, "--fail-on", "none")
    assert code == 0


def test_fail_on_any_turns_a_failed_cell_into_exit_1(gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", "gpt2-tiny", "--frontend", "fx", "--seq-len", "8", "--repeat", "2", "--warmup", "0",
                              "--no-isolate", "--out", tmp_path, "--fail-on", "any")
    assert code == 1
    assert "gpt2-tiny×fx=import_failed" in err


def test_ort_baseline_is_timed_with_parity_and_reuses_the_onnx_file():
    cell = execute_cell(_cfg(frontends=["onnx"], baselines=["ort"], isolate=False), RunState(), "nanogpt-tiny", "onnx")
    assert cell.status == "ok", cell.error
    ort = cell.baselines["ort"]
    assert ort.status == "ok" and ort.parity.rel_l2 < 1e-5
    assert ort.info["onnx_reused"] is True and ort.info["provider"] == "CPUExecutionProvider"
    # what ONNX Runtime ran, and how it was configured, is in the report
    assert ort.info["intra_op_num_threads"] == cell.threads and ort.info["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert ort.info["onnx_file"]["name"] == "model.onnx" and len(ort.info["onnx_file"]["sha256"]) == 16
    assert ort.latency.n == 3
    assert cell.speedup["ort"] == pytest.approx(ort.latency.median / cell.tvm.median, rel=1e-3, abs=5e-5)  # stored to 4 decimals


def test_a_failing_baseline_is_recorded_and_the_cell_goes_on(monkeypatch):
    from bench import baselines

    def broken(*args, **kwargs):
        raise RuntimeError("inductor needs a C++ compiler")

    monkeypatch.setattr(baselines, "prepare_compile", broken)
    cell = execute_cell(_cfg(baselines=["compile"], isolate=False), RunState(), "nanogpt-tiny", "export")
    assert cell.status == "ok"
    assert cell.baselines["compile"].to_json() == {"status": "failed", "error": "RuntimeError: inductor needs a C++ compiler"}
    assert "compile" not in cell.speedup


def test_every_cell_carries_its_timing_method_solo_check_and_machine_load():
    cell = execute_cell(_cfg(baselines=["ort"], repeat=4, block=2, solo=3, isolate=False), RunState(), "nanogpt-tiny", "export")
    assert cell.status == "ok", cell.error
    t = cell.timing
    assert t["plan"]["method"] == "blocks" and t["rounds"] == 2
    assert set(t["solo"]) == {"tvm", "eager", "ort"} and all(s["n"] == 3 for s in t["solo"].values())
    assert t["solo"]["tvm"]["paired_median"] == pytest.approx(cell.tvm.median, rel=1e-4)
    assert {"others_cores", "steal_cores", "quiet"} <= set(t["machine"])
    assert isinstance(t["flags"], list)


def test_baselines_none_times_tvm_alone(gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "8", "--repeat", "3",
                              "--warmup", "0", "--baselines", "none", "--timing", "interleaved", "--no-isolate", "--out", tmp_path)
    assert code == 0, err
    from bench.reports.report import load_report

    cell = load_report(next(tmp_path.glob("*.json")))["cells"][0]
    assert cell.status == "ok" and cell.parity.ok  # eager still gave the parity reference
    assert cell.baselines == {} and cell.speedup == {} and cell.tvm.n == 3
    assert cell.timing["plan"]["method"] == "interleaved" and set(cell.timing["solo"]) == {"tvm"}
    assert "timed alone" in err


def test_tuned_after_repeats_only_the_cells_a_database_applies_to():
    from bench.pipeline.config import RunConfig
    from bench.pipeline.runner import _todo

    cfg = RunConfig(models=["nanogpt-tiny"], frontends=["export", "relay-onnx"], tune_budget=60.0, tuned_after=[0.0, 60.0, float("inf")])
    todo = [(point.tuning_cut, f, env) for point, _state, _m, f, env in _todo(cfg, RunState())]
    assert todo == [(0.0, "export", "0.27"), (0.0, "relay-onnx", "0.19"), (60.0, "export", "0.27"), (None, "export", "0.27")]


def test_a_new_baseline_is_one_registry_entry(monkeypatch):
    """compile-max is one BaselineKind (bench.baselines.BASELINE_LIST): the run takes it by name, the cell records it
    under that name with its speedup, and Inductor gets its mode (the compile itself is replaced: max-autotune takes
    about 45 s on the tiny model)."""
    from bench import baselines

    asked = []

    def fake_compile(case, device, mode=None, name="compile"):
        asked.append((mode, name))
        eager = baselines.prepare_eager(case, device)
        return baselines.Prepared(name, eager.run, eager.timer, 0.0, dict(backend="inductor", mode=mode))

    monkeypatch.setattr(baselines, "prepare_compile", fake_compile)
    cell = execute_cell(_cfg(baselines=["compile-max"], isolate=False, repeat=4, solo=0), RunState(), "nanogpt-tiny", "export")
    assert cell.status == "ok", cell.error
    assert asked == [("max-autotune-no-cudagraphs", "compile-max")]
    assert cell.baselines["compile-max"].status == "ok" and cell.speedup["compile-max"] > 0
    assert cell.baselines["compile-max"].info["mode"] == "max-autotune-no-cudagraphs"


def test_offload_without_the_librarys_codegen_is_a_recorded_cell_that_says_what_would_have_gone():
    """--offload cublas partitions the matmuls (Relax's cuBLAS patterns) and hands them to the library's codegen; the
    PyPI wheel has none (relax.ext.cublas): the cell is build_failed, says why, and counts what would have gone
    (gpt2-tiny: 2 layers x 6 matmuls, and the LM head)."""
    import tvm

    if tvm.get_global_func("relax.ext.cublas", allow_missing=True) is not None:
        pytest.skip("this TVM has cuBLAS codegen: the offload builds (a GPU test's)")
    cfg = _cfg(models=["gpt2-tiny"], target="cuda", cuda_arch="sm_90", offload="cublas", baselines=["none"], isolate=False)
    cell = execute_cell(cfg, RunState(), "gpt2-tiny", "export")
    assert cell.status == "build_failed" and "relax.ext.cublas is absent" in cell.error and "USE_CUBLAS=ON" in cell.error
    assert cell.variant == "+cublas" and cell.id.endswith("|+cublas")
    assert cell.notes["offload"]["calls"] == 13 and cell.notes["offload"]["by_function"]["fused_relax_permute_dims_relax_matmul_cublas"] == 1
