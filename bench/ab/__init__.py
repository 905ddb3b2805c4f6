"""`gptbench ab --tvm base=…,new=…`: the same cells in two TVM builds, with a verdict per cell.

Each side is any TVM environment (bench.core.tvm_envs: `0.27`, `pypi:0.26.0`, `git:REF`, `NAME=/path/python`).
Every cell runs in its own process of that side's interpreter, so the two builds never share a process.
The sides take turns, side by side and round after round, in the order A B B A (`--rounds 2`, the default;
`--rounds 1` is A B; more rounds continue A B B A A B ...). A slow drift of the machine then weighs on
both sides alike. Each side's samples are pooled over its rounds.

Per cell, the two pooled sides are compared by `gptbench compare`'s method (bench.compare): TVM latency
with the Mann-Whitney verdict and the bootstrap interval of the median ratio new/base, parity of each,
status change (ok → not ok is a regression), build/import time, plus the Relax op count and kernel count
of each build.

Eager PyTorch is timed in both sides' processes as a control. Both sides run the same torch, so eager
should not differ. Where it does differ (compare's verdict on the eager samples is not `no change`) by
enough to explain TVM's change (half of it or more, in log terms), the processes were not alike: the cell
is flagged `untrustworthy`, and no latency rule fails it.

Exit codes as `compare`'s: 0 no regression; 1 a regression (by default a status that went from ok to not ok;
latency, speedup and build time by `--fail-on` rules as compare's, and `parity` for any parity change); 2 bad input.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.compare import CompareResult, Failure, Rule, compare_reports
from bench.core.errors import Interrupted, UserError
from bench.core.files import atomic_write
from bench.core.markdown import md_table
from bench.core.tvm_envs import EnvSpec, identity, identity_line
from bench.pipeline.config import RunConfig, RunState, importers, run_json
from bench.pipeline.runner import run_matrix
from bench.record import Cell, Latency
from bench.reports.report import new_report, to_json, write_report

SCHEMA = "gptbench.ab"
PARITY_RULE = "parity"


def order(rounds: int) -> list[int]:
    """Which side (0: base, 1: new) runs at each step: A B, B A, A B, ... (rounds 2: A B B A)."""
    return [side for r in range(rounds) for side in ((0, 1) if r % 2 == 0 else (1, 0))]


@dataclass(frozen=True)
class Judging:
    """How an A/B is judged: compare's rules (bench.compare.Rule), whether a parity change fails it, and the
    significance level and smallest effect a latency verdict needs."""

    rules: list[Rule]
    parity: bool
    alpha: float
    min_effect: float


def parse_rules(texts: list[str]) -> tuple[list[Rule], bool]:
    """compare's rules, plus `parity` (fail on any parity change)."""
    parity = PARITY_RULE in texts
    return [Rule.parse(t) for t in texts if t != PARITY_RULE], parity


def sides_of(cfg: RunConfig) -> list[EnvSpec]:
    specs = cfg.env_specs()
    if len(specs) != 2:
        raise UserError("ab compares two TVM builds: --tvm BASE,NEW (e.g. --tvm base=pypi:0.26.0,new=0.27)")
    return specs


# ------------------------------------------------------------------------------------- pooling
def normalized(cell: Cell, side: str) -> Cell:
    """The cell as its side's: the environment's name out of its variant (both sides' ids match), tvm_env the side."""
    cell.variant = cell.variant_without_env()
    cell.tvm_env = side
    cell.id = cell.make_id()
    return cell


def _pooled_latency(parts: list[Latency]) -> Latency:
    return Latency.from_seconds([ms / 1e3 for lat in parts for ms in lat.samples])


