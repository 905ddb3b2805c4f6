"""`gptbench`: the command line. A thin argparse layer over the library.

Exit codes: 0 ok; 1 a measured failure (parity mismatch, a regression rule, a failed cell when
asked to fail on it); 2 bad input (unknown model/frontend/target, impossible shapes, unreadable
or corrupt file) with one line on stderr saying what is wrong and what to do.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.baselines import MODEL_ONLY, baselines_help
from bench.core.errors import UserError
from bench.pipeline.config import DEFAULTS as D
from bench.pipeline.config import RunConfig, RunState, importers, new_cell, prepare, run_json
from bench.targets import TARGET_LIST, TARGETS
from frontends import FRONTENDS

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _out(msg: str = "") -> None:
    print(msg, flush=True)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- models
def cmd_models(args) -> int:
    from bench.core.markdown import md_table
    from bench.models import ZOO, describe

    rows = []
    for spec in ZOO:
        d = describe(spec)
        rows.append([d["name"], d["family"], f"{d['params'] / 1e6:.2f}M", d["layers"], d["heads"], d["embd"], d["context"], d["vocab"],
                     d["pretrained"], d["available"], d["summary"]])
    _out(md_table(["model", "family", "params", "layers", "heads", "embd", "context", "vocab", "pretrained weights from",
                   "available here", "notes"], rows))
    _out("--weights auto (default) uses pretrained weights where available here, else a seeded random init of the same "
         "architecture; reports always say which.")
    return EXIT_OK


# ------------------------------------------------------------------------------------------- run
def add_model_args(p: argparse.ArgumentParser, frontend_default: str = "export,onnx") -> None:
    p.add_argument("--model", required=True, help="model name(s), comma-separated (see `gptbench models`)")
    p.add_argument("--frontend", default=frontend_default, help=f"{', '.join(FRONTENDS)} (comma-separated; "
                   f"default {frontend_default})")
    p.add_argument("--target", default=D["target"], help="; ".join(f"{t.name}: {t.summary}" for t in TARGET_LIST) + f" (default {D['target']})")
    p.add_argument("--weights", default=D["weights"], help=f"auto | random | pretrained | PATH (default {D['weights']}: pretrained where available)")
    p.add_argument("--threads", type=int, default=D["threads"], help="threads for TVM and PyTorch (default: all usable cores)")
    p.add_argument("--cuda-arch", default=None, help="e.g. sm_90; default: the visible GPU, else $GPTBENCH_CUDA_ARCH")
    p.add_argument("--db", default=None, help="MetaSchedule tuning database directory to apply at build (see `gptbench tune`)")
    p.add_argument("--foreign-db", action="store_true", help="apply --db although it was tuned for another CPU or core count "
                   "(same TVM, same kind of target); every cell says where it was tuned")
    p.add_argument("--dlight", action="store_true", help="llvm: add dlight's CPU default schedules (GEMV, Reduction) after FuseTIR")
    p.add_argument("--fast-math", action="store_true", help="approximate erf/tanh/exp/softmax by TVM's vectorisable fast_* "
                   "functions (FastMathTransform); the cell's variant says +fastmath, parity is checked as always")
    p.add_argument("--seed", type=int, default=D["seed"])


def add_shape_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default=D["scenario"], help="prefill, decode, generate or classify (a classification head on "
                   f"padded pairs; default {D['scenario']})")
    p.add_argument("--batch", default=str(D["batch"]), help=f"batch size (default {D['batch']}; `run`: comma-separated values sweep, e.g. 1,4)")
    p.add_argument("--seq-len", default=str(D["seq_len"]), help=f"prompt tokens (prefill, generate; default {D['seq_len']}; `run`: a "
                   "comma-separated sweep, e.g. 32,128,512)")
    p.add_argument("--past-len", default=str(D["past_len"]), help=f"KV-cache length for --scenario decode (default {D['past_len']}; "
                   "`run`: a comma-separated sweep)")
    p.add_argument("--new-tokens", type=int, default=D["new_tokens"], help=f"tokens to generate for --scenario generate (default {D['new_tokens']})")
    p.add_argument("--shapes", default=D["shapes"], help=f"static (fixed batch/seq) or symbolic (torch.export.Dim); default {D['shapes']}")
    p.add_argument("--dtype", default=D["dtype"], help=f"float32 or float16 (cuda); default {D['dtype']}")


def add_rpc_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--rpc", default=None, metavar="HOST:PORT", help=f"an RPC tracker (`gptbench rpc up` starts one here): {what}")
    p.add_argument("--rpc-key", default=None, metavar="KEY", help="the key the device servers registered under")


def add_timing_args(p: argparse.ArgumentParser, warmup: int, repeat: int) -> None:
    p.add_argument("--warmup", type=int, default=warmup, help=f"calls per backend before timing, discarded (default {warmup})")
    p.add_argument("--repeat", type=int, default=repeat, help=f"timed samples (calls) per backend (default {repeat})")
    p.add_argument("--timing", default=D["timing"], help="blocks (each backend alone in alternating blocks) or interleaved (one call "
                   f"per backend per round; the thread pools then disturb each other); default {D['timing']}")
    p.add_argument("--block", type=int, default=D["block"], help=f"timed calls per block (default {D['block']})")
    p.add_argument("--solo", type=int, default=D["solo"], help=f"calls per backend in the solo check after the rounds (default {D['solo']}; "
                   "0: none)")


def _duration(flag: str, text) -> float:
    from bench.core.units import parse_duration

    if text is None:
        return 0.0
    try:
        return parse_duration(text)
    except ValueError as e:
        raise UserError(f"{flag} {e}") from None


def _cuts(text) -> list[float]:
    """--tuned-after's durations in seconds; `all` is the whole database (inf)."""
    if not text:
        return []
    return [float("inf") if t == "all" else _duration("--tuned-after", t) for t in _csv(text)]


def _sizes(flag: str, value) -> list[int]:
    """A size flag's values: one integer, or (`run`) a comma-separated list of them."""
    if isinstance(value, int):
        return [value]
    try:
        sizes = [int(v) for v in _csv(str(value))]
    except ValueError:
        raise UserError(f"{flag} {value!r}: give an integer, or for `run` comma-separated integers (e.g. 32,128)") from None
    if not sizes:
        raise UserError(f"{flag}: give at least one value")
    return list(dict.fromkeys(sizes))


