"""`gptbench plot FILE…`: PNG bar charts of reports, written beside each report (or under --out).

A "run" report gets two panels:
1. latency per model, grouped by backend (TVM once per frontend, then each measured baseline:
   eager, compile, ort): bars at the median, whiskers from the 10th to the 90th percentile of
   the raw samples, on a log axis (backends differ by orders of magnitude). A baseline is
   measured in every cell of a model (in the same rounds as that cell's TVM module); its bar pools
   the samples of all of them;
2. speedup vs eager per cell (eager median / TVM median of the same cell) with a dashed line at
   1.0, on a log axis so that 2x faster and 2x slower are the same distance from it.

A "passes" report (cells with a `variant`: "default", "-FuseOps", …) gets TVM latency and build
time (`timings.build_s`) per variant.

Nothing is dropped silently: a cell that produced no number (import_failed, build_failed, …)
leaves a gap labelled with its status, and a `mismatch` cell (numbers, but wrong outputs) is
drawn hatched and labelled "mismatch". The title names the report, target, scenario, shapes
and the machine. Figures are drawn on the Agg canvas, without pyplot's global state.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.baselines import BASELINE_LIST, BASELINES
from bench.core.errors import UserError
from bench.core.files import atomic_write
from bench.record import Cell
from bench.reports.report import load_report, shape_label, shapes_text, swept

if TYPE_CHECKING:  # numpy and matplotlib are imported where a figure is drawn: `gptbench --help` needs neither
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE = (13.0, 5.5)
DPI = 100
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
# One colour per backend, the same in every figure: TVM's frontends in blues and greens, the baselines apart (each
# baseline's colour is its registry entry's).
BACKEND_COLORS = {"export": "tab:blue", "onnx": "tab:cyan", "fx": "tab:green", "relay-onnx": "tab:olive", "relay-torch": "tab:brown",
                  **{b.name: b.color for b in BASELINE_LIST}}


def backend_color(name: str, index: int) -> str:
    return BACKEND_COLORS.get(name, COLORS[index % len(COLORS)])


@dataclass
class Bar:
    """One bar, or a labelled gap where a value is missing."""

    x: float
    value: float | None
    low: float | None = None  # whisker ends
    high: float | None = None
    mismatch: bool = False
    gap: str = ""  # the label of a missing value (a status)


def _latency_bar(x: float, samples: list[float], mismatch: bool = False) -> Bar:
    import numpy as np

    s = np.asarray(samples, dtype=np.float64)
    low, median, high = np.percentile(s, [10, 50, 90])
    return Bar(x, float(median), float(low), float(high), mismatch)


def _draw(ax: Axes, bars: list[Bar], width: float, color: str, label: str) -> None:
    """Bars with whiskers; mismatches hatched and marked; gaps as vertical status text."""
    from matplotlib.transforms import blended_transform_factory

    shown = [b for b in bars if b.value is not None]
    if shown:
        rects = ax.bar([b.x for b in shown], [b.value for b in shown], width, color=color, label=label, edgecolor="black",
                       linewidth=0.5)
        for rect, b in zip(rects, shown, strict=True):
            if b.mismatch:
                rect.set(hatch="//", alpha=0.55)
        whiskers = [b for b in shown if b.low is not None]
        if whiskers:
            ax.errorbar([b.x for b in whiskers], [b.value for b in whiskers],
                        yerr=[[b.value - b.low for b in whiskers], [b.high - b.value for b in whiskers]],
                        fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    else:
        # keep the legend entry of an all-failed backend, in its own colour (an empty bar call would fall back to the cycle's)
        ax.bar([float("nan")], [float("nan")], width, color=color, label=label, edgecolor="black", linewidth=0.5)
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for b in bars:
        if b.value is None or b.mismatch:
            ax.text(b.x, 0.02, b.gap if b.value is None else "mismatch", transform=bottom, rotation=90, ha="center", va="bottom",
                    fontsize=7, color="darkred", bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))


def _plain(value: float, _pos=None) -> str:
    """0.6, 2, 150: a log axis read as numbers, never as 6e-01."""
    return f"{value:.3g}"


def _axes(ax: Axes, n_positions: int, log: bool) -> None:
    """Room for every position (a gap at the edge included) and plain numbers on a log axis."""
    ax.set_xlim(-0.5, n_positions - 0.5)
    if log:
        _log_y(ax)


def _log_y(ax: Axes) -> None:
    """A log y axis labelled with plain numbers (0.5, 2, 10), not 5e-01."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.yaxis.set_minor_formatter(FuncFormatter(_plain))