def pool(rounds: list[list[Cell]]) -> list[Cell]:
    """One cell per id from a side's rounds: samples concatenated, the worst parity, the first failure where
    a round failed (a cell is ok only if it was ok in every round)."""
    by_id: dict[str, list[Cell]] = {}
    for cells in rounds:
        for c in cells:
            by_id.setdefault(c.id, []).append(c)
    out = []
    for runs in by_id.values():
        failed = [c for c in runs if not c.ok]
        if failed:
            out.append(failed[0])
            continue
        cell = copy.deepcopy(runs[0])
        cell.tvm = _pooled_latency([c.tvm for c in runs if c.tvm])
        for name, b in cell.baselines.items():
            parts = [c.baselines[name].latency for c in runs if name in c.baselines and c.baselines[name].latency]
            if parts:
                b.latency = _pooled_latency(parts)
        cell.speedup = {name: round(b.latency.median / cell.tvm.median, 4) for name, b in cell.baselines.items() if b.latency}
        worst = max(runs, key=lambda c: (c.parity.rel_l2 if c.parity and c.parity.rel_l2 is not None else -1.0))
        cell.parity = worst.parity
        flags = sorted({f for c in runs for f in ((c.timing or {}).get("flags") or [])})
        if cell.timing is not None:
            cell.timing = dict(cell.timing, flags=flags)
        cell.notes["ab_rounds"] = len(runs)
        out.append(cell)
    return out


# --------------------------------------------------------------------------------------- result
@dataclass
class AbResult:
    sides: list[dict]  # identity of base and new
    rounds: int
    compare: CompareResult
    failures: list[Failure]
    untrustworthy: list[str]  # cells whose eager control differs between the two processes
    builds: list[dict] = field(default_factory=list)  # per cell: op and kernel counts, build time of each side

    @property
    def ok(self) -> bool:
        return not self.failures


def build_changes(base: list[Cell], new: list[Cell]) -> list[dict]:
    """Relax op count, kernel count and build time of each side, per matched cell."""
    new_by = {c.id: c for c in new}
    rows = []
    for b in base:
        n = new_by.get(b.id)
        if n is None:
            continue
        rows.append(dict(cell=f"{b.model} × {b.frontend}", ops=[sum(b.relax_ops.values()) or None, sum(n.relax_ops.values()) or None],
                         kernels=[b.notes.get("kernels"), n.notes.get("kernels")],
                         build_s=[b.timings.get("build_s"), n.timings.get("build_s")]))
    return rows


def control_moved(c) -> bool:
    """Eager moved between the two processes beyond its noise (compare's verdict on its samples) and by enough
    to explain the TVM change (at least half of it, in log terms), or while TVM did not change."""
    import math

    if c.eager is None or c.eager.verdict == "no change":
        return False
    if c.tvm is None or c.tvm.verdict == "no change":
        return True
    return abs(math.log(c.eager.ratio)) >= 0.5 * abs(math.log(c.tvm.ratio))


def judge(base_report: dict, new_report_: dict, judging: Judging) -> tuple:
    """compare's result, the failures ab counts (latency rules not counted on untrustworthy cells; parity
    when asked) and the untrustworthy cells."""
    result = compare_reports(base_report, new_report_, judging.rules, judging.alpha, judging.min_effect, base_name="base", new_name="new")
    untrustworthy = [c.label for c in result.cells if control_moved(c)]
    for c in result.cells:
        if c.label in untrustworthy:
            c.note = (c.note + "; " if c.note else "") + f"untrustworthy: eager differs between the two processes (ratio {c.eager.ratio:.3f})"
    failures = [f for f in result.failures if f.rule == "status" or f.cell not in untrustworthy]
    if judging.parity:
        failures += [Failure(p.cell, PARITY_RULE, p.reason) for p in result.parity_changes]
    return result, failures, untrustworthy


def to_markdown(r: AbResult) -> str:
    out = [f"# gptbench ab: {r.sides[0]['name']} → {r.sides[1]['name']}", "",
           f"Each side's cells ran in its own processes, {r.rounds} round(s) each, in the order "
           f"{' '.join('AB'[s] for s in order(r.rounds))} (A = {r.sides[0]['name']}, B = {r.sides[1]['name']}); "
           "samples pooled per side. Eager PyTorch is timed in both as the control.", "",
           *[f"- {'BASE' if i == 0 else 'NEW'} {identity_line(s)}" for i, s in enumerate(r.sides)], ""]
    if r.untrustworthy:
        out += [f"> untrustworthy (eager differs between the two processes; no latency rule applied): {', '.join(r.untrustworthy)}", ""]
    body = r.compare.to_markdown().split("\n", 2)[2]  # compare's sections, without its title
    out.append(body.split("## Rule failures")[0].rstrip() + "\n")
    out += ["## Builds (Relax op calls, kernels, build s)", "",
            md_table(["cell", "ops base", "ops new", "kernels base", "kernels new", "build s base", "build s new"],
                     [[b["cell"], *b["ops"], *b["kernels"], *b["build_s"]] for b in r.builds]) if r.builds else "None.\n"]
    out += ["## Verdict", ""]
    out += [f"- **{f.cell}**: `{f.rule}`: {f.detail}" if f.cell else f"- `{f.rule}`: {f.detail}" for f in r.failures] or ["No regression."]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ run
