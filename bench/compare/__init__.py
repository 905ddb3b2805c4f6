"""`gptbench compare BASE.json NEW.json`: did the latency change, beyond the noise?

Cells of the two reports are matched by `id` (what was measured, plus the variant of a pass
ablation), so a "run" report and a "passes" report compare alike. For each matched cell the TVM
latency samples are compared in three ways, and a change is declared only when all three agree
(in the spirit of asv's compare, so that CI gates do not cry wolf on a noisy machine):

1. Mann-Whitney U, two-sided (`scipy.stats.mannwhitneyu`): p < alpha (default 0.05). It is a
   rank test, so the long right tail of latency samples (a preempted call, a page fault) does
   not dominate it the way it would a t-test;
2. the bootstrap confidence interval (level 1 - alpha, so 95% by default) of the ratio of
   medians new/base, from 2000 resamples of both sample sets with a fixed seed (the output is
   deterministic), excludes 1.0;
3. the ratio of medians moved by at least the minimum effect (default 2%): a real but tiny
   difference is not worth a red build.

With fewer than 3 samples on a side no test is possible: the verdict is `no change` with the
note "too few samples"; a cell without TVM latency on a side (it failed) is `not measured`.
The eager PyTorch baseline of the same cell is compared the same way and shown as context:
when eager moved in the same direction by at least half as much (in log terms) the note says
so, because then the machine probably changed, not the compiler.

One source: the verdicts, the rules and the speedups all read the kept samples. The statistics a
report stores beside them (n, median, mean, min, p90, p99, the speedups) are only checked against
the samples (bench.record.cells_from_json, the one validator of report cells): recomputed in ms they must agree to a relative 1e-3 (plus the
rounding of the stored values), else the report is corrupt and `compare` stops with one line
naming the file, the cell, the backend and the field (exit 2). So does any malformed value:
samples that are not a non-empty list of positive finite numbers, a statistic, rel_l2, tolerance
or timing that is not a number, a cell whose baselines, speedup, parity or timings is not an
object, a duplicated cell id.

Also reported: cells found in only one report, status changes (a cell ok in BASE and not ok in
NEW is a correctness regression and always fails), parity changes (relative L2 error crossing
the cell's tolerance, or growing more than 10x), the single-sample scalar timings (export,
import, build: ratio only, no test is possible on one sample) and environment differences
(warnings; a different git commit is only information).

Regression rules (`--fail-on`, repeatable, pytest-benchmark style) are parsed by `Rule.parse`:
`STAT:N%` and `STAT:Xms` with STAT one of median, mean, min, p90, p99 fail a cell whose verdict
is `slower` and whose STAT (computed from the samples) grew by more than N% (X ms);
`build_s:N%`, `import_s:N%` and `export_s:N%` fail when that scalar timing grew by more than N%.

`speedup:N%` gates TVM's speedup over eager PyTorch measured in the same report, in the same
rounds: s = median(eager) / median(TVM), in BASE and in NEW, and the change s_NEW / s_BASE. A
machine that became slower for every backend leaves s alone; a change that slowed only TVM
lowers it. The interval of the change is a percentile bootstrap (level 1 - alpha, 95% by
default; 2000 resamples with a fixed seed) that resamples the TVM and the eager samples of each
report independently. A cell fails when the whole interval lies below 1 **and** s dropped by
more than N%. Cells without TVM and eager latency (at least 3 samples each) in both reports are
listed as "speedup rule not applicable"; when no cell at all could be checked the rule fails.

Every failure is collected and the command exits 1 once, listing them all; 0 otherwise; 2 on bad
input. Two reports with no cell in common fail every rule asked (exit 1: nothing was compared);
without rules that is only a warning.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core.errors import UserError
from bench.core.markdown import fmt, md_table
from bench.record import LATENCY_STATS, Cell, Latency, stat_of
from bench.reports.report import checked_cells, read_report, shapes_text

if TYPE_CHECKING:  # numpy and scipy are imported where statistics are computed: `gptbench --help` needs neither
    import numpy as np

TIMING_KEYS = ("export_s", "import_s", "build_s")
MIN_SAMPLES = 3
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
PARITY_GROWTH = 10.0
ENV_FIELDS = ("cpu", "cores", "threads", "tvm.host_mcpu", "tvm.version", "tvm.llvm", "versions.torch", "versions.apache-tvm",
              "versions.apache-tvm-ffi", "gpu.name")
SPEEDUP = "speedup"
RULE_FORMS = ("STAT:N% or STAT:Xms with STAT one of " + ", ".join(LATENCY_STATS) + "; or "
              + ", ".join(f"{k}:N%" for k in TIMING_KEYS) + "; or speedup:N% (e.g. median:5%, p90:0.5ms, build_s:20%, speedup:5%)")


# ------------------------------------------------------------------------------------ statistics
@dataclass
class SampleComparison:
    """New vs base latency samples (ms) of one backend in one cell."""

    n_base: int
    n_new: int
    base_median: float
    new_median: float
    ratio: float  # new median / base median
    ci_low: float | None  # bootstrap confidence interval of the ratio; None with too few samples
    ci_high: float | None
    p_value: float | None  # Mann-Whitney U, two-sided
    verdict: str  # faster | slower | no change

    @property
    def testable(self) -> bool:
        return self.p_value is not None


def bootstrap_ratio_ci(base: np.ndarray, new: np.ndarray, level: float, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of median(new) / median(base), resampling both sets."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base_medians = np.median(base[rng.integers(0, len(base), (resamples, len(base)))], axis=1)
    new_medians = np.median(new[rng.integers(0, len(new), (resamples, len(new)))], axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(new_medians / base_medians, [tail, 100 - tail])
    return float(low), float(high)


def compare_samples(base: list[float], new: list[float], alpha: float, min_effect: float) -> SampleComparison:
    import numpy as np
    from scipy.stats import mannwhitneyu

    b, n = np.asarray(base, dtype=np.float64), np.asarray(new, dtype=np.float64)
    base_median, new_median = float(np.median(b)), float(np.median(n))
    ratio = new_median / base_median
    if len(b) < MIN_SAMPLES or len(n) < MIN_SAMPLES:
        return SampleComparison(len(b), len(n), base_median, new_median, ratio, None, None, None, "no change")
    low, high = bootstrap_ratio_ci(b, n, level=1 - alpha)
    p = float(mannwhitneyu(n, b, alternative="two-sided").pvalue)
    changed = p < alpha and not (low <= 1.0 <= high) and abs(ratio - 1) >= min_effect
    verdict = ("slower" if ratio > 1 else "faster") if changed else "no change"
    return SampleComparison(len(b), len(n), base_median, new_median, ratio, low, high, p, verdict)


@dataclass
class SpeedupComparison:
    """TVM's speedup over eager in one cell (median(eager) / median(TVM), same report), BASE vs NEW."""

    base: float
    new: float
    change: float  # new / base: below 1, TVM lost ground against eager
    ci_low: float  # bootstrap confidence interval of the change
    ci_high: float