def _sweep(args) -> list[list[int]]:
    """--batch × --seq-len (prefill, generate) or × --past-len (decode): [batch, seq_len, past_len] per shape, the
    first first; more than one is a sweep, for `run` only, and only over the scenario's own length."""
    given = vars(args)
    scenario = given.get("scenario") or D["scenario"]
    batches, seqs, pasts = (_sizes(f, given[k] if given.get(k) is not None else D[k])
                            for f, k in (("--batch", "batch"), ("--seq-len", "seq_len"), ("--past-len", "past_len")))
    other = ("--past-len", pasts) if scenario != "decode" else ("--seq-len", seqs)
    if len(other[1]) > 1:
        raise UserError(f"{other[0]} takes one value with --scenario {scenario} (the sweep is over "
                        f"{'--past-len' if scenario == 'decode' else '--seq-len'} and --batch)")
    lengths = pasts if scenario == "decode" else seqs
    shapes = [[b, n if scenario != "decode" else seqs[0], n if scenario == "decode" else pasts[0]] for b in batches for n in lengths]
    if len(shapes) > 1 and getattr(args, "func", None) is not cmd_run:
        raise UserError("a list of --batch, --seq-len or --past-len values (a shape sweep) is for `gptbench run`; give one value")
    return shapes


# RunConfig fields a command's flag gives as it is, where the command has that flag (else the field's default)
AS_GIVEN = ("target", "scenario", "new_tokens", "warmup", "repeat", "threads", "shapes", "weights", "dtype", "tol", "db", "foreign_db",
            "cuda_arch", "seed", "cell_timeout", "val_text", "val_tokens", "dlight", "timing", "block", "solo", "fast_math", "tune_cache",
            "bundle", "tvm_src", "tvm_recipe", "blas", "rpc", "rpc_key", "offload")


def config_from_args(args):
    """The run's flags (bench.pipeline.config.RunConfig) and state (RunState, after the checks that need I/O). A flag the
    command does not have takes RunConfig's default; the commands without --no-isolate run their cells in this process."""

    given = vars(args)
    shapes = _sweep(args)
    kw = {k: given[k] for k in AS_GIVEN if given.get(k) is not None}
    kw.update(models=_csv(args.model), frontends=_csv(args.frontend), batch=shapes[0][0], seq_len=shapes[0][1], past_len=shapes[0][2],
              sweep=shapes if len(shapes) > 1 else [], isolate=not given["no_isolate"] if "no_isolate" in given else False,
              memory=given.get("memory") == "on", tune_budget=_duration("--tune-budget", given.get("tune_budget")),
              tuned_after=_cuts(given.get("tuned_after")))
    if "baselines" in given:
        kw["baselines"] = _csv(given["baselines"])
    if given.get("tvm"):
        kw["tvm"] = _csv(given["tvm"])
    try:
        return prepare(RunConfig(**kw))
    except ValueError as e:
        raise UserError(str(e)) from None


def _default_threads(cfg, state):
    """--threads not given: every usable core, less those other processes are busy on now. A tuning
    database is made for a core count (its target key says so), so with --db or --tune-budget the count
    stays and the note only warns. Returns the configuration with its threads."""
    from dataclasses import replace

    from bench.measure.timing import default_threads

    keep = "the tuning database's core count" if cfg.db or cfg.tune_budget else None
    threads, note = default_threads(cfg.threads, keep)
    if note is None:
        return cfg
    state.threads_note = note
    _err(f"note: {note}")
    return replace(cfg, threads=threads)


def finish_report(kind: str, name: str, cfg_dict: dict, cells: list[dict], out: str, threads: int, history: str | None = None,
                  **extra) -> dict:
    """Write the report (JSON, CSV, Markdown), print its table, and add it to the history store (unless history is None)."""
    from bench.core.env import collect
    from bench.reports.report import new_report, to_markdown, write_report

    report = new_report(kind, name, cfg_dict, collect(threads), cells, command=sys.argv, **extra)
    try:
        paths = write_report(report, out)
    except OSError as e:
        raise UserError(f"cannot write the report to {out}: {e.strerror or e} (nothing was left half-written)") from None
    _out(to_markdown(report))
    _err("wrote " + ", ".join(str(p) for p in paths.values()))
    add_to_history(history, [paths["json"]])
    return report


def history_store(args) -> str | None:
    """The store a report-writing command adds to (None: --no-history), checked before any work: a file or
    database that is not a gptbench store, or a server that does not answer, is a usage error now."""
    from bench.history.store import open_store, resolve
    from bench.reports.report import check_out_dir

    if getattr(args, "no_history", True):
        return None
    check_out_dir(args.out)  # an --out that cannot be written is told as such, before the store beside it
    spec = resolve(args.history, str(Path(args.out) / "history.sqlite"))
    open_store(spec).close()
    return spec


def add_to_history(spec: str | None, paths: list[Path]) -> None:
    """Add written reports to the store; a failure now is a warning (the reports are written) that says
    how to add them later."""
    if spec is None or not paths:
        return
    from bench.history import add_reports

    try:
        add_reports(spec, [str(p) for p in paths])
    except Exception as e:  # noqa: BLE001 - the run's results are safe on disk; say so rather than fail the run
        _err(f"warning: the report was not added to the history store {spec} ({str(e).splitlines()[0]}); add it later with "
             f"`gptbench history add {' '.join(str(p) for p in paths)}`")


def cmd_run(args) -> int:
    from bench.core.errors import Interrupted
    from bench.pipeline.runner import run_matrix

    cfg, state = config_from_args(args)
    if args.fail_on not in ("mismatch", "any", "none"):
        raise UserError(f"--fail-on {args.fail_on!r}: choose mismatch, any or none")
    history = history_store(args)
    cfg = _before_run(cfg, state, args.out, threads_given=bool(args.threads))
    try:
        cells = run_matrix(cfg, state)
    except Interrupted as e:
        if e.cells:
            finish_report("run", args.name, run_json(cfg, state), e.cells, args.out, cfg.threads, history, partial=True, interrupted=e.signame)
            _err(f"interrupted ({e.signame}): the report keeps the {sum(c.status != 'interrupted' for c in e.cells)} "
                 "finished cell(s), marked partial")
        else:
            _err(f"interrupted ({e.signame}) before any cell finished: no report written")
        return e.exit_code
    finish_report("run", args.name, run_json(cfg, state), cells, args.out, cfg.threads, history)
    bad = [c for c in cells if c.status != "ok"]
    mismatched = [c for c in cells if c.status == "mismatch"]
    if args.fail_on == "any" and bad:
        _err(f"{len(bad)} of {len(cells)} cells not ok: " + ", ".join(f"{c.model}×{c.frontend}={c.status}" for c in bad))
        return EXIT_FAIL
    if args.fail_on == "mismatch" and mismatched:
        _err("parity mismatch: " + ", ".join(f"{c.model}×{c.frontend} ({c.parity.reason})" for c in mismatched))
        return EXIT_FAIL
    return EXIT_OK


