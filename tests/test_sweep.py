"""Shape sweeps: `run --batch 1,2 --seq-len 8,16` runs the cross product, one cell per shape, in one report."""

from __future__ import annotations

import json

from bench.reports.plot import make_figure
from bench.reports.report import load_report


def test_a_sweep_runs_every_shape_and_the_report_and_plot_show_it(gptbench, tmp_path):
    code, _out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--batch", "1,2", "--seq-len", "8,16",
                               "--repeat", "2", "--warmup", "0", "--no-isolate", "--no-history", "--out", tmp_path)
    assert code == 0, err
    cells = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"]
    assert sorted((c["batch"], c["seq_len"]) for c in cells) == [(1, 8), (1, 16), (2, 8), (2, 16)]
    assert all(c["status"] == "ok" and c["parity"]["rel_l2"] < 1e-5 for c in cells)
    assert len({c["id"] for c in cells}) == 4  # four series in the history, four rows for compare
    assert "batch 2, seq 16" in err  # the cell's own shape in its progress line
    md = next(tmp_path.glob("*.md")).read_text()
    assert "shape (batch × tokens)" in md and "| b2 × 16 |" in md and "a sweep of 4 shapes, each built on its own" in md
    fig = make_figure(load_report(next(tmp_path.glob("*.json"))))
    latency, speedup = fig.axes[:2]
    assert latency.get_xlabel() == "sequence length, tokens" and "against sequence length" in speedup.get_title()
    assert {ln.get_label() for ln in speedup.get_lines() if not ln.get_label().startswith("_")} == {
        "TVM export (nanogpt-tiny, b1)", "TVM export (nanogpt-tiny, b2)"}


def test_each_shape_of_a_sweep_keeps_its_own_tuning_database(monkeypatch):
    """--tune-budget fills each shape's database into that shape's state: a shared dict gave every shape the
    last one tuned (the 128-token database applied to 32 and 64 tokens: 5 of 30 kernels matched)."""
    from bench.pipeline import runner
    from bench.pipeline.config import RunConfig, RunState

    cfg = RunConfig(models=["nanogpt-tiny"], frontends=["export"], sweep=[[1, 8, 128], [1, 16, 128]], tune_budget=60.0)
    seen = []

    def tuned(point, state):  # what --tune-budget would find or make for this shape
        state.dbs["nanogpt-tiny"] = f"db-t{point.seq_len}"

    def run_cell(point, state, model, frontend, env):
        seen.append((point.seq_len, state.db_for(point, model)))
        cell = runner.new_cell(point, model, frontend, env)
        cell.set(status="ok")
        return cell

    monkeypatch.setattr(runner, "ensure_tuned", tuned)
    monkeypatch.setattr(runner, "run_cell", run_cell)
    state = RunState()
    runner.run_matrix(cfg, state)
    assert seen == [(8, "db-t8"), (16, "db-t16")] and state.dbs == {}


def test_a_symbolic_sweep_builds_once_per_batch_and_runs_that_build_at_every_length(gptbench, tmp_path):
    """--shapes symbolic: the first length of each model × frontend × batch imports and builds; the later lengths
    load that build (no import, no build of their own), pass parity at their own length, and the report says so."""
    code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--shapes", "symbolic",
                              "--seq-len", "8,24", "--batch", "1,2", "--warmup", "1", "--repeat", "3", "--solo", "0",
                              "--memory", "on", "--out", tmp_path, "--no-history")
    assert code == 0, err
    cells = json.loads(next(tmp_path.glob("*-run.json")).read_text())["cells"]
    assert [(c["batch"], c["seq_len"]) for c in cells] == [(1, 8), (1, 24), (2, 8), (2, 24)]
    for c in cells:
        assert c["status"] == "ok" and c["parity"]["ok"], c.get("error")
        first = c["seq_len"] == 8
        assert ("build_s" in c["timings"]) == first and ("shared_build" in c["notes"]) == (not first)
        if not first:
            assert c["notes"]["shared_build"]["built_at"] == {"batch": c["batch"], "seq_len": 8, "past_len": c["past_len"]}
            assert c["relax_ops"], "what the building cell's import recorded comes along"
        assert "peak_mb" in c["memory"]["backends"]["tvm"], "a loaded build is measured alone as a built one"
    assert "## Shared builds" in out and "nanogpt-tiny × export, b2 × 24: the build of b2 × 8" in out


def test_a_static_sweep_builds_every_shape(gptbench, tmp_path):
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "8,16", "--warmup", "1",
                            "--repeat", "3", "--solo", "0", "--memory", "off", "--out", tmp_path, "--no-history")
    assert code == 0, err
    cells = json.loads(next(tmp_path.glob("*-run.json")).read_text())["cells"]
    assert all("build_s" in c["timings"] and "shared_build" not in c["notes"] for c in cells)
