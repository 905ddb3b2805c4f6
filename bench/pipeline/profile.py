"""A per-kernel profile of TVM's build of a cell, joined across frontends.

TVM 0.27's Relax VM has no profiler (`VirtualMachine(..., profile=True)` is gone), but it calls an
instrument before and after every call it makes (`VirtualMachine.set_instrument`): each kernel, and
each VM builtin (allocation, reshape, tuple making). The profile times every such call: the clock
is read at the end of the instrument's "before" call and at the start of its "after" call (after a
device synchronisation on a GPU), so each call's time includes one crossing of the FFI boundary
(a few microseconds) besides the kernel. The model is called `repeat` times after `warmup` calls;
each call site's time is the median over the calls, and a kernel's time is the sum over its call
sites. The whole call is timed apart without the instrument (TVM's time_evaluator), so the report
says how much of it the kernels account for.

Kernels are joined across frontends by structure: two frontends' kernels are the same row when
their TIR after FuseTIR (before any schedule) is structurally equal, as MetaSchedule's database
matches them, whatever each import named them. A kernel one frontend has and another has not is
where their imports differ. VM builtins are joined by name.

With `--tvm`, every frontend is profiled in every TVM environment named, each other environment in its
own interpreter (bench.pipeline.profile_worker); a column is then FRONTEND@ENV. Structural equality
holds within one TVM only, so another environment's kernels join a row by kind and buffers, preferring
a kernel of the same name where several fit.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.core import tvm_compat
from bench.core.log import log as default_log
from bench.core.markdown import md_table as _md_table
from bench.core.tvm_envs import CURRENT_VAR, current, launch_env, launcher
from bench.pipeline.autotune import env_databases
from bench.pipeline.cell import CellContext, import_and_build, setup_cell
from bench.pipeline.config import RunConfig, RunState, new_cell, run_json
from bench.scenarios import make_case
from bench.tuning.database import prepacked
from bench.tuning.search import fused_module
from frontends.base import short_error

SCHEMA, SCHEMA_VERSION = "gptbench.profile", 1
PREPACKED = "_prepacked"  # the suffix SplitLayoutRewritePreproc gives a kernel whose weights a tuned schedule prepacked
METHOD = ("Relax VM instrument (VirtualMachine.set_instrument): each call the VM makes timed from the end of the instrument's "
          "before-call to the start of its after-call (perf_counter; the device synchronised on a GPU), one FFI crossing "
          "included; median over the calls per call site, summed per kernel; the whole call timed apart without the "
          "instrument (time_evaluator)")


# The kind of a kernel, by the first of these its name contains (TVM names a fused kernel after its ops): the
# anchor op the rest was fused into. A kernel none names moves or combines data elementwise.
KINDS = (("matmul", ("matmul", "dense", "conv")), ("softmax", ("softmax",)), ("layer norm", ("layer_norm",)),
         ("gather", ("take", "gather")))
OTHER_KIND, BUILTIN_KIND = "elementwise, layout", "VM builtins"


def kind_of(symbol: str) -> str:
    """The kernel's kind (KINDS), or "VM builtins" for the VM's own calls (vm.builtin.*)."""
    if symbol.startswith("vm."):
        return BUILTIN_KIND
    ops = set(re.sub(r"\d+", "", symbol).split("_"))
    return next((kind for kind, names in KINDS if any(n in symbol and (n in ops or "_" in n) for n in names)), OTHER_KIND)


def kernel_keys(mod, target, prepack: bool, fast_math: bool) -> dict:
    """{kernel name: its TIR after FuseTIR as MetaSchedule keys it (an IRModule whose main is the kernel)}."""
    import tvm

    fused = fused_module(mod, target, prepack, fast_math)
    return {gv.name_hint: tvm.IRModule({"main": f.with_attr("global_symbol", "main")})
            for gv, f in fused.functions.items() if type(f).__name__ == "PrimFunc"}


def _buffers(args) -> list[str]:
    """A call's tensor arguments as DTYPE×ELEMENTS, sorted: what it computes over, whatever the layout."""
    import math

    return sorted(f"{a.dtype}×{math.prod(int(d) for d in a.shape)}" for a in args if hasattr(a, "shape") and hasattr(a, "dtype"))


