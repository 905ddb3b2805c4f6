"""`gptbench timers`: the harness's latencies against timers nobody here wrote, in one time window.

One model, one frontend, one scenario. The parent process imports and builds the model once,
then, back to back:
1. the harness's own measurement (bench.measure.timing, the method `run` uses: "blocks");
2. each backend alone in a fresh process of its own, timed by its own tool:
   - eager: `torch.utils.benchmark.Timer(...).blocked_autorange()` (PyTorch's benchmark timer;
     its median over blocks of calls);
   - ONNX Runtime: a plain loop of `InferenceSession.run` (same file, same session options)
     under `time.perf_counter`;
   - TVM: the compiled library exported and loaded in the fresh process, timed by the VM's
     `time_evaluator` alone (number=1, repeat=N; the median);
3. the harness's measurement with the old method ("interleaved": one call per backend per round)
   for contrast;
4. the harness's measurement ("blocks") again: the spread between 1 and 4 is the drift of the
   machine during the window.
It writes results/<timestamp>-<name>.{json,md}: every median, and how far each harness median
is from the independent one (goal: within 10%).

This is a benchmark to run by hand on a quiet machine, not a unit test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import baselines as bl
from bench.core.markdown import md_table
from bench.models import load_model
from bench.pipeline.cell import CellContext, import_and_build, setup_cell, time_backends
from bench.pipeline.config import new_cell
from bench.scenarios import make_case
from frontends.onnx_import import ONNX_FILE

GOAL = 0.10  # harness vs independent timer: the agreement the README promises


# -------------------------------------------------------------------------- the independent side
def _worker(kind: str, bundle: Path, threads: int, repeat: int) -> dict:
    """Runs in a fresh process: one backend, alone, timed by its own tool. Returns medians in ms."""
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    inputs = [np.load(bundle / f"input{i}.npy") for i in range(len(list(bundle.glob("input*.npy"))))]
    timers = {"eager": _time_eager, "ort": _time_ort, "tvm": _time_tvm}
    if kind not in timers:
        raise ValueError(f"unknown timer kind {kind!r}")
    return timers[kind](bundle, inputs, threads, repeat)


def _time_eager(bundle: Path, inputs: list, threads: int, repeat: int) -> dict:
    """The case rebuilt from case.json (the same model, weights and inputs), timed by PyTorch's benchmark timer."""
    import torch
    from torch.utils import benchmark

    torch.set_num_threads(threads)
    spec = json.loads((bundle / "case.json").read_text())
    torch.manual_seed(spec["seed"])
    case = make_case(load_model(spec["model"], spec["weights"], seed=spec["seed"]), spec["scenario"], spec["batch"],
                     spec["seq_len"], spec["past_len"], spec["shapes"], spec["seed"])
    module = case.module
    xs = tuple(torch.from_numpy(x) for x in inputs)
    same = len(xs) == len(case.inputs) and all(np.array_equal(a.numpy(), b.detach().numpy())
                                               for a, b in zip(xs, case.inputs, strict=True))
    if not same:
        raise RuntimeError("the rebuilt case has other inputs than the parent's")
    with torch.inference_mode():
        module(*xs)
    timer = benchmark.Timer(stmt="with torch.inference_mode(): module(*xs)", globals=dict(module=module, xs=xs, torch=torch),
                            num_threads=threads)
    m = timer.blocked_autorange(min_run_time=max(1.0, repeat * _probe(lambda: timer.timeit(1).mean)))
    return dict(tool="torch.utils.benchmark.Timer.blocked_autorange", median_ms=m.median * 1e3, n=len(m.times),
                calls=m.number_per_run * len(m.times))


def _time_ort(bundle: Path, inputs: list, threads: int, repeat: int) -> dict:
    """model.onnx in ONNX Runtime (the harness's session options), a plain perf_counter loop."""
    session = bl.ort_session(bundle / "model.onnx", threads)
    feeds = {i.name: x for i, x in zip(session.get_inputs(), inputs, strict=True)}
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return dict(tool="InferenceSession.run loop, perf_counter", median_ms=float(np.median(times)) * 1e3, n=len(times), calls=len(times))


