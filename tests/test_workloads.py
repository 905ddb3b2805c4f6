"""Real GPT workloads on tiny models: generation with identical tokens, perplexity parity, the CUDA
target without a GPU, and the pass ablation report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("model", ["nanogpt-tiny", "gpt2-tiny"])
def test_generate_scenario_gives_identical_tokens(model, gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", model, "--frontend", "export", "--scenario", "generate", "--seq-len", "8",
                              "--new-tokens", "10", "--repeat", "2", "--warmup", "0", "--no-isolate", "--out", tmp_path)
    assert code == 0, err
    cell = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    assert cell["parity"]["tokens_identical"] is True
    assert len(cell["notes"]["generated_ids"][0]) == 10
    assert cell["metrics"]["tvm_tokens_per_s"] > 0 and cell["metrics"]["eager_tokens_per_s"] > 0


def test_generate_command_checks_against_eager(gptbench):
    code, out, err = gptbench("generate", "--model", "gpt2-tiny", "--prompt", "ROMEO:", "--new-tokens", "12", "--check")
    assert code == 0, err
    assert "identical to eager" in err
    assert out.startswith("ROMEO:")


def test_perplexity_eager_and_tvm_agree_to_1e_4(gptbench, tmp_path):
    code, out, err = gptbench("ppl", "--model", "gpt2-tiny", "--text", DATA / "sonnet18.txt", "--stride", "32",
                              "--max-length", "64", "--out", tmp_path)
    assert code == 0, err
    cell = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]
    m = cell["metrics"]
    assert cell["status"] == "ok"
    assert m["nll_rel_diff"] <= 1e-4
    assert m["tokens_scored"] == len((DATA / "sonnet18.txt").read_bytes()) - 1
    assert m["eager_ppl"] > 1


def test_cuda_target_compiles_without_a_gpu_and_says_it_could_not_run(gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--target", "cuda", "--cuda-arch", "sm_90",
                              "--seq-len", "16", "--no-isolate", "--out", tmp_path)
    assert code == 0, err
    cell = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]
    if cell["status"] == "ok":
        pytest.skip("a CUDA GPU is present: this test is about machines without one")
    assert cell["status"] == "no_device"
    assert cell["timings"]["build_s"] > 0
    assert cell["target_spec"]["kind"] == "cuda" and cell["target_spec"]["arch"] == "sm_90"
    assert "not run" in cell["error"] and "CUDA" in cell["error"]
    assert "compiled but not run" in err


def test_cuda_without_an_arch_or_gpu_is_a_usage_error(gptbench, monkeypatch, tmp_path):
    from bench import targets

    monkeypatch.delenv(targets.CUDA_ARCH_ENV, raising=False)
    monkeypatch.setattr(targets, "gpu_arch", lambda: None)
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--target", "cuda", "--out", tmp_path)
    assert code == 2
    assert "--cuda-arch" in err


def test_cuda_arch_comes_from_the_docker_environment(monkeypatch):
    from bench import targets

    monkeypatch.setenv(targets.CUDA_ARCH_ENV, "sm_80")
    monkeypatch.setattr(targets, "gpu_arch", lambda: None)
    info = targets.make_target("cuda", 2)
    assert info.spec["arch"] == "sm_80" and info.arch_source == f"${targets.CUDA_ARCH_ENV}"


def test_passes_report_times_passes_and_ablates(gptbench, tmp_path):
    code, out, err = gptbench("passes", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--ablate",
                              "FuseOps,FoldConstant", "--repeat", "3", "--warmup", "0", "--out", tmp_path)
    assert code == 0, err
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["kind"] == "passes"
    variants = {c["variant"]: c for c in report["cells"]}
    assert set(variants) == {"default", "-FuseOps", "-FoldConstant", "+dlight"}
    default = variants["default"]
    names = [r["name"] for r in default["pass_times"]]
    assert {"LegalizeOps", "FuseOps", "FuseTIR", "FoldConstant"} <= set(names)
    # the harness's rewrites (bench.build.rewrites) first, then TVM's default pipeline
    assert [r["name"] for r in default["pipeline"]][:4] == ["gptbench.PowToMul", "DispatchSampling", "DispatchSortScan", "LegalizeOps"]
    fuse = next(r for r in default["pipeline"] if r["name"] == "FuseTIR")
    assert fuse["prim_funcs"] > 0 and fuse["relax_bindings"] > 0
    for c in report["cells"]:
        assert c["status"] == "ok" and c["parity"]["rel_l2"] < 1e-5
    assert len({c["id"] for c in report["cells"]}) == 4  # compare can tell the variants apart
    assert "## Pass ablation" in out and "## Where compile time goes" in out


def test_passes_rejects_a_pass_not_in_the_pipeline(gptbench, tmp_path):
    code, _, err = gptbench("passes", "--model", "nanogpt-tiny", "--ablate", "NoSuchPass", "--out", tmp_path)
    assert code == 2
    assert "NoSuchPass" in err and "FuseOps" in err
