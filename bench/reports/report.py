"""Reports: one versioned JSON per run (the source of truth), with a CSV of its cells and a
Markdown table beside it, all under results/<timestamp>-<name>.*.

Schema (version 1):
    {"schema": "gptbench.report", "schema_version": 1, "kind": "run" | "passes",
     "name", "created" (UTC ISO 8601), "command" (argv), "config", "environment", "cells": [...]}
A cell always has id, model, frontend, target, scenario, status; measured cells have `tvm` and
`baselines[*].latency` statistics in ms with the raw samples kept.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path

from bench.baselines import BASELINES
from bench.core.errors import UserError
from bench.core.files import atomic_write
from bench.core.markdown import fmt, md_table
from bench.core.tvm_envs import identity_line
from bench.record import Cell, Latency, RecordError, cells_from_json
from bench.scenarios import shape_text

SCHEMA = "gptbench.report"
SCHEMA_VERSION = 1
KINDS = ("run", "passes")


def new_report(kind: str, name: str, config: dict, environment: dict, cells: list[Cell], command: list[str] | None = None,
               **extra) -> dict:
    return dict(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        kind=kind,
        name=name,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        command=command or [],
        config=config,
        environment=environment,
        cells=cells,
        **extra,
    )


def _stem(report: dict) -> str:
    created = _dt.datetime.fromisoformat(report["created"])
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", report["name"]).strip("-") or "run"
    return f"{created.strftime('%Y%m%dT%H%M%SZ')}-{safe}"


def check_out_dir(out_dir: str | Path, flag: str = "--out") -> Path:
    """Make sure reports can be written to out_dir before any work starts (UserError otherwise)."""
    import os
    import tempfile

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out}: is a file, not a directory; name a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".gptbench-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{flag} {out}: cannot write there ({e.strerror or e}); choose a writable directory") from None
    return out


def _claim_stem(out: Path, stem: str) -> str:
    """A stem none of whose report files exists yet, claimed atomically (O_EXCL on its JSON name), so two
    runs finishing in the same second never overwrite each other: the second gets a -2 suffix."""
    import os

    for i in range(1, 1000):
        candidate = stem if i == 1 else f"{stem}-{i}"
        if any((out / f"{candidate}{ext}").exists() for ext in (".csv", ".md")):
            continue
        try:
            os.close(os.open(out / f"{candidate}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"{out}: 999 reports named {stem}* already; choose another --name")


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write JSON, CSV and Markdown, each atomically, under a name no other report has; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _claim_stem(out, _stem(report))
    paths = dict(json=out / f"{stem}.json", csv=out / f"{stem}.csv", md=out / f"{stem}.md")
    try:
        atomic_write(paths["csv"], to_frame(report).to_csv(index=False))
        atomic_write(paths["md"], to_markdown(report))
        atomic_write(paths["json"], to_json(report) + "\n")  # last: it replaces the claim
    except BaseException:
        for p in paths.values():
            p.unlink(missing_ok=True)
        raise
    return paths


def to_json(report: dict) -> str:
    """The report as JSON text (its cells through Cell.to_json)."""
    return json.dumps({**report, "cells": [c.to_json() for c in report["cells"]]}, indent=1, default=str)


def read_report(path: str | Path) -> dict:
    """A report file's JSON with its schema checked; UserError naming the file otherwise. Its cells stay JSON objects,
    checked where they become records (checked_cells: load_report, compare, the history store)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise UserError(f"cannot read report {p}: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{p} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); is it a gptbench report?") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UserError(f"{p} is not a gptbench report (no \"schema\": \"{SCHEMA}\" field)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"{p} has report schema version {version!r}; this gptbench reads version {SCHEMA_VERSION}")
    if data.get("kind") not in KINDS:
        raise UserError(f"{p}: unknown report kind {data.get('kind')!r} (expected one of {', '.join(KINDS)})")
    return data


def checked_cells(cells, name: str) -> list[Cell]:
    """A report's cells as records, every value checked by the one validator (bench.record.cells_from_json);
    UserError naming `name` (the file), the cell and the field otherwise."""
    try:
        return cells_from_json(cells, name)
    except RecordError as e:
        raise UserError(str(e)) from None


def load_report(path: str | Path) -> dict:
    """A report with typed cells (bench.record.Cell); UserError naming the file, cell and field otherwise."""
    data = read_report(path)
    data["cells"] = checked_cells(data.get("cells"), str(path))
    return data


def flat_row(cell: Cell) -> dict:
    par = cell.parity
    row = {k: getattr(cell, k) for k in ("id", "model", "frontend", "target", "scenario", "batch", "seq_len", "past_len", "new_tokens",
                                         "shapes", "dtype", "threads", "status", "stage", "error")}
    w = cell.weights or {}
    row["weights"] = f"{w.get('kind')}:{w.get('source')}" if w else None
    row["n_params"] = cell.n_params
    row["unsupported_ops"] = ";".join(cell.unsupported_ops)
    for k in ("export_s", "import_s", "build_s", "tune_s", "cell_s"):
        row[k] = cell.timings.get(k)
    row.update(rel_l2=par and par.rel_l2, max_abs=par and par.max_abs, top1_agree=par and par.top1_agree)
    for name, stats in cell.latencies():
        for stat in ("median", "min", "mean", "p90", "p99", "std"):
            row[f"{name}_{stat}_ms"] = getattr(stats, stat)
        if name != "tvm":
            row[f"speedup_vs_{name}"] = cell.speedup.get(name)
    for k, v in (cell.metrics or {}).items():
        row[k] = v
    row["tuning_db"] = (cell.tuning or {}).get("hash")
    row["n_relax_ops"] = sum(cell.relax_ops.values()) or None
    row["peak_rss_mb"] = cell.peak_rss_mb
    if cell.memory:
        row["weights_mb"] = cell.memory.get("weights_mb")
        for name, m in (cell.memory.get("backends") or {}).items():
            row[f"{name}_peak_mb"], row[f"{name}_model_mb"] = m.get("peak_mb"), m.get("model_mb")
    row["unstable"] = cell.unstable if cell.timing else None
    return row


def to_frame(report: dict):
    import pandas as pd

    return pd.DataFrame([flat_row(c) for c in report["cells"]])


def _ms(stats: Latency | None) -> str | None:
    if stats is None:
        return None
    return f"{stats.median:.3f} ± {stats.std:.3f}" if stats.median < 100 else f"{stats.median:.1f} ± {stats.std:.1f}"


def environment_line(env: dict) -> str:
    tvm = env.get("tvm") or {}
    v = env.get("versions") or {}
    git = env.get("git") or {}
    gpu = env.get("gpu")
    parts = [
        f"{env.get('cpu')} ({env.get('cores')} usable cores, mcpu {tvm.get('host_mcpu')}, {' '.join(env.get('cpu_flags') or [])})",
        f"threads {env.get('threads')} (TVM pool {tvm.get('threads')}, torch {env.get('torch_threads')})",
        (f"TVM {tvm.get('version')} runtime only (tvm-ffi {v.get('apache-tvm-ffi')})" if tvm.get("runtime_only") else
         f"TVM {tvm.get('version')} (LLVM {tvm.get('llvm')}, tvm-ffi {v.get('apache-tvm-ffi')})"),
        f"torch {v.get('torch')}, onnx {v.get('onnx')}, onnxruntime {v.get('onnxruntime')}, transformers {v.get('transformers')}",
        f"git {str(git.get('commit'))[:10]}{' (dirty)' if git.get('dirty') else ''}",
    ]
    if gpu:
        parts.insert(1, f"GPU {gpu.get('name')} (sm {gpu.get('capability')}, driver {gpu.get('driver')}, CUDA {gpu.get('torch_cuda')})")
    return "; ".join(parts)


def _device_lines(cfg: dict) -> list[str]:
    """A `run --rpc` report: where TVM ran (the environment above is this host's)."""
    d = cfg.get("rpc_device") or {}
    return [f"Device: TVM ran and was timed on a server of key {d.get('key')!r} at tracker {d.get('tracker')} (servers "
            f"{', '.join(d.get('servers') or [])}; mcpu {d.get('mcpu')}, {d.get('threads')} threads); no baseline was timed (it "
            "would have run on this host); eager PyTorch here gave the parity reference.", ""]


def _bundle_lines(bundle: dict) -> list[str]:
    """Where a `gptbench measure` report's libraries were built (the environment above is where they ran)."""
    built = bundle.get("built_on") or {}
    git = built.get("git") or {}
    tvm = built.get("tvm") or {}
    return [f"Built elsewhere, measured here: the bundle {bundle.get('path')} was built {bundle.get('built')} on "
            f"{built.get('hostname')} ({built.get('cpu')}; TVM {tvm.get('version')}, LLVM {tvm.get('llvm')}; git "
            f"{(git.get('commit') or '')[:10]}{' (dirty)' if git.get('dirty') else ''}) and loaded here by TVM's runtime; a cell "
            "is measured only when the model's weights and inputs, rebuilt here, match the bundle's sha256.", ""]



def _built_at(c: Cell) -> str:
    at = c.notes["shared_build"]["built_at"]
    return shape_text(c.scenario, at["batch"], at["seq_len"], at["past_len"])


def shape_label(c: Cell) -> str:
    """'b1 × 128' (prefill, generate) or 'b1 × past 128' (decode): a cell's shape in a sweep."""
    return shape_text(c.scenario, c.batch, c.seq_len, c.past_len)


def swept(cells: list[Cell]) -> bool:
    """Whether the cells are of more than one shape (`run --batch 1,4 --seq-len 32,128`)."""
    return len({(c.batch, c.seq_len, c.past_len) for c in cells}) > 1


def _cell_row(c: Cell, has_variant: bool, base_names: list[str], alone: bool = False, shapes: bool = False) -> list:
    t = c.timings
    imp = (t.get("export_s") or 0) + (t.get("import_s") or 0) if ("import_s" in t or "export_s" in t) else None
    par, b, sp = c.parity, c.baselines, c.speedup
    eager = b.get("eager")
    row = [c.model, c.frontend] + ([shape_label(c)] if shapes else []) + ([c.variant] if has_variant else []) + [
        c.status, (c.weights or {}).get("kind"), fmt(imp, ".1f"), fmt(t.get("build_s"), ".1f"),
        fmt(par and par.rel_l2, ".1e"), fmt(par and par.top1_agree, ".3f"), _ms(c.tvm), _ms(eager and eager.latency)]
    row += [_ms(b[n].latency) or b[n].status if n in b else None for n in base_names]
    row += [None if sp.get(n) is None else f"{sp[n]:.3f}x" for n in ("eager", *base_names)]
    return row + [_peak(c, alone), "unstable" if c.unstable else "ok" if c.timing else None]


def _peak(c: Cell, alone: bool):
    """The main table's memory: TVM's peak alone in a report that measured memory (none for a cell without
    it: a failed cell), else the harness process's peak (reports from before)."""
    if alone:
        return ((c.memory or {}).get("backends") or {}).get("tvm", {}).get("peak_mb")
    return c.peak_rss_mb


def to_markdown(report: dict) -> str:
    cells: list[Cell] = report["cells"]
    cfg = report.get("config") or {}
    shape = (f"past {cfg.get('past_len')} + 1 token" if cfg.get("scenario") == "decode" else f"seq {cfg.get('seq_len')}")
    if cfg.get("sweep"):
        lengths = sorted({p if cfg.get("scenario") == "decode" else s for _b, s, p in cfg["sweep"]})
        shape = (f"past {','.join(map(str, lengths))} + 1 token" if cfg.get("scenario") == "decode" else f"seq {','.join(map(str, lengths))}")
        shape += f" (a sweep of {len(cfg['sweep'])} shapes, each built on its own)"
    out = [
        f"# gptbench {report.get('kind', 'run')}: {report['name']}",
        "",
        *([f"**Partial report**: the run was interrupted ({report.get('interrupted')}); it keeps the cells that finished, "
           "the cell in progress is marked `interrupted` and the cells after it were not run.", ""] if report.get("partial") else []),
        f"{report['created']} · target {cfg.get('target')} · scenario {cfg.get('scenario')} · batch "
        f"{','.join(str(b) for b in sorted({x[0] for x in cfg['sweep']})) if cfg.get('sweep') else cfg.get('batch')} · {shape} · "
        f"{cfg.get('shapes')} shapes · {cfg.get('dtype')} · tolerance rel L2 ≤ {cfg.get('tol')}",
        "",
        f"Environment: {environment_line(report.get('environment') or {})}",
        "",
        *tvm_builds_lines(cells),
        *([f"Threads: {cfg['threads_note']}.", ""] if cfg.get("threads_note") else []),
        *(_bundle_lines(report["bundle"]) if report.get("bundle") else []),
        *(_device_lines(cfg) if cfg.get("rpc") else []),
        latency_method(cfg, cells),
        "",
        cells_table(cells),
    ]
    out += timing_check_markdown(cells)
    out += memory_markdown(cells)
    extra = [c for c in cells if c.metrics]
    if extra:
        keys = sorted({k for c in extra for k in c.metrics})
        out += ["## Metrics", "", md_table(["model", "frontend", *keys], [[c.model, c.frontend, *[c.metrics.get(k) for k in keys]] for c in extra])]
    if report.get("kind") == "passes":
        out += passes_markdown(cells)
    return "\n".join(out + _not_ok_lines(cells))


def memory_markdown(cells: list[Cell]) -> list[str]:
    """The memory section: per cell, each backend's peak when loaded and run alone, and what its model added."""
    measured = [c for c in cells if c.memory and c.memory.get("backends")]
    skipped = [c for c in cells if c.memory and c.memory.get("skipped")]
    if not measured and not skipped:
        return []
    out = ["## Memory", ""]
    if measured:
        names = list(dict.fromkeys(n for c in measured for n in c.memory["backends"]))
        rows = []
        for c in measured:
            got = c.memory["backends"]
            rows.append([c.model, c.frontend, *([c.variant] if any(x.variant for x in measured) else []), c.memory.get("weights_mb"),
                         *[(f"{got[n]['peak_mb']:.0f} (+{got[n]['model_mb']:.0f})" if "peak_mb" in got[n] else got[n].get("error"))
                           if n in got else None for n in names]])
        out += [f"Peak resident memory, MB, of {measured[0].memory.get('method')}; in brackets what loading and running the model added "
                "over the runtime's imports. TVM's is the tuned build's (untuned: the same import without the database).", "",
                md_table(["model", "frontend", *(["variant"] if any(x.variant for x in measured) else []), "weights MB",
                          *[f"{'TVM' if n == 'tvm' else n} MB" for n in names]], rows), ""]
    out += [f"- {c.model} × {c.frontend}: memory not measured: {c.memory['skipped']}" for c in skipped]
    return out + ([""] if skipped else [])


def tvm_builds_lines(cells: list[Cell]) -> list[str]:
    """The TVM build of each environment the cells ran in (bench.core.tvm_envs.identity), one line each."""
    seen: dict[str, dict] = {}
    for c in cells:
        ident = c.notes.get("tvm_build")
        if isinstance(ident, dict) and ident.get("name") and ident["name"] not in seen:
            seen[ident["name"]] = ident
    if not seen:
        return []
    return ["TVM builds:", "", *[f"- {identity_line(i)}" for i in seen.values()], ""]


def cells_table(cells: list[Cell]) -> str:
    """The report's main table: one row per cell, a latency and a speedup column per baseline present."""
    base_names = [b for b in BASELINES if b != "eager" and any(b in c.baselines for c in cells)]
    has_variant = any(c.variant for c in cells)
    shapes = swept(cells)
    headers = ["model", "frontend"] + (["shape (batch × tokens)"] if shapes else []) + (["variant"] if has_variant else [])
    headers += ["status", "weights", "export+import s", "build s", "rel L2", "top-1", "TVM ms", "eager ms"]
    alone = any(c.memory is not None for c in cells)
    headers += [f"{b} ms" for b in base_names] + ["speedup vs eager"] + [f"vs {b}" for b in base_names]
    headers += ["TVM peak MB (alone)" if alone else "peak RSS MB", "timing"]
    return md_table(headers, [_cell_row(c, has_variant, base_names, alone, shapes) for c in cells])


def _not_ok_lines(cells: list[Cell]) -> list[str]:
    """The sections after the tables: cells not ok and why, frontend workarounds, tuning databases."""
    out = []
    failed = [c for c in cells if c.status != "ok"]
    if failed:
        out += ["## Not ok", ""]
        for c in failed:
            ops = c.unsupported_ops
            out.append(f"- **{c.model} × {c.frontend}**: `{c.status}`" + (f" at {c.stage}" if c.stage else "")
                       + f" — {c.error}" + (f" (unsupported: {', '.join(ops)})" if ops else ""))
        out.append("")
    patched = [c for c in cells if c.patches]
    if patched:
        out += ["## Frontend workarounds applied", ""]
        out += [f"- {c.model} × {c.frontend}: {'; '.join(c.patches)}" for c in patched]
        out.append("")
    shared = [c for c in cells if c.notes.get("shared_build")]
    if shared:
        out += ["## Shared builds", "", "With symbolic shapes a sweep imports and builds each model × frontend × batch once, "
                "at its first length; these cells ran that build at their own length (parity checked at theirs):", ""]
        out += [f"- {c.model} × {c.frontend}, {shape_label(c)}: the build of {_built_at(c)}"
                for c in shared]
        out.append("")
    tuned = [c for c in cells if c.tuning]
    if tuned:
        out += ["## Tuning databases", "", *[_tuning_line(c) for c in tuned], ""]
    return out


def _tuning_line(c: Cell) -> str:
    t = c.tuning
    line = (f"- {c.model} × {c.frontend}{' ' + c.variant if c.variant else ''}: `{t.get('path')}` (hash {t.get('hash')}, "
            f"{t.get('records')} records from {t.get('trials', '?')} trials and {t.get('tuning_wall_s', '?')} s of tuning, "
            f"{t.get('matched', '?')} of {t.get('tasks', '?')} kernels tuned"
            + (f"; tuned through {', '.join(t['tuned_for']['frontends'])}" if (t.get("tuned_for") or {}).get("frontends") else "") + ")")
    if t.get("cut"):
        cut = t["cut"]
        line += (f"; **as it was after {cut['tuning_s']} s of its {cut['of_tuning_s']} s of tuning**: the first {cut['records']} "
                 f"of its {cut['of_records']} records (whole database: hash {cut['of_hash']})")
    if t.get("applied_across"):
        line += f"; **{t['applied_across']}** (--foreign-db)"
    if t.get("warm_start"):
        w = t["warm_start"]
        line += f"; warm-started from {w.get('source_target')} ({w.get('measured')} of its schedules measured here)"
    if t.get("tuned_in_this_run"):
        return line + f"; tuned in this run: {t['tuned_in_this_run']['trials']} trials, {t['tuned_in_this_run']['wall_s']} s"
    return line + ("; found in the cache" if t.get("from_cache") else "")


def latency_method(cfg: dict, cells: list[Cell]) -> str:
    """How the latencies of a report were taken, in one paragraph."""
    if not any(c.tvm for c in cells):
        return "Latency: no cell of this report was timed."
    plan = next((c.timing["describe"] for c in cells if c.timing and c.timing.get("describe")), None)
    how = plan or f"{cfg.get('warmup')} warmup calls, then {cfg.get('repeat')} interleaved rounds of one call per backend"
    return (f"Latency: median ± std of {cfg.get('repeat')} samples per backend; {how} "
            "(TVM: VM time_evaluator, one call per sample; PyTorch: perf_counter / CUDA events under inference_mode; "
            "ONNX Runtime: perf_counter around session.run). Speedup = baseline median / TVM median. The *timing* column "
            "reads `unstable` for a cell whose timing was flagged (a busy machine, or a solo check beyond tolerance: see "
            "below); `compare` notes such cells too.")


def timing_check_markdown(cells: list[Cell]) -> list[str]:
    """The solo check: each backend's median alone after the rounds next to its median in the rounds."""
    rows, flagged = [], []
    for c in cells:
        t = c.timing
        if not t or not t.get("solo"):
            continue
        if c.variant and any(r[0] == c.model and r[1] == c.frontend for r in rows):
            continue  # a passes report: every variant shares one measurement
        machine = t.get("machine") or {}
        others = None if "others_cores" not in machine else f"{machine['others_cores']:.2f}" + (
            " (host, not the device)" if machine.get("note") else "" if machine.get("quiet") else " **busy**")
        for name, s in t["solo"].items():
            mark = "**flagged**" if s.get("flagged") else "ok"
            rows.append([c.model, c.frontend, name, f"{s['paired_median']:.3f}", f"{s['median']:.3f}", f"{s['diff'] * 100:+.1f}%", mark,
                         others])
        flagged += [f"- {c.model} × {c.frontend}: {f}" for f in t.get("flags") or []]
    if not rows:
        return []
    tol = next(c.timing.get("solo_tolerance") for c in cells if c.timing and c.timing.get("solo"))
    out = ["## Solo check", "",
           f"After the rounds each backend ran once more alone (after its own idle wait); a solo median more than ±{tol:.0%} "
           "from the median in the rounds is flagged: the machine drifted or the backends disturbed each other. "
           "*Other load* is the CPU other processes (and the hypervisor) took while the cell was timed, in cores.", "",
           md_table(["model", "frontend", "backend", "median in rounds ms", "solo median ms", "solo vs rounds", "check", "other load"], rows)]
    if flagged:
        out += ["Flagged:", "", *flagged, ""]
    return out


def _delta(new, base) -> str | None:
    if new is None or not base:
        return None
    return f"{(new / base - 1) * 100:+.1f}%"


def passes_markdown(cells: list[Cell]) -> list[str]:
    """The ablation table and the pass-time tables of a passes report."""
    default = next((c for c in cells if c.variant == "default"), None)
    base_build = default.timings.get("build_s") if default else None
    base_lat = default.tvm.median if default and default.tvm else None
    rows = []
    for c in cells:
        build_s = c.timings.get("build_s")
        lat = c.tvm.median if c.tvm else None
        rows.append([c.variant, c.status, fmt(build_s, ".2f"), _delta(build_s, base_build), _ms(c.tvm), _delta(lat, base_lat),
                     fmt(c.parity and c.parity.rel_l2, ".1e"), c.error if c.status != "ok" else None])
    out = ["## Pass ablation", "",
           "Each row rebuilds with one pass disabled (`PassContext(disabled_pass=[...])`); Δ is against the default pipeline.", "",
           md_table(["variant", "status", "build s", "Δ build", "TVM ms", "Δ latency", "rel L2", "note"], rows)]
    if default and default.pass_times:
        total = default.timings.get("instrumented_build_s")
        relax_s = default.timings.get("relax_pipeline_s")
        out += ["## Where compile time goes", "",
                f"One instrumented default build: {total} s in all, {relax_s} s of it in the Relax pipeline, the rest in TIR "
                "lowering and code generation. Seconds are inclusive: a pass that runs others includes their time.", "",
                md_table(["pass", "calls", "seconds", "share", "Relax bindings after", "PrimFuncs after"],
                         [[r["name"], r["calls"], f"{r['seconds']:.3f}", f"{100 * r['seconds'] / total:.1f}%" if total else None,
                           r.get("relax_bindings"), r.get("prim_funcs")] for r in default.pass_times[:20]])]
    if default and default.pipeline:
        out += ["## The Relax pipeline, in order", "",
                md_table(["#", "pass", "seconds", "Relax bindings after", "PrimFuncs after"],
                         [[i + 1, r["name"], f"{r['seconds']:.3f}", r["relax_bindings"], r["prim_funcs"]]
                          for i, r in enumerate(default.pipeline)])]
    return out


def shapes_text(cell: Cell) -> str:
    """'static, batch 1, seq 16': the shape a cell was measured at."""
    tokens = {"decode": f"past {cell.past_len} + 1", "generate": f"seq {cell.seq_len} + {cell.new_tokens} new"}
    return f"{cell.shapes}, batch {cell.batch}, {tokens.get(cell.scenario, 'seq ' + str(cell.seq_len))}"
