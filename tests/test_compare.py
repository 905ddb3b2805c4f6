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
from bench.core.errors import UserError
from bench.record import Latency
from bench.reports.report import new_report
from tests.reports import NOISE, latency, with_id


def make_cell(model: str, frontend: str, seed: int, *, tvm_ms: float = 10.0, eager_ms: float = 25.0, status: str = "ok",
              variant: str | None = None, noise: float = NOISE) -> dict:
    cell = dict(model=model, frontend=frontend, target="llvm", scenario="prefill", batch=1, seq_len=16, past_len=0, new_tokens=0,
                shapes="static", dtype="float32", status=status, error=None, variant=variant,
                timings=dict(export_s=1.0, import_s=0.05, build_s=2.0),
                parity=dict(tol=1e-5, ok=True, reason="", rel_l2=3e-7),
                tvm=latency(tvm_ms, seed, noise=noise), baselines={"eager": dict(status="ok", latency=latency(eager_ms, seed + 1000, noise=noise))})
    return with_id(cell)


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
        holder[key] = Latency.from_seconds(list(ms / 1e3)).to_json()
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
    few["cells"][0]["tvm"] = Latency.from_seconds([0.030, 0.031]).to_json()
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


@pytest.mark.parametrize("bad", ["median:abc", "foo:5%", "build_s:3ms", "speedup:2ms", "median5%", "median:-5%", "median:5"])
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


# ------------------------------------------------------------------- one source: the samples
def test_stored_statistics_that_disagree_with_the_samples_are_a_corrupt_report(run_compare):
    base = make_report()
    new = copy.deepcopy(base)
    for cell in new["cells"]:  # samples 20% slower, stored statistics left as they were
        cell["tvm"]["samples"] = [round(x * 1.2, 6) for x in cell["tvm"]["samples"]]
    code, out, err = run_compare(base, new, "--fail-on", "median:5%")
    assert code == 2 and out == ""
    line = one_line(err)
    assert "new.json: cell 0 (" + base["cells"][0]["id"] + "): tvm latency \"median\"" in line
    assert "corrupt report" in line
    with pytest.raises(UserError, match='NEW: cell 0 .*tvm latency "median"'):
        compare_reports(base, new, [])


def test_stored_statistics_within_rounding_are_accepted():
    base = make_report()
    new = copy.deepcopy(base)
    new["cells"][0]["tvm"]["median"] *= 1 + 5e-4
    new["cells"][0]["speedup"] = {"eager": round(np.median(new["cells"][0]["baselines"]["eager"]["latency"]["samples"])
                                                / np.median(new["cells"][0]["tvm"]["samples"]), 4)}
    assert compare_reports(base, new, [Rule.parse("median:5%")]).ok


def test_rules_read_statistics_computed_from_the_samples():
    base = make_report()
    slow = rescaled(base, 1.20)
    for cell in slow["cells"]:  # only the median is required beside the samples
        for key in ("mean", "min", "p90", "p99", "std", "n"):
            del cell["tvm"][key]
    result = compare_reports(base, slow, [Rule.parse("p90:5%"), Rule.parse("mean:5%")])
    assert len(result.failures) == 8
    samples = np.asarray(slow["cells"][0]["tvm"]["samples"])
    assert result.cells[0].new_stats["p90"] == pytest.approx(np.percentile(samples, 90))
    assert result.cells[0].new_stats["mean"] == pytest.approx(samples.mean())


# ------------------------------------------------------------------------ no cell in common
def test_no_cell_in_common_fails_every_rule_asked(run_compare):
    base = make_report(cells=[make_cell("gpt2-tiny", "export", 0)])
    other = make_report("other", cells=[make_cell("nanogpt-tiny", "onnx", 1)])
    code, out, err = run_compare(base, other, "--fail-on", "median:5%", "--fail-on", "speedup:5%")
    assert code == 1
    assert "1 regression(s):" in err
    assert "  median:5%, speedup:5%: no cell was compared: the reports have no cell in common" in err
    assert "- `median:5%, speedup:5%`: no cell was compared" in out
    assert "speedup rule not applicable" not in err and "checked no cell" not in err


def test_no_cell_in_common_without_rules_is_information(run_compare):
    base = make_report(cells=[make_cell("gpt2-tiny", "export", 0)])
    other = make_report("other", cells=[make_cell("nanogpt-tiny", "onnx", 1)])
    code, out, err = run_compare(base, other)
    assert code == 0
    assert "warning: no cell was compared: the reports have no cell in common" in err
    assert "No cell in common." in out


# --------------------------------------------------------------------------- malformed values
def _tvm(cell: dict) -> dict:
    return cell["tvm"]


def _eager_latency(cell: dict) -> dict:
    return cell["baselines"]["eager"]["latency"]


def _set(get, key, value):
    def mutate(report: dict) -> None:
        holder = get(report["cells"][0])
        holder[key] = value(holder[key]) if callable(value) else value
    return mutate