def _before_run(cfg, state, out: str, threads_given: bool):
    """Everything a run writes checked before any work (report, tuning cache, bundle directory; a CUDA
    arch); --threads' default lowered on a busy machine; the threads configured; a bundle started; a
    CUDA run without a GPU told it will only compile. Returns the configuration with its threads."""
    from bench.core.threads import configure_threads
    from bench.reports.report import check_out_dir

    check_out_dir(out)
    prepare_envs(cfg)
    if cfg.tune_budget:
        check_out_dir(cfg.tune_cache, "--tune-cache")
    if cfg.bundle:
        from bench.pipeline.bundle import check_bundle_dir

        check_bundle_dir(cfg.bundle)
    gpu = None
    if TARGETS[cfg.target].gpu and not cfg.bundle:
        from bench.targets import make_target

        gpu = make_target(cfg.target, cfg.threads, cfg.cuda_arch)  # fail early on a missing arch
    if not threads_given and not cfg.rpc:
        cfg = _default_threads(cfg, state)
    configure_threads(cfg.threads)
    if cfg.bundle:
        from bench.core.env import collect
        from bench.pipeline.bundle import start_bundle

        start_bundle(cfg, collect(cfg.threads), sys.argv)
    elif gpu is not None and not gpu.device_available:
        _err(f"note: {cfg.target} modules will be compiled but not run: {gpu.device_reason}")
    return cfg


def prepare_envs(cfg) -> None:
    """Make every --tvm environment the harness makes (pypi:VERSION, git:REF) that is not made yet, before
    any cell runs; a failure is one line, exit 2, and leaves nothing half-made (bench.core.tvm_build)."""
    from bench.core import tvm_build
    from bench.core.log import log

    for spec in cfg.env_specs():
        tvm_build.ensure(spec, log, cfg.tvm_recipe)


def cmd_measure(args) -> int:
    """Measure a bundle built elsewhere (`run --bundle`); exit codes as run's."""
    from bench.core.log import log
    from bench.pipeline.bundle import measure_bundle, measure_config, read_bundle
    from bench.reports.report import check_out_dir

    top, records = read_bundle(args.bundle)
    check_out_dir(args.out)
    history = history_store(args)
    timing = dict(warmup=args.warmup, repeat=args.repeat, timing=args.timing, block=args.block, solo=args.solo)
    cfg = measure_config(top, records, _csv(args.baselines), args.threads, timing)
    log(f"measuring {len(records)} cell(s) of {args.bundle}, built {top['created']} on {top['built_on'].get('hostname')} "
        f"for {cfg.target}")
    from bench.core.errors import Interrupted

    bundle = dict(path=args.bundle, built=top["created"], built_on=top["built_on"], build_command=top["command"])
    try:
        cells = measure_bundle(args.bundle, cfg, top, records, log)
    except Interrupted as e:
        finish_report("run", args.name, run_json(cfg, RunState()), e.cells, args.out, cfg.threads, history, bundle=bundle, partial=True,
                      interrupted=e.signame)
        _err(f"interrupted ({e.signame}): the report keeps the {len(e.cells) - 1} finished cell(s), marked partial")
        return e.exit_code
    finish_report("run", args.name, run_json(cfg, RunState()), cells, args.out, cfg.threads, history, bundle=bundle)
    bad = [c for c in cells if c.status != "ok"]
    if bad:
        _err(f"{len(bad)} of {len(cells)} cells not ok: " + ", ".join(f"{c.model}×{c.frontend}={c.status} ({c.error})" for c in bad))
        return EXIT_FAIL
    return EXIT_OK


# -------------------------------------------------------------------------------------------- ab
def cmd_ab(args) -> int:
    """Two TVM builds on the same cells, alternated; exit 0 no regression, 1 a regression, 2 bad input."""
    from bench.ab import Judging, parse_rules, run_ab, sides_of, to_markdown
    from bench.compare import parse_fraction
    from bench.core.env import collect
    from bench.core.log import log

    cfg, state = config_from_args(args)
    sides_of(cfg)
    rules, parity = parse_rules(args.fail_on)
    alpha, min_effect = parse_fraction(args.alpha, "--alpha"), parse_fraction(args.min_effect, "--min-effect")
    if alpha == 0:
        raise UserError("--alpha must be greater than 0")
    if args.rounds < 1:
        raise UserError(f"--rounds must be >= 1, got {args.rounds}")
    history = history_store(args)
    cfg = _before_run(cfg, state, args.out, threads_given=bool(args.threads))
    result, paths, interrupted = run_ab(cfg, state, args.rounds, Judging(rules, parity, alpha, min_effect), Path(args.out), args.name,
                                        collect(cfg.threads), sys.argv, log)
    from bench.history.store import is_report_file

    reports = [p for p in paths if p.suffix == ".json" and is_report_file(p)]  # the two side reports, not the A/B's own JSON
    if interrupted:
        add_to_history(history, reports)
        _err(f"interrupted ({interrupted}): no verdict; the side reports keep the rounds that finished, marked partial: "
             + (", ".join(p.name for p in paths if p.suffix == ".json") or "none"))
        return 143 if interrupted == "SIGTERM" else 130
    _out(to_markdown(result))
    _err("wrote " + ", ".join(str(p) for p in paths))
    add_to_history(history, reports)
    if result.failures:
        _err(f"{len(result.failures)} regression(s):")
        for f in result.failures:
            _err(f"  {f}")
        return EXIT_FAIL
    return EXIT_OK


# ------------------------------------------------------------------------------------------ envs
def cmd_envs(args) -> int:
    """Make the --tvm environments not made yet (how long each took), then say what each is and can run;
    exit 0 when every one imports TVM, 1 when one does not, 2 bad input or a build that failed."""
    from bench.core import tvm_build, tvm_envs
    from bench.core.log import log

    specs = tvm_envs.parse_envs(_csv(args.tvm), args.tvm_src)
    for spec in specs:
        tvm_build.ensure(spec, log, args.tvm_recipe)
    broken = 0
    for spec in specs:
        reason = tvm_envs.missing_reason(spec.name, importers())
        if reason:
            broken += 1
            _out(f"{spec.name}: {reason}")
            continue
        info = tvm_envs.probe(spec.name, importers())
        ident = tvm_envs.identity(spec.name, importers())
        _out(tvm_envs.identity_line(ident))
        can = [name for name, f in FRONTENDS.items() if info["importers"].get(f.tvm_api)]
        flags = info.get("flags")
        flags = (", ".join(f"{k}={v}" for k, v in flags.items()) or "none") if flags is not None else info.get("flags_from", "unknown")
        _out(f"  frontends: {', '.join(can) or 'none'}; API: {info.get('api')}; Relay: {'yes' if info.get('relay') else 'no'}; "
             f"build flags: {flags}")
        meta = ident.get("made")
        if meta:
            how = f"git {meta['commit'][:12]} ({meta.get('subject', '')})" if meta["kind"] == "git" else f"pypi {meta['version']}"
            _out(f"  made by the harness: {how}, in {meta.get('seconds')} s")
    return EXIT_FAIL if broken else EXIT_OK


