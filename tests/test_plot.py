"""`gptbench plot`: a readable PNG per report; failed cells are labelled gaps, never dropped.

Reports are synthetic (bench.report.new_report with seeded samples), so these tests never run TVM.
"""

from __future__ import annotations

import matplotlib.image
import pytest

from bench.core.errors import UserError
from bench.record import Baseline, Cell
from bench.reports.plot import DPI, FIGSIZE, make_figure, plot_report
from bench.reports.report import new_report, to_json
from tests.reports import latency, with_id

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_cell(model: str, frontend: str, seed: int, status: str = "ok", variant: str | None = None) -> Cell:
    cell = dict(model=model, frontend=frontend, target="llvm", scenario="prefill", batch=1, seq_len=16, past_len=0, new_tokens=0,
                shapes="static", dtype="float32", status=status, variant=variant, timings=dict(build_s=2.0 + seed / 10),
                tvm=None, baselines={})
    if status in ("ok", "mismatch"):
        cell["tvm"] = latency(10.0, seed)
        cell["baselines"] = {"eager": dict(status="ok", latency=latency(25.0, seed + 100)),
                             "ort": dict(status="ok", latency=latency(8.0, seed + 200))}
    if status == "build_failed":
        cell["timings"] = {}
    return Cell.from_json(with_id(cell))


def run_report() -> dict:
    cells = [make_cell("nanogpt-tiny", "export", 0), make_cell("nanogpt-tiny", "onnx", 1, status="mismatch"),
             make_cell("gpt2-tiny", "export", 2), make_cell("gpt2-tiny", "onnx", 3, status="import_failed")]
    env = dict(cpu="AMD EPYC 7B13", gpu=None)
    return new_report("run", "nightly", dict(target="llvm"), env, cells)


def passes_report() -> dict:
    cells = [make_cell("gpt2-tiny", "export", i, status=s, variant=v)
             for i, (v, s) in enumerate([("default", "ok"), ("-FuseOps", "ok"), ("-FuseTIR", "mismatch"), ("-LegalizeOps", "build_failed")])]
    return new_report("passes", "ablation", {}, dict(cpu="AMD EPYC 7B13", gpu=dict(name="NVIDIA H100")), cells)


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def assert_valid_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    height, width = matplotlib.image.imread(path).shape[:2]
    assert (width, height) == (FIGSIZE[0] * DPI, FIGSIZE[1] * DPI)


@pytest.fixture
def run_plot(gptbench):
    """`gptbench plot ARGS…` through the real CLI: (code, stdout, stderr)."""
    return lambda *argv: gptbench("plot", *argv)


def test_run_report_png_is_valid(tmp_path):
    path = plot_report(run_report(), tmp_path / "run.png")
    assert path == tmp_path / "run.png"
    assert_valid_png(path)