def _title(report: dict) -> str:
    first = report["cells"][0]
    env = report.get("environment") or {}
    machine = str(env.get("cpu") or "unknown CPU")
    if env.get("gpu"):
        machine += f", GPU {env['gpu'].get('name')}"
    shape = (f"{first.shapes}, a sweep of {len({shape_label(c) for c in report['cells']})} shapes" if swept(report["cells"])
             else shapes_text(first))
    return f"{report['name']} ({report['kind']}, {report.get('created')}): target {first.target}, {first.scenario}, {shape}\n{machine}"


def _in_order(values) -> list:
    return list(dict.fromkeys(values))


def _tvm_bar(cell: Cell, x: float) -> Bar:
    if cell.tvm is not None:
        return _latency_bar(x, cell.tvm.samples, cell.status == "mismatch")
    return Bar(x, None, gap=cell.status)


def _baseline_bar(cells: list[Cell], baseline: str, x: float) -> Bar:
    """A baseline's samples pooled over the given cells (one model's), or a gap saying why there are none."""
    records = [c.baselines[baseline] for c in cells if baseline in c.baselines]
    samples = [s for r in records if r.latency is not None for s in r.latency.samples]
    if samples:
        return _latency_bar(x, samples, any(r.status == "mismatch" for r in records))
    failed = [r.status for r in records if r.status != "ok"]
    return Bar(x, None, gap=f"{baseline} {failed[0] if failed else 'not measured'}")


def _run_latency(ax: Axes, cells: list[Cell]) -> None:
    models = _in_order(c.model for c in cells)
    frontends = _in_order(c.frontend for c in cells)
    baselines = [b for b in BASELINES if any(b in c.baselines for c in cells)]
    width = 0.8 / (len(frontends) + len(baselines))
    by_key = {(c.model, c.frontend): c for c in cells}

    def x(model_index: int, backend_index: int) -> float:
        return model_index - 0.4 + width * (backend_index + 0.5)

    for k, frontend in enumerate(frontends):
        bars = [_tvm_bar(by_key[m, frontend], x(i, k)) for i, m in enumerate(models) if (m, frontend) in by_key]
        _draw(ax, bars, width, backend_color(frontend, k), f"TVM {frontend}" + _tuned_label(cells, frontend))
    for j, baseline in enumerate(baselines, start=len(frontends)):
        bars = [_baseline_bar([c for c in cells if c.model == m], baseline, x(i, j)) for i, m in enumerate(models)]
        _draw(ax, bars, width, backend_color(baseline, j), "TVM untuned (same pipeline, no database)" if baseline == "untuned" else baseline)
    _axes(ax, len(models), log=True)
    ax.set_xticks(range(len(models)), models)
    ax.set_ylabel("latency, ms (median, p10–p90)")
    ax.set_title("Latency per model and backend", fontsize=10)
    ax.legend(fontsize=8)


def _tuned_label(cells: list[Cell], frontend: str) -> str:
    """' (tuned: 28 of 30 kernels)' for a frontend whose cells used a tuning database, else ''."""
    tuned = [c.tuning for c in cells if c.frontend == frontend and c.tuning]
    if not tuned:
        return ""
    matched, tasks = sum(t.get("matched") or 0 for t in tuned), sum(t.get("tasks") or 0 for t in tuned)
    return f" (tuned: {matched} of {tasks} kernels)" if tasks else " (tuned)"