def _zero_tvm(report: dict) -> None:
    tvm = report["cells"][0]["tvm"]
    tvm["samples"] = [0.0] * len(tvm["samples"])
    tvm.update({k: 0.0 for k in ("min", "median", "mean", "p90", "p99", "std")})


def _duplicate_cell(report: dict) -> None:
    report["cells"][1] = copy.deepcopy(report["cells"][0])


MALFORMED = {  # id: (report to corrupt, mutation, what the error line must name)
    "string-samples": ("new", _set(_tvm, "samples", lambda s: [str(x) for x in s]), 'tvm latency "samples"[0]'),
    "samples-not-a-list": ("new", _set(_tvm, "samples", "10.0 10.1 10.2"), "malformed tvm latency (needs median and samples)"),
    "median-fast": ("new", _set(_tvm, "median", "fast"), "tvm latency \"median\" is 'fast'"),
    "median-missing": ("new", lambda r: r["cells"][0]["tvm"].pop("median"), "malformed tvm latency (needs median"),
    "median-null": ("new", _set(_tvm, "median", None), 'tvm latency "median" is missing'),
    "p90-infinite": ("new", _set(_tvm, "p90", float("inf")), 'tvm latency "p90" is inf'),
    "n-wrong": ("new", _set(_tvm, "n", 29), 'tvm latency "n" is 29'),
    "empty-samples": ("new", _set(_tvm, "samples", []), 'tvm latency "samples" is empty'),
    "nan-sample": ("new", _set(_tvm, "samples", lambda s: s[:3] + [float("nan")] + s[4:]), 'tvm latency "samples"[3] is nan'),
    "negative-sample": ("new", _set(_tvm, "samples", lambda s: [-1.0] + s[1:]), 'tvm latency "samples"[0] is -1.0'),
    "null-sample": ("new", _set(_tvm, "samples", lambda s: s[:2] + [None] + s[3:]), 'tvm latency "samples"[2] is None'),
    "boolean-sample": ("new", _set(_tvm, "samples", lambda s: [True] + s[1:]), 'tvm latency "samples"[0] is True'),
    "all-zero-base-samples": ("base", _zero_tvm, 'tvm latency "samples"[0] is 0.0'),
    "eager-median-string": ("new", _set(_eager_latency, "median", "fast"), "eager latency \"median\" is 'fast'"),
    "eager-string-samples": ("base", _set(_eager_latency, "samples", lambda s: [str(x) for x in s]), 'eager latency "samples"[0]'),
    "tvm-not-a-dict": ("new", lambda r: r["cells"][0].update(tvm="fast"), "malformed tvm latency"),
    "rel-l2-string": ("new", _set(lambda c: c["parity"], "rel_l2", "3e-7"), '"parity"."rel_l2" is \'3e-7\''),
    "tol-negative": ("new", _set(lambda c: c["parity"], "tol", -1.0), '"parity"."tol" is -1.0'),
    "parity-not-a-dict": ("new", lambda r: r["cells"][0].update(parity="ok"), '"parity" is a string'),
    "speedup-not-a-dict": ("new", lambda r: r["cells"][0].update(speedup=2.5), '"speedup" is a number'),
    "speedup-value-string": ("new", lambda r: r["cells"][0].update(speedup={"eager": "fast"}), '"speedup"."eager" is \'fast\''),
    "speedup-disagrees": ("new", lambda r: r["cells"][0].update(speedup={"eager": 9.0}), '"speedup"."eager" is 9 but the samples give'),
    "baselines-not-a-dict": ("new", lambda r: r["cells"][0].update(baselines=["eager"]), 'malformed "baselines"'),
    "baseline-not-a-dict": ("new", lambda r: r["cells"][0].update(baselines={"eager": "ok"}), '"baselines"."eager" is a string'),
    "timing-string": ("new", _set(lambda c: c["timings"], "build_s", "2s"), '"timings"."build_s" is \'2s\''),
    "duplicate-id": ("new", _duplicate_cell, '"id" appears twice'),
    "status-not-a-string": ("new", lambda r: r["cells"][0].update(status=0), '"status" is 0'),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_values_exit_2_with_one_line_naming_the_field(run_compare, case):
    side, mutate, expected = MALFORMED[case]
    base = make_report()
    bad = copy.deepcopy(base)
    mutate(bad)
    code, out, err = run_compare(*((bad, base) if side == "base" else (base, bad)), "--fail-on", "median:5%", "--fail-on", "speedup:5%")
    assert code == 2, err
    line = one_line(err)
    assert line.startswith("gptbench compare: error: ") and f"{side}.json: cell " in line, line
    assert f"({base['cells'][0]['id']})" in line or (case == "duplicate-id" and "cell 1" in line), line
    assert expected in line, line
    assert out == ""


def test_a_parity_without_tolerance_is_read_as_no_tolerance():
    base = make_report()
    new = copy.deepcopy(base)
    for report in (base, new):
        report["cells"][0]["parity"]["tol"] = None
    new["cells"][0]["parity"]["rel_l2"] = 1e-3
    (change,) = compare_reports(base, new, []).parity_changes
    assert change.reason == "grew 3333x"


# ------------------------------------------------------------------------------ speedup rule
def test_speedup_rule_parses_percent_only():
    assert Rule.parse("speedup:5%") == Rule("speedup", 5.0, "%") and Rule.parse("speedup:5%").is_speedup
    with pytest.raises(UserError, match="speedup:N%"):
        Rule.parse("speedup:1ms")


def test_speedup_rule_passes_when_tvm_and_eager_slowed_together(run_compare):
    base = make_report()
    machine = rescaled(rescaled(base, 1.20), 1.20, backend="eager")
    result = compare_reports(base, machine, [Rule.parse("speedup:5%")])
    assert result.ok and not result.warnings
    assert all(c.speedup.change == pytest.approx(1.0) and c.speedup.ci_low < 1 < c.speedup.ci_high for c in result.cells)
    code, out, err = run_compare(base, machine, "--fail-on", "speedup:5%")
    assert code == 0, err
    assert "## TVM speedup over eager" in out and out.count("| ×1.000 [") == 4


def test_speedup_rule_fails_when_only_tvm_slowed_naming_the_cell(run_compare):
    base = make_report()
    slow_tvm = rescaled(base, 1.20)
    result = compare_reports(base, slow_tvm, [Rule.parse("speedup:5%")])
    assert [f.cell for f in result.failures] == ["nanogpt-tiny × export", "nanogpt-tiny × onnx", "gpt2-tiny × export", "gpt2-tiny × onnx"]
    s = result.cells[0].speedup
    assert s.change == pytest.approx(1 / 1.2, rel=1e-4) and s.ci_high < 1 and s.new == pytest.approx(s.base / 1.2, rel=1e-4)
    code, out, err = run_compare(base, slow_tvm, "--fail-on", "speedup:5%")
    assert code == 1
    assert "4 regression(s):" in err
    assert "  nanogpt-tiny × export: speedup:5%: speedup over eager 2." in err and "(×0.833 [" in err
    assert "- **gpt2-tiny × onnx**: `speedup:5%`: speedup over eager" in out
    assert compare_reports(base, slow_tvm, [Rule.parse("speedup:20%")]).ok  # a 16.7% drop is within 20%


def test_speedup_rule_passes_one_percent_noise(run_compare):
    base = make_report()
    noisy = rescaled(rescaled(base, 1.01, noise=0.01, seed=3), 1.0, noise=0.01, seed=4, backend="eager")
    result = compare_reports(base, noisy, [Rule.parse("speedup:5%")])
    assert all(abs(c.speedup.change - 1) < 0.03 for c in result.cells)
    assert result.ok
    code, _, err = run_compare(base, noisy, "--fail-on", "speedup:5%")
    assert code == 0, err


def test_speedup_rule_lists_cells_without_eager_and_fails_when_none_could_be_checked(run_compare):
    base = make_report()
    new = copy.deepcopy(base)
    new["cells"][1]["baselines"]["eager"] = dict(status="failed", error="oom")
    result = compare_reports(base, new, [Rule.parse("speedup:5%")])
    assert result.ok and result.cells[1].speedup is None
    assert result.warnings == ["warning: speedup rule not applicable to nanogpt-tiny × onnx: no eager latency in NEW"]
    code, out, err = run_compare(base, new, "--fail-on", "speedup:5%")
    assert code == 0
    assert "warning: speedup rule not applicable to nanogpt-tiny × onnx" in err
    assert "| nanogpt-tiny × onnx |  |  |  | speedup rule not applicable: no eager latency in NEW |" in out

    no_eager = copy.deepcopy(base)
    for cell in no_eager["cells"]:
        cell["baselines"] = {}
        cell["speedup"] = {}
    code, out, err = run_compare(no_eager, base, "--fail-on", "speedup:5%", "--fail-on", "median:5%")
    assert code == 1
    assert err.count("speedup rule not applicable") == 4
    assert "  speedup:5%: no cell could be checked: no matched cell has TVM and eager latency" in err
    few = copy.deepcopy(base)
    few["cells"] = few["cells"][:1]
    few["cells"][0]["baselines"]["eager"]["latency"] = Latency.from_seconds([0.025, 0.026]).to_json()
    few["cells"][0]["speedup"] = {}
    (cell,) = compare_reports(few, base, [Rule.parse("speedup:5%")]).cells
    assert cell.speedup is None and cell.speedup_note == "too few samples (fewer than 3): eager in BASE (2)"


def test_a_cell_the_report_flagged_as_unstably_timed_is_noted(run_compare):
    import copy

    base = make_report()
    new = copy.deepcopy(base)
    new["name"] = "new"
    new["cells"][0]["timing"] = {"flags": ["the machine was busy while timing: other processes used 1.00 cores"]}
    code, out, _ = run_compare(base, new)
    assert code == 0
    assert "unstable timing in NEW" in out and out.count("unstable timing") == 1
