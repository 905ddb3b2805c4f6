"""Build here, measure there: `run --bundle DIR`, then `measure DIR` in a fresh process that has
only TVM's runtime (TVM_USE_RUNTIME_LIB=1: libtvm_compiler is not loaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def measure_runtime_only(bundle: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TVM_USE_RUNTIME_LIB="1")
    return subprocess.run([sys.executable, "-m", "bench.cli", "measure", str(bundle), "--repeat", "5", "--warmup", "1", "--solo", "0",
                           "--out", str(out), *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def only_report(out: Path) -> dict:
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def decode_bundle(tmp_path_factory):
    """gpt2-tiny decode (token ids and a KV cache as inputs), built for this CPU."""
    from bench.cli import main

    root = tmp_path_factory.mktemp("bundle")
    code = main(["run", "--model", "gpt2-tiny", "--frontend", "export", "--scenario", "decode", "--past-len", "16", "--no-isolate",
                 "--bundle", str(root / "b"), "--out", str(root / "build")])
    assert code == 0
    return root


def test_run_bundle_exports_each_cell_instead_of_running_it(decode_bundle):
    cell = only_report(decode_bundle / "build")["cells"][0]
    assert cell["status"] == "bundled" and "gptbench measure" in cell["error"]
    assert not cell.get("tvm")
    d = decode_bundle / "b" / "gpt2-tiny__export"
    assert {p.name for p in d.iterdir()} == {"lib.so", "cell.json", "inputs.npz"}
    rec = json.loads((d / "cell.json").read_text())
    assert rec["case"]["scenario"] == "decode" and rec["case"]["past_len"] == 16
    assert [i["name"] for i in rec["inputs"]] == ["input_ids", "past"]
    names = [p["name"] for p in rec["params"]]
    assert len(names) == len(set(names)) and all(len(p["sha256"]) == 64 for p in rec["params"])
    assert "model.transformer.wte.weight" in names
    top = json.loads((decode_bundle / "b" / "BUNDLE.json").read_text())
    assert top["schema"] == "gptbench.bundle" and top["built_on"]["tvm"]["llvm"]


def test_measure_with_the_runtime_alone_matches_eager(decode_bundle, tmp_path):
    proc = measure_runtime_only(decode_bundle / "b", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = only_report(tmp_path)
    assert report["environment"]["tvm"]["runtime_only"] is True
    assert report["bundle"]["built_on"]["tvm"]["llvm"]  # the build host had the compiler
    cell = report["cells"][0]
    assert cell["status"] == "ok", cell.get("error")
    assert cell["parity"]["ok"] and cell["parity"]["rel_l2"] <= 1e-5
    assert cell["tvm"]["n"] == 5 and cell["baselines"]["eager"]["latency"]["n"] == 5
    assert cell["notes"]["bundle_inputs"] == "input_ids: identical; past: identical"
    assert cell["timings"]["load_s"] > 0 and cell["timings"]["build_s"] > 0  # build time from the bundle, load time from here
    assert "Built elsewhere, measured here" in next(tmp_path.glob("*.md")).read_text()


def test_measure_refuses_weights_that_differ_from_the_bundle(decode_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(decode_bundle / "b", bundle)
    rec_path = bundle / "gpt2-tiny__export" / "cell.json"
    rec = json.loads(rec_path.read_text())
    rec["params"][3]["sha256"] = "0" * 64  # as if this machine's init gave another tensor
    rec_path.write_text(json.dumps(rec))
    proc = measure_runtime_only(bundle, tmp_path / "out")
    assert proc.returncode == 1
    cell = only_report(tmp_path / "out")["cells"][0]
    assert cell["status"] == "run_failed" and cell["stage"] == "verify"
    assert "1 of" in cell["error"] and rec["params"][3]["name"] in cell["error"] and "initialise" in cell["error"]
    assert "tvm" not in cell or not cell["tvm"]


def test_a_float_input_that_differs_in_its_last_bits_is_taken_from_the_bundle(decode_bundle, tmp_path):
    """The decode KV cache is computed by eager PyTorch on the build host: another CPU may round it
    differently. The bundle's copy is used and the note says how far the rebuilt one was."""
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(decode_bundle / "b", bundle)
    d = bundle / "gpt2-tiny__export"
    saved = dict(np.load(d / "inputs.npz"))
    saved["past"] = np.nextafter(saved["past"], np.float32(np.inf))  # one ulp up: the build host's rounding
    np.savez(d / "inputs.npz", **saved)
    rec = json.loads((d / "cell.json").read_text())
    from bench.pipeline.bundle import sha256

    rec["inputs"][1]["sha256"] = sha256(saved["past"])
    (d / "cell.json").write_text(json.dumps(rec))
    proc = measure_runtime_only(bundle, tmp_path / "out", "--baselines", "none")
    assert proc.returncode == 0, proc.stderr[-2000:]
    cell = only_report(tmp_path / "out")["cells"][0]
    assert cell["status"] == "ok"
    assert cell["notes"]["bundle_inputs"].startswith("input_ids: identical; past: the bundle's (rebuilt here it differs by at most")