def _run_speedup(ax: Axes, cells: list[Cell]) -> None:
    import numpy as np

    frontends = _in_order(c.frontend for c in cells)
    for k, frontend in enumerate(frontends):
        bars = []
        for i, cell in enumerate(cells):
            if cell.frontend != frontend:
                continue
            eager = cell.baselines["eager"].latency if "eager" in cell.baselines else None
            if cell.tvm is not None and eager is not None:
                speedup = float(np.median(eager.samples) / np.median(cell.tvm.samples))
                bars.append(Bar(i, speedup, mismatch=cell.status == "mismatch"))
            else:
                bars.append(Bar(i, None, gap=cell.status if cell.status not in ("ok", "mismatch") else "no eager"))
        _draw(ax, bars, 0.7, backend_color(frontend, k), f"TVM {frontend}" + _tuned_label(cells, frontend))
        for b in bars:
            if b.value is not None:
                ax.annotate(f"{b.value:.2f}x", (b.x, b.value), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    _axes(ax, len(cells), log=True)
    ax.set_xticks(range(len(cells)), [f"{c.model}\n{c.frontend}" for c in cells], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("speedup vs eager (eager median / TVM median)")
    ax.set_title("TVM speedup over eager PyTorch (> 1: TVM faster)", fontsize=10)
    ax.legend(fontsize=8)


def tuning_minutes(cell: Cell) -> float | None:
    """Minutes of tuning behind a cell's build: its --tuned-after cut, else its whole database's."""
    t = cell.tuning or {}
    seconds = (t.get("cut") or {}).get("tuning_s", t.get("tuning_wall_s"))
    return None if seconds is None else float(seconds) / 60


def _curve(cells: list[Cell], group: tuple) -> tuple[list, list]:
    """(minutes, TVM median ms, eager median ms) of a model × frontend's cells, sorted by minutes, and
    (minutes, status) of those without both numbers."""
    import numpy as np

    points, gaps = [], []
    for cell in cells:
        minutes = tuning_minutes(cell)
        if (cell.model, cell.frontend) != group or minutes is None:
            continue
        eager = cell.baselines["eager"].latency if "eager" in cell.baselines else None
        if cell.tvm is None or eager is None:
            gaps.append((minutes, cell.status if cell.status not in ("ok", "mismatch") else "no eager"))
        else:
            points.append((minutes, float(np.median(cell.tvm.samples)), float(np.median(eager.samples))))
    return sorted(points), gaps


def _tuning_curves(latency_ax: Axes, speedup_ax: Axes, cells: list[Cell]) -> None:
    """A run with --tuned-after: TVM's and eager's latency (left) and TVM's speedup over eager in the
    same cell's rounds (right) against the minutes of tuning behind each cell's build, one line per
    model × frontend; a cell without a number is marked with its status."""
    groups = _in_order((c.model, c.frontend) for c in cells if c.tuning)
    for k, group in enumerate(groups):
        color = COLORS[k % len(COLORS)] if len(groups) > 1 else backend_color(group[1], k)
        points, gaps = _curve(cells, group)
        tvm = [(m, t) for m, t, _e in points]
        eager = [(m, e) for m, _t, e in points]
        speedup = [(m, e / t) for m, t, e in points]
        latency_ax.plot(*zip(*tvm, strict=True), marker="o", color=color, label=f"{group[0]} × TVM {group[1]}")
        latency_ax.plot(*zip(*eager, strict=True), marker="s", linestyle=":", color=color, alpha=0.6, label=f"{group[0]} × eager (same cells)")
        speedup_ax.plot(*zip(*speedup, strict=True), marker="o", color=color, label=f"{group[0]} × TVM {group[1]}")
        for x, y in speedup:
            speedup_ax.annotate(f"{y:.3g}x", (x, y), xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7)
        for x, status in gaps:
            speedup_ax.axvline(x, color="red", linestyle=":", linewidth=1)
            speedup_ax.annotate(status, (x, 1.0), fontsize=7, rotation=90, color="red")
    speedup_ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    for ax, ylabel, title in ((latency_ax, "latency, ms (median)", "Latency vs tuning time"),
                              (speedup_ax, "speedup vs eager (eager median / TVM median)",
                               "TVM speedup over eager PyTorch vs tuning time (> 1: TVM faster)")):
        _log_y(ax)
        ax.set_xlabel("minutes of tuning behind the build (--tuned-after cuts of one database)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)


def _passes_panel(ax: Axes, cells: list[Cell], value_of, ylabel: str, title: str, log: bool) -> None:
    """One bar per variant for each model × frontend group; value_of(cell, x) -> Bar."""
    groups = _in_order((c.model, c.frontend) for c in cells)
    variants = _in_order(c.variant or "default" for c in cells)
    width = 0.8 / len(groups)
    for k, group in enumerate(groups):
        bars = []
        for i, variant in enumerate(variants):
            cell = next((c for c in cells if (c.model, c.frontend) == group and (c.variant or "default") == variant), None)
            if cell is not None:
                bars.append(value_of(cell, i - 0.4 + width * (k + 0.5)))
        _draw(ax, bars, width, COLORS[k % len(COLORS)], f"{group[0]} × {group[1]}")
    _axes(ax, len(variants), log)
    ax.set_xticks(range(len(variants)), variants, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def _passes_build(cell: Cell, x: float) -> Bar:
    build_s = cell.timings.get("build_s")
    if build_s is None:
        return Bar(x, None, gap=cell.status)
    return Bar(x, float(build_s), mismatch=cell.status == "mismatch")


def _tokens(c: Cell) -> int:
    return c.past_len if c.scenario == "decode" else c.seq_len


def _sweep_panels(latency_ax: Axes, speedup_ax: Axes, cells: list[Cell]) -> None:
    """A shape sweep: latency (median, p10-p90) against tokens per backend, one line per model and batch
    (the first batch solid, the others dashed); TVM's speedup over eager against tokens per frontend."""
    import numpy as np

    groups = _in_order((c.model, c.batch) for c in cells)
    backends = _in_order(["tvm:" + c.frontend for c in cells] + [b for c in cells for b in c.baselines if b in BASELINES])
    for j, backend in enumerate(backends):
        for model, batch in groups:
            mine = sorted((c for c in cells if (c.model, c.batch) == (model, batch)), key=_tokens)
            points = []
            for c in mine:
                lat = (c.tvm if c.frontend == backend[4:] else None) if backend.startswith("tvm:") else \
                    (c.baselines[backend].latency if backend in c.baselines else None)
                if lat is not None and not any(x == _tokens(c) for x, *_ in points):  # a baseline once per length
                    low, mid, high = np.percentile(lat.samples, [10, 50, 90])
                    points.append((_tokens(c), mid, low, high))
            if not points:
                continue
            xs, mids, lows, highs = map(list, zip(*points, strict=True))
            name = f"TVM {backend[4:]}" if backend.startswith("tvm:") else backend
            color = backend_color(backend[4:] if backend.startswith("tvm:") else backend, j)
            latency_ax.errorbar(xs, mids, yerr=[np.subtract(mids, lows), np.subtract(highs, mids)], marker="o", capsize=2, color=color,
                                linestyle="-" if len(groups) == 1 or batch == groups[0][1] else "--",
                                label=f"{name}" + (f" ({model}, b{batch})" if len(groups) > 1 else ""))
    for ax in (latency_ax, speedup_ax):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("past tokens" if cells[0].scenario == "decode" else "sequence length, tokens")
        ax.xaxis.set_major_formatter(_plain)
    _log_y(latency_ax)
    latency_ax.set_ylabel("latency, ms (median, p10–p90)")
    latency_ax.set_title("Latency against sequence length", fontsize=10)
    latency_ax.legend(fontsize=7)
    for k, frontend in enumerate(_in_order(c.frontend for c in cells)):
        for model, batch in groups:
            pts = sorted((_tokens(c), c.speedup["eager"]) for c in cells if (c.model, c.batch, c.frontend) == (model, batch, frontend)
                         and c.speedup.get("eager"))
            if pts:
                speedup_ax.plot(*zip(*pts, strict=True), marker="o", color=backend_color(frontend, k),
                                linestyle="-" if batch == groups[0][1] else "--", label=f"TVM {frontend}" + (f" ({model}, b{batch})" if len(groups) > 1 else ""))
    speedup_ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    speedup_ax.set_ylabel("speedup vs eager (eager median / TVM median)")
    speedup_ax.set_title("TVM speedup over eager PyTorch against sequence length (> 1: TVM faster)", fontsize=10)
    speedup_ax.legend(fontsize=7)


def _run_memory(ax: Axes, cells: list[Cell]) -> None:
    """Each backend's peak memory alone, per cell: the runtime's imports (pale) and what the model added (solid)."""
    shown = [c for c in cells if c.memory and c.memory.get("backends")]
    names = _in_order(n for c in shown for n in c.memory["backends"])
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        xs, floors, models, colors = [], [], [], []
        for i, c in enumerate(shown):
            m = c.memory["backends"].get(name) or {}
            if "peak_mb" in m:
                xs.append(i - 0.4 + width * (j + 0.5))
                floors.append(m["floor_mb"])
                models.append(m["model_mb"])
                colors.append(backend_color(c.frontend if name == "tvm" else name, j))  # TVM in its frontend's colour
        label = "TVM (its frontend's colour)" if name == "tvm" else "TVM untuned" if name == "untuned" else name
        ax.bar(xs, floors, width, color=colors, alpha=0.35, edgecolor="black", linewidth=0.5)
        ax.bar(xs, models, width, bottom=floors, color=colors, label=label, edgecolor="black", linewidth=0.5)
    sweep = swept(shown)
    ax.set_xticks(range(len(shown)), [f"{c.model}\n{c.frontend}" + (f", {shape_label(c)}" if sweep else "") for c in shown],
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("peak resident memory alone, MB")
    ax.set_title("Memory per backend (pale: runtime imports; solid: model)", fontsize=10)
    ax.legend(fontsize=8)


def make_figure(report: dict) -> Figure:
    """The report's chart, not yet saved (drawn on an Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cells = report["cells"]
    if not cells:
        raise UserError(f"report {report.get('name')!r} has no cells: nothing to plot")
    memory = report["kind"] != "passes" and any(c.memory and c.memory.get("backends") for c in cells)
    fig = Figure(figsize=(FIGSIZE[0] * 1.45, FIGSIZE[1]) if memory else FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    left, right, *third = fig.subplots(1, 3 if memory else 2, width_ratios=[1, 1, 0.9] if memory else None)
    if third:
        _run_memory(third[0], cells)
    if report["kind"] == "passes":
        _passes_panel(left, cells, _tvm_bar, "TVM latency, ms (median, p10–p90)", "TVM latency per pass variant", log=True)
        _passes_panel(right, cells, _passes_build, "build time, s", "Build time per pass variant", log=False)
    else:
        if any((c.tuning or {}).get("cut") for c in cells):
            _tuning_curves(left, right, cells)
        elif swept(cells):
            _sweep_panels(left, right, cells)
        else:
            _run_latency(left, cells)
            _run_speedup(right, cells)
    fig.suptitle(_title(report), fontsize=10)
    return fig


def compact_png(raw: bytes) -> bytes:
    """A chart's PNG in 256 colours: flat plot colours and anti-aliased text survive, the file is about a
    third of matplotlib's RGBA (reports are committed, and the tree travels to GPU hosts)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(raw)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def plot_report(report: dict, path: str | Path) -> Path:
    """Write the report's chart as a PNG at `path` (whole or not at all); returns the path."""
    import io

    out = Path(path)
    raw = io.BytesIO()
    make_figure(report).savefig(raw, format="png", dpi=DPI)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, compact_png(raw.getvalue()))
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    return out


def cmd_plot(args) -> int:
    reports = [(Path(f), load_report(f)) for f in args.files]  # every file is checked before anything is written
    for source, report in reports:
        target = (Path(args.out) / source.stem if args.out else source).with_suffix(".png")
        print(f"wrote {plot_report(report, target)}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("plot", help="PNG bar charts of report(s): latency per backend, speedup vs eager")
    p.add_argument("files", nargs="+", metavar="FILE", help="report JSON file(s)")
    p.add_argument("--out", default=None, metavar="DIR", help="write the PNGs here (default: beside each report, same stem)")
    p.set_defaults(func=cmd_plot)