# ---------------------------------------------------------------------------------------- bisect
def cmd_bisect(args) -> int:
    """The first commit between --good and --bad whose A/B against --good regresses; 0 found, 1 not found, 2 bad input."""
    from bench.ab import Judging, parse_rules
    from bench.bisect import bisect, cells_key
    from bench.compare import parse_fraction
    from bench.core.env import collect
    from bench.core.log import log
    from bench.reports.report import check_out_dir

    if not args.tvm_src:
        raise UserError("bisect needs --tvm-src DIR_OR_URL: the TVM repository whose commits it builds")
    args.tvm = f"good=git:{args.good},test=git:{args.bad}"
    cfg, state = config_from_args(args)
    rules, parity = parse_rules(args.fail_on)
    if args.rounds < 1:
        raise UserError(f"--rounds must be >= 1, got {args.rounds}")
    out = check_out_dir(args.out)
    judging = Judging(rules, parity, parse_fraction(args.alpha, "--alpha"), parse_fraction(args.min_effect, "--min-effect"))
    opts = dict(rounds=args.rounds, judging=judging, state=state, env=collect(cfg.threads), command=sys.argv,
                cells_key=cells_key(cfg, args.fail_on, args.rounds))
    try:
        outcome = bisect(cfg, args.good, args.bad, Path(out), opts, log)
    except KeyboardInterrupt:
        _err(f"bisect interrupted: the steps finished are kept in {args.out}; run the same command again to resume")
        return 130
    if outcome.get("found"):
        _out(f"first bad commit: {outcome['found']} {outcome['subject']}")
        _out(f"evidence: {outcome['evidence']}" + (f" ({'; '.join(outcome['failures'])})" if outcome.get("failures") else ""))
        _out(f"log: {outcome['state']}")
        return EXIT_OK
    if outcome.get("reason"):
        _err(f"bisect: {outcome['reason']}: nothing to bisect (log: {outcome['state']})")
    else:
        _err(f"bisect: skipped commits leave {len(outcome['candidates'])} candidates: " + ", ".join(c[:12] for c in outcome["candidates"]))
    return EXIT_FAIL


# ---------------------------------------------------------------------------------------- timers
def cmd_timers(args) -> int:
    import datetime as _dt
    import json
    from dataclasses import replace

    from bench.core.env import collect
    from bench.core.files import atomic_write
    from bench.core.threads import configure_threads
    from bench.reports.report import check_out_dir, environment_line

    args.baselines = "eager,ort"
    cfg, state = config_from_args(args)
    if len(cfg.frontends) != 1:
        raise UserError("timers takes one --frontend")
    if cfg.target != "llvm" or cfg.scenario == "generate":
        raise UserError("timers checks llvm prefill or decode latencies (--target llvm, --scenario prefill|decode)")
    out = Path(args.out)
    check_out_dir(out)
    from bench.pipeline.timers import GOAL, to_markdown, validate, worst_deviation

    configure_threads(cfg.threads)
    results = [validate(replace(cfg, models=[m]), state, cfg.frontends[0], _err) for m in cfg.models]
    created = _dt.datetime.now(_dt.timezone.utc)
    env = collect(cfg.threads)
    stem = f"{created.strftime('%Y%m%dT%H%M%SZ')}-{args.name}"
    md = to_markdown(results, environment_line(env), created.isoformat(timespec="seconds"))
    atomic_write(out / f"{stem}.json", json.dumps(dict(schema="gptbench.timers", schema_version=1, created=created.isoformat(timespec="seconds"),
                                                       command=sys.argv, environment=env, results=results), indent=1, default=str) + "\n")
    atomic_write(out / f"{stem}.md", md)
    _out(md)
    _err(f"wrote {out / stem}.json, .md")
    worst = max((worst_deviation(r) or 0.0 for r in results), default=0.0)
    return EXIT_OK if worst <= GOAL else EXIT_FAIL


# --------------------------------------------------------------------------------------- profile
def _one_model_relax(run: tuple, one_model: str, relay_message, generate: str):
    """(cfg, state), when cfg has one model, Relax frontends only and a scenario of one call; else UserError with the command's words."""
    cfg = run[0]
    if len(cfg.models) != 1:
        raise UserError(one_model)
    relay = [f for f in cfg.frontends if FRONTENDS[f].relay]
    if relay:
        raise UserError(relay_message(relay))
    if cfg.scenario == "generate":
        raise UserError(generate)
    return run


def cmd_profile(args) -> int:
    """Per-kernel times of TVM's build of one model through each frontend, joined across them; 0 when a frontend was
    profiled (one that failed is in the report with its reason), 1 when none was."""
    import datetime as _dt
    import json

    from bench.core.env import collect
    from bench.core.files import atomic_write
    from bench.reports.report import check_out_dir, environment_line

    cfg, state = _one_model_relax(config_from_args(args), "profile takes one --model",
                           lambda relay: f"profile times the Relax VM's calls (this TVM): {', '.join(relay)} runs on TVM 0.19's "
                                         "Relay VM; give Relax frontends (export, onnx, fx)",
                           "profile takes --scenario prefill, decode or classify (one call of the model)")
    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    check_out_dir(args.out)
    if cfg.tune_budget:
        from bench.pipeline.autotune import ensure_tuned

        ensure_tuned(cfg, state)  # in this TVM, and in each other --tvm environment that can tune
    from bench.pipeline.profile import METHOD, SCHEMA, SCHEMA_VERSION, profile, to_markdown

    created = _dt.datetime.now(_dt.timezone.utc)
    result = profile(cfg, state, _err)
    env = collect(cfg.threads)  # after the cells set the thread pools
    tinfo = state.target_info(cfg)
    result = dict(schema=SCHEMA, schema_version=SCHEMA_VERSION, created=created.isoformat(timespec="seconds"), command=sys.argv,
                  environment=env, environment_line=environment_line(env), method=METHOD,
                  config=dict(model=cfg.models[0], scenario=cfg.scenario, batch=cfg.batch, seq_len=cfg.seq_len, past_len=cfg.past_len,
                              target=tinfo.spec, threads=env.get("threads", cfg.threads), fast_math=cfg.fast_math, weights=cfg.weights,
                              db=state.db_for(cfg, cfg.models[0]), warmup=cfg.warmup, repeat=cfg.repeat,
                              tvm=[s.name for s in cfg.env_specs()] if cfg.tvm else None), **result)
    stem = Path(args.out) / f"{created.strftime('%Y%m%dT%H%M%SZ')}-{args.name}"
    md = to_markdown(result, args.top)
    atomic_write(stem.with_suffix(".json"), json.dumps(result, indent=1, default=str) + "\n")
    atomic_write(stem.with_suffix(".md"), md)
    _out(md)
    _err(f"wrote {stem}.json, .md")
    return EXIT_OK if any(p["status"] == "ok" for p in result["profiles"]) else EXIT_FAIL


