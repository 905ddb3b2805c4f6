"""The dashboard: a static site written from the store, opened from file:// with no network.

    index.html              every series: machine, points, a sparkline of TVM (eager faint beside it),
                            the newest medians and the newest verdict; a filter box
    series/<slug>.html      one series: each backend's median over its runs (log scale where they span
                            more than 5x), unstable points hollow, steps marked, failed runs crossed, each
                            point a link to its run; the points' table below
    runs/<id>.html, .json   one run: its Markdown report and the report itself

Plain HTML and inline SVG, one small inline script (the filter); nothing loaded from elsewhere. The site is
written beside its directory and swapped in whole, so a reader never sees half of it."""

from __future__ import annotations

import html
import json
import math
import shutil
import tempfile
from pathlib import Path

from bench.baselines import BASELINE_LIST
from bench.core.errors import UserError
from bench.core.markdown import fmt
from bench.history.series import Series
from bench.history.store import Store, run_report
from bench.record import Cell
from bench.reports.report import to_markdown

MARKER = ".gptbench-site"
COLORS = {"tvm": "#c62828", **{b.name: b.color for b in BASELINE_LIST}}  # the baselines' as in the plots
OTHER = "#607d8b"
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:middle}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.regression{color:#b71c1c;font-weight:600}.improvement{color:#1b5e20;font-weight:600}.muted{color:#777}
pre{background:#f7f7f7;padding:10px;overflow-x:auto;font-size:12px}
input{font-size:14px;padding:4px 8px;width:320px}
.legend span{margin-right:14px}.swatch{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:4px}
"""
FILTER_JS = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('tr.series').forEach(function (row) {
    row.style.display = row.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
});
"""


def _e(text) -> str:
    return html.escape("" if text is None else str(text))


def _page(title: str, body: str, script: str = "", up: str = "") -> str:
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head>\n<body>\n{up}{body}\n" + (f"<script>{script}</script>\n" if script else "") + "</body></html>\n")


def _color(backend: str) -> str:
    return COLORS.get(backend, OTHER)


def _verdict_html(v) -> str:
    if v is None:
        return '<span class="muted">not measured</span>'
    cls = v.kind if v.step else "muted" if v.kind == "too few points" else ""
    return f'<span class="{cls}">{_e(v.describe())}</span>'


# ------------------------------------------------------------------------------------------ sparkline
def sparkline(s: Series, width: int = 160, height: int = 32) -> str:
    """TVM's medians (and eager's, faint) of the last 30 points, as their ratio to each backend's own median
    on one log scale of at least ±10%: a 30% step stands out, 1% of noise stays flat."""
    traces = {b: [o.median for _, o in s.observations(b)][-30:] for b in ("eager", "tvm")}
    logs = {b: [math.log(v / sorted(vals)[len(vals) // 2]) for v in vals] for b, vals in traces.items() if vals}
    r = max([0.1, *(abs(x) for xs in logs.values() for x in xs)])
    lines = []
    for backend, opacity in (("eager", 0.35), ("tvm", 1.0)):
        xs = logs.get(backend)
        if not xs:
            continue
        n = max(len(xs) - 1, 1)
        pts = [(2 + i * (width - 4) / n, height / 2 - x / r * (height / 2 - 3)) for i, x in enumerate(xs)]
        lines.append(f'<polyline fill="none" stroke="{_color(backend)}" stroke-opacity="{opacity}" stroke-width="1.5" '
                     f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>')
        if backend == "tvm":
            x, y = pts[-1]
            lines.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{_color(backend)}"/>')
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="trend: ±{r:.0%} full scale"><title>each backend against its own median; full scale ±{r:.0%}</title>'
            f'{"".join(lines)}</svg>')


# ------------------------------------------------------------------------------------------ the chart
def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        out = []
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
            out += [m * 10 ** e for m in (1, 2, 5) if lo <= m * 10 ** e <= hi]
        return out or [lo, hi]
    step = 10 ** math.floor(math.log10((hi - lo) or hi or 1))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= 6:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


class _Frame:
    """The chart's plotting area: x by point index, y by median (log scale where the medians span over 5x)."""

    left, right, top, bottom = 70, 40, 20, 60

    def __init__(self, n: int, meds: list[float], width: int, height: int):
        self.n, self.width, self.height = n, width, height
        self.pw, self.ph = width - self.left - self.right, height - self.top - self.bottom
        lo, hi = min(meds), max(meds)
        self.log = hi / lo > 5
        if self.log:
            self.lo, self.hi = lo / 1.15, hi * 1.15
        else:
            pad = (hi - lo) * 0.1 or hi * 0.05
            self.lo, self.hi = max(0.0, lo - pad), hi + pad

    def y(self, v: float) -> float:
        f = (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo)) if self.log else (v - self.lo) / (self.hi - self.lo)
        return self.top + self.ph - f * self.ph

    def x(self, i: int) -> float:
        return self.left + (self.pw / 2 if self.n == 1 else i * self.pw / (self.n - 1))

    def gap(self) -> float:
        return self.pw / max(self.n - 1, 1) / 2 if self.n > 1 else 0.0


def _axes(s: Series, f: _Frame) -> list[str]:
    out = []
    for t in _ticks(f.lo, f.hi, f.log):
        y = f.y(t)
        out.append(f'<line x1="{f.left}" x2="{f.left + f.pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
                   f'<text x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    mid = f.top + f.ph / 2
    out.append(f'<text x="14" y="{mid}" transform="rotate(-90 14 {mid})" text-anchor="middle">median ms{" (log scale)" if f.log else ""}</text>')
    every = max(1, f.n // 8)
    for i, p in enumerate(s.points):
        if i % every == 0 or i == f.n - 1:
            out.append(f'<text x="{f.x(i):.1f}" y="{f.top + f.ph + 16}" text-anchor="middle">{_e(p["created"][5:16].replace("T", " "))}</text>')
    out.append(f'<text x="{f.left + f.pw / 2}" y="{f.height - 8}" text-anchor="middle">run (UTC), oldest first</text>')
    return out


def _steps(s: Series, f: _Frame) -> list[str]:
    out = []
    for b in s.backends:
        for i, v in s.verdicts(b).items():
            if v.step:
                x = f.x(i - v.confirmed + 1) - f.gap()  # before the step's first point (the next run confirmed it)
                near_right = x > f.left + f.pw - 110  # the label then ends at the line instead of starting there
                tx, anchor = (x - 4, "end") if near_right else (x + 4, "start")
                out.append(f'<g class="step" data-backend="{_e(b)}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{f.top}" y2="{f.top + f.ph}" '
                           f'stroke="{_color(b)}" stroke-dasharray="5,4" stroke-width="1.5"/>'
                           f'<text x="{tx:.1f}" y="{f.top + 12}" text-anchor="{anchor}" fill="{_color(b)}">step: {_e(b)} {v.change:+.0%}</text>'
                           f'<title>{_e(b)}: {_e(v.describe())}</title></g>')
    return out


def _lines(s: Series, f: _Frame) -> list[str]:
    out = []
    for b in s.backends:
        obs = s.observations(b)
        out.append(f'<polyline class="line" data-backend="{_e(b)}" fill="none" stroke="{_color(b)}" stroke-width="{2.5 if b == "tvm" else 1.5}" '
                   f'points="{" ".join(f"{f.x(i):.1f},{f.y(o.median):.1f}" for i, o in obs)}"/>')
        verdicts = s.verdicts(b)
        for i, o in obs:
            p = s.points[i]
            tip = f"{p['created']} {b}: {o.median:.4g} ms ({p['run_name']})" + ("; unstable" if o.unstable else "") + \
                  (f"; {verdicts[i].describe()}" if i in verdicts else "")
            out.append(f'<a href="../runs/{p["run_id"]}.html"><circle class="point{" unstable" if o.unstable else ""}" '
                       f'cx="{f.x(i):.1f}" cy="{f.y(o.median):.1f}" r="4" fill="{"#fff" if o.unstable else _color(b)}" '
                       f'stroke="{_color(b)}" stroke-width="1.5"><title>{_e(tip)}</title></circle></a>')
    return out


def _failed(s: Series, f: _Frame) -> list[str]:
    out = []
    for i, p in enumerate(s.points):
        if p["status"] != "ok":
            x, y = f.x(i), f.top + f.ph - 8
            out.append(f'<a href="../runs/{p["run_id"]}.html"><g class="failed"><path d="M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},{y + 5:.1f}'
                       f'M{x - 5:.1f},{y + 5:.1f}L{x + 5:.1f},{y - 5:.1f}" stroke="#000" stroke-width="2"/>'
                       f'<title>{_e(p["created"])}: {_e(p["status"])} ({_e(p["run_name"])})</title></g></a>')
    return out


def chart(s: Series, width: int = 960, height: int = 360) -> str:
    """Each backend's median per point; unstable points hollow; steps dashed and labelled; failed runs crossed."""
    meds = [lat["median"] for p in s.points for lat in p["latencies"].values()]
    head = f'<svg id="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="latency over runs" font-size="11">'
    if not meds:
        return head + f'<text x="{_Frame.left}" y="{_Frame.top + 20}">no timed point in this series</text></svg>'
    f = _Frame(len(s.points), meds, width, height)
    return head + "".join(_axes(s, f) + _steps(s, f) + _lines(s, f) + _failed(s, f)) + "</svg>"


# -------------------------------------------------------------------------------------------- pages
def _legend(s: Series) -> str:
    items = "".join(f'<span><i class="swatch" style="background:{_color(b)}"></i>{_e(b)}</span>' for b in s.backends)
    return (f'<p class="legend">{items}<span>○ hollow: flagged unstable</span><span>╎ dashed: a step</span>'
            f'<span>× a run where the cell failed</span></p>')


def series_page(s: Series) -> str:
    rows = []
    verdicts = {b: s.verdicts(b) for b in s.backends}
    for i, p in reversed(list(enumerate(s.points))):
        lat = p["latencies"]
        tvm = " ".join(x for x in (p["tvm_version"], (p["tvm_commit"] or "")[:10]) if x)
        v = verdicts.get("tvm", {}).get(i)
        cells = "".join(f'<td class="num">{_e(fmt((lat.get(b) or {}).get("median"), ".3f"))}</td>' for b in s.backends)
        rows.append(f'<tr><td><a href="../runs/{p["run_id"]}.html">{_e(p["created"][:16].replace("T", " "))}</a></td>'
                    f'<td>{_e(p["run_name"])}</td><td>{_e(tvm)}</td><td>{_e((p["harness_commit"] or "")[:10])}</td>'
                    f'<td>{_e(p["status"])}</td>{cells}<td>{"unstable" if p["unstable"] else ""}</td><td>{_verdict_html(v) if v else ""}</td></tr>')
    head = "".join(f"<th>{_e(b)} ms</th>" for b in s.backends)
    body = (f"<h1>{_e(s.label)}</h1><p>machine: {_e(s.machine)} · {len(s.points)} point(s) · series key <code>{_e(s.key)}</code></p>"
            f"{_legend(s)}{chart(s)}"
            "<h2>Points, newest first</h2><table><tr><th>when (UTC)</th><th>run</th><th>TVM</th><th>harness</th><th>status</th>"
            f"{head}<th>flags</th><th>TVM verdict</th></tr>{''.join(rows)}</table>")
    return _page(s.label, body, up='<p><a href="../index.html">← all series</a></p>')


def index_page(series: list[Series], where: str) -> str:
    parts = [f"<h1>gpt-frontend-bench: results over time</h1><p>{len(series)} series from <code>{_e(where)}</code>. "
             "Each point is one run's median; a verdict judges a series' newest point against its earlier points with "
             "each point's own noise (docs/history.md). Red: TVM; blue, faint: eager.</p>"
             '<p><input id="filter" type="search" placeholder="filter series (model, frontend, machine…)"></p>']
    by_machine: dict[str, list[Series]] = {}
    for s in series:
        by_machine.setdefault(s.machine, []).append(s)
    newest = {m: max(p["created"] for s in group for p in s.points) for m, group in by_machine.items()}
    for machine, group in sorted(by_machine.items(), key=lambda kv: newest[kv[0]], reverse=True):  # the latest machine first
        rows = []
        for s in group:
            p = s.points[-1]
            lat = p["latencies"]
            v = s.newest("tvm") if "tvm" in s.backends else None
            status = s.status_change() or ("" if p["status"] == "ok" else p["status"])
            last = s.last_step("tvm")
            step = (f'<span class="{last[1].kind}">{_e(last[1].kind)} {last[1].change:+.1%}</span> at '
                    f'{_e(s.points[last[0]]["created"][:16].replace("T", " "))}') if last else ""
            rows.append(f'<tr class="series"><td><a href="series/{s.slug}.html">{_e(s.label)}</a></td><td class="num">{len(s.points)}</td>'
                        f'<td>{sparkline(s)}</td><td class="num">{_e(fmt((lat.get("tvm") or {}).get("median"), ".3f"))}</td>'
                        f'<td class="num">{_e(fmt((lat.get("eager") or {}).get("median"), ".3f"))}</td><td>{_e(p["created"][:16].replace("T", " "))}</td>'
                        f'<td>{_e(status)}</td><td>{step}</td><td>{_verdict_html(v)}</td></tr>')
        parts.append(f"<h2>{_e(machine)}</h2><table><tr><th>series</th><th>points</th><th>TVM trend</th><th>TVM ms</th>"
                     f"<th>eager ms</th><th>newest (UTC)</th><th>status</th><th>TVM's last step</th><th>newest verdict</th></tr>{''.join(rows)}</table>")
    return _page("gpt-frontend-bench history", "".join(parts), FILTER_JS)


def run_page(run_id: int, report: dict) -> str:
    typed = {**report, "cells": [Cell.from_json(c) for c in report["cells"]]}
    body = (f"<h1>{_e(report.get('name'))} · {_e(report.get('created'))}</h1>"
            f'<p><a href="{run_id}.json">the report (JSON)</a> · command: <code>{_e(" ".join(report.get("command") or []))}</code></p>'
            f"<pre>{_e(to_markdown(typed))}</pre>")
    return _page(f"run {report.get('name')} {report.get('created')}", body, up='<p><a href="../index.html">← all series</a></p>')


# ----------------------------------------------------------------------------------------- publish
def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; name a directory for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UserError(f"--out {out}: a directory that is not a gptbench site (no {MARKER}); name a new or empty directory")


def publish(store: Store, series: list[Series], out_dir: str) -> Path:
    """Write the site into a new directory beside out_dir, then swap it in; the index's path."""
    out = Path(out_dir)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        (tmp / "series").mkdir()
        (tmp / "runs").mkdir()
        (tmp / MARKER).write_text("written by gptbench history publish\n")
        (tmp / "index.html").write_text(index_page(series, store.where))
        run_ids = set()
        for s in series:
            (tmp / "series" / f"{s.slug}.html").write_text(series_page(s))
            run_ids |= {p["run_id"] for p in s.points}
        for rid in sorted(run_ids):
            report = run_report(store, rid)
            (tmp / "runs" / f"{rid}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
            (tmp / "runs" / f"{rid}.html").write_text(run_page(rid, report))
        tmp.chmod(0o755)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{tmp.name[-8:]}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"
