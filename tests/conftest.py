"""Shared fixtures. Tests run on CPU with tiny models; full-size runs are marked `slow` (opt-in)."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("TVM_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

TINY_MODELS = ["nanogpt-tiny", "mingpt-tiny", "gpt2-tiny"]


@pytest.fixture
def gptbench(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from bench.cli import main

    def run(*argv: str):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
