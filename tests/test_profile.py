"""`gptbench profile`: every call the Relax VM makes, timed through its instrument, per kernel, joined across
frontends. What the times say is for a quiet machine (the committed profiles); here, that every call is
accounted for, that the join matches what is the same, and the report's contents."""

from __future__ import annotations

import json

import pytest

from bench.pipeline.config import RunConfig, RunState
from bench.pipeline.profile import BUILTIN_KIND, OTHER_KIND, join, kernel_keys, kind_of, profile_frontend


@pytest.mark.parametrize("symbol, kind", [
    ("fused_matmul4_add7_multiply2_fast_erf_add8_multiply41_prepacked", "matmul"),
    ("matmul21", "matmul"),
    ("fused_fast_softmax_cast3_tir_logical_not1_full1_where1_broadcast_to21", "softmax"),
    ("layer_norm1_prepacked", "layer norm"),
    ("take2", "gather"),
    ("fused_reshape3_split1", OTHER_KIND),
    ("fused_reshape4_transpose1_multiply_broadcast_to_reshape51", OTHER_KIND),
    ("vm.builtin.alloc_tensor", BUILTIN_KIND),
])
def test_a_kernel_is_of_the_kind_its_anchor_op_names(symbol, kind):
    assert kind_of(symbol) == kind


def test_profile_accounts_for_every_call_and_the_report_says_so(gptbench, tmp_path):
    code, out, err = gptbench("profile", "--model", "gpt2-tiny", "--frontend", "export,onnx", "--seq-len", "16",
                              "--warmup", "1", "--repeat", "3", "--top", "5", "--out", tmp_path)
    assert code == 0, err
    report = json.loads(next(tmp_path.glob("*-profile.json")).read_text())
    assert report["schema"] == "gptbench.profile" and report["config"]["seq_len"] == 16
    for p in report["profiles"]:
        assert p["status"] == "ok", p
        assert p["tuning"] is None  # no --db, no --tune-budget: untuned, and said so
        assert sum(r["calls"] for r in p["kernels"]) == p["calls"] > 0
        kernels = [r for r in p["kernels"] if r["kind"] != BUILTIN_KIND]
        assert kernels and all(r["kernel"] for r in kernels), "every kernel the VM calls is one FuseTIR made"
        # the sum of per-call-site medians against the median of the calls' sums: equal but for noise
        assert sum(r["ms"] for r in p["kernels"]) == pytest.approx(p["instrumented_ms"], rel=0.3)
        assert p["whole_ms"] > 0
    # each frontend's every kernel is in exactly one joined row
    for p in report["profiles"]:
        seen = [g["by"][p["frontend"]]["symbol"] for g in report["rows"] if p["frontend"] in g["by"]]
        assert sorted(seen) == sorted(r["symbol"] for r in p["kernels"])
    assert "## By kind of kernel" in out and "## Top 5 kernels, joined across frontends" in out
    assert "| matmul |" in out and "untuned" in out
    assert (tmp_path / next(tmp_path.glob("*-profile.json")).name.replace(".json", ".md")).is_file()


def test_the_join_matches_the_same_kernels_of_two_imports(tmp_path):
    """Two imports through the same frontend give structurally equal kernels under any name: the join puts every
    kernel of one beside its twin (match "structure"); the VM's builtins are joined by name."""
    cfg = RunConfig(models=["nanogpt-tiny"], frontends=["export"], target="llvm", seq_len=8, warmup=0, repeat=1)
    first, keys = profile_frontend(cfg, RunState(), "export", lambda _m: None)
    assert first["status"] == "ok"
    twin_keys = kernel_keys(*_reimport(cfg, tmp_path))
    renamed = {f"twin_{k}": v for k, v in twin_keys.items()}  # other names, same TIR
    twin = dict(first, frontend="twin", kernels=[dict(r, symbol=f"twin_{r['symbol']}", kernel=f"twin_{r['kernel']}")
                                                  if r["kernel"] else r for r in first["kernels"]])
    rows = join([first, twin], {"export": keys, "twin": renamed})
    assert all(set(g["by"]) == {"export", "twin"} for g in rows)
    assert {g["match"] for g in rows if g["kind"] != BUILTIN_KIND} == {"structure"}
    assert {g["match"] for g in rows if g["kind"] == BUILTIN_KIND} == {"name"}


