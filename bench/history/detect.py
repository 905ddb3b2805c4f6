"""Steps in a series, judged with each point's own noise.

A point is one backend's median in one run, x = ln(median). Its own uncertainty u combines two things
the harness measured in that run: the sampling error of the median (from its samples: 1.2533 × 1.4826 ×
MAD / √n, relative) and the drift the solo check saw (|ln(1 + diff)|: how far the backend's time moved
between the interleaved rounds and its solo calls). A point flagged unstable (a busy machine, a solo
check beyond tolerance) thereby carries its larger uncertainty; it is also left out of the baseline that
later points are judged against, while enough stable points remain.

The newest point is judged against the baseline: the points since the series' last step (at most
LOOKBACK). The baseline's centre is the median of its values; the run-to-run scatter beyond the points'
own uncertainty, τ² = max(0, (1.4826 × MAD)² − mean u²), is what the machine adds between runs (the
drift no single run sees). The newest point's predictive spread is σ² = τ² + u_new² + (π/2)(τ² + mean
u²)/k, and t = (x_new − centre)/σ is compared with Student's t at k − 1 degrees of freedom (ALPHA one-
sided): with few points only a large step counts. A step must also exceed MIN_CHANGE, so a series whose
noise is tiny does not flag a change nobody would act on. Why not a fixed percentage: this machine's run-
to-run drift differs per backend (eager's bimodal timing moves 20–60% between runs where TVM's moves 2%),
so one threshold is either blind for TVM or raises alarms for eager; a per-series noise model is neither.

`replay` judges every point as if it were the newest (a new segment starts at each step), which marks
the steps on the dashboard and measures the false-positive rate over repeated runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

ALPHA = 0.01
MIN_CHANGE = 0.05
CONFIRM = 2  # points in a row beyond the threshold before a step is declared
MIN_POINTS = 3
LOOKBACK = 20


@dataclass(frozen=True)
class Obs:
    """One point of a backend's series: its median, the median's sampling error, and the control (eager's
    median and sampling error in the same run, timed in the same rounds) where there is one."""

    median: float  # ms
    rel_se: float  # the median's sampling error, relative
    unstable: bool = False
    control: tuple[float, float] | None = None  # (eager's median ms, its rel_se)

    @property
    def x(self) -> float:
        return math.log(self.median)

    def normalised(self) -> Obs | None:
        """The point as its ratio to the control: what is left when the whole machine ran slower."""
        if self.control is None:
            return None
        med, se = self.control
        return Obs(self.median / med, math.hypot(self.rel_se, se), self.unstable)


@dataclass(frozen=True)
class Verdict:
    kind: str  # regression | improvement | suspect regression | suspect improvement | no change | too few points
    change: float | None = None  # newest / baseline centre − 1
    t: float | None = None
    t_crit: float | None = None
    k: int = 0  # baseline points
    tau: float | None = None  # run-to-run scatter beyond the points' own noise (log scale)
    unstable: bool = False  # the judged point was flagged
    noise: float | None = None  # the baseline's scatter, run-to-run and sampling together (log scale)
    metric: str = "latency"  # latency | ratio to eager
    confirmed: int = 1  # points in a row beyond the threshold

    @property
    def step(self) -> bool:
        return self.kind in ("regression", "improvement")

    @property
    def suspect(self) -> bool:
        return self.kind.startswith("suspect")

    def describe(self) -> str:
        if self.kind == "too few points":
            return f"too few points ({self.k} of {MIN_POINTS} before it)"
        text = f"{self.kind} {self.change:+.1%}" if self.change is not None else self.kind
        text += " of its ratio to eager" if self.metric != "latency" else ""
        text += ", 2 runs in a row" if self.confirmed > 1 else ""
        text += " (one run: a step when the next run agrees)" if self.suspect else ""
        detail = f"t {self.t:+.1f} of ±{self.t_crit:.1f} over {self.k} points, noise ±{self.noise:.1%}"
        return f"{text} ({detail})" + (" [flagged unstable]" if self.unstable else "")


def baseline_of(points: list[Obs]) -> list[Obs]:
    """The points a newer one is judged against: the last LOOKBACK, less the unstable ones while at least
    MIN_POINTS stable ones remain."""
    recent = points[-LOOKBACK:]
    stable = [p for p in recent if not p.unstable]
    return stable if len(stable) >= MIN_POINTS else recent


def _one(base: list[Obs], newest: Obs, alpha: float, min_change: float) -> Verdict:
    k = len(base)
    xs = np.array([p.x for p in base])
    us = np.array([p.rel_se for p in base])
    centre = float(np.median(xs))
    spread = 1.4826 * float(np.median(np.abs(xs - centre)))
    tau2 = max(0.0, spread ** 2 - float(np.mean(us ** 2)))
    sigma = math.sqrt(tau2 + newest.rel_se ** 2 + (math.pi / 2) * (tau2 + float(np.mean(us ** 2))) / k)
    d = newest.x - centre
    t = d / sigma if sigma else (math.copysign(math.inf, d) if d else 0.0)
    t_crit = float(stats.t.ppf(1 - alpha, df=k - 1))
    kind = "no change"
    if abs(t) > t_crit and abs(math.expm1(d)) > min_change:
        kind = "regression" if d > 0 else "improvement"
    return Verdict(kind, change=math.expm1(d), t=t, t_crit=t_crit, k=k, tau=math.sqrt(tau2), unstable=newest.unstable,
                   noise=math.sqrt(tau2 + float(np.mean(us ** 2))))


def judge(history: list[Obs], newest: Obs, *, alpha: float = ALPHA, min_change: float = MIN_CHANGE, confirm: int = CONFIRM) -> Verdict:
    """The newest point against the points before it. A point beyond the threshold is a step when the
    point before it was beyond the same threshold the same way too (confirm=2; both judged against the
    points before them), else a suspect: one run on a VM moves 10% now and then with nothing changed."""
    v = judge_point(history, newest, alpha=alpha, min_change=min_change)
    if not v.step or confirm <= 1:
        return v
    if len(history) >= 1:
        earlier = history[:-1]
        prev = judge_point(earlier, history[-1], alpha=alpha, min_change=min_change)
        again = judge_point(earlier, newest, alpha=alpha, min_change=min_change)
        if prev.kind == v.kind and again.kind == v.kind:
            return replace(again, confirmed=2)
    return replace(v, kind=f"suspect {v.kind}")


def judge_point(history: list[Obs], newest: Obs, *, alpha: float = ALPHA, min_change: float = MIN_CHANGE) -> Verdict:
    """The newest point against the points before it (since the last step), on its latency or, where eager
    was timed beside it in every point and that makes the baseline quieter, on its ratio to eager."""
    base = baseline_of(history)
    if len(base) < MIN_POINTS:
        return Verdict("too few points", k=len(base), unstable=newest.unstable)
    verdict = _one(base, newest, alpha, min_change)
    ratios = [p.normalised() for p in base]
    if newest.control is None or any(r is None for r in ratios):
        return verdict
    vs = _one(ratios, newest.normalised(), alpha, min_change)
    return replace(vs, metric="ratio to eager") if vs.noise < verdict.noise else verdict


def replay(points: list[Obs], **kw) -> list[Verdict]:
    """Every point judged as the newest of the points before it; a step starts a new segment at its first
    point (the one before, when it took two runs to confirm)."""
    verdicts, start = [], 0
    for i, p in enumerate(points):
        v = judge(points[start:i], p, **kw)
        verdicts.append(v)
        if v.step:
            start = i - v.confirmed + 1
    return verdicts
