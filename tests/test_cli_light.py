"""The command line starts light: help, `gptbench models` and usage errors import none of torch, TVM,
numpy (nor scipy, matplotlib, pandas, onnx, transformers). They run in a fresh interpreter each, since
this test process has imported all of them already. This is what lets the image's `cli` stage (the
harness installed without its dependencies) answer `gptbench --help`, and it makes help take well
under a second instead of one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "tvm", "tvm_ffi", "numpy", "scipy", "matplotlib", "pandas", "onnx", "onnxruntime", "transformers")

# argv -> the exit code and a piece of the one line on stderr (None: a help text on stdout, exit 0)
CASES = [
    (["--help"], 0, None),
    (["run", "--help"], 0, None),
    (["compare", "--help"], 0, None),
    (["history", "--help"], 0, None),
    (["history", "check", "--help"], 0, None),
    (["models"], 0, None),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["run"], 2, "the following arguments are required: --model"),
    (["run", "--model", "gpt3"], 2, "unknown model 'gpt3'"),
    (["run", "--model", "gpt2-tiny", "--frontend", "tflite"], 2, "choose from: export, onnx, fx, relay-onnx, relay-torch"),
    (["run", "--model", "gpt2-tiny", "--frontend", "relay"], 2, "did you mean 'relay-onnx'?"),
    (["run", "--model", "gpt2-tiny", "--tvm", "0.18"], 2, "unknown TVM environment '0.18'"),
    (["run", "--model", "gpt2-tiny", "--rpc", "nohost"], 2, "expected HOST:PORT"),
    (["rpc", "status"], 2, "rpc status needs --rpc HOST:PORT"),
    (["run", "--model", "gpt2-tiny", "--target", "vulkan"], 2, "unknown target 'vulkan'"),
    (["run", "--model", "gpt2-tiny", "--seq-len", "4096"], 2, "exceeds the model's context of 128"),
    (["run", "--model", "gpt2-tiny", "--batch", "0"], 2, "--batch must be >= 1"),
    (["run", "--model", "gpt2-tiny", "--tune-budget", "soon"], 2, "is not a duration"),
    (["passes", "--model", "gpt3"], 2, "unknown model 'gpt3'"),
    (["timers", "--model", "gpt3"], 2, "unknown model 'gpt3'"),
    (["tune", "--model", "gpt2-tiny"], 2, "say how long to tune"),
    (["generate", "--model", "gpt3", "--prompt", "hi"], 2, "unknown model 'gpt3'"),
    (["generate", "--model", "gpt2-tiny", "--prompt", "hi", "--new-tokens", "0"], 2, "--new-tokens must be >= 1"),
    (["compare", "--fail-on", "fastest", "a.json", "b.json"], 2, "bad --fail-on rule 'fastest'"),
    (["compare", "/no/such/a.json", "/no/such/b.json"], 2, "cannot read report"),
    (["plot", "/no/such/report.json"], 2, "cannot read report"),
    (["report", "/no/such/report.json"], 2, "cannot read report"),
    (["measure", "/no/such/bundle"], 2, "no such bundle directory"),
]

PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    HEAVY = {heavy!r}
    import bench.cli
    bench.cli.build_parser()
    results = [dict(argv=None, heavy=[m for m in HEAVY if m in sys.modules])]
    for argv in {cases!r}:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = bench.cli.main(argv)
            except SystemExit as e:  # argparse: help (0) and its own usage errors (2)
                code = e.code
        results.append(dict(argv=argv, code=code, out=out.getvalue(), err=err.getvalue(),
                            heavy=[m for m in HEAVY if m in sys.modules]))
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def probe() -> list[dict]:
    """Every case in order in one fresh interpreter: a case that imports a heavy module shows it first."""
    code = PROBE.format(heavy=HEAVY, cases=[argv for argv, _, _ in CASES])
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_importing_the_cli_and_building_its_parser_imports_nothing_heavy(probe):
    assert probe[0]["heavy"] == [], f"`import bench.cli` + build_parser() imported {probe[0]['heavy']}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=[" ".join(argv) for argv, _, _ in CASES])
def test_help_models_and_usage_errors_import_nothing_heavy(probe, index):
    argv, code, message = CASES[index]
    result = probe[index + 1]
    assert result["argv"] == argv
    assert result["code"] == code, result["err"]
    assert result["heavy"] == [], f"gptbench {' '.join(argv)} imported {result['heavy']}"
    if message is None:
        assert result["out"].strip() and result["err"] == ""
    else:
        assert "Traceback" not in result["err"]
        lines = [ln for ln in result["err"].splitlines() if ln.strip()]
        if lines[0].startswith("usage:"):  # argparse's own errors: its usage text, then the one error line
            lines = [ln for ln in lines if not ln.startswith(("usage:", " "))]
        assert len(lines) == 1 and message in lines[0], (message, result["err"])


def test_models_lists_the_zoo_with_parameter_counts(probe):
    from bench.models import ZOO

    out = probe[[argv for argv, _, _ in CASES].index(["models"]) + 1]["out"]
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and not ln.startswith("| model")]
    assert [r.split("|")[1].strip() for r in rows] == [m.name for m in ZOO]
    assert "| gpt2 | hf-gpt2 | 124.44M | 12 | 12 | 768 | 1024 | 50257 |" in out