# ---------------------------------------------------------------------------------------- passes
def cmd_passes(args) -> int:
    from bench.reports.report import check_out_dir

    cfg, state = config_from_args(args)
    if len(cfg.models) != 1 or len(cfg.frontends) != 1:
        raise UserError("passes takes one --model and one --frontend")
    if cfg.scenario == "generate":
        raise UserError("passes measures prefill or decode, not generate")
    if cfg.dlight:
        raise UserError("passes always measures a +dlight variant on llvm; drop --dlight")
    check_out_dir(args.out)
    history = history_store(args)
    from bench.pipeline.passes import DEFAULT_ABLATIONS, run_passes

    ablations = _csv(args.ablate) if args.ablate else [*DEFAULT_ABLATIONS, *TARGETS[cfg.target].ablations]
    cells = run_passes(cfg, cfg.models[0], cfg.frontends[0], ablations, _err)
    finish_report("passes", args.name, {**run_json(cfg, state), "ablations": ablations}, cells, args.out, cfg.threads, history)
    return EXIT_FAIL if any(c.status == "mismatch" for c in cells if c.variant == "default") else EXIT_OK


# ------------------------------------------------------------------------------------ ppl, generate
def _single(args, scenario: str, seq_len: int):
    """Config, loaded model, target and a work cell for the one-model commands."""
    import argparse as _ap

    from bench.pipeline.cell import setup_cell

    ns = _ap.Namespace(**{**vars(args), "scenario": scenario, "seq_len": seq_len, "new_tokens": 1})
    cfg, state = config_from_args(ns)
    if len(cfg.models) != 1 or len(cfg.frontends) != 1:
        raise UserError(f"{args.command} takes one --model and one --frontend")
    cell = new_cell(cfg, cfg.models[0], cfg.frontends[0])
    loaded, tinfo, device = setup_cell(cfg, state, cfg.models[0], cell)
    return cfg, state, cell, loaded, tinfo


def cmd_ppl(args) -> int:
    import tempfile

    from bench.measure.ppl import read_text, split_ids, text_parity, tokenize
    from bench.models import get_spec
    from bench.pipeline.cell import TEXT_TOL, CellContext, import_and_build
    from bench.record import Parity
    from bench.scenarios import make_case

    spec = get_spec(_csv(args.model)[0]) if _csv(args.model) else None
    length = args.max_length or (spec.context if spec else 0)
    if spec and not 2 <= length <= spec.context:
        raise UserError(f"--max-length {length}: must be between 2 and {spec.name}'s context {spec.context}")
    stride = args.stride or length
    if not 1 <= stride <= length:
        raise UserError(f"--stride {stride}: must be between 1 and the window length {length}")
    text = read_text(args.text)
    from bench.reports.report import check_out_dir

    if args.max_tokens < 0:
        raise UserError(f"--max-tokens must not be negative, got {args.max_tokens} (0: the whole split)")
    check_out_dir(args.out)
    cfg, state, cell, loaded, tinfo = _single(args, "prefill", length)
    toks = tokenize(loaded, text)
    ids = split_ids(toks.ids, args.split)[: args.max_tokens or None]
    if len(ids) <= length:
        raise UserError(f"{len(ids)} tokens of text: need more than the window length {length}")
    cell.set(scenario="ppl", notes={"text": Path(args.text).name, "split": args.split, "tokenizer": toks.tokenizer})
    tag = f"[{loaded.spec.name} × {cfg.frontends[0]} ppl]"
    case = make_case(loaded, "prefill", 1, length, 0, "static", cfg.seed)
    with tempfile.TemporaryDirectory(prefix="gptbench-") as tmp:
        compiled = import_and_build(CellContext(cfg, cell, tag, Path(tmp), tinfo, state=state), case)
    if compiled is not None:
        _err(f"{tag} scoring {len(ids)} tokens in windows of {length}, stride {stride}, eager and TVM")
        m = text_parity(loaded, compiled, case.module, ids, length, stride)
        cell.metrics = m
        ok = m["nll_rel_diff"] <= TEXT_TOL
        cell.set(status="ok" if ok else "mismatch", parity=Parity(ok=ok, tol=TEXT_TOL, nll_rel_diff=m["nll_rel_diff"],
                                                                  reason="" if ok else f"NLL differs by {m['nll_rel_diff']:.2e} relative"))
        if not ok:
            cell.error = f"parity: {cell.parity.reason}"
    cell.id = cell.make_id()
    finish_report("run", args.name, {**run_json(cfg, state), "scenario": "ppl", "stride": stride, "split": args.split}, [cell], args.out, cfg.threads,
                  history_store(args))
    if cell.status == "mismatch":
        _err(f"eager and TVM disagree: {cell.parity.reason}")
        return EXIT_FAIL
    return EXIT_OK if cell.status == "ok" else EXIT_FAIL


def cmd_generate(args) -> int:
    if args.new_tokens < 1:
        raise UserError(f"--new-tokens must be >= 1, got {args.new_tokens}")
    cfg, _state, cell, loaded, tinfo = _single(args, "generate", 2)
    import torch

    from bench.measure.ppl import tokenize
    from bench.models import decode_module, prompt_module
    from bench.pipeline.generate import build_generator, eager_generate

    toks = tokenize(loaded, args.prompt)
    if len(toks.ids) < 2:
        raise UserError("--prompt needs at least 2 tokens")
    if len(toks.ids) + args.new_tokens > loaded.spec.context:
        raise UserError(f"prompt ({len(toks.ids)} tokens) + --new-tokens {args.new_tokens} exceeds the context of {loaded.spec.context}")
    if not tinfo.device_available:
        raise UserError(f"cannot run on {cfg.target}: {tinfo.device_reason}")
    ids = torch.tensor([toks.ids], dtype=torch.long)
    gen, _ = build_generator(loaded, cfg.frontends[0], tinfo, 1, len(toks.ids), args.new_tokens, cfg.seed, cfg.db, log=_err,
                             dlight=cfg.dlight, fast_math=cfg.fast_math)
    out = gen(ids, args.new_tokens)[0].tolist()
    if args.check:
        ref = eager_generate(prompt_module(loaded), decode_module(loaded), ids, args.new_tokens)[0].tolist()
        if ref != out:
            first = next((i for i, (a, b) in enumerate(zip(ref, out, strict=False)) if a != b), min(len(ref), len(out)))
            _err(f"TVM's tokens differ from eager PyTorch's at new token {first}")
            return EXIT_FAIL
        _err(f"checked: the {args.new_tokens} tokens are identical to eager PyTorch's")
    if loaded.vocab:
        text = "".join(loaded.vocab[i] for i in out)
    elif toks.tokenizer == "utf8-bytes":
        text = bytes(i for i in out if i < 256).decode("utf-8", errors="replace")
    else:
        from transformers import AutoTokenizer

        text = AutoTokenizer.from_pretrained(toks.tokenizer.removeprefix("hf:"), local_files_only=True).decode(out)
    _out(args.prompt + text)
    return EXIT_OK