def time_calls(compiled, inputs, warmup: int, repeat: int) -> dict:
    """Every call the VM makes in one call of the model, timed through the VM's instrument: per call site (in
    call order) its symbol and median ms over `repeat` calls; and the whole call's median without the instrument."""
    import numpy as np

    device = compiled.device
    sync = (lambda: None) if tvm_compat.device_kind(device) == 1 else device.sync  # 1: the CPU, whose calls return when done
    clock = time.perf_counter_ns
    calls: list[tuple[str, int]] = []
    start = [0]
    buffers: list[list[str]] = []

    def record(_func, _symbol, before, _ret, *args):
        if before:
            buffers.append(_buffers(args))
        return 0

    def instrument(_func, symbol, before, _ret, *_args):
        if before:
            sync()
            start[0] = clock()
        else:
            sync()
            calls.append((symbol, clock() - start[0]))
        return 0  # VMInstrumentReturnKind.NO_OP: run the call

    timer = compiled.timer(inputs)
    for _ in range(warmup):
        timer()
    whole = [timer() for _ in range(repeat)]
    compiled.vm.set_instrument(record)
    try:
        compiled(*inputs)  # each call's buffers, once, outside the timed calls
        compiled.vm.set_instrument(instrument)
        runs = []
        for i in range(warmup + repeat):
            calls.clear()
            compiled(*inputs)
            if i >= warmup:
                runs.append(list(calls))
    finally:
        compiled.vm.set_instrument(None)
    sites = [s for s, _ in runs[0]]
    if any([s for s, _ in r] != sites for r in runs) or len(buffers) != len(sites):
        raise RuntimeError("the VM made different calls from one call of the model to the next")
    per_site = [statistics.median(r[i][1] for r in runs) / 1e6 for i in range(len(sites))]
    return dict(sites=[dict(symbol=s, ms=round(ms, 5), buffers=b) for s, ms, b in zip(sites, per_site, buffers, strict=True)],
                whole_ms=round(float(np.median(whole)) * 1e3, 4), instrumented_ms=round(statistics.median(sum(t for _, t in r) for r in runs) / 1e6, 4),
                warmup=warmup, repeat=repeat)


def kernel_rows(sites: list[dict], names: set[str]) -> list[dict]:
    """Per kernel (or VM builtin) of the call: calls, ms (summed over its call sites), its name after FuseTIR, the
    buffers of its first call."""
    rows: dict[str, dict] = {}
    for s in sites:
        sym = s["symbol"]
        base = sym[: -len(PREPACKED)] if sym.endswith(PREPACKED) and sym[: -len(PREPACKED)] in names else sym
        row = rows.setdefault(sym, dict(symbol=sym, kernel=base if base in names else None, kind=kind_of(sym), calls=0, ms=0.0,
                                        buffers=s["buffers"]))
        row["calls"] += 1
        row["ms"] += s["ms"]
    return [dict(r, ms=round(r["ms"], 5)) for r in sorted(rows.values(), key=lambda r: -r["ms"])]


def profile_frontend(cfg: RunConfig, state: RunState, frontend: str, log=default_log) -> tuple[dict, dict]:
    """One frontend's build of cfg's case (with the run's tuning database, if any), profiled: (the frontend's
    profile, its kernels' structural keys). A frontend that does not import or build gives its status and error."""
    model = cfg.models[0]
    cell = new_cell(cfg, model, frontend)
    tag = f"[{model} × {frontend} profile]"
    loaded, tinfo, _ = setup_cell(cfg, state, model, cell)
    case = make_case(loaded, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, cfg.shapes, cfg.seed)
    with tempfile.TemporaryDirectory(prefix="gptbench-profile-") as tmp:
        compiled = import_and_build(CellContext(cfg, cell, tag, Path(tmp), tinfo, state=state), case)
    import tvm

    out = dict(frontend=frontend, tvm_version=tvm.__version__, status=cell.status if compiled is None else "ok", weights=cell.weights, tuning=cell.tuning,
               build_s=cell.timings.get("build_s"), kernels_built=cell.notes.get("kernels"))
    if compiled is None:
        return dict(out, error=cell.error), {}
    db = state.db_for(cfg, model)
    keys = kernel_keys(compiled.imported.mod, tinfo.target, prepacked(db) if db else False, cfg.fast_math)
    log(f"{tag} built ({out['kernels_built']} kernels{', tuned' if db else ', untuned'}); timing every call of the VM "
        f"({cfg.warmup} warm-up and {cfg.repeat} profiled calls)")
    timed = time_calls(compiled, case.inputs, cfg.warmup, cfg.repeat)
    rows = kernel_rows(timed["sites"], set(keys))
    log(f"{tag} {len(timed['sites'])} calls: {timed['instrumented_ms']:.3f} ms instrumented, {timed['whole_ms']:.3f} ms without")
    return dict(out, **{k: v for k, v in timed.items() if k != "sites"}, calls=len(timed["sites"]), kernels=rows), keys


