"""The cpu image for real: build it (or reuse it) with docker or podman through docker/engine.sh, as
`make docker` does, run a tiny model in it with the report written to a host folder, check that
report on the host, and run `gptbench compare` in the container on two such reports.

Opt-in (minutes when the image is not built yet): `make test-docker`, `make test-slow` or
`pytest -m docker`. Skipped, saying why, where no container engine is installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from bench.reports.report import load_report

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ENGINE_SH = ROOT / "docker" / "engine.sh"
TINY = ["--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--warmup", "1", "--repeat", "5",
        "--solo", "0", "--out", "results/"]


def engine_sh(*args: str, results: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, **({"RESULTS": str(results)} if results else {}))
    return subprocess.run([str(ENGINE_SH), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    which = engine_sh("engine", timeout=60)
    if which.returncode != 0:
        pytest.skip(which.stderr.strip())  # e.g. "no container engine: install docker ... or podman"
    build = engine_sh("build", timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert "built localhost/gptbench:cpu" in build.stderr
    return which.stdout.strip()


@pytest.fixture(scope="module")
def two_reports(image, tmp_path_factory) -> tuple[Path, list[Path]]:
    """Two runs of the tiny model in the container, reports written through the volume."""
    results = tmp_path_factory.mktemp("results")
    for name in ("first", "second"):
        run = engine_sh("run", "run", *TINY, "--name", name, results=results)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert f"-{name}.json" in run.stderr  # "wrote results/...-first.json, ..."
    return results, sorted(results.glob("*.json"))


def test_the_report_of_a_run_in_the_container_lands_on_the_host(two_reports):
    results, reports = two_reports
    assert [p.name.split("-", 1)[1] for p in reports] == ["first.json", "second.json"]
    for stem in (p.with_suffix("") for p in reports):
        assert stem.with_suffix(".md").is_file() and stem.with_suffix(".csv").is_file()
    report = load_report(reports[0])  # the harness's own schema check
    (cell,) = report["cells"]
    assert (cell.model, cell.frontend, cell.status) == ("nanogpt-tiny", "export", "ok"), cell.error
    assert cell.parity.ok and cell.parity.rel_l2 < 1e-5
    assert len(cell.tvm.samples) == 5
    env = report["environment"]
    assert env["versions"]["torch"].endswith("+cpu")  # the image's CPU torch, not this host's
    assert env["versions"]["apache-tvm"] == "0.27.0.post1"
    assert report["command"][1:3] == ["run", "--model"]


def test_compare_runs_in_the_container_on_two_reports(two_reports):
    results, reports = two_reports
    inside = [f"results/{p.name}" for p in reports]
    cmp = engine_sh("run", "compare", *inside, "--md", "results/compare.md", "--json", "results/compare.json",
                    results=results)
    assert cmp.returncode == 0, cmp.stdout[-3000:] + cmp.stderr[-3000:]
    result = json.loads((results / "compare.json").read_text())
    (cell,) = result["cells"]
    assert (cell["model"], cell["frontend"]) == ("nanogpt-tiny", "export")
    assert cell["tvm"]["n_base"] == cell["tvm"]["n_new"] == 5  # both reports' samples were read
    assert result["ok"] and result["failures"] == []
    assert (results / "compare.md").read_text() in cmp.stdout


def test_a_usage_error_in_the_container_is_one_line_and_exit_2(image, tmp_path):
    run = engine_sh("run", "run", "--model", "gpt3", results=tmp_path)
    assert run.returncode == 2, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip() and not ln.startswith("docker/engine.sh:")]
    assert lines == [lines[0]] and "unknown model 'gpt3'" in lines[0], run.stderr


# ---------------------------------------------------------------- the cuda-check image (TVM from source)
CUDA_CHECK_ARCH = os.environ.get("GPTBENCH_TEST_CUDA_ARCH", "86")
CUDA_CHECK_IMAGE = f"localhost/gptbench:cuda-check-sm{CUDA_CHECK_ARCH}"


@pytest.fixture(scope="module")
def cuda_check_image() -> str:
    """The cuda-check image, never built here: TVM from source takes about an hour (`make
    docker-build-cuda CUDA_ARCH=86`, docker/README.md). Skipped, saying so, where it is absent."""
    which = engine_sh("engine", timeout=60)
    if which.returncode != 0:
        pytest.skip(which.stderr.strip())
    engine = which.stdout.strip()
    probe = subprocess.run([engine, "image", "inspect", CUDA_CHECK_IMAGE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"no {CUDA_CHECK_IMAGE} image (TVM from source, about an hour): "
                    f"make docker-build-cuda CUDA_ARCH={CUDA_CHECK_ARCH}")
    return CUDA_CHECK_IMAGE


def test_the_source_built_tvm_compiles_a_gpts_kernels_for_exactly_the_asked_arch(cuda_check_image):
    """No GPU: the harness builds nanogpt-tiny for --target cuda, TVM compiles the kernels with nvcc,
    and the fatbin in the exported library holds cubins for that arch and nothing else, for the
    arch TVM was built for and for another one nvcc knows (TVM's codegen takes the target's arch)."""
    env = dict(os.environ, CUDA_ARCH=CUDA_CHECK_ARCH)
    archs = [f"sm_{CUDA_CHECK_ARCH}", "sm_90" if CUDA_CHECK_ARCH != "90" else "sm_86"]
    proc = subprocess.run([str(ENGINE_SH), "check-cuda", *archs], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    for arch in archs:
        fatbins = [f for lib in report["archs"][arch]["libraries"] for f in lib["fatbins"]]
        assert fatbins and all(f["elf_archs"] == [arch] for f in fatbins), fatbins


def test_an_arch_the_images_nvcc_does_not_know_is_refused_in_one_line(cuda_check_image):
    env = dict(os.environ, CUDA_ARCH=CUDA_CHECK_ARCH)
    proc = subprocess.run([str(ENGINE_SH), "check-cuda", "sm_99"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # no CUDA release has an sm_99 (11.8 also refuses sm_100)
    assert proc.returncode == 2
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("check_cuda_arch:")]
    assert re.match(r"check_cuda_arch: sm_99: nvcc of CUDA [\d.]+ cannot build for it; it knows sm_\d+", line), line


RELAY_IMAGE = "localhost/gptbench:relay"


@pytest.fixture(scope="module")
def relay_image() -> str:
    """The relay image, never built here: TVM 0.19 from source takes about 40 minutes (`make
    docker-build-relay`, docker/README.md). Skipped, saying so, where it is absent."""
    which = engine_sh("engine", timeout=60)
    if which.returncode != 0:
        pytest.skip(which.stderr.strip())
    probe = subprocess.run([which.stdout.strip(), "image", "inspect", RELAY_IMAGE], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"no {RELAY_IMAGE} image (TVM 0.19 from source, about 40 minutes): make docker-build-relay")
    return RELAY_IMAGE


def test_the_relay_image_runs_relay_beside_relax_in_one_report(relay_image, tmp_path):
    """Issue 13, item 5: in the image, a Relay cell runs in the source-built TVM 0.19 environment and a Relax
    cell in TVM 0.27, with parity, into one report on the host."""
    env = dict(os.environ, IMAGE=relay_image, RESULTS=str(tmp_path))
    args = ["run", "run", "--model", "nanogpt-tiny", "--frontend", "export,relay-onnx", "--seq-len", "16", "--warmup", "1",
            "--repeat", "3", "--solo", "0", "--name", "relay", "--out", "results/"]
    proc = subprocess.run([str(ENGINE_SH), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = tmp_path.glob("*-relay.json")
    cells = {c.frontend: c for c in load_report(path)["cells"]}
    assert cells["export"].tvm_env == "0.27" and cells["relay-onnx"].tvm_env == "0.19"
    for c in cells.values():
        assert c.status == "ok" and c.parity.ok, (c.frontend, c.error)
    assert cells["relay-onnx"].notes["tvm_version"] == "0.19.0"
