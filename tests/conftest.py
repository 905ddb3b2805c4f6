"""Shared fixtures. Tests run on CPU with tiny models; full-size runs are marked `slow` (opt-in)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# `run --memory` (on by default) starts a fresh process per backend of every cell; the tests that are about
# memory ask for it (tests/test_memory.py), the others leave it off to keep make test's time
os.environ["GPTBENCH_MEMORY"] = "off"

TINY_MODELS = ["nanogpt-tiny", "mingpt-tiny", "gpt2-tiny"]


def _pin_xdist_worker() -> None:
    """Under pytest-xdist (`make test` runs one worker per core), give each worker a core of its own.

    The harness defaults to every usable core for TVM's and torch's thread pools; two workers each
    spinning two threads on two cores slow each other down. Pinned, each worker sees one usable core
    and the harness uses one thread there. Tests assert parity and behaviour, never speed.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    n_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if n_workers > 1 and len(cores) >= n_workers:
        os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})
        os.environ["TVM_NUM_THREADS"] = "1"
        # TVM's thread pool pins its calling thread to the machine's first core unless told not
        # to: every worker would end up on core 0.
        os.environ["TVM_BIND_THREADS"] = "0"


_pin_xdist_worker()

# The unit tier, `make test-fast` (pytest -m unit): modules that build no model through TVM and start no
# benchmark process, under a minute together on 2 cores, for after each edit. `make test` runs them too.
# A module joins by its name here; its tests that need a container engine are marked `docker` and left out.
UNIT_MODULES = frozenset({
    "test_architecture.py", "test_cli_errors.py", "test_cli_light.py", "test_compare.py", "test_docker.py", "test_docs_links.py",
    "test_config.py", "test_frontends.py", "test_gpu_kit.py",
    "test_history.py", "test_models.py", "test_plot.py", "test_reference_reports.py", "test_timing.py", "test_tuning_records.py",
    "test_units.py",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in UNIT_MODULES and item.get_closest_marker("docker") is None:
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def gptbench(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from bench.cli import main

    def run(*argv: str):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