def join(profiles: list[dict], keys: dict[str, dict]) -> list[dict]:
    """Rows of kernels across frontends, {frontend: its row} each, ordered by the largest time in any frontend.
    Two frontends' kernels are one row when their TIR after FuseTIR is structurally equal (match "structure");
    the kernels left alone are then paired where their kind and buffers (dtypes, element counts) are the same ("buffers":
    the same computation's role, fused differently); a VM builtin, or a kernel without a key, by its symbol ("name")."""
    import tvm_ffi

    groups: list[dict] = []
    by_hash: dict[int, list[tuple]] = {}
    for p in profiles:
        fe, elsewhere = p["frontend"], keys.get(p["frontend"]) is None  # elsewhere: built in another TVM, no structural keys
        for row in p.get("kernels", []):
            key = keys[fe].get(row["kernel"]) if row["kernel"] and not elsewhere else None
            if key is None and row["kernel"] and elsewhere:  # joined by kind and buffers below
                group = dict(match="structure", buffers=(row["kind"], tuple(row["buffers"])), by={})
                groups.append(group)
            elif key is None:  # a VM builtin, or a function the build added
                group = next((g for g in groups if g["match"] == "name" and g["name"] == row["symbol"]), None)
                if group is None:
                    group = dict(match="name", name=row["symbol"], by={})
                    groups.append(group)
            else:
                bucket = by_hash.setdefault(tvm_ffi.structural_hash(key), [])
                group = next((g for m, g in bucket if fe not in g["by"] and tvm_ffi.structural_equal(m, key)), None)
                if group is None:
                    group = dict(match="structure", buffers=(row["kind"], tuple(row["buffers"])), by={})
                    groups.append(group)
                    bucket.append((key, group))
            group["by"][fe] = row
    paired: list[dict] = []
    for g in groups:
        alone = g["match"] == "structure" and len(g["by"]) == 1
        fits = [m for m in paired if alone and m.get("buffers") == g["buffers"] and not set(m["by"]) & set(g["by"])
                and (m["match"] == "buffers" or len(m["by"]) == 1 or _another_build(m, g))]
        symbol = next(iter(g["by"].values()))["symbol"] if alone else None
        mate = next((m for m in fits if any(r["symbol"] == symbol for r in m["by"].values())), fits[0] if fits else None)
        if mate is None:
            paired.append(g)
        else:
            mate["by"].update(g["by"])
            mate["match"] = "buffers"
    out = [dict(kind=next(iter(g["by"].values()))["kind"], match=g["match"] if len(g["by"]) > 1 else "own", by=g["by"]) for g in paired]
    return sorted(out, key=lambda g: -max(r["ms"] for r in g["by"].values()))


def _another_build(paired: dict, group: dict) -> bool:
    """Whether `group`'s one kernel comes from a TVM environment that `paired`'s kernels do not (a column FRONTEND@ENV)."""
    envs = {c.partition("@")[2] for c in paired["by"]}
    return next(iter(group["by"])).partition("@")[2] not in envs