def test_bundle_usage_errors(gptbench, decode_bundle, tmp_path):
    code, _, err = gptbench("measure", tmp_path / "nowhere")
    assert code == 2 and "no such bundle directory" in err and len(err.strip().splitlines()) == 1
    code, _, err = gptbench("measure", decode_bundle / "b", "--baselines", "ort", "--out", tmp_path)
    assert code == 2 and "measure takes baselines eager, compile" in err
    code, _, err = gptbench("run", "--model", "gpt2-tiny", "--frontend", "export", "--bundle", decode_bundle / "b", "--out", tmp_path)
    assert code == 2 and "not an empty directory" in err
    code, _, err = gptbench("run", "--model", "gpt2-tiny", "--frontend", "onnx", "--bundle", tmp_path / "new", "--out", tmp_path)
    assert code == 2 and "--bundle takes --frontend export" in err
    (tmp_path / "empty").mkdir()
    code, _, err = gptbench("measure", tmp_path / "empty")
    assert code == 2 and "not a bundle" in err


def test_cuda_bundle_builds_here_and_is_measured_only_where_a_gpu_is(gptbench, tmp_path):
    """float16 GPT-2 for sm_90: it builds without a GPU (aten.addmm keeps float16); measured here,
    the cell says why it could not run."""
    code, _, err = gptbench("run", "--model", "gpt2-tiny", "--frontend", "export", "--target", "cuda", "--cuda-arch", "sm_90",
                            "--dtype", "float16", "--seq-len", "16", "--no-isolate", "--bundle", tmp_path / "b", "--out", tmp_path / "build")
    assert code == 0, err
    cell = only_report(tmp_path / "build")["cells"][0]
    assert cell["status"] == "bundled" and cell["target_spec"]["arch"] == "sm_90"
    assert any("aten.addmm" in p for p in cell["patches"])
    proc = measure_runtime_only(tmp_path / "b", tmp_path / "out")
    cell = only_report(tmp_path / "out")["cells"][0]
    if cell["status"] == "ok":
        pytest.skip("a CUDA GPU is present: this test is about machines without one")
    assert proc.returncode == 1
    assert cell["status"] == "no_device" and "CUDA" in cell["error"]


def test_float16_addmm_matches_eager_float16(tmp_path):
    """The float16 addmm converter, numerically: gpt2-tiny in float16 through TVM on this CPU against
    eager float16 (CPU; rel L2 within the float16 tolerance)."""
    import torch

    from bench.build.relax import Compiled, build
    from bench.measure.parity import DEFAULT_TOL, compare
    from bench.models import load_model
    from bench.scenarios import make_case
    from bench.targets import make_target
    from frontends import get_frontend
    from frontends.base import ImportRequest

    loaded = load_model("gpt2-tiny", "random", seed=0)
    loaded.module.half()
    case = make_case(loaded, "prefill", 1, 16, None, "static", 0)
    imported = get_frontend("export").import_model(ImportRequest(case.module, case.inputs, case.input_names, case.dynamic, tmp_path))
    assert any("aten.addmm" in p for p in imported.patches)
    tinfo = make_target("llvm", 1)
    ex, _ = build(imported.mod, tinfo.target)
    got = Compiled(ex, tinfo.device(), imported.params)(*case.inputs)
    with torch.inference_mode():
        ref = case.module(*case.inputs)
    assert str(got[0].dtype) == str(ref.dtype).removeprefix("torch.")
    par = compare([ref.float().numpy()], [got[0].astype(np.float32)], DEFAULT_TOL["float16"])
    assert par["ok"], par["reason"]
    assert par["rel_l2"] < 5e-3