def run_sides(cfg: RunConfig, state: RunState, sides: list[EnvSpec], rounds: int, log) -> tuple[list[list[list[Cell]]], str | None]:
    """Every step of `order(rounds)`: that side's cells (run_matrix with --tvm that side, a state of its own). Returns
    each side's rounds and, when interrupted, the signal's name (the rounds finished are kept)."""
    done: list[list[list[Cell]]] = [[], []]
    steps = order(rounds)
    for k, side in enumerate(steps, 1):
        spec = sides[side]
        log(f"=== ab step {k}/{len(steps)}: {'base' if side == 0 else 'new'} ({spec.name})")
        try:
            cells = run_matrix(replace(cfg, tvm=[spec.text]), state.for_shape())
        except Interrupted as e:
            return done, e.signame
        done[side].append([normalized(c, spec.name) for c in cells])
    return done, None


def side_report(cfg: RunConfig, state: RunState, spec: EnvSpec, cells: list[Cell], name: str, env: dict, command: list[str],
                **extra) -> dict:
    env = dict(env, tvm_build=identity(spec.name, importers()))  # the build this side measured (env["tvm"] is the parent's)
    return new_report("run", name, run_json(replace(cfg, tvm=[spec.text]), state), env, cells, command=command, tvm_side=spec.name,
                      **extra)


def write_ab(result: AbResult, out: Path, stem: str, command: list[str], reports: list[dict]) -> list[Path]:
    """The ab report (JSON + Markdown) beside the two side reports (run reports `compare` reads again)."""
    paths = [p for r in reports for p in write_report(r, out).values() if p.suffix == ".json"]
    doc = dict(schema=SCHEMA, schema_version=1, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               command=command, sides=result.sides, rounds=result.rounds, order=order(result.rounds),
               side_reports=[p.name for p in paths], untrustworthy=result.untrustworthy, builds=result.builds,
               failures=[f.__dict__ for f in result.failures], ok=result.ok, compare=result.compare.to_dict())
    atomic_write(out / f"{stem}.json", json.dumps(doc, indent=1, ensure_ascii=False, default=str) + "\n")
    atomic_write(out / f"{stem}.md", to_markdown(result))
    return [out / f"{stem}.json", out / f"{stem}.md", *paths]


def identities(sides: list[EnvSpec]) -> list[dict]:
    return [identity(s.name, importers()) for s in sides]


def run_ab(cfg: RunConfig, state: RunState, rounds: int, judging: Judging, out: Path, name: str, env: dict, command: list[str],
           log) -> tuple[AbResult | None, list[Path], str | None]:
    """Both sides, pooled, judged and written. Interrupted: the side reports of the rounds finished, marked
    partial, and no verdict (result None)."""
    sides = sides_of(cfg)
    done, interrupted = run_sides(cfg, state, sides, rounds, log)
    pooled = [pool(done[0]), pool(done[1])]
    extra = dict(partial=True, interrupted=interrupted) if interrupted else {}
    reports = [side_report(cfg, state, spec, cells, f"{name}-{spec.name}", env, command, **extra) for spec, cells in zip(sides, pooled, strict=True)]
    if interrupted:
        paths = [p for r in reports if r["cells"] for p in write_report(r, out).values()]
        return None, paths, interrupted
    loaded = [json.loads(to_json(r)) for r in reports]
    compared, failures, untrustworthy = judge(loaded[0], loaded[1], judging)
    result = AbResult(sides=identities(sides), rounds=rounds, compare=compared, failures=failures, untrustworthy=untrustworthy,
                      builds=build_changes(pooled[0], pooled[1]))
    stem = f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{name}"
    return result, write_ab(result, out, stem, command, reports), None