# ------------------------------------------------------------------------------------------ tune
def cmd_tune(args) -> int:
    from bench.tuning.database import default_db_dir, summary_markdown
    from bench.tuning.search import TuneJob, tune

    if args.trials < 0:
        raise UserError(f"--trials must be >= 0, got {args.trials}")
    budget_s = _duration("--budget", args.budget) or None
    if not args.trials and not budget_s and not args.warm_start:
        raise UserError("say how long to tune: --trials N, --budget DURATION (e.g. 5m), or both (or --warm-start DIR alone: "
                        "replay and measure another CPU's schedules, no search)")
    if args.warm_start and not Path(args.warm_start).is_dir():
        raise UserError(f"--warm-start {args.warm_start}: no such tuning database directory")
    if args.foreign_db:
        raise UserError("--foreign-db is for `run --db`; to start tuning from another CPU's database use --warm-start DIR")
    db = args.db
    args.db = None  # RunConfig would validate it as an existing database; tune may create it
    cfg, state = _one_model_relax(config_from_args(args), "tune takes one --model (and one or more Relax frontends: their kernels go into one "
                           "database)", lambda relay: f"tune is for the Relax frontends; a Relay cell ({', '.join(relay)}) tunes its own "
                           f"database in TVM 0.19: `gptbench run --frontend {relay[0]} --tune-budget DURATION`",
                           "tune takes --scenario prefill, decode or classify (generate uses prefill and decode: tune each)")
    if cfg.shapes != "static":
        raise UserError("MetaSchedule tunes static shapes: use --shapes static")
    tinfo = state.target_info(cfg)
    db_dir = Path(db) if db else default_db_dir(cfg.models[0], cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, tinfo, args.prepack,
                                                cfg.fast_math)
    job = TuneJob(cfg.frontends, db_dir, trials=args.trials, budget_s=budget_s, prepack=args.prepack,
                  max_trials_per_task=args.max_trials_per_task or None, only=_csv(args.only) if args.only else None,
                  skip=_csv(args.skip) if args.skip else None, warm_from=args.warm_start,
                  rpc_servers=len(state.rpc_device.get("servers") or [1]))
    meta = tune(cfg, tinfo, job, _err)
    _out(summary_markdown(meta))
    _err(f"database: {db_dir} (apply with `gptbench run ... --db {db_dir}`)")
    if meta["last_session"]["stopped_by"] == "interrupt":
        _err("interrupted: the records measured so far and the database description are saved")
        return 130
    return EXIT_OK


# ------------------------------------------------------------------------------------------- rpc
def cmd_rpc(args) -> int:
    """`rpc up`: a tracker and --servers servers on loopback until Ctrl-C; `rpc status`: a tracker's servers."""
    import signal
    import time

    from bench.targets.remote import start_farm, stop_farm, tracker_summary

    if args.action == "status":
        if not args.rpc:
            raise UserError("rpc status needs --rpc HOST:PORT (the tracker)")
        summary = tracker_summary(args.rpc)
        for s in summary.get("server_info", []):
            _out(f"server {s['addr'][0]}:{s['addr'][1]}  key {s['key'].split(':')[-1]}")
        for key, q in summary.get("queue_info", {}).items():
            _out(f"key {key}: {q.get('free')} free, {q.get('pending')} pending")
        return EXIT_OK
    if args.servers < 1:
        raise UserError(f"--servers must be >= 1, got {args.servers}")

    def on_term(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        address, procs = start_farm(args.servers, args.key, args.port, _err)
    except KeyboardInterrupt:
        _err("rpc: interrupted while starting; nothing left running")
        return 130
    _out(f"tracker {address}, {args.servers} server(s) of key {args.key!r} registered; use "
         f"`gptbench run|tune ... --rpc {address} --rpc-key {args.key}`; Ctrl-C (or SIGTERM) stops them all")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        _err("rpc: a tracker or server process exited; stopping the others")
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        stop_farm(procs)
        _err("rpc: tracker and servers stopped")


# ---------------------------------------------------------------------------------------- report
def cmd_report(args) -> int:
    from bench.reports.report import load_report, to_markdown

    for f in args.files:
        _out(to_markdown(load_report(f)))
    return EXIT_OK


# -------------------------------------------------------------------------------------- pretrain
def cmd_pretrain(args) -> int:
    from dataclasses import replace

    from bench.models.pretrain import PRESETS, TrainConfig, train

    if args.preset not in PRESETS:
        raise UserError(f"unknown preset {args.preset!r}; choose from: {', '.join(PRESETS)}")
    if not Path(args.data).is_file():
        raise UserError(f"--data {args.data}: no such file")
    try:
        cfg = TrainConfig(**PRESETS[args.preset])
        overrides = {k: v for k, v in dict(max_iters=args.iters, threads=args.threads, seed=args.seed).items() if v is not None}
        cfg = replace(cfg, **overrides)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
    train(args.data, args.out, cfg, log=_err)
    return EXIT_OK


# ------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptbench",
        description="Benchmark Apache TVM's frontends (torch.export, ONNX, FX) on GPT models against eager PyTorch.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("models", help="list the model zoo")
    p.set_defaults(func=cmd_models)
    for add in (_add_run, _add_ab, _add_bisect, _add_envs, _add_measure, _add_passes, _add_timers, _add_profile, _add_ppl, _add_generate,
                _add_tune, _add_rpc, _add_report):
        add(sub)
    from bench import compare, history
    from bench.reports import plot

    compare.register(sub)
    plot.register(sub)
    history.register(sub)
    _add_pretrain(sub)
    return parser


def add_output_args(p: argparse.ArgumentParser, name: str, history: bool = True) -> None:
    """--out and --name of a command that writes a report; --history and --no-history where it makes cells."""
    p.add_argument("--out", default="results", help="report directory (default results/)")
    p.add_argument("--name", default=name, help="report name (file stem after the timestamp)")
    if history:
        p.add_argument("--history", default=None, metavar="PATH|URL", help="add the report's cells to this history store "
                       "(an SQLite file or a postgresql:// URL; default $GPTBENCH_HISTORY, else history.sqlite in --out)")
        p.add_argument("--no-history", action="store_true", help="do not add the report to a history store")


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="run a models × frontends matrix on one target; write a report")
    add_model_args(p)
    add_shape_args(p)
    p.add_argument("--baselines", default="eager", help=baselines_help() + " (comma-separated; none: time TVM alone (eager still gives "
                   "the parity reference))")
    add_timing_args(p, warmup=5, repeat=30)
    p.add_argument("--tol", type=float, default=D["tol"], help="parity tolerance on relative L2 error (default 1e-5 fp32, 2e-2 fp16)")
    p.add_argument("--no-isolate", action="store_true", help="run cells in this process (faster start; a crash ends the run)")
    p.add_argument("--cell-timeout", type=float, default=D["cell_timeout"], help="kill a cell after this many seconds (isolated cells only)")
    p.add_argument("--fail-on", default="mismatch", help="exit 1 when a cell is: mismatch (default), any (not ok), none")
    p.add_argument("--memory", choices=["on", "off"], default=os.environ.get("GPTBENCH_MEMORY") or "on",
                   help="each backend's peak memory, loaded and run alone in a fresh process after the timing (CPU; "
                   "default on, or $GPTBENCH_MEMORY)")
    _add_val_args(p)
    _add_tune_budget_args(p)
    add_rpc_args(p, "build here for the device's CPU, run and time TVM on a server of the key, parity against eager here")
    _add_tvm_env_args(p)
    p.add_argument("--bundle", default=None, metavar="DIR", help="build each cell and export it into DIR (a new directory) "
                   "instead of running it: `gptbench measure DIR` measures it on another machine that has only TVM's runtime "
                   "(--frontend export, prefill or decode)")
    add_output_args(p, "run")
    p.set_defaults(func=cmd_run)