def test_the_png_is_kept_in_256_colours_that_look_like_matplotlibs_own(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    raw = io.BytesIO()
    make_figure(run_report()).savefig(raw, format="png", dpi=DPI)
    path = plot_report(run_report(), tmp_path / "run.png")
    assert [p.name for p in tmp_path.iterdir()] == ["run.png"]  # no temporary file left beside it
    kept = Image.open(path)
    assert kept.mode == "P" and path.stat().st_size < len(raw.getvalue()) / 2
    full = np.asarray(Image.open(raw).convert("RGB"), dtype=float)
    diff = np.abs(full - np.asarray(kept.convert("RGB"), dtype=float))
    assert diff.mean() < 0.5  # on 0..255: only anti-aliased edges move, and only a little


def test_failed_and_mismatched_cells_are_labelled_not_dropped():
    fig = make_figure(run_report())
    latency_ax, speedup_ax = fig.axes
    assert "import_failed" in [t.get_text() for t in latency_ax.texts]  # the TVM onnx bar of gpt2-tiny
    assert "import_failed" in [t.get_text() for t in speedup_ax.texts]
    assert texts(fig).count("mismatch") == 2
    assert [t.get_text() for t in latency_ax.get_xticklabels()] == ["nanogpt-tiny", "gpt2-tiny"]
    assert len(speedup_ax.get_xticklabels()) == 4
    assert {"TVM export", "TVM onnx", "eager", "ort"} == {t.get_text() for t in latency_ax.get_legend().get_texts()}
    assert latency_ax.get_yscale() == "log"
    assert any(line.get_linestyle() == "--" and list(line.get_ydata()) == [1.0, 1.0] for line in speedup_ax.get_lines())
    speedups = sorted(float(t.get_text().rstrip("x")) for t in speedup_ax.texts if t.get_text().endswith("x"))
    assert speedups == pytest.approx([2.5] * 3, rel=0.05)
    title = fig._suptitle.get_text()
    assert "nightly" in title and "llvm" in title and "prefill" in title and "seq 16" in title and "AMD EPYC 7B13" in title


def test_a_failed_baseline_is_a_labelled_gap():
    report = run_report()
    for cell in report["cells"]:
        if cell.model == "gpt2-tiny" and cell.baselines:
            cell.baselines["ort"] = Baseline("failed", error="onnxruntime: unsupported op")
    assert "ort failed" in texts(make_figure(report))


def test_passes_report_plots_latency_and_build_time_per_variant(tmp_path):
    report = passes_report()
    fig = make_figure(report)
    latency_ax, build_ax = fig.axes
    for ax in (latency_ax, build_ax):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["default", "-FuseOps", "-FuseTIR", "-LegalizeOps"]
        assert "build_failed" in [t.get_text() for t in ax.texts] and "mismatch" in [t.get_text() for t in ax.texts]
    assert [round(p.get_height(), 3) for p in build_ax.patches if p.get_height() > 0] == [2.0, 2.1, 2.2]
    assert "NVIDIA H100" in fig._suptitle.get_text()
    assert_valid_png(plot_report(report, tmp_path / "passes.png"))


def test_an_empty_report_is_a_user_error():
    with pytest.raises(UserError, match="no cells"):
        make_figure(new_report("run", "empty", {}, {}, []))


def test_cli_writes_beside_each_report_or_under_out(run_plot, tmp_path):
    a, b = tmp_path / "20260101T000000Z-a.json", tmp_path / "b.json"
    a.write_text(to_json(run_report()))
    b.write_text(to_json(passes_report()))
    code, _, err = run_plot(a, b)
    assert code == 0, err
    assert_valid_png(tmp_path / "20260101T000000Z-a.png")
    assert_valid_png(tmp_path / "b.png")
    code, _, err = run_plot(a, "--out", tmp_path / "charts")
    assert code == 0 and (tmp_path / "charts" / "20260101T000000Z-a.png").is_file()
    assert f"wrote {tmp_path / 'charts' / '20260101T000000Z-a.png'}" in err


def test_corrupt_report_exits_2_and_writes_nothing(run_plot, tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(to_json(run_report()))
    bad.write_text('{"schema": "gptbench.report", "schema_version": 1, "kind": "run", "cells": [{"model": "x"}]')
    code, _, err = run_plot(good, bad)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("gptbench plot: error:") and "bad.json is not valid JSON" in lines[0]
    assert not list(tmp_path.glob("*.png"))


def test_every_backend_has_its_own_colour_even_when_all_its_cells_failed():
    from matplotlib.colors import to_hex

    cells = [make_cell("nanogpt-tiny", "export", 0), make_cell("nanogpt-tiny", "fx", 1, status="import_failed")]
    cells[0].tuning = dict(matched=28, tasks=30)
    fig = make_figure(new_report("run", "colours", dict(target="llvm"), dict(cpu="x"), cells))
    handles, labels = fig.axes[0].get_legend_handles_labels()
    colours = {label: to_hex(h.patches[0].get_facecolor()) for h, label in zip(handles, labels, strict=True)}
    assert len(set(colours.values())) == len(colours), colours  # export and the all-failed fx differ
    assert "TVM export (tuned: 28 of 30 kernels)" in colours


def test_speedup_axis_reads_as_plain_numbers():
    fig = make_figure(run_report())
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels(which="both") if t.get_text()]
    assert labels and not any("e-" in t or "e+" in t or "$" in t for t in labels), labels