def profile(cfg: RunConfig, state: RunState, log=default_log) -> dict:
    """Every frontend of cfg profiled in every TVM environment of the run (--tvm; else this process's), its kernels
    joined (`join`). A profile's "frontend" is its column: FRONTEND, or FRONTEND@ENV with several environments."""
    envs = [s.name for s in cfg.env_specs()] if cfg.tvm else [current()]
    profiles, keys = [], {}
    for env in envs:
        for fe in cfg.frontends:
            column = f"{fe}@{env}" if len(envs) > 1 else fe
            try:
                p, k = profile_frontend(cfg, state, fe, log) if env == current() else (profile_in_env(cfg, state, fe, env), None)
            except Exception as e:  # noqa: BLE001 - recorded, the other frontends go on
                p, k = dict(status="profile_failed", error=short_error(e)), {}
                log(f"[{cfg.models[0]} × {column} profile] failed: {p['error']}")
            profiles.append(dict(p, frontend=column, tvm=env))
            keys[column] = k
    return dict(profiles=profiles, rows=join(profiles, keys))


def profile_in_env(cfg: RunConfig, state: RunState, frontend: str, env: str) -> dict:
    """profile_frontend in environment `env`'s interpreter (bench.pipeline.profile_worker), with the database --tune-budget
    found or made there, if any; its log goes to our stderr."""
    import json
    import subprocess
    from dataclasses import replace

    with tempfile.TemporaryDirectory(prefix="gptbench-profile-env-") as tmp:
        cfg_path, out = Path(tmp) / "config.json", Path(tmp) / "profile.json"
        mine, tuned = env_databases(state, env)
        cfg_path.write_text(json.dumps(run_json(replace(cfg, tvm=None, db=None, tune_budget=0.0, isolate=False),
                                                replace(state, dbs=mine, tuned_now=tuned))))
        code = subprocess.run([*launcher(env), "bench.pipeline.profile_worker", str(cfg_path), frontend, str(out)],
                              env=launch_env(env, {CURRENT_VAR: env})).returncode
        if not out.exists():
            raise RuntimeError(f"the TVM {env} profile worker exited {code} without a profile")
        return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------- report
def _cells(row: dict | None, fe: str, share) -> tuple:
    return (row["symbol"], row["calls"], share(fe, row["ms"])) if row else ("—", "", "")


def kinds_table(profiles: list[dict]) -> dict:
    """{kind: {frontend: (kernels, calls, ms)}} over the ok profiles."""
    out: dict[str, dict] = {}
    for p in profiles:
        for r in p.get("kernels", []):
            k, c, ms = out.setdefault(r["kind"], {}).get(p["frontend"], (0, 0, 0.0))
            out[r["kind"]][p["frontend"]] = (k + 1, c + r["calls"], ms + r["ms"])
    order = [k for k, _ in KINDS] + [OTHER_KIND, BUILTIN_KIND]
    return {k: out[k] for k in order if k in out}


def md_table(headers: list[str], rows: list[list]) -> str:
    return _md_table(headers, rows).rstrip("\n")


def _summary(result: dict) -> list[str]:
    def tuned(p):
        t = p.get("tuning")
        return f"tuned ({t['matched']} of {t['tasks']} kernels in the database)" if t else "untuned"

    def ms(p, builtin: bool):
        return round(sum(r["ms"] for r in p["kernels"] if (r["kind"] == BUILTIN_KIND) == builtin), 3) if p.get("kernels") else None

    profiles = result["profiles"]
    lines = [md_table(["frontend", "status", "build", "kernels built", "VM calls", "call ms, plain", "call ms, instrumented",
                       "kernels ms", "VM builtins ms"],
                      [[p["frontend"], p["status"], tuned(p) if p["status"] == "ok" else p.get("error"), p.get("kernels_built"),
                        p.get("calls"), p.get("whole_ms"), p.get("instrumented_ms"), ms(p, False), ms(p, True)] for p in profiles]), ""]
    slower = [p for p in profiles if p["status"] == "ok" and p["instrumented_ms"] > 1.1 * p["whole_ms"]]
    if slower:
        lines += ["The instrument slows the call: " + "; ".join(
            f"{p['frontend']} {p['instrumented_ms']:.3f} ms against {p['whole_ms']:.3f} ms plain, "
            f"{1e3 * (p['instrumented_ms'] - p['whole_ms']) / p['calls']:.1f} µs per VM call" for p in slower)
            + ". Each kernel's time carries its share of that (the FFI crossing, and a thread pool that waits between "
              "kernels); compare kernels within a profile, and the totals against the plain call.", ""]
    return lines