def add_ab_args(p: argparse.ArgumentParser, rounds: int, fail_help: str) -> None:
    """What ab and bisect share: the baselines and timing of each side, the rounds, the rules and the test's levels."""
    p.add_argument("--baselines", default="eager", help=baselines_help(("eager", "compile", "ort")) + " (comma-separated)")
    add_timing_args(p, warmup=5, repeat=30)
    p.add_argument("--tol", type=float, default=D["tol"], help="parity tolerance on relative L2 error (default 1e-5 fp32, 2e-2 fp16)")
    p.add_argument("--cell-timeout", type=float, default=D["cell_timeout"], help="kill a cell after this many seconds")
    p.add_argument("--rounds", type=int, default=rounds, help=f"rounds per side, alternated A B B A ... (default {rounds})")
    p.add_argument("--fail-on", action="append", default=[], metavar="RULE", help=fail_help)
    p.add_argument("--alpha", default="0.05", help="significance level (default 0.05)")
    p.add_argument("--min-effect", default="2%", help="smallest median change declared (default 2%%)")


def _add_ab(sub) -> None:
    p = sub.add_parser("ab", help="the same cells in two TVM builds (--tvm base=…,new=…), alternated A B B A; a verdict per cell")
    add_model_args(p, frontend_default="export")
    add_shape_args(p)
    p.add_argument("--tvm", required=True, help="the two builds, BASE,NEW: " + TVM_HELP)
    add_tvm_source_args(p)
    add_ab_args(p, rounds=2, fail_help="exit 1 when broken (repeatable): compare's rules (median:5%%, p90:1ms, build_s:20%%, "
                "speedup:5%%) or parity (any parity change); a status that went from ok to not ok always fails")
    add_output_args(p, "ab")
    p.set_defaults(func=cmd_ab)


def _add_bisect(sub) -> None:
    p = sub.add_parser("bisect", help="build the commits between --good and --bad of --tvm-src and find the first whose A/B "
                       "against --good regresses (resumable)")
    add_model_args(p, frontend_default="export")
    add_shape_args(p)
    add_tvm_source_args(p)
    p.add_argument("--good", required=True, metavar="REF", help="a commit without the regression")
    p.add_argument("--bad", required=True, metavar="REF", help="a later commit with it")
    add_ab_args(p, rounds=1, fail_help="what makes a commit bad (repeatable): ab's rules (median:10%%, parity, ...); a status "
                "that went from ok to not ok always does")
    p.add_argument("--out", default="results/bisect", help="the state file and each step's A/B reports (default results/bisect)")
    p.set_defaults(func=cmd_bisect)


def _add_envs(sub) -> None:
    p = sub.add_parser("envs", help="make the --tvm environments that are not made yet (pypi:, git: builds) and say what each "
                       "is (version, commit, LLVM, flags) and can run")
    p.add_argument("--tvm", required=True, help="the environments: " + TVM_HELP)
    add_tvm_source_args(p)
    p.set_defaults(func=cmd_envs, no_isolate=True)


def _add_val_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--val-text", default=None, help="text file: report the validation loss on its last 10%%, eager and "
                   "through each TVM build (prefill, batch 1; they must agree to 1e-4)")
    p.add_argument("--val-tokens", type=int, default=D["val_tokens"], help="compare eager and TVM on the first N tokens of the "
                   f"validation split (default {D['val_tokens']}; 0: all); eager's loss is always over the whole split")


def _add_tune_budget_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tune-budget", default=None, help="tune each model for at most this long (e.g. 5m) when no database is "
                   "cached for it, keep the database and build with it; the next run finds it and tunes nothing (0: no tuning)")
    p.add_argument("--tune-cache", default=D["tune_cache"], help=f"where --tune-budget keeps its databases (default {D['tune_cache']}, "
                   "laid out as tvm-<version>/<target>/<model>-<scenario>-b<B>-t<T>-prepack)")
    p.add_argument("--tuned-after", default=None, metavar="CUTS", help="build and measure the tuning database as it was after "
                   "each of these durations of tuning (e.g. 0,1m,2m,5m,all), one cell each, from its progress log: speedup "
                   "vs tuning minutes, measured (with --db or --tune-budget)")


TVM_HELP = ("[NAME=]WHAT, comma-separated; WHAT: 0.27 (this project's environment), 0.19 (Relay; `make tvm-relay`), "
            "pypi:VERSION (that apache-tvm release, in a venv the harness makes once), git:REF (built from --tvm-src by "
            "--tvm-recipe, cached by commit), or a path to the python of your own TVM build (NAME= required)")


def add_tvm_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tvm-src", default=None, metavar="DIR_OR_URL", help="the TVM git repository git:REF environments are built from")
    p.add_argument("--tvm-recipe", default=None, metavar="SCRIPT", help="build recipe for git:REF: called as SCRIPT SRC_DIR OUT_DIR, "
                   "it leaves OUT_DIR/bin/python importing the build (default docker/tvm-src/build-env.sh)")


def _add_tvm_env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tvm", default=None, help="TVM environments: " + TVM_HELP + ". Default: each frontend in its own "
                   "(relay-onnx/relay-torch in 0.19, the others in this one); named, every frontend in each, a pair that cannot "
                   "run recorded with the reason")
    add_tvm_source_args(p)
    p.add_argument("--blas", action="store_true", help="Relay cells: GEMMs through BLAS (OpenBLAS; target -libs=cblas)")
    p.add_argument("--offload", default=None, help="Relax cells: hand the matmuls to a library before the pipeline (cuda: cublas; "
                   "needs a TVM built with it)")


