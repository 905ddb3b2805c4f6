"""`gptbench compare`: verdicts that follow the samples, rules that gate, bad input that exits 2.

Reports are synthetic (built with bench.report.new_report from seeded samples: 30 samples per
backend around 10 ms with a few % of multiplicative noise), so these tests never run TVM.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from bench.compare import Rule, compare_reports
from bench.errors import UserError
from bench.report import new_report
from bench.runner import cell_id
from bench.timing import Stats

NOISE = 0.03  # sigma of the lognormal noise: about 3% spread, like a quiet CPU


def latency(median_ms: float, seed: int, n: int = 30, noise: float = NOISE) -> dict:
    ms = median_ms * np.random.default_rng(seed).lognormal(0.0, noise, n)
    return Stats.from_seconds(list(ms / 1e3)).to_dict()


def make_cell(model: str, frontend: str, seed: int, *, tvm_ms: float = 10.0, eager_ms: float = 25.0, status: str = "ok",
              variant: str | None = None, noise: float = NOISE) -> dict:
    cell = dict(model=model, frontend=frontend, target="llvm", scenario="prefill", batch=1, seq_len=16, past_len=0, new_tokens=0,
                shapes="static", dtype="float32", status=status, error=None, variant=variant,
                timings=dict(export_s=1.0, import_s=0.05, build_s=2.0),
                parity=dict(tol=1e-5, ok=True, reason="", rel_l2=3e-7),
                tvm=latency(tvm_ms, seed, noise=noise), baselines={"eager": dict(status="ok", latency=latency(eager_ms, seed + 1000, noise=noise))})
    cell["id"] = cell_id(cell)
    return cell


def environment(cpu: str = "AMD EPYC", commit: str = "1111111111aaaa") -> dict:
    return dict(cpu=cpu, cores=2, threads=2, gpu=None, git=dict(commit=commit, dirty=False),
                tvm=dict(version="0.27.0", llvm=22, host_mcpu="znver3"),
                versions={"torch": "2.13.0", "apache-tvm": "0.27.0", "apache-tvm-ffi": "0.1.14"})


def make_report(name: str = "base", cells: list[dict] | None = None, **env) -> dict:
    if cells is None:
        cells = [make_cell(m, f, seed) for seed, (m, f) in enumerate(
            [("nanogpt-tiny", "export"), ("nanogpt-tiny", "onnx"), ("gpt2-tiny", "export"), ("gpt2-tiny", "onnx")])]
    return new_report("run", name, dict(target="llvm", scenario="prefill"), environment(**env), cells)


def rescaled(report: dict, factor: float, name: str = "new", noise: float = 0.0, seed: int = 7, backend: str = "tvm") -> dict:
    """A copy whose `backend` samples are multiplied by factor (and seeded lognormal noise)."""
    out = copy.deepcopy(report)
    out["name"] = name
    rng = np.random.default_rng(seed)
    for cell in out["cells"]:
        holder = cell if backend == "tvm" else cell["baselines"][backend]
        key = "tvm" if backend == "tvm" else "latency"
        ms = np.asarray(holder[key]["samples"]) * factor * rng.lognormal(0.0, noise, len(holder[key]["samples"]))
        holder[key] = Stats.from_seconds(list(ms / 1e3)).to_dict()
    return out


@pytest.fixture
def run_compare(gptbench, tmp_path):
    """`gptbench compare BASE NEW ARGS…` on report dicts (written to files): (code, stdout, stderr)."""

    def run(base, new, *args):
        paths = []
        for name, report in (("base.json", base), ("new.json", new)):
            if isinstance(report, dict):
                (tmp_path / name).write_text(json.dumps(report))
                report = tmp_path / name
            paths.append(report)
        return gptbench("compare", *paths, *args)

    return run


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------------------- verdicts
def test_a_report_against_itself_is_no_change_everywhere(run_compare):
    base = make_report()
    result = compare_reports(base, base, [Rule.parse("median:5%")])
    assert [c.verdict for c in result.cells] == ["no change"] * 4
    assert all(c.tvm.ratio == 1.0 and c.tvm.p_value == pytest.approx(1.0) and c.tvm.ci_low <= 1 <= c.tvm.ci_high for c in result.cells)
    assert result.ok and not result.warnings and not result.status_changes and not result.only_base
    code, out, err = run_compare(base, base, "--fail-on", "median:5%")
    assert code == 0, err
    assert out.count("| no change |") == 4 and "slower" not in out and "faster" not in out


def test_twenty_percent_slower_fails_a_median_rule_naming_the_cell(run_compare):
    base = make_report()
    slow = rescaled(base, 1.20)
    result = compare_reports(base, slow, [Rule.parse("median:5%")])
    assert [c.verdict for c in result.cells] == ["slower"] * 4
    c = result.cells[0]
    assert c.tvm.ratio == pytest.approx(1.2, rel=1e-4) and c.tvm.p_value < 1e-6 and c.tvm.ci_low > 1.1
    code, out, err = run_compare(base, slow, "--fail-on", "median:5%")
    assert code == 1
    assert "4 regression(s)" in err
    assert "nanogpt-tiny × export: median:5%: median" in err and "gpt2-tiny × onnx: median:5%" in err
    assert "## Rule failures" in out and "- **nanogpt-tiny × export**: `median:5%`" in out


def test_one_percent_slower_within_noise_does_not_fail(run_compare):
    base = make_report()
    noisy = rescaled(base, 1.01, noise=0.04, seed=3)
    result = compare_reports(base, noisy, [Rule.parse("median:5%")])
    assert all(abs(c.tvm.ratio - 1) < 0.05 for c in result.cells)
    assert result.ok
    code, _, err = run_compare(base, noisy, "--fail-on", "median:5%", "--fail-on", "p90:5%")
    assert code == 0, err


def test_twenty_percent_faster_is_faster_and_passes(run_compare):
    base = make_report()
    code, out, err = run_compare(base, rescaled(base, 0.80), "--fail-on", "median:5%")
    assert code == 0, err
    assert out.count("| faster |") == 4
    assert "| 0.800 [0." in out


def test_a_change_below_the_minimum_effect_is_no_change():
    base = make_report(cells=[make_cell("gpt2-tiny", f, i, noise=0.005) for i, f in enumerate(["export", "onnx"])])
    result = compare_reports(base, rescaled(base, 1.01), [Rule.parse("median:0.5%")])
    assert all(c.tvm.p_value < 0.05 and c.tvm.ci_low > 1 for c in result.cells)  # significant, but small
    assert [c.verdict for c in result.cells] == ["no change"] * 2 and result.ok
    assert [c.verdict for c in compare_reports(base, rescaled(base, 1.01), [], min_effect=0.005).cells] == ["slower"] * 2


def test_too_few_samples_is_no_change_with_a_note():
    base = make_report(cells=[make_cell("gpt2-tiny", "export", 0)])
    few = copy.deepcopy(base)
    few["cells"][0]["tvm"] = Stats.from_seconds([0.030, 0.031]).to_dict()
    result = compare_reports(base, few, [Rule.parse("median:5%")])
    (cell,) = result.cells
    assert cell.verdict == "no change" and cell.note == "too few samples" and cell.tvm.p_value is None
    assert result.ok and any("checked no cell" in w for w in result.warnings)


def test_eager_moving_as_much_as_tvm_is_noted_as_a_machine_change():
    base = make_report()
    both = rescaled(rescaled(base, 1.25), 1.25, backend="eager")
    notes = [c.note for c in compare_reports(base, both, []).cells]
    assert all("eager also slower (×1.250)" in n and "machine changed" in n for n in notes), notes
    assert all(c.note == "" for c in compare_reports(base, rescaled(base, 1.25), []).cells)


def test_output_is_deterministic():
    base = make_report()
    new = rescaled(base, 1.03, noise=0.03)
    assert compare_reports(base, new, []).to_markdown() == compare_reports(base, new, []).to_markdown()


# ---------------------------------------------------------------------------------------- rules
def test_rules_parse_percent_milliseconds_and_timings():
    assert Rule.parse("median:5%") == Rule("median", 5.0, "%")
    assert Rule.parse(" p90 : 0.5ms ") == Rule("p90", 0.5, "ms")
    assert Rule.parse("build_s:20%") == Rule("build_s", 20.0, "%") and Rule.parse("build_s:20%").is_timing
    assert str(Rule.parse("p99:2.50ms")) == "p99:2.5ms"


@pytest.mark.parametrize("bad", ["median:abc", "foo:5%", "build_s:3ms", "median5%", "median:-5%", "median:5"])
def test_bad_rules_exit_2_naming_the_rule_and_the_forms(run_compare, bad):
    with pytest.raises(UserError):
        Rule.parse(bad)
    base = make_report()
    code, _, err = run_compare(base, base, "--fail-on", "median:5%", "--fail-on", bad)
    assert code == 2
    line = one_line(err)
    assert f"bad --fail-on rule {bad!r}" in line and "STAT:N% or STAT:Xms" in line and "build_s:N%" in line


def test_absolute_millisecond_rules():
    base = make_report()
    slow = rescaled(base, 1.20)  # about +2 ms on a 10 ms median
    assert len(compare_reports(base, slow, [Rule.parse("median:1ms")]).failures) == 4
    assert compare_reports(base, slow, [Rule.parse("median:5ms")]).ok


def test_timing_rules_need_no_significance():
    base = make_report()
    new = copy.deepcopy(base)
    new["cells"][2]["timings"]["build_s"] = 3.0  # 2.0 → 3.0 s: +50%
    result = compare_reports(base, new, [Rule.parse("build_s:20%"), Rule.parse("import_s:20%")])
    assert [(f.cell, f.rule) for f in result.failures] == [("gpt2-tiny × export", "build_s:20%")]
    assert "2.000 s → 3.000 s" in result.failures[0].detail
    assert compare_reports(base, new, [Rule.parse("build_s:60%")]).ok


def test_every_failure_is_collected_before_failing():
    base = make_report()
    new = rescaled(base, 1.3)
    new["cells"][0]["timings"]["build_s"] = 9.0
    new["cells"][1].update(status="mismatch", error="parity: relative L2 error 0.1 > tolerance 1e-05")
    result = compare_reports(base, new, [Rule.parse("median:5%"), Rule.parse("p99:10%"), Rule.parse("build_s:50%")])
    assert sorted({f.rule for f in result.failures}) == ["build_s:50%", "median:5%", "p99:10%", "status"]
    assert len(result.failures) == 4 + 4 + 1 + 1


# ------------------------------------------------------------------- status, parity, membership
def test_status_regression_fails_without_rules_and_recovery_passes(run_compare):
    base = make_report()
    broken = copy.deepcopy(base)
    broken["cells"][1].update(status="mismatch", error="parity: relative L2 error 0.1 > tolerance 1e-05")
    broken["cells"][1]["parity"].update(ok=False, rel_l2=0.1)
    code, out, err = run_compare(base, broken)
    assert code == 1
    assert "nanogpt-tiny × onnx: status: ok → mismatch (parity: relative L2 error 0.1" in err
    assert "| nanogpt-tiny × onnx | ok | mismatch | regression |" in out
    assert "| nanogpt-tiny × onnx | 3.00e-07 | 1.00e-01 | 1e-05 | now beyond tolerance 1e-05 |" in out
    code, out, err = run_compare(broken, base)
    assert code == 0, err
    assert "| nanogpt-tiny × onnx | mismatch | ok | recovery |" in out


def test_a_failed_cell_is_listed_as_not_measured():
    base = make_report()
    failed = copy.deepcopy(base)
    failed["cells"][3].update(status="import_failed", tvm=None, baselines={}, error="unsupported op")
    result = compare_reports(base, failed, [Rule.parse("median:5%")])
    cell = result.cells[3]
    assert cell.verdict == "not measured" and cell.note == "no TVM latency: NEW import_failed"
    assert [(f.cell, f.rule) for f in result.failures] == [("gpt2-tiny × onnx", "status")]


def test_parity_growing_tenfold_is_listed_even_within_tolerance():
    base = make_report()
    new = copy.deepcopy(base)
    new["cells"][0]["parity"]["rel_l2"] = 6e-6
    (change,) = compare_reports(base, new, []).parity_changes
    assert change.cell == "nanogpt-tiny × export" and change.reason == "grew 20x"


def test_cells_in_only_one_report_are_listed_both_ways(run_compare):
    base = make_report()
    new = copy.deepcopy(base)
    new["cells"].pop(0)
    new["cells"].append(make_cell("mingpt-tiny", "export", 9))
    result = compare_reports(base, new, [])
    assert result.only_base == ["nanogpt-tiny × export"] and result.only_new == ["mingpt-tiny × export"]
    assert len(result.cells) == 3 and result.ok
    code, out, _ = run_compare(base, new)
    assert code == 0
    assert "| nanogpt-tiny × export | BASE (base) |" in out and "| mingpt-tiny × export | NEW (base) |" in out


def test_pass_variants_are_matched_by_variant():
    cells = [make_cell("gpt2-tiny", "export", i, variant=v) for i, v in enumerate(["default", "-FuseOps"])]
    base = new_report("passes", "passes", {}, environment(), cells)
    new = rescaled(base, 1.0)
    new["cells"][1] = make_cell("gpt2-tiny", "export", 1, tvm_ms=14.0, variant="-FuseOps")
    result = compare_reports(base, new, [])
    assert [(c.variant, c.verdict) for c in result.cells] == [("default", "no change"), ("-FuseOps", "slower")]
    assert "| variant |" in result.to_markdown() and "gpt2-tiny × export [-FuseOps]" in result.to_markdown()


# ---------------------------------------------------------------------------------- environment
def test_environment_difference_warns_and_git_commit_is_info(run_compare):
    base = make_report()
    moved = make_report("moved", copy.deepcopy(base["cells"]), cpu="Intel Xeon", commit="2222222222bbbb")
    result = compare_reports(base, moved, [])
    assert result.warnings == ["warning: environments differ: cpu 'AMD EPYC' vs 'Intel Xeon'"]
    assert result.info == ["git commit 1111111111 → 2222222222"]
    code, out, err = run_compare(base, moved)
    assert code == 0
    assert "warning: environments differ: cpu 'AMD EPYC' vs 'Intel Xeon'" in err and "git" not in err
    assert "> warning: environments differ: cpu 'AMD EPYC' vs 'Intel Xeon'" in out and "Info: git commit" in out


# ------------------------------------------------------------------------------ input and output
def test_corrupt_and_mismatched_schema_exit_2_with_one_line(run_compare, tmp_path):
    base = make_report()
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema": "gptbench.report", "cells": [')
    code, _, err = run_compare(base, corrupt)
    assert code == 2
    line = one_line(err)
    assert "corrupt.json is not valid JSON" in line and line.startswith("gptbench compare: error:")
    future = tmp_path / "future.json"
    future.write_text(json.dumps(dict(base, schema_version=2)))
    code, _, err = run_compare(future, base)
    assert code == 2
    assert "future.json has report schema version 2; this gptbench reads version 1" in one_line(err)


@pytest.mark.parametrize("args,expected", [(["--alpha", "1.5"], "--alpha '1.5'"), (["--min-effect", "lots"], "--min-effect 'lots'")])
def test_bad_options_exit_2(run_compare, args, expected):
    base = make_report()
    code, _, err = run_compare(base, base, *args)
    assert code == 2 and expected in one_line(err)


def test_md_and_json_files(run_compare, tmp_path):
    base = make_report()
    md, js = tmp_path / "cmp.md", tmp_path / "cmp.json"
    code, out, _ = run_compare(base, rescaled(base, 1.2), "--fail-on", "median:5%", "--md", md, "--json", js)
    assert code == 1
    assert md.read_text().strip() == out.strip()
    data = json.loads(js.read_text())
    assert data["ok"] is False and data["rules"] == ["median:5%"]
    assert [c["verdict"] for c in data["cells"]] == ["slower"] * 4
    assert data["cells"][0]["tvm"]["ratio"] == pytest.approx(1.2, rel=1e-4) and data["cells"][0]["base_stats"]["p90"] > 0
    assert {f["cell"] for f in data["failures"]} == {"nanogpt-tiny × export", "nanogpt-tiny × onnx", "gpt2-tiny × export", "gpt2-tiny × onnx"}
