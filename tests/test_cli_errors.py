"""Bad input: one clear line naming the problem and the choices, exit code 2, no traceback."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["run", "--model", "gpt3"], ["unknown model 'gpt3'", "gpt2-tiny"]),
        (["run", "--model", "gpt2-tiny", "--frontend", "tflite"], ["unknown frontend 'tflite'", "choose from: export, onnx, fx, relay-onnx, relay-torch"]),
        (["run", "--model", "gpt2-tiny", "--target", "vulkan"], ["unknown target 'vulkan'", "llvm, cuda"]),
        (["run", "--model", "gpt2-tiny", "--seq-len", "4096"], ["4096 tokens exceeds the model's context of 128"]),
        (["run", "--model", "gpt2-tiny", "--seq-len", "16,4096"], ["4096 tokens exceeds the model's context of 128"]),
        (["run", "--model", "gpt2-tiny", "--seq-len", "16,x"], ["--seq-len '16,x'", "comma-separated integers"]),
        (["run", "--model", "gpt2-tiny", "--past-len", "4,8"], ["--past-len takes one value with --scenario prefill"]),
        (["tune", "--model", "gpt2-tiny", "--seq-len", "16,32", "--trials", "4"], ["a shape sweep", "is for `gptbench run`"]),
        (["run", "--model", "gpt2-tiny", "--scenario", "decode", "--past-len", "128"], ["129 tokens exceeds"]),
        (["run", "--model", "gpt2-tiny", "--weights", "/no/such/dir"], ["no such file or directory"]),
        (["run", "--model", "nanogpt-tiny", "--weights", "pretrained"], ["none for nanogpt-tiny"]),
        (["run", "--model", "gpt2-tiny", "--frontend", "relay"], ["unknown frontend 'relay'", "relay-onnx"]),
        (["run", "--model", "gpt2-tiny", "--frontend", "relay-onnx", "--target", "cuda", "--cuda-arch", "sm_90"],
         ["the Relay cells take --target llvm"]),
        (["run", "--model", "gpt2-tiny", "--frontend", "export", "--blas"], ["--blas is for the Relay frontends"]),
        (["run", "--model", "gpt2-tiny", "--tvm", "0.18"], ["unknown TVM environment '0.18'", "0.27, 0.19"]),
        (["run", "--model", "gpt2-tiny", "--scenario", "train"], ["unknown scenario 'train'"]),
        (["run", "--model", "gpt2-tiny", "--batch", "0"], ["--batch must be >= 1"]),
        (["run", "--model", "gpt2-tiny", "--baselines", "tensorrt"], ["unknown baseline 'tensorrt'"]),
        (["run", "--model", "gpt2-tiny", "--dtype", "float16"], ["float16 is for --target cuda"]),
        (["run", "--model", "gpt2-tiny", "--db", "/no/such/db"], ["no such tuning database"]),
        (["run", "--model", "gpt2-tiny", "--baselines", "untuned"], ["untuned baseline", "needs --db"]),
        (["run", "--model", "gpt2-tiny", "--baselines", "none,ort"], ["--baselines none times TVM alone"]),
        (["run", "--model", "gpt2-tiny", "--timing", "zigzag"], ["unknown timing method 'zigzag'", "blocks, interleaved"]),
        (["run", "--model", "gpt2-tiny", "--block", "0"], ["--block must be >= 1"]),
        (["run", "--model", "gpt2-tiny", "--target", "cuda", "--cuda-arch", "sm_1"], ["bad CUDA architecture 'sm_1'"]),
        (["run", "--model", "gpt2-tiny", "--target", "cuda", "--cuda-arch", "90z"], ["bad CUDA architecture '90z'"]),
        (["run", "--model", "gpt2-tiny", "--cuda-arch", "sm_90"], ["--cuda-arch sm_90 is for --target cuda"]),
        (["run", "--model", "gpt2-tiny", "--offload", "cublas"], ["--offload cublas: --target llvm offloads to no library", "cuda (cublas)"]),
        (["run", "--model", "gpt2-tiny", "--target", "cuda", "--cuda-arch", "sm_90", "--offload", "cutlass"],
         ["--offload cutlass: --target cuda offloads to no library"]),
        (["run", "--model", "gpt2-tiny", "--target", "cuda", "--cuda-arch", "sm_90", "--offload", "cublas", "--tune-budget", "1m"],
         ["--offload with a tuning database is not supported yet"]),
        (["run", "--model", "gpt2-tiny", "--cell-timeout", "5", "--no-isolate"], ["--cell-timeout needs cells in their own process"]),
        (["run", "--model", "gpt2-tiny", "--val-text", "/"], ["is a directory"]),
        (["run", "--model", "gpt2-tiny", "--val-text", "/bin/sh"], ["not UTF-8 text"]),
        (["generate", "--model", "gpt2-tiny", "--prompt", "hello there", "--new-tokens", "0"], ["--new-tokens must be >= 1"]),
        (["generate", "--model", "gpt2-tiny", "--prompt", "hello there", "--new-tokens", "-3"], ["--new-tokens must be >= 1"]),
        (["ppl", "--model", "gpt2-tiny", "--text", "README.md", "--max-tokens", "-5"], ["--max-tokens must not be negative"]),
        (["run", "--model", "gpt2-tiny", "--target", "cuda", "--cuda-arch", "sm_90", "--dlight"], ["--dlight", "cuda pipeline"]),
        (["report", "/no/such/report.json"], ["cannot read report"]),
        (["passes", "--model", "gpt2-tiny", "--frontend", "export,onnx"], ["passes takes one --model and one --frontend"]),
        (["profile", "--model", "gpt2-tiny", "--frontend", "export,relay-onnx"], ["relay-onnx runs on TVM 0.19's Relay VM"]),
        (["profile", "--model", "gpt2-tiny", "--scenario", "generate", "--seq-len", "16"], ["profile takes --scenario prefill, decode or classify"]),
        (["profile", "--model", "gpt2-tiny", "--top", "0"], ["--top must be >= 1"]),
        (["profile", "--model", "gpt2-tiny,nanogpt-tiny"], ["profile takes one --model"]),
        (["profile", "--model", "gpt2-tiny", "--seq-len", "8,16"], ["a shape sweep", "is for `gptbench run`"]),
        (["generate", "--model", "gpt2-tiny", "--frontend", "export,onnx", "--prompt", "hi"], ["generate takes one --model and one --frontend"]),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(gptbench, argv, expected):
    code, out, err = gptbench(*argv)
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], (text, lines[0])


def test_corrupt_and_mismatched_reports_exit_2(gptbench, tmp_path):
    cases = {
        "notjson.json": ("{ not json", "is not valid JSON"),
        "other.json": (json.dumps({"hello": 1}), "is not a gptbench report"),
        "future.json": (json.dumps({"schema": "gptbench.report", "schema_version": 99, "kind": "run", "cells": []}),
                        "schema version 99"),
        "badcell.json": (json.dumps({"schema": "gptbench.report", "schema_version": 1, "kind": "run", "cells": [{"model": "x"}]}),
                         "cell 0 lacks"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        code, _, err = gptbench("report", path)
        assert code == 2, name
        assert expected in err, (name, err)


def test_argparse_usage_errors_exit_2(gptbench):
    with pytest.raises(SystemExit) as info:
        gptbench("run")  # --model missing
    assert info.value.code == 2


def test_models_lists_the_zoo_with_params_and_weight_sources(gptbench):
    code, out, _ = gptbench("models")
    assert code == 0
    assert "| gpt2 | hf-gpt2 | 124.44M |" in out
    assert "| nanogpt-tiny | nanogpt | 0.14M |" in out
    assert "local HF cache (openai-community/gpt2)" in out
    assert "embedded checkpoint" in out


@pytest.mark.parametrize("meta, expected", [
    ("[1, 2, 3]", "a JSON object was expected"),
    ('{"format": "gptbench-tuning-db-v1", "target": null}', '"target" should be a JSON object'),
])
def test_a_corrupt_database_description_is_one_line(gptbench, tmp_path, meta, expected):
    (tmp_path / "gptbench-db.json").write_text(meta)
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--db", tmp_path, "--out", tmp_path / "out")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_a_truncated_tuning_record_file_is_refused_before_any_work(gptbench, tmp_path):
    import tvm

    from bench.targets import make_target
    from bench.tuning.database import META_FORMAT, target_fingerprint

    meta = dict(format=META_FORMAT, tvm_version=tvm.__version__, target=target_fingerprint(make_target("llvm", 1)), model="nanogpt-tiny",
                scenario="prefill", shapes=dict(batch=1, seq_len=16, past_len=0))
    (tmp_path / "gptbench-db.json").write_text(json.dumps(meta))
    (tmp_path / "database_workload.json").write_text("")
    (tmp_path / "database_tuning_record.json").write_text('[0, [[["b0", 1]]]]\n[0, [[["b1"')
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--threads", "1", "--seq-len", "16", "--db", tmp_path, "--out", tmp_path / "o")
    assert code == 2 and "database_tuning_record.json is corrupt at line 2" in err