def bootstrap_speedup_change_ci(tvm_base: np.ndarray, eager_base: np.ndarray, tvm_new: np.ndarray, eager_new: np.ndarray,
                                level: float, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of (median(eager_new)/median(tvm_new)) / (median(eager_base)/median(tvm_base)),
    resampling each of the four sample sets independently."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def medians(x: np.ndarray) -> np.ndarray:
        return np.median(x[rng.integers(0, len(x), (resamples, len(x)))], axis=1)

    base = medians(eager_base) / medians(tvm_base)
    new = medians(eager_new) / medians(tvm_new)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(new / base, [tail, 100 - tail])
    return float(low), float(high)


def compare_speedups(tvm_base: list[float], eager_base: list[float], tvm_new: list[float], eager_new: list[float],
                     alpha: float) -> SpeedupComparison:
    import numpy as np

    tb, eb, tn, en = (np.asarray(x, dtype=np.float64) for x in (tvm_base, eager_base, tvm_new, eager_new))
    base, new = float(np.median(eb) / np.median(tb)), float(np.median(en) / np.median(tn))
    low, high = bootstrap_speedup_change_ci(tb, eb, tn, en, level=1 - alpha)
    return SpeedupComparison(base, new, new / base, low, high)


# ----------------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """A `--fail-on` regression rule: `median:5%`, `p90:0.5ms`, `build_s:20%`, `speedup:5%`."""

    metric: str  # a latency statistic (LATENCY_STATS), a scalar timing (TIMING_KEYS) or SPEEDUP
    limit: float  # percent for unit "%", milliseconds for unit "ms"
    unit: str  # "%" or "ms"

    _PATTERN = re.compile(r"^\s*([a-z0-9_]+)\s*:\s*(\d+(?:\.\d*)?|\.\d+)\s*(%|ms)\s*$")

    @classmethod
    def parse(cls, text: str) -> Rule:
        m = cls._PATTERN.match(text)
        if not m or m[1] not in LATENCY_STATS + TIMING_KEYS + (SPEEDUP,) or (m[1] not in LATENCY_STATS and m[3] != "%"):
            raise UserError(f"bad --fail-on rule {text!r}: expected {RULE_FORMS}")
        return cls(metric=m[1], limit=float(m[2]), unit=m[3])

    @property
    def is_timing(self) -> bool:
        return self.metric in TIMING_KEYS

    @property
    def is_speedup(self) -> bool:
        return self.metric == SPEEDUP

    def __str__(self) -> str:
        return f"{self.metric}:{self.limit:g}{self.unit}"

    def exceeded(self, base: float, new: float) -> bool:
        """Did the value grow (a speedup: drop) by more than the limit?"""
        if self.is_speedup:
            return (1 - new / base) * 100 > self.limit
        growth = (new / base - 1) * 100 if self.unit == "%" else new - base
        return growth > self.limit


# ----------------------------------------------------------------------------------- result types
@dataclass
class CellComparison:
    """One matched cell: TVM latency verdict, eager context, and the stats the rules read."""

    id: str
    label: str
    model: str
    frontend: str
    target: str
    scenario: str
    shapes: str
    variant: str | None
    tvm: SampleComparison | None  # None when either side has no TVM latency (a failed cell)
    eager: SampleComparison | None
    base_stats: dict[str, float] = field(default_factory=dict)  # LATENCY_STATS computed from the TVM samples
    new_stats: dict[str, float] = field(default_factory=dict)
    note: str = ""
    speedup: SpeedupComparison | None = None  # None when the speedup rule cannot be applied to the cell
    speedup_note: str = ""  # why not

    @property
    def verdict(self) -> str:
        return self.tvm.verdict if self.tvm else "not measured"


@dataclass
class Failure:
    cell: str  # label: model × frontend [variant]
    rule: str  # the rule as written, or "status"
    detail: str

    def __str__(self) -> str:
        return f"{self.cell}: {self.rule}: {self.detail}" if self.cell else f"{self.rule}: {self.detail}"


@dataclass
class StatusChange:
    cell: str
    base: str
    new: str
    kind: str  # regression (ok → not ok) | recovery (not ok → ok) | changed
    error: str | None  # the NEW cell's error, if any


@dataclass
class ParityChange:
    cell: str
    base_rel_l2: float | None
    new_rel_l2: float | None
    tol: float | None
    reason: str


@dataclass
class TimingChange:
    cell: str
    key: str
    base_s: float
    new_s: float
    ratio: float


@dataclass
class CompareResult:
    base: dict  # name, created, kind of each report
    new: dict
    alpha: float
    min_effect: float
    rules: list[str]
    cells: list[CellComparison]
    failures: list[Failure]
    warnings: list[str]
    info: list[str]
    only_base: list[str]
    only_new: list[str]
    status_changes: list[StatusChange]
    parity_changes: list[ParityChange]
    timing_changes: list[TimingChange]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        d = asdict(self)
        for cell, c in zip(d["cells"], self.cells, strict=True):
            cell["verdict"] = c.verdict
        d["ok"] = self.ok
        return d

    def to_markdown(self) -> str:
        return _markdown(self)


# ------------------------------------------------------------------------------------ comparison
def _get(d: dict | None, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


# ------------------------------------------------------------------------------------ validation
def cell_label(cell: Cell) -> str:
    return f"{cell.model} × {cell.frontend}" + (f" [{cell.variant}]" if cell.variant else "")


def _latency_stats(stats: Latency) -> dict[str, float]:
    """The rule statistics of one latency record, computed from its samples (never the stored ones:
    the verdict reads the samples, so must the rules)."""
    import numpy as np

    samples = np.asarray(stats.samples, dtype=np.float64)
    return {k: stat_of(k, samples) for k in LATENCY_STATS}


def _eager(cell: Cell) -> Latency | None:
    eager = cell.baselines.get("eager")
    return eager.latency if eager else None


def _compare_latency(stats_base: Latency | None, stats_new: Latency | None, alpha: float, min_effect: float) -> SampleComparison | None:
    if stats_base is None or stats_new is None:
        return None
    return compare_samples(stats_base.samples, stats_new.samples, alpha, min_effect)


def _eager_moved_too(tvm: SampleComparison, eager: SampleComparison | None) -> bool:
    if eager is None or tvm.verdict == "no change" or eager.verdict != tvm.verdict:
        return False
    return abs(math.log(eager.ratio)) >= 0.5 * abs(math.log(tvm.ratio))


def _speedup(b: Cell, n: Cell, alpha: float) -> tuple[SpeedupComparison | None, str]:
    """TVM's speedup over eager in BASE and NEW, or why the speedup rule cannot be applied to the cell."""
    samples = {(side, backend): latency.samples if latency else []
               for side, cell in (("BASE", b), ("NEW", n)) for backend, latency in (("TVM", cell.tvm), ("eager", _eager(cell)))}
    absent = {backend: [side for (side, of), x in samples.items() if of == backend and not x] for backend in ("TVM", "eager")}
    missing = [f"no {backend} latency in " + " and ".join(sides) for backend, sides in absent.items() if sides]
    if missing:
        return None, ", ".join(missing)
    few = [f"{backend} in {side} ({len(x)})" for (side, backend), x in samples.items() if len(x) < MIN_SAMPLES]
    if few:
        return None, f"too few samples (fewer than {MIN_SAMPLES}): " + ", ".join(few)
    return compare_speedups(samples["BASE", "TVM"], samples["BASE", "eager"], samples["NEW", "TVM"], samples["NEW", "eager"], alpha), ""


def _timing_flags(cell: Cell) -> list:
    """The flags a report raised about how a cell was timed (solo check, busy machine); [] for older reports."""
    flags = cell.timing.get("flags") if cell.timing else None
    return flags if isinstance(flags, list) else []


def _compare_cell(b: Cell, n: Cell, alpha: float, min_effect: float, speedup: bool = False) -> CellComparison:
    tvm = _compare_latency(b.tvm, n.tvm, alpha, min_effect)
    eager = _compare_latency(_eager(b), _eager(n), alpha, min_effect)
    ratio, ratio_note = _speedup(b, n, alpha) if speedup else (None, "")
    notes = []
    if tvm is None:
        missing = [f"{side} {c.status}" for side, c in (("BASE", b), ("NEW", n)) if c.tvm is None]
        notes.append("no TVM latency: " + ", ".join(missing))
    elif not tvm.testable:
        notes.append("too few samples")
    elif _eager_moved_too(tvm, eager):
        notes.append(f"eager also {eager.verdict} (×{eager.ratio:.3f}): the machine changed, not the compiler?")
    unstable = [side for side, c in (("BASE", b), ("NEW", n)) if _timing_flags(c)]
    if unstable:
        notes.append(f"unstable timing in {' and '.join(unstable)} (the report flagged its solo check or a busy machine)")
    return CellComparison(
        id=n.id, label=cell_label(n), model=n.model, frontend=n.frontend, target=n.target, scenario=n.scenario,
        shapes=shapes_text(n), variant=n.variant, tvm=tvm, eager=eager,
        base_stats=_latency_stats(b.tvm) if tvm else {}, new_stats=_latency_stats(n.tvm) if tvm else {},
        note="; ".join(notes), speedup=ratio, speedup_note=ratio_note,
    )


def _status_change(b: Cell, n: Cell) -> StatusChange | None:
    if b.status == n.status:
        return None
    kind = "regression" if b.status == "ok" else "recovery" if n.status == "ok" else "changed"
    return StatusChange(cell_label(n), b.status, n.status, kind, n.error)


def _parity_change(b: Cell, n: Cell) -> ParityChange | None:
    pb, pn = b.parity, n.parity
    if not pb or not pn:
        return None
    rb, rn = pb.rel_l2, pn.rel_l2
    tb, tn = (math.inf if p.tol is None else p.tol for p in (pb, pn))
    within_b = rb is not None and rb <= tb
    within_n = rn is not None and rn <= tn
    if within_b != within_n:
        reason = f"now {'within' if within_n else 'beyond'} tolerance {pn.tol}" + ("" if rn is not None else f" ({pn.reason})")
    elif rb is not None and rn is not None and rn > PARITY_GROWTH * rb:
        reason = f"grew {rn / rb:.0f}x" if rb > 0 else "grew from 0"
    else:
        return None
    return ParityChange(cell_label(n), rb, rn, pn.tol, reason)


def _timing_changes(b: Cell, n: Cell) -> list[TimingChange]:
    tb, tn = b.timings, n.timings
    return [TimingChange(cell_label(n), k, tb[k], tn[k], tn[k] / tb[k]) for k in TIMING_KEYS
            if isinstance(tb.get(k), (int, float)) and isinstance(tn.get(k), (int, float)) and tb[k] > 0]


def environment_differences(base_env: dict, new_env: dict) -> tuple[list[str], list[str]]:
    """(warnings, info): a differing machine or version is a warning, a differing git commit information."""
    warnings = [f"warning: environments differ: {f} {_get(base_env, f)!r} vs {_get(new_env, f)!r}"
                for f in ENV_FIELDS if _get(base_env, f) != _get(new_env, f)]
    info = []
    cb, cn = _get(base_env, "git.commit"), _get(new_env, "git.commit")
    if cb != cn:
        info.append(f"git commit {str(cb)[:10]} → {str(cn)[:10]}")
    for key in ("version", "commit"):  # the TVM build under test (ab's side reports): what is compared, not a warning
        tb, tn = _get(base_env, f"tvm_build.{key}"), _get(new_env, f"tvm_build.{key}")
        if tb != tn:
            info.append(f"TVM build {key} {tb} → {tn}")
    return warnings, info


def _rule_failures(cells: list[CellComparison], timings: list[TimingChange], rules: list[Rule]) -> tuple[list[Failure], list[str]]:
    """Failures of every rule on every cell, and a warning for each rule that could check no cell
    (a speedup rule that could check no cell is a failure: it was asked, and nothing answered it)."""
    failures, unchecked = [], []
    for rule in rules:
        checked = 0
        if rule.is_speedup:
            for c in (c for c in cells if c.speedup):
                checked += 1
                s = c.speedup
                if s.ci_high < 1 and rule.exceeded(s.base, s.new):
                    failures.append(Failure(c.label, str(rule), f"speedup over eager {s.base:.3f}x → {s.new:.3f}x ({_speedup_ci(s)}, "
                                                                f"{(s.change - 1) * 100:+.1f}%; same rounds in each report)"))
            if not checked:
                failures.append(Failure("", str(rule), "no cell could be checked: no matched cell has TVM and eager latency "
                                                       f"(at least {MIN_SAMPLES} samples each) in both reports"))
            continue
        if rule.is_timing:
            for t in (t for t in timings if t.key == rule.metric):
                checked += 1
                if rule.exceeded(t.base_s, t.new_s):
                    failures.append(Failure(t.cell, str(rule), f"{t.key} {t.base_s:.3f} s → {t.new_s:.3f} s (×{t.ratio:.3f})"))
        else:
            for c in (c for c in cells if c.tvm and c.tvm.testable):
                checked += 1
                base, new = c.base_stats[rule.metric], c.new_stats[rule.metric]
                if c.verdict == "slower" and rule.exceeded(base, new):
                    failures.append(Failure(c.label, str(rule), f"{rule.metric} {base:.3f} ms → {new:.3f} ms (×{new / base:.3f}, "
                                                                f"{(new / base - 1) * 100:+.1f}%, {new - base:+.3f} ms); "
                                                                f"median ratio {_ratio_ci(c.tvm)}, p={c.tvm.p_value:.2g}"))
        if not checked:
            unchecked.append(f"warning: rule {rule} checked no cell (no matched cell has "
                             f"{rule.metric if rule.is_timing else 'enough TVM latency samples'} in both reports)")
    return failures, unchecked


def compare_reports(base: dict, new: dict, rules: list[Rule], alpha: float = 0.05, min_effect: float = 0.02, *,
                    base_name: str = "BASE", new_name: str = "NEW") -> CompareResult:
    """Compare two loaded reports (see the module docstring for the method); UserError naming
    base_name or new_name (their files) when a value in one is malformed or corrupt."""
    base_cells = {c.id: c for c in checked_cells(base.get("cells"), base_name)}
    new_cells = {c.id: c for c in checked_cells(new.get("cells"), new_name)}
    matched = [i for i in new_cells if i in base_cells]
    pairs = [(base_cells[i], new_cells[i]) for i in matched]
    speedup = any(r.is_speedup for r in rules)
    cells = [_compare_cell(b, n, alpha, min_effect, speedup) for b, n in pairs]
    status_changes = [s for s in (_status_change(b, n) for b, n in pairs) if s]
    parity_changes = [p for p in (_parity_change(b, n) for b, n in pairs) if p]
    timing_changes = [t for b, n in pairs for t in _timing_changes(b, n)]
    warnings, info = environment_differences(base.get("environment") or {}, new.get("environment") or {})
    failures = []
    if not matched:
        nothing = "no cell was compared: the reports have no cell in common (same models, frontends, target, scenario and shapes?)"
        if rules:
            failures.append(Failure("", ", ".join(str(r) for r in rules), nothing))
        else:
            warnings.append(f"warning: {nothing}")
    else:
        failures, unchecked = _rule_failures(cells, timing_changes, rules)
        warnings += [f"warning: speedup rule not applicable to {c.label}: {c.speedup_note}" for c in cells if speedup and not c.speedup]
        warnings += unchecked
    failures += [Failure(s.cell, "status", f"{s.base} → {s.new}" + (f" ({s.error})" if s.error else ""))
                 for s in status_changes if s.kind == "regression"]
    return CompareResult(
        base={k: base.get(k) for k in ("name", "created", "kind")}, new={k: new.get(k) for k in ("name", "created", "kind")},
        alpha=alpha, min_effect=min_effect, rules=[str(r) for r in rules], cells=cells, failures=failures, warnings=warnings,
        info=info, only_base=[cell_label(base_cells[i]) for i in base_cells if i not in new_cells],
        only_new=[cell_label(new_cells[i]) for i in new_cells if i not in base_cells],
        status_changes=status_changes, parity_changes=parity_changes, timing_changes=timing_changes,
    )


# -------------------------------------------------------------------------------------- markdown
def _ratio_ci(s: SampleComparison) -> str:
    if s.ci_low is None:
        return f"{s.ratio:.3f}"
    return f"{s.ratio:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def _speedup_ci(s: SpeedupComparison) -> str:
    return f"×{s.change:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"



def _markdown(r: CompareResult) -> str:
    level = f"{(1 - r.alpha) * 100:g}%"
    out = [
        f"# gptbench compare: {r.base['name']} → {r.new['name']}",
        "",
        f"BASE: `{r.base['name']}` ({r.base['kind']}, {r.base['created']}) · NEW: `{r.new['name']}` ({r.new['kind']}, {r.new['created']})",
        "",
        f"A change is declared when Mann-Whitney U p < {r.alpha:g}, the {level} bootstrap interval of the median ratio "
        f"new/base excludes 1 and the ratio moved by at least {r.min_effect * 100:g}%. Rules: {', '.join(r.rules) or 'none'}.",
        "",
    ]
    out += [f"> {w}  " for w in r.warnings] + ([""] if r.warnings else [])
    out += [f"Info: {i}" for i in r.info] + ([""] if r.info else [])
    with_variant = any(c.variant for c in r.cells)
    headers = ["model", "frontend", "target", "scenario", "shapes", *(["variant"] if with_variant else []), "base ms", "new ms",
               f"ratio [{level} CI]", "p", "verdict", "eager ratio", "note"]
    rows = []
    for c in r.cells:
        t = c.tvm
        numbers = [f"{t.base_median:.3f}", f"{t.new_median:.3f}", _ratio_ci(t), fmt(t.p_value, ".2g")] if t else [None] * 4
        rows.append([c.model, c.frontend, c.target, c.scenario, c.shapes, *([c.variant] if with_variant else []), *numbers,
                     c.verdict, f"{c.eager.ratio:.3f}" if c.eager else None, c.note])
    out += ["## TVM latency", "", md_table(headers, rows) if rows else "No cell in common.\n"]

    def section(title: str, headers: list[str], rows: list[list]) -> None:
        out.extend([f"## {title}", "", md_table(headers, rows) if rows else "None.\n"])

    section("Status changes", ["cell", "base", "new", "kind", "error"],
            [[s.cell, s.base, s.new, s.kind, s.error] for s in r.status_changes])
    section("Parity changes", ["cell", "base rel L2", "new rel L2", "tolerance", "change"],
            [[p.cell, fmt(p.base_rel_l2, ".2e"), fmt(p.new_rel_l2, ".2e"), p.tol, p.reason] for p in r.parity_changes])
    section("Only in one report", ["cell", "only in"],
            [[c, f"BASE ({r.base['name']})"] for c in r.only_base] + [[c, f"NEW ({r.new['name']})"] for c in r.only_new])
    section("Compile timings (single samples: ratio only, no test)", ["cell", "timing", "base s", "new s", "ratio"],
            [[t.cell, t.key, f"{t.base_s:.3f}", f"{t.new_s:.3f}", f"{t.ratio:.3f}"] for t in r.timing_changes])
    if any(rule.startswith(SPEEDUP + ":") for rule in r.rules):
        section(f"TVM speedup over eager (eager median / TVM median, same rounds; change NEW/BASE with {level} bootstrap CI)",
                ["cell", "base speedup", "new speedup", f"change [{level} CI]", "note"],
                [[c.label, f"{c.speedup.base:.3f}x", f"{c.speedup.new:.3f}x", _speedup_ci(c.speedup), None] if c.speedup
                 else [c.label, None, None, None, f"speedup rule not applicable: {c.speedup_note}"] for c in r.cells])
    out += ["## Rule failures", ""]
    out += [f"- **{f.cell}**: `{f.rule}`: {f.detail}" if f.cell else f"- `{f.rule}`: {f.detail}" for f in r.failures] or ["None."]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------- CLI
def parse_fraction(text: str, what: str) -> float:
    """'2%' or '0.02' → 0.02."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UserError(f"{what} {text!r}: expected a fraction such as 0.02 or a percentage such as 2%") from None
    if not 0 <= value < 1:
        raise UserError(f"{what} {text!r}: must be between 0 and 1 (or 0% and 100%)")
    return value


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def cmd_compare(args) -> int:
    rules = [Rule.parse(text) for text in args.fail_on]
    alpha = parse_fraction(args.alpha, "--alpha")
    if alpha == 0:
        raise UserError("--alpha must be greater than 0")
    min_effect = parse_fraction(args.min_effect, "--min-effect")
    result = compare_reports(read_report(args.base), read_report(args.new), rules, alpha, min_effect,
                             base_name=str(args.base), new_name=str(args.new))
    md = result.to_markdown()
    print(md, flush=True)
    if args.md:
        _write(args.md, md)
    if args.json:
        _write(args.json, json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n")
    for line in result.warnings:
        print(line, file=sys.stderr)
    if result.failures:
        print(f"{len(result.failures)} regression(s):", file=sys.stderr)
        for f in result.failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare two reports: per-cell latency change with significance; regression gates")
    p.add_argument("base", help="BASE report JSON (before)")
    p.add_argument("new", help="NEW report JSON (after)")
    p.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                   help=("exit 1 when a rule is broken (repeatable): " + RULE_FORMS + ". STAT:… fails a cell whose TVM verdict "
                         "is slower and whose STAT, computed from the samples, grew beyond the limit; build_s/import_s/export_s:N% "
                         "fail when that compile timing grew by more than N%; speedup:N% fails a cell whose TVM speedup over "
                         "eager (eager median / TVM median, measured in the same rounds of each report) dropped by more than N% "
                         "with its bootstrap interval (95%, or 1 - --alpha) wholly below 1, so a machine slower for every backend does not fail "
                         "it; cells without eager samples are listed as not applicable, and the rule fails when it could "
                         "check no cell. Any rule fails when the reports have no cell in common").replace("%", "%%"))
    p.add_argument("--alpha", default="0.05", help="significance level of the Mann-Whitney test and the bootstrap interval (default 0.05)")
    p.add_argument("--min-effect", default="2%", help="smallest median change declared (default 2%%)")
    p.add_argument("--md", default=None, metavar="FILE", help="also write the Markdown report to FILE")
    p.add_argument("--json", default=None, metavar="FILE", help="write the structured result (cells, failures) to FILE")
    p.set_defaults(func=cmd_compare)