JOIN_TEXT = ("One row per kernel. Frontends' kernels share a row (match) when their TIR after FuseTIR is structurally equal "
             "(*structure*: what MetaSchedule's database matches, whatever their names), else when they are of the same kind "
             "over buffers of the same dtypes and sizes (*buffers*: the same computation fused or laid out differently, e.g. a "
             "matmul with or without the activation after it); VM builtins by name; *own*: one frontend's kernel that no other has.")


def _envs_note(result: dict) -> list[str]:
    """With several TVM environments (--tvm): which TVM each column ran, and how their kernels are joined."""
    if len(result["config"].get("tvm") or []) < 2:
        return []
    ran = "; ".join(f"{p['frontend']}: TVM {p.get('tvm_version') or '(did not start)'}" for p in result["profiles"])
    return [f"Columns are FRONTEND@ENV ({ran}). Kernels of different TVM builds join a row by kind and buffers, preferring the "
            "same kernel name where several fit: structural equality holds within one TVM only.", ""]


def to_markdown(result: dict, top: int = 15) -> str:
    c = result["config"]
    ok = [p for p in result["profiles"] if p["status"] == "ok"]
    total = {p["frontend"]: p["instrumented_ms"] for p in ok}

    def share(fe, ms):
        return f"{ms:.3f} ({100 * ms / total[fe]:.0f}%)" if total.get(fe) else f"{ms:.3f}"

    target = c["target"].get("kind") + "".join(f" ({c['target'][k]})" for k in ("mcpu", "arch") if c["target"].get(k))
    lines = [f"# Per-kernel profile: {c['model']}, {c['scenario']} batch {c['batch']} × "
             f"{c['past_len'] if c['scenario'] == 'decode' else c['seq_len']} tokens, {target}, {c['threads']} threads", "",
             f"{result['environment_line']}. Created {result['created']}.", "", f"Method: {result['method']}.", "", *_envs_note(result),
             *_summary(result)]
    fes = [p["frontend"] for p in ok]
    if not ok:
        return "\n".join(lines)
    kinds = kinds_table(ok)
    lines += ["## By kind of kernel", "", "Time per call of the model, ms (share of the instrumented call); a kernel's kind is "
              "the op its name says the rest was fused into.", "",
              md_table(["kind", *[f"{fe}: kernels (calls)" for fe in fes], *[f"{fe} ms" for fe in fes]],
                       [[kind, *[f"{by[fe][0]} ({by[fe][1]})" if fe in by else "—" for fe in fes],
                         *[share(fe, by[fe][2]) if fe in by else "—" for fe in fes]] for kind, by in kinds.items()]), ""]
    rows = result["rows"][:top]
    builds = len(result["config"].get("tvm") or []) > 1
    lines += [f"## Top {len(rows)} kernels" + (f", joined across {'columns' if builds else 'frontends'}" if len(fes) > 1 else ""), "",
              *([JOIN_TEXT, ""] if len(fes) > 1 else []),
              md_table(["kind", *(["match"] if len(fes) > 1 else []), *[h for fe in fes for h in (f"{fe} kernel", "calls", "ms")]],
                       [[g["kind"], *([g["match"]] if len(fes) > 1 else []), *[v for fe in fes for v in _cells(g["by"].get(fe), fe, share)]]
                        for g in rows]), ""]
    if len(fes) > 1 and builds:
        both = sum(1 for g in result["rows"] if len(g["by"]) == len(fes) and g["match"] != "name")
        lines += [f"Of the kernels the VM calls, {both} are in every column (by structure within one TVM, by kind and buffers "
                  "across TVM builds); the rest are one column's own.", ""]
    elif len(fes) > 1:
        same = sum(1 for g in result["rows"] if len(g["by"]) == len(fes) and g["match"] == "structure")
        role = sum(1 for g in result["rows"] if len(g["by"]) == len(fes) and g["match"] == "buffers")
        lines += [f"Of the kernels the VM calls, {same} are the same in {' and '.join(fes)} and {role} more compute over the same "
                  "buffers fused differently; the rest are one frontend's own.", ""]
    return "\n".join(lines)