def _time_tvm(bundle: Path, inputs: list, threads: int, repeat: int) -> dict:
    """tvm.so loaded in this process, timed by the VM's time_evaluator alone."""
    import tvm
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(bundle / "tvm.so")), dev)
    params = [tvm.runtime.tensor(p, dev) for p in np.load(bundle / "params.npz").values()]
    if vm.module.implements_function("main_transform_params"):
        params = list(vm["main_transform_params"](params))
    args = [tvm.runtime.tensor(x, dev) for x in inputs] + params
    for _ in range(5):
        vm["main"](*args)
    res = vm.time_evaluator("main", dev, number=1, repeat=repeat)(*args)
    return dict(tool="relax.VirtualMachine.time_evaluator(number=1, repeat=N)", median_ms=float(np.median(res.results)) * 1e3,
                n=len(res.results), calls=len(res.results))


def _probe(fn) -> float:
    fn()
    return fn()


def run_alone(kind: str, bundle: Path, threads: int, repeat: int) -> dict:
    """`_worker` in a fresh interpreter; its result, or the error it died with."""
    cmd = [sys.executable, "-m", "bench.pipeline.timers", kind, str(bundle), str(threads), str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return dict(error=(proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------- the harness side
def write_bundle(bundle: Path, cfg, model: str, case, compiled, onnx_path: Path | None) -> None:
    import shutil

    for i, x in enumerate(case.inputs):
        np.save(bundle / f"input{i}.npy", x.detach().cpu().numpy())
    (bundle / "case.json").write_text(json.dumps(dict(model=model, weights=cfg.weights, seed=cfg.seed, scenario=cfg.scenario, batch=cfg.batch,
                                                      seq_len=cfg.seq_len, past_len=cfg.past_len, shapes=cfg.shapes)))
    compiled.ex.export_library(str(bundle / "tvm.so"))
    np.savez(bundle / "params.npz", *[p.numpy() for p in compiled.raw_params])
    if onnx_path is not None:
        for f in onnx_path.parent.iterdir():  # the .onnx and any external-data file beside it
            shutil.copy(f, bundle / ("model.onnx" if f == onnx_path else f.name))


def validate(cfg, state, frontend: str, log) -> dict:
    """The whole window for one model (see the module docstring); returns the result record."""
    from dataclasses import replace

    model = cfg.models[0]
    cell = new_cell(cfg, model, frontend)
    tag = f"[{model} × {frontend} timers]"
    loaded, tinfo, _ = setup_cell(cfg, state, model, cell)
    case = make_case(loaded, cfg.scenario, cfg.batch, cfg.seq_len, cfg.past_len, cfg.shapes, cfg.seed)
    result: dict = dict(model=model, frontend=frontend, scenario=cfg.scenario, seq_len=cfg.seq_len, past_len=cfg.past_len,
                        threads=cfg.threads, repeat=cfg.repeat, db=cfg.db, weights=cell.weights, runs={}, alone={})
    with tempfile.TemporaryDirectory(prefix="gptbench-timers-") as tmp:
        work, bundle = Path(tmp) / "work", Path(tmp) / "bundle"
        work.mkdir()
        bundle.mkdir()
        compiled = import_and_build(CellContext(cfg, cell, tag, work, tinfo, state=state), case)
        if compiled is None:
            raise RuntimeError(f"{cell.status}: {cell.error}")
        result["tuning"] = cell.tuning
        eager = bl.prepare_eager(case, "cpu")
        ort = bl.prepare_ort(case, "cpu", cfg.threads, None, work)
        result["ort_session"] = {k: v for k, v in ort.info.items() if k != "onnx_reused"}
        write_bundle(bundle, cfg, model, case, compiled, work / "ort" / ONNX_FILE)
        timers = {"tvm": compiled.timer(case.inputs), "eager": eager.timer, "ort": ort.timer}

        def harness(label: str, method: str) -> None:
            plan = replace(cfg.plan(), method=method)
            t0 = time.perf_counter()
            stats, timing = time_backends(plan, timers, tag)
            result["runs"][label] = dict(method=method, seconds=round(time.perf_counter() - t0, 1),
                                         medians={n: round(s.median, 4) for n, s in stats.items()},
                                         solo={n: s["median"] for n, s in timing["solo"].items()}, flags=timing["flags"])
            log(f"{tag} harness ({method}): " + ", ".join(f"{n} {s.median:.3f} ms" for n, s in stats.items()))

        harness("blocks", "blocks")
        for kind in ("eager", "ort", "tvm"):
            log(f"{tag} {kind} alone in a fresh process")
            result["alone"][kind] = run_alone(kind, bundle, cfg.threads, cfg.repeat)
            log(f"{tag} {kind} alone: {result['alone'][kind]}")
        harness("interleaved", "interleaved")
        harness("blocks again", "blocks")
    result["agreement"] = agreement(result)
    return result


def agreement(result: dict) -> dict:
    """Per harness run and backend: harness median / independent median - 1."""
    out: dict = {}
    for label, run in result["runs"].items():
        out[label] = {}
        for kind, alone in result["alone"].items():
            if "median_ms" in alone and kind in run["medians"]:
                out[label][kind] = round(run["medians"][kind] / alone["median_ms"] - 1, 4)
    return out


def worst_deviation(result: dict) -> float | None:
    """The largest |harness / alone - 1| of the harness's default method (both of its runs), or None."""
    return max((abs(v) for label in ("blocks", "blocks again") for v in result["agreement"].get(label, {}).values()), default=None)


def to_markdown(results: list[dict], env_line: str, created: str) -> str:
    lines = [f"# gptbench timers: the harness against independent timers ({created})", "", f"Environment: {env_line}", "",
             "Each row: one backend. *alone* is the backend in a fresh process of its own, timed by its own tool "
             "(eager: torch.utils.benchmark.Timer.blocked_autorange; ONNX Runtime: a plain InferenceSession.run loop; "
             "TVM: time_evaluator in a process that loaded the exported library). The harness columns are medians "
             f"of the harness's rounds in the same window; Δ = harness / alone - 1 (goal: within ±{GOAL:.0%}).", ""]
    for r in results:
        lines += [f"## {r['model']} × {r['frontend']}, {r['scenario']} "
                  f"{'seq ' + str(r['seq_len']) if r['scenario'] != 'decode' else 'past ' + str(r['past_len'])}, "
                  f"{r['threads']} threads, {r['repeat']} samples" + (f", tuning database `{r['db']}`" if r.get("db") else ", untuned"), ""]
        rows = []
        for kind in ("tvm", "eager", "ort"):
            alone = r["alone"].get(kind, {})
            row = [kind, alone.get("tool") or alone.get("error"), None if "median_ms" not in alone else f"{alone['median_ms']:.3f}"]
            for label in ("blocks", "blocks again", "interleaved"):
                run = r["runs"].get(label, {})
                med = run.get("medians", {}).get(kind)
                d = r["agreement"].get(label, {}).get(kind)
                row += [None if med is None else f"{med:.3f}", None if d is None else f"{d * 100:+.1f}%"]
            rows.append(row)
        lines.append(md_table(["backend", "independent timer", "alone ms", "harness blocks ms", "Δ", "blocks again ms", "Δ",
                               "interleaved (old) ms", "Δ"], rows))
        worst = worst_deviation(r)
        if worst is not None:
            lines += [f"Largest |Δ| of the harness's default method: {worst * 100:.1f}% "
                      f"({'within' if worst <= GOAL else 'BEYOND'} the ±{GOAL:.0%} goal).", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # the worker: python -m bench.pipeline.timers KIND BUNDLE THREADS REPEAT
    kind, bundle_dir, n_threads, n_repeat = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(_worker(kind, bundle_dir, n_threads, n_repeat)))
