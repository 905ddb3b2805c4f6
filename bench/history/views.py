"""The history's Markdown tables: short enough for a pull-request comment."""

from __future__ import annotations

from bench.core.markdown import fmt, md_table
from bench.history.series import Series


def _short(commit: str | None) -> str | None:
    return commit[:10] if commit else None


def summary_table(series: list[Series]) -> str:
    """One row per series: its points, the newest TVM and eager medians, TVM's trend and verdict."""
    rows = []
    for s in series:
        p = s.points[-1]
        lat = p["latencies"]
        v = s.newest("tvm") if "tvm" in s.backends else None
        rows.append([s.label, s.machine, len(s.points), p["created"][:16].replace("T", " "), p["status"],
                     fmt((lat.get("tvm") or {}).get("median"), ".3f"), fmt((lat.get("eager") or {}).get("median"), ".3f"),
                     s.sparkline("tvm"), v.describe() if v else s.status_change() or "not measured"])
    return md_table(["series", "machine", "points", "newest", "status", "TVM ms", "eager ms", "TVM trend", "TVM verdict"], rows)


def points_table(s: Series, last: int = 20) -> str:
    """Every point of one series (the last `last`): when, which run, TVM build, each backend's median, flags, verdict."""
    backends = s.backends
    rows = []
    verdicts = {b: s.verdicts(b) for b in backends}
    for i, p in list(enumerate(s.points))[-last:]:
        lat = p["latencies"]
        v = verdicts.get("tvm", {}).get(i)
        tvm = " ".join(x for x in (p["tvm_version"], _short(p["tvm_commit"])) if x)
        rows.append([p["created"][:16].replace("T", " "), p["run_name"], tvm or None, _short(p["harness_commit"]), p["status"],
                     *[fmt((lat.get(b) or {}).get("median"), ".3f") for b in backends],
                     "unstable" if p["unstable"] else None, v.describe() if v and v.kind != "no change" else (v.kind if v else None)])
    head = f"### {s.label}\n\nmachine: {s.machine}; {len(s.points)} point(s)\n\n"
    return head + md_table(["when (UTC)", "run", "TVM", "harness", "status", *[f"{b} ms" for b in backends], "flags",
                            "TVM verdict"], rows)


def check_table(series: list[Series], every: bool = False) -> str:
    """Each series' newest point judged, per backend: the steps, the suspects and the cells that stopped
    being ok (and, with every, the rest); the counts first."""
    rows, judged, quiet, few = [], 0, 0, 0
    for s in series:
        change = s.status_change()
        if change:
            rows.append([s.label, s.machine, "(status)", None, None, None, change])
        for b in s.backends:
            v = s.newest(b)
            if v is None:
                continue
            judged += 1
            quiet += v.kind == "no change"
            few += v.kind == "too few points"
            if not (v.step or v.suspect) and not every:
                continue
            lat = s.points[-1]["latencies"][b]
            rows.append([s.label, s.machine, b, fmt(lat["median"], ".3f"), v.k, fmt(v.change, "+.1%"), v.describe()])
    steps = [r[6] for r in rows if r[2] != "(status)"]
    text = (f"{len(series)} series; newest points of {judged} backend series judged: {quiet} no change, "
            f"{sum(v.startswith('regression') for v in steps)} regression(s), {sum(v.startswith('improvement') for v in steps)} "
            f"improvement(s), {sum(v.startswith('suspect') for v in steps)} suspect(s) (one run beyond the threshold: a step "
            f"when the next run agrees), {few} with too few points (fewer than 3 earlier points)")
    text += f"; {sum(r[2] == '(status)' for r in rows)} cell(s) stopped being ok\n\n"
    if rows:
        text += md_table(["series", "machine", "backend", "newest ms", "baseline points", "change", "verdict"], rows)
    return text
