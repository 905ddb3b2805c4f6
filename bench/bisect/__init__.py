"""`gptbench bisect --tvm-src DIR --good REF --bad REF`: the first TVM commit that made a cell regress.

The commits between GOOD and BAD (`git rev-list --ancestry-path GOOD..BAD`, oldest first) are searched
by halving. Each step builds the commit in the middle (a `git:` environment: bench.core.tvm_build, cached
by commit, so a resumed or repeated bisect builds nothing twice) and runs the cells A/B against the GOOD
build (bench.ab): a regression by the rules (`--fail-on`; a status that went from ok to not ok always
counts) makes the commit bad, else it is good. A commit that does not build is skipped, as by
`git bisect skip`, and the search takes the nearest commit beside it; so is one whose A/B cannot tell
twice in a row (TVM slower, but ab's control, eager, moved between the two processes as well), which
is measured once more before it is skipped rather than called good. The first step checks that BAD
itself regresses against GOOD: if it does not, there is nothing to bisect (exit 1).

Every step is logged and kept in a state file in --out (`bisect-GOOD-BAD.json`, replaced atomically
after each step) with its A/B report directory. After Ctrl-C the same command resumes from that state
and builds and measures only what is left. The end: the first bad commit, its subject and the
evidence (the A/B report whose verdict made it bad); exit 0. When skipped commits leave more than one
candidate, all of them are named and the exit is 1.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from bench.ab import run_ab
from bench.core.errors import UserError
from bench.core.files import atomic_write
from bench.core.tvm_build import commit_subject, ensure
from bench.core.tvm_envs import local_repo, parse_envs, resolve_commit
from bench.pipeline.config import RunConfig

GOOD, BAD, SKIP = "good", "bad", "skip"


def commits_between(src: str, good: str, bad: str) -> list[str]:
    """The commits after GOOD up to and including BAD on the ancestry path, oldest first."""
    out = subprocess.run(["git", "-C", str(local_repo(src)), "rev-list", "--reverse", "--ancestry-path", f"{good}..{bad}"],
                         capture_output=True, text=True)
    commits = out.stdout.split()
    if out.returncode != 0 or not commits or commits[-1] != bad:
        raise UserError(f"--bad {bad[:12]} is not a descendant of --good {good[:12]} in {src}: nothing to bisect")
    return commits


SCHEMA = "gptbench.bisect"  # the state file's (key, verdicts, steps: each tested commit's verdict and evidence)


class State:
    """The bisect's record on disk: the commits, each tested commit's verdict and evidence, the log."""

    def __init__(self, path: Path, key: dict):
        self.path, self.key = path, key
        self.data = dict(schema=SCHEMA, schema_version=1, key=key, verdicts={}, steps=[])
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise UserError(f"{path}: not a bisect state file ({e}); remove it or give another --out") from None
            if old.get("key") != key:
                raise UserError(f"{path} is the state of another bisect (other commits, cells or rules): give another --out")
            self.data = dict(schema=SCHEMA, schema_version=1, **{k: v for k, v in old.items() if k not in ("schema", "schema_version")})

    @property
    def verdicts(self) -> dict[str, str]:
        return self.data["verdicts"]

    def record(self, commit: str, verdict: str, **evidence) -> None:
        self.verdicts[commit] = verdict
        self.data["steps"].append(dict(commit=commit, verdict=verdict, at=time.strftime("%Y-%m-%dT%H:%M:%S"), **evidence))
        atomic_write(self.path, json.dumps(self.data, indent=1) + "\n")


def next_commit(commits: list[str], verdicts: dict[str, str]) -> tuple[int, int, int | None]:
    """(lo, hi, mid): lo the last good index (-1: GOOD itself), hi the first bad one, mid the untested,
    unskipped index nearest the middle between them (None: nothing left to test)."""
    lo = max((i for i, c in enumerate(commits) if verdicts.get(c) == GOOD), default=-1)
    hi = min((i for i, c in enumerate(commits) if verdicts.get(c) == BAD and i > lo), default=len(commits) - 1)
    open_ = [i for i in range(lo + 1, hi) if commits[i] not in verdicts]
    if not open_:
        return lo, hi, None
    middle = (lo + hi) / 2
    return lo, hi, min(open_, key=lambda i: (abs(i - middle), i))


def hidden_regressions(result) -> list[str]:
    """The cells where TVM was slower but ab counted no rule, its control (eager) having moved between the two
    processes: a regression the A/B could not tell from a noisy machine. (Eager moving while TVM did not is
    no regression hidden: that A/B still says good.)"""
    return [c.label for c in result.compare.cells
            if c.label in result.untrustworthy and c.tvm is not None and c.tvm.verdict == "slower"]


def test_commit(cfg: RunConfig, good: str, commit: str, step_dir: Path, opts: dict, log) -> tuple[str, dict]:
    """Build `commit` and A/B it against GOOD: (verdict, evidence)."""
    specs = parse_envs([f"good=git:{good}", f"test=git:{commit}"], cfg.tvm_src)
    try:
        t0 = time.perf_counter()
        for spec in specs:
            ensure(spec, log, cfg.tvm_recipe)
        build_s = round(time.perf_counter() - t0, 1)
    except UserError as e:
        log(f"bisect: {commit[:12]} does not build: skipped ({e})")
        return SKIP, dict(reason=str(e))
    side_cfg = replace(cfg, tvm=[s.text for s in specs])
    for attempt in (1, 2):  # an A/B that cannot tell (eager moved between the processes) is measured once more
        result, paths, interrupted = run_ab(side_cfg, opts["state"], opts["rounds"], opts["judging"],
                                           step_dir if attempt == 1 else step_dir / "again", "ab", opts["env"], opts["command"], log)
        if interrupted:
            raise KeyboardInterrupt(interrupted)
        evidence = dict(report=str(paths[1]), build_s=build_s, failures=[str(f) for f in result.failures])
        hidden = hidden_regressions(result)
        if result.failures or not hidden:
            return (BAD if result.failures else GOOD), evidence
        log(f"bisect: {commit[:12]}: the A/B cannot tell (TVM slower, but eager moved between the two processes too: "
            f"{', '.join(hidden)})" + ("; measuring once more" if attempt == 1 else ""))
    reason = "the A/B could not tell twice (eager differed between the two processes: a noisy machine)"
    log(f"bisect: {commit[:12]}: skipped, {reason}")
    return SKIP, dict(evidence, reason=reason)


def bisect(cfg: RunConfig, good_ref: str, bad_ref: str, out: Path, opts: dict, log) -> dict:
    """Run the bisect to its end (resuming from out's state file); returns the outcome."""
    src = cfg.tvm_src
    good, bad = resolve_commit(src, good_ref), resolve_commit(src, bad_ref)
    commits = commits_between(src, good, bad)
    key = dict(good=good, bad=bad, cells=opts["cells_key"])
    state = State(out / f"bisect-{good[:10]}-{bad[:10]}.json", key)
    log(f"bisect: {len(commits)} commit(s) after {good[:12]} up to {bad[:12]}; state: {state.path}")
    if bad not in state.verdicts:
        log(f"bisect: first, does {bad[:12]} regress against {good[:12]}?")
        verdict, evidence = test_commit(cfg, good, bad, out / f"step-0-{bad[:10]}", opts, log)
        state.record(bad, verdict, subject=commit_subject(src, bad), **evidence)
        if verdict != BAD:
            why = evidence.get("reason", "does not build") if verdict == SKIP else "shows no regression against --good"
            return dict(found=None, state=str(state.path), reason=f"--bad {bad[:12]}: {why}")
    while True:
        lo, hi, mid = next_commit(commits, state.verdicts)
        if mid is None:
            break
        commit = commits[mid]
        log(f"bisect: step {len(state.data['steps'])}: testing {commit[:12]} ({commit_subject(src, commit)}); "
            f"{hi - lo - 1} commit(s) left between the last good and the first bad")
        verdict, evidence = test_commit(cfg, good, commit, out / f"step-{len(state.data['steps'])}-{commit[:10]}", opts, log)
        state.record(commit, verdict, subject=commit_subject(src, commit), **evidence)
        log(f"bisect: {commit[:12]} is {verdict}")
    skipped = [c for c in commits[lo + 1:hi] if state.verdicts.get(c) == SKIP]
    first = commits[hi]
    step = next(s for s in reversed(state.data["steps"]) if s["commit"] == first)
    return dict(found=first if not skipped else None, candidates=[*skipped, first], subject=commit_subject(src, first),
                evidence=step.get("report"), failures=step.get("failures"), state=str(state.path), steps=state.data["steps"])


def cells_key(cfg: RunConfig, rules: list[str], rounds: int) -> str:
    """What makes two bisects the same search: the cells, the rules, the rounds (a hash for the state file's key)."""
    fields = dict(models=cfg.models, frontends=cfg.frontends, target=cfg.target, scenario=cfg.scenario, batch=cfg.batch,
                  seq_len=cfg.seq_len, past_len=cfg.past_len, shapes=cfg.shapes, dtype=cfg.dtype,
                  repeat=cfg.repeat, rules=sorted(rules), rounds=rounds, recipe=cfg.tvm_recipe)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
