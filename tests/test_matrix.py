"""The issue's acceptance test: tiny models × export, onnx on llvm, every cell within tolerance, reports written."""

from __future__ import annotations

import csv
import json

import pytest

from bench.reports.report import load_report
from tests.conftest import TINY_MODELS


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory):
    from bench.cli import main

    out = tmp_path_factory.mktemp("results")
    code = main(["run", "--model", ",".join(TINY_MODELS), "--frontend", "export,onnx", "--target", "llvm",
                 "--scenario", "prefill", "--batch", "1", "--seq-len", "32", "--warmup", "1", "--repeat", "5",
                 "--no-isolate", "--out", str(out), "--name", "matrix"])
    return code, out


def test_matrix_exits_zero_and_writes_three_report_files(matrix_run):
    code, out = matrix_run
    assert code == 0
    for ext in ("json", "csv", "md"):
        files = list(out.glob(f"*-matrix.{ext}"))
        assert len(files) == 1, (ext, list(out.iterdir()))


def test_every_imported_cell_is_within_relative_l2_1e_5(matrix_run):
    _, out = matrix_run
    report = load_report(next(out.glob("*-matrix.json")))
    cells = report["cells"]
    assert {(c.model, c.frontend) for c in cells} == {(m, f) for m in TINY_MODELS for f in ("export", "onnx")}
    imported = [c for c in cells if c.status not in ("import_failed",)]
    assert imported, "no cell imported"
    for c in imported:
        assert c.status == "ok", (c.id, c.status, c.error)
        assert c.parity.rel_l2 < 1e-5, c.id
        assert c.parity.top1_agree > 0.9, c.id


def test_cells_record_what_the_issue_asks(matrix_run):
    _, out = matrix_run
    report = json.loads(next(out.glob("*-matrix.json")).read_text())
    assert report["schema"] == "gptbench.report" and report["schema_version"] == 1
    env = report["environment"]
    for key in ("cpu", "cores", "threads"):
        assert env[key]
    assert env["tvm"]["host_mcpu"] and env["tvm"]["llvm"]
    for pkg in ("torch", "apache-tvm", "apache-tvm-ffi", "onnx", "onnxruntime", "transformers"):
        assert env["versions"][pkg], pkg
    assert "commit" in env["git"] and "dirty" in env["git"]
    for c in report["cells"]:
        assert c["weights"]["kind"] == "random"
        assert c["timings"]["import_s"] > 0 and c["timings"]["build_s"] > 0
        assert sum(c["source_ops"].values()) > 0 and sum(c["relax_ops"].values()) > 0
        for stats in (c["tvm"], c["baselines"]["eager"]["latency"]):
            assert stats["n"] == 5 and len(stats["samples"]) == 5
            assert stats["min"] <= stats["median"] <= stats["p99"]
        assert c["speedup"]["eager"] == pytest.approx(c["baselines"]["eager"]["latency"]["median"] / c["tvm"]["median"], rel=1e-3)
        assert c["peak_rss_mb"] > 0


def test_csv_has_one_row_per_cell(matrix_run):
    _, out = matrix_run
    rows = list(csv.DictReader(next(out.glob("*-matrix.csv")).open()))
    assert len(rows) == 6
    assert {"tvm_median_ms", "eager_median_ms", "speedup_vs_eager", "rel_l2", "status"} <= set(rows[0])


def test_report_command_prints_the_table_again(matrix_run, gptbench):
    _, out = matrix_run
    code, stdout, _ = gptbench("report", next(out.glob("*-matrix.json")))
    assert code == 0
    assert "| nanogpt-tiny | export | ok |" in stdout
    assert "| gpt2-tiny | onnx | ok |" in stdout


def test_the_run_added_its_cells_to_the_history_store_beside_its_reports(matrix_run, gptbench):
    _, out = matrix_run
    code, text, err = gptbench("history", "show", "--history", out / "history.sqlite")
    assert code == 0 and f"{2 * len(TINY_MODELS)} series" in err, err
    for model in TINY_MODELS:
        assert f"{model} × export, llvm prefill b1 t32" in text and f"{model} × onnx, llvm prefill b1 t32" in text


def test_run_with_no_history_makes_no_store(tmp_path, gptbench):
    code, _out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--warmup", "1",
                               "--repeat", "3", "--solo", "0", "--no-isolate", "--no-history", "--out", tmp_path)
    assert code == 0, err
    assert list(tmp_path.glob("*.json")) and not (tmp_path / "history.sqlite").exists()