def _reimport(cfg, tmp_path):
    from bench.models import load_model
    from bench.scenarios import make_case
    from frontends import get_frontend
    from frontends.base import ImportRequest

    loaded = load_model(cfg.models[0], cfg.weights, seed=cfg.seed)
    case = make_case(loaded, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, cfg.shapes, cfg.seed)
    imported = get_frontend("export").import_model(ImportRequest(case.module, case.inputs, case.input_names, None, tmp_path))
    return imported.mod, RunState().target_info(cfg).target, False, False



def _row(symbol: str, ms: float, buffers: list[str]) -> dict:
    return dict(symbol=symbol, kernel=None if symbol.startswith("vm.") else symbol, kind=kind_of(symbol), calls=1, ms=ms, buffers=buffers)


def test_kernels_of_two_tvm_builds_join_by_kind_and_buffers_preferring_the_same_name():
    """Across TVM environments no structural key travels: a kernel joins the other build's kernel of its kind over the
    same buffers, and where two fit, the one of its own name; a kernel only one build has stays its own."""
    two_adds = ["float32×64", "float32×64", "float32×64"]
    old = [_row("fused_matmul_add", 3.0, ["float32×64", "float32×4096", "float32×64"]), _row("add", 0.2, two_adds),
           _row("add1", 0.1, two_adds), _row("vm.builtin.alloc_tensor", 0.01, [])]
    new = [_row("add1", 0.1, two_adds), _row("fused_matmul_add", 2.0, ["float32×64", "float32×4096", "float32×64"]),
           _row("add", 0.3, two_adds), _row("take", 0.05, ["int64×16", "float32×1024"]), _row("vm.builtin.alloc_tensor", 0.01, [])]
    profiles = [dict(frontend="export@0.26", kernels=old), dict(frontend="export@0.27", kernels=new)]
    rows = join(profiles, {"export@0.26": None, "export@0.27": None})
    by_symbols = {tuple(sorted((c, r["symbol"]) for c, r in g["by"].items())): g["match"] for g in rows}
    assert by_symbols == {
        (("export@0.26", "fused_matmul_add"), ("export@0.27", "fused_matmul_add")): "buffers",
        (("export@0.26", "add"), ("export@0.27", "add")): "buffers",
        (("export@0.26", "add1"), ("export@0.27", "add1")): "buffers",
        (("export@0.27", "take"),): "own",
        (("export@0.26", "vm.builtin.alloc_tensor"), ("export@0.27", "vm.builtin.alloc_tensor")): "name",
    }


def test_profile_across_tvm_builds_runs_each_in_its_own_process_and_joins_their_kernels(gptbench, tmp_path):
    """--tvm: the same frontend profiled in this project's TVM and in a PyPI release (installed once, cached), each
    column labelled with the TVM that ran it; the same import's kernels find each other across the builds."""
    code, out, err = gptbench("profile", "--model", "gpt2-tiny", "--frontend", "export", "--seq-len", "16", "--warmup", "1",
                              "--repeat", "3", "--tvm", "0.27,pypi:0.26.0", "--out", tmp_path)
    assert code == 0, err[-3000:]
    report = json.loads(next(tmp_path.glob("*-profile.json")).read_text())
    assert report["config"]["tvm"] == ["0.27", "pypi-0.26.0"]
    by = {p["frontend"]: p for p in report["profiles"]}
    assert set(by) == {"export@0.27", "export@pypi-0.26.0"}
    assert by["export@0.27"]["tvm_version"] == "0.27.0.post1" and by["export@pypi-0.26.0"]["tvm_version"] == "0.26.0"
    for p in by.values():
        assert p["status"] == "ok" and sum(r["calls"] for r in p["kernels"]) == p["calls"] > 0, p
    kernels = [g for g in report["rows"] if g["kind"] != BUILTIN_KIND]
    joined = [g for g in kernels if len(g["by"]) == 2]
    assert joined and all(g["match"] == "buffers" for g in joined)
    assert len(joined) >= 0.8 * len(kernels), [[r["symbol"] for r in g["by"].values()] for g in kernels]
    assert "Columns are FRONTEND@ENV (export@0.27: TVM 0.27.0.post1; export@pypi-0.26.0: TVM 0.26.0)" in out
