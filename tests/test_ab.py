"""`gptbench ab` on a real compiler change: synthetic builds of this project's TVM
(tests/synthetic) in which LegalizeOps lowers every matmul twice, several times slower untuned. ab must flag it
cell by cell, stay quiet on two identical builds, and count a build that breaks a cell as a regression."""

from __future__ import annotations

import json

import pytest

from tests.synthetic import make_env, patch_source

CELLS = ["--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "32", "--repeat", "6", "--warmup", "1", "--solo", "0"]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("builds")
    return dict(base=make_env(root / "base", patch_source("0.28.dev1")),
                same=make_env(root / "same", patch_source("0.28.dev1")),
                slow=make_env(root / "slow", patch_source("0.28.dev2", matmul_twice=True)))


def ab_report(out) -> dict:
    (path,) = [p for p in out.glob("*-ab.json")]
    return json.loads(path.read_text())


def test_ab_flags_a_compiler_change_that_doubles_the_matmuls(gptbench, tmp_path, builds):
    code, out, err = gptbench("ab", *CELLS, "--frontend", "export,onnx", "--tvm", f"base={builds['base']},new={builds['slow']}",
                              "--fail-on", "median:100%", "--out", tmp_path)
    assert code == 1, err[-3000:]
    report = ab_report(tmp_path)
    assert report["order"] == [0, 1, 1, 0] and report["rounds"] == 2  # A B B A
    assert [s["version"] for s in report["sides"]] == ["0.28.dev1", "0.28.dev2"]
    cells = {c["frontend"]: c for c in report["compare"]["cells"]}
    for frontend in ("export", "onnx"):
        tvm = cells[frontend]["tvm"]
        assert tvm["verdict"] == "slower" and tvm["ratio"] > 2.5 and tvm["ci_low"] > 2.0, (frontend, tvm)
        assert tvm["n_base"] == 12 and tvm["n_new"] == 12  # both rounds of each side pooled
    assert {f["cell"] for f in report["failures"]} == {"nanogpt-tiny × export", "nanogpt-tiny × onnx"}
    assert all(f["rule"] == "median:100%" for f in report["failures"]) and not report["untrustworthy"]
    builds_rows = {b["cell"]: b for b in report["builds"]}
    assert builds_rows["nanogpt-tiny × export"]["kernels"][1] > builds_rows["nanogpt-tiny × export"]["kernels"][0]
    assert len(report["side_reports"]) == 2
    assert "2 regression(s):" in err and "| slower |" in out and "BASE base: TVM 0.28.dev1" in out


def test_ab_of_two_identical_builds_finds_no_regression(gptbench, tmp_path, builds):
    code, out, err = gptbench("ab", *CELLS, "--tvm", f"a={builds['base']},b={builds['same']}", "--rounds", "1",
                              "--fail-on", "median:50%", "--out", tmp_path)
    assert code == 0, err[-3000:]
    report = ab_report(tmp_path)
    (cell,) = report["compare"]["cells"]
    assert cell["tvm"]["verdict"] != "slower" or cell["tvm"]["ratio"] < 1.5
    assert report["failures"] == [] and "No regression." in out


def test_ab_a_build_that_breaks_a_cell_is_a_status_regression_without_rules(gptbench, tmp_path, builds, tmp_path_factory):
    broken = make_env(tmp_path_factory.mktemp("b") / "broken", patch_source("0.28.dev3") + (
        "\ntvm.ir.register_op_attr('relax.matmul', 'FLegalize', lambda bb, call: 1 / 0, level=12)\n"))
    code, _, err = gptbench("ab", *CELLS, "--tvm", f"base={builds['base']},new={broken}", "--rounds", "1", "--out", tmp_path)
    assert code == 1, err[-3000:]
    (failure,) = ab_report(tmp_path)["failures"]
    assert failure["rule"] == "status" and "ok → build_failed" in failure["detail"]


@pytest.mark.parametrize("tvm, message", [("0.27", "ab compares two TVM builds: --tvm BASE,NEW"),
                                          ("a=0.27,b=0.27,c=0.19", "ab compares two TVM builds")])
def test_ab_needs_exactly_two_builds(gptbench, tmp_path, tvm, message):
    code, _, err = gptbench("ab", *CELLS, "--tvm", tvm, "--out", tmp_path)
    assert code == 2 and message in err and err.count("\n") == 1
