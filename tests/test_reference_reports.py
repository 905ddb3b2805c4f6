"""Every committed report still loads: `gptbench report` prints it and `gptbench compare` of a report
against itself finds no change and no regression. Guards changes to the cell record and the report
schema: old reports must load (or be refused with a clear message, which this test would then show)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ("results/*.json", "results/reference/**/*.json")
# committed JSON that is no report (`timers`, `ab`, `bisect`'s state, `profile`, a GPU kit's manifest): not for report/compare
OTHER_SCHEMAS = {"gptbench.timers", "gptbench.ab", "gptbench.bisect", "gptbench.profile", "gptbench.gpu-kit"}


def _committed_json() -> list[Path]:
    """The tracked JSON files under results/ (top level) and results/reference/ (any depth), less the
    tuning databases committed beside the reports they back; without git (e.g. in an image), every
    such file present."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", *(f":(glob){p}" for p in PATTERNS)], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=60).stdout
        found = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        found = [p for pattern in PATTERNS for p in ROOT.glob(pattern)]
    return sorted({p for p in found if not (p.parent / "gptbench-db.json").is_file()})  # a tuning database committed beside its reports


def test_tuning_databases_beside_reports_are_not_taken_for_reports():
    db = ROOT / "results/reference/tuning-curves-20261126/databases/gpt2-prefill-scratch"
    assert (db / "gptbench-db.json").is_file() and not any(p.parent == db for p in COMMITTED)


def _schema(path: Path):
    data = json.loads(path.read_text())
    return data.get("schema") if isinstance(data, dict) else None


COMMITTED = _committed_json()
REPORTS = [p for p in COMMITTED if _schema(p) == "gptbench.report"]


def test_the_committed_json_is_reports_or_known_other_files():
    assert len(REPORTS) >= 20, [str(p) for p in COMMITTED]  # the reference set, found
    others = {str(p.relative_to(ROOT)): _schema(p) for p in COMMITTED if p not in REPORTS}
    assert set(others.values()) <= OTHER_SCHEMAS, others  # a new kind of file: decide whether it belongs in REPORTS


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_a_committed_report_loads_in_report_and_compares_with_itself_unchanged(path, gptbench, tmp_path):
    code, out, err = gptbench("report", path)
    assert code == 0, err
    assert out.lstrip().startswith("#") and "|" in out, out[:500]

    result = tmp_path / "compare.json"
    code, out, err = gptbench("compare", path, path, "--fail-on", "median:5%", "--fail-on", "build_s:5%", "--json", result)
    assert code == 0, err
    r = json.loads(result.read_text())
    assert r["ok"] and not r["failures"], r["failures"]
    assert not (r["status_changes"] or r["parity_changes"] or r["only_base"] or r["only_new"])
    n_cells = len(json.loads(path.read_text())["cells"])
    assert len(r["cells"]) == n_cells
    assert {c["verdict"] for c in r["cells"]} <= {"no change", "not measured"}, [c["verdict"] for c in r["cells"]]


def test_a_committed_ab_report_names_its_two_side_reports_and_their_builds():
    from bench.ab import order

    abs_ = [p for p in COMMITTED if _schema(p) == "gptbench.ab"]
    assert abs_, "the release A/B reports (results/reference/releases-20261206/) are committed"
    for path in abs_:
        doc = json.loads(path.read_text())
        sides = [path.parent / name for name in doc["side_reports"]]
        assert len(sides) == 2 and all(p in REPORTS for p in sides), (path, sides)
        versions = [{c["notes"]["tvm_build"]["version"] for c in json.loads(p.read_text())["cells"]} for p in sides]
        assert versions == [{s["version"]} for s in doc["sides"]]
        assert doc["ok"] == (not doc["failures"]) and doc["order"] == order(doc["rounds"])