def _add_measure(sub) -> None:
    p = sub.add_parser("measure", help="measure a bundle built by `run --bundle` (here, with TVM's runtime only); write a run report")
    p.add_argument("bundle", metavar="DIR", help="the bundle directory")
    p.add_argument("--baselines", default="eager", help=baselines_help(MODEL_ONLY) + " (comma-separated; none: TVM alone)")
    p.add_argument("--threads", type=int, default=D["threads"], help="threads for TVM and PyTorch (default: all usable cores)")
    add_timing_args(p, warmup=5, repeat=30)
    add_output_args(p, "measure")
    p.set_defaults(func=cmd_measure)


def _add_passes(sub) -> None:
    p = sub.add_parser("passes", help="time every pass of the pipeline and ablate chosen passes; write a passes report")
    add_model_args(p, frontend_default="export")
    add_shape_args(p)
    p.add_argument("--ablate", default=None, help="passes to disable one at a time, comma-separated "
                   "(default: FoldConstant,FuseOps,FuseTIR,RewriteDataflowReshape,StaticPlanBlockMemory,KillAfterLastUse"
                   " and ApplyDefaultSchedule on cuda)")
    add_timing_args(p, warmup=3, repeat=20)
    p.add_argument("--tol", type=float, default=D["tol"])
    add_output_args(p, "passes")
    p.set_defaults(func=cmd_passes, no_isolate=True)


def _add_timers(sub) -> None:
    p = sub.add_parser("timers", help="check the harness's medians against independent timers (each backend alone in a "
                       "fresh process), in one time window; exit 1 beyond 10%%")
    add_model_args(p, frontend_default="export")
    add_shape_args(p)
    add_timing_args(p, warmup=5, repeat=30)
    add_output_args(p, "timers", history=False)
    p.set_defaults(func=cmd_timers)


def _add_profile(sub) -> None:
    p = sub.add_parser("profile", help="per-kernel times of TVM's build through each frontend (the Relax VM's instrument), "
                       "the same kernels joined across frontends; write a profile report")
    add_model_args(p)
    add_shape_args(p)
    p.add_argument("--warmup", type=int, default=3, help="calls before the profiled ones, discarded (default 3)")
    p.add_argument("--repeat", type=int, default=20, help="profiled calls; each call site's time is the median (default 20)")
    p.add_argument("--top", type=int, default=15, help="kernels in the report's table (default 15; the JSON has all)")
    p.add_argument("--tune-budget", default=None, help="build with the database `run --tune-budget` finds for this model and "
                   "shape (tuning for at most this long where there is none); default: --db, else untuned")
    p.add_argument("--tune-cache", default=D["tune_cache"], help=f"where --tune-budget finds its databases (default {D['tune_cache']})")
    p.add_argument("--tvm", default=None, help="profile every frontend in each of these TVM environments, each in its own process "
                   "(columns FRONTEND@ENV): " + TVM_HELP + ". Default: this process's TVM")
    add_tvm_source_args(p)
    add_output_args(p, "profile", history=False)
    p.set_defaults(func=cmd_profile, no_isolate=True)


def _add_ppl(sub) -> None:
    p = sub.add_parser("ppl", help="sliding-window perplexity of a text, eager and through TVM (they must agree to 1e-4)")
    add_model_args(p, frontend_default="export")
    p.add_argument("--text", required=True, help="UTF-8 text file")
    p.add_argument("--stride", type=int, default=0, help="window stride in tokens (default: the window length)")
    p.add_argument("--max-length", type=int, default=0, help="window length (default: the model's context)")
    p.add_argument("--split", default="all", choices=["all", "val", "train"], help="val: the last 10%% (as pretrain holds out)")
    p.add_argument("--max-tokens", type=int, default=0, help="score only the first N tokens of the split")
    add_output_args(p, "ppl")
    p.set_defaults(func=cmd_ppl, no_isolate=True)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="greedy generation through a TVM build (KV cache, symbolic past length)")
    add_model_args(p, frontend_default="export")
    p.add_argument("--prompt", required=True)
    p.add_argument("--new-tokens", type=int, default=100, help="tokens to generate (prompt + new tokens must fit the context)")
    p.add_argument("--check", action="store_true", help="also generate with eager PyTorch and require identical tokens")
    p.set_defaults(func=cmd_generate, no_isolate=True)


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="MetaSchedule-tune every kernel of a model (through one or more Relax frontends: "
                       "their kernels go into one database, continued across sessions) into a persistent database")
    add_model_args(p, frontend_default="export")
    add_shape_args(p)
    p.add_argument("--trials", type=int, default=0, help="total trial budget across all tasks (adds to what the database has)")
    p.add_argument("--budget", default=None, help="wall-clock budget for this session, e.g. 5m or 1h30m (from the start, import "
                   "included; checked between measurement batches); give --trials, --budget or both")
    p.add_argument("--max-trials-per-task", type=int, default=0, help="cap per task (default: none)")
    p.add_argument("--skip", default=None, help="leave out tasks whose name contains one of these, comma-separated "
                   "(e.g. concatenate: decode's fused KV-cache concatenation, whose search space stalls MetaSchedule)")
    p.add_argument("--only", default=None, help="tune only tasks whose name contains one of these, comma-separated "
                   "(e.g. matmul); the summary still lists every task")
    p.add_argument("--prepack", action="store_true", help="let tuned kernels choose the weights' layout (CPU; weights are "
                   "transformed once at load by main_transform_params)")
    p.add_argument("--warm-start", default=None, metavar="DIR", help="first replay the best schedules of a database tuned on "
                   "another CPU (same TVM, model, shapes, --prepack, --fast-math), each built and measured here; the search "
                   "then starts from those records")
    add_rpc_args(p, "measure the candidates on every server of the key (MetaSchedule's RPCRunner); the database is "
                    "keyed by the device's CPU")
    p.set_defaults(func=cmd_tune, no_isolate=True)


def _add_rpc(sub) -> None:
    p = sub.add_parser("rpc", help="a local RPC tracker and device servers (`up`), or what a tracker holds (`status`)")
    p.add_argument("action", choices=["up", "status"])
    p.add_argument("--servers", type=int, default=2, help="up: how many servers (default 2)")
    p.add_argument("--key", default="gptbench", help="up: the servers' key (default gptbench)")
    p.add_argument("--port", type=int, default=9190, help="up: the tracker's port, or the next free one (default 9190)")
    p.add_argument("--rpc", default=None, metavar="HOST:PORT", help="status: the tracker")
    p.set_defaults(func=cmd_rpc)


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="print the Markdown table of report JSON file(s)")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_report)


def _add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="train a nanoGPT char-level model on a text file")
    p.add_argument("--data", required=True, help="UTF-8 text file")
    p.add_argument("--preset", default="char", help="char (nanogpt-shakespeare-char) or smoke (tests)")
    p.add_argument("--iters", type=int, default=None, help="override the preset's iterations")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", required=True, help="directory for ckpt.pt and MODEL_CARD.md")
    p.set_defaults(func=cmd_pretrain)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        _err(f"gptbench {args.command}: error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
