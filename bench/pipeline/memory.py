"""Memory per backend: each backend of a cell loaded and run alone in a fresh process.

What a process that serves one backend holds is not what the harness's own process holds (that one
has PyTorch, TVM, ONNX Runtime, the model and every build of the cell at once). So after the timing,
each backend is measured in a new interpreter (`python -m bench.pipeline.memory SPEC.json OUT.json`)
that imports only that backend's runtime, loads only its model, and calls it MEMORY_CALLS times:

- TVM (and the untuned build): `tvm` and numpy; the exported library, the weights (transformed to the
  tuned layout where the build asks), the Relax VM; no PyTorch (blocked, as on a host without it:
  tvm-ffi imports PyTorch whenever it is installed, which would put PyTorch's memory in TVM's floor);
- ONNX Runtime: `onnxruntime` and numpy; the session on the cell's ONNX file; no PyTorch;
- eager and torch.compile: PyTorch and the harness's model zoo; the model with its weights.

Each gives two numbers from Linux's /proc/self/status: `floor_mb`, the resident memory after the
imports and before anything of the model (the runtime's own cost), and `peak_mb`, the peak resident
memory of the process by the end (VmHWM). `model_mb` = peak - floor is what loading and running the
model added: weights, workspace, caches. The model's weight bytes are in the cell for reference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.baselines import ort_session
from bench.build.relax import Compiled, load_library
from bench.core import tvm_compat
from bench.core.files import load_arrays
from bench.models import load_model
from bench.scenarios import make_case
from frontends.base import short_error

MEMORY_CALLS = 3
METHOD = (f"a fresh process per backend: its runtime imported (floor), then its model loaded and called {MEMORY_CALLS} times; "
          "peak = the process's peak resident memory (VmHWM), model = peak - floor")


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status (kB) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"/proc/self/status has no {field}")


def _threads(n: int) -> None:
    os.environ["OMP_NUM_THREADS"] = os.environ["TVM_NUM_THREADS"] = str(n)


def _run_tvm(spec: dict) -> float:
    import numpy  # noqa: F401 - counted in the floor, as in any TVM server
    import tvm

    floor = _status_mb("VmRSS")
    params = [tvm_compat.to_device(a, tvm.cpu()) for a in load_arrays(spec["params"])]
    compiled = Compiled(load_library(spec["lib"]), tvm.cpu(), params)
    inputs = load_arrays(spec["inputs"])
    for _ in range(MEMORY_CALLS):
        compiled(*inputs)
    return floor


def _run_ort(spec: dict) -> float:
    import numpy  # noqa: F401 - counted in the floor, as in any ONNX Runtime server
    import onnxruntime  # noqa: F401 - likewise

    floor = _status_mb("VmRSS")
    session = ort_session(spec["onnx"], spec["threads"])
    feeds = dict(zip([i.name for i in session.get_inputs()], load_arrays(spec["inputs"]), strict=True))
    for _ in range(MEMORY_CALLS):
        session.run(None, feeds)
    return floor


def _run_torch(spec: dict) -> float:
    import torch

    torch.set_num_threads(spec["threads"])
    floor = _status_mb("VmRSS")
    torch.manual_seed(spec["seed"])
    loaded = load_model(spec["model"], spec["weights"], seed=spec["seed"])
    if spec["dtype"] == "float16":
        loaded.module.half()
    case = make_case(loaded, spec["scenario"], spec["batch"], spec["seq_len"], spec["past_len"], spec["shapes"], spec["seed"])
    inputs = tuple(x.half() if spec["dtype"] == "float16" and x.is_floating_point() else x for x in case.inputs)
    module = torch.compile(case.module, mode=spec.get("compile_mode")) if spec.get("compile") else case.module
    with torch.inference_mode():
        for _ in range(MEMORY_CALLS):
            module(*inputs)
    return floor


RUNNERS = {"tvm": _run_tvm, "ort": _run_ort, "torch": _run_torch}


def main(argv: list[str]) -> int:
    """SPEC.json OUT.json: run the spec's backend alone in this (fresh) process; OUT gets floor_mb, peak_mb, model_mb."""
    spec = json.loads(Path(argv[0]).read_text())
    _threads(spec["threads"])
    if spec["kind"] != "torch":  # as on a host without PyTorch: tvm-ffi imports it whenever it is installed (TVM 0.27)
        sys.modules["torch"] = None  # type: ignore[assignment]
    t0 = time.perf_counter()
    floor = RUNNERS[spec["kind"]](spec)
    peak = _status_mb("VmHWM")
    Path(argv[1]).write_text(json.dumps(dict(floor_mb=floor, peak_mb=peak, model_mb=round(peak - floor, 1),
                                             wall_s=round(time.perf_counter() - t0, 2), torch_imported=sys.modules.get("torch") is not None)))
    return 0


def measure_alone(spec: dict, workdir: Path, name: str, timeout_s: float = 600) -> dict:
    """Run `spec` in a fresh interpreter; its numbers, or {'error': why}."""
    spec_path, out = workdir / f"memory-{name}.json", workdir / f"memory-{name}-out.json"
    spec_path.write_text(json.dumps(spec))
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.pipeline.memory", str(spec_path), str(out)], capture_output=True,
                              text=True, timeout=timeout_s, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return dict(error=f"not measured: its process ran past {timeout_s:g} s")
    except OSError as e:
        return dict(error=f"not measured: {short_error(e)}")
    if proc.returncode != 0 or not out.is_file():
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        return dict(error=f"its process exited {proc.returncode}: {lines[-1] if lines else 'no message'}"[:400])
    return json.loads(out.read_text())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
