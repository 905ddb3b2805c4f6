"""A quiet console (bench.core.quiet): torch.onnx's torchvision lines and TVM's take warning stay off
stderr and go to the log file the run names once; everything else on stderr stays where it was."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import quiet

ROOT = Path(__file__).resolve().parents[1]
TORCHVISION = "torchvision is not installed"
FAST_TAKE = "Fast mode segfaults"
TVM_LINE = ("[04:52:07] /project/include/tvm/topi/transform.h:1261: Warning: Fast mode segfaults when there are "
            "out-of-bounds indices. Make sure input indices are in bound\n")


@pytest.fixture
def quiet_log(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "quiet.log"
    monkeypatch.setenv(quiet.ENV, str(path))
    return path


def test_a_run_shows_progress_but_neither_known_warning_and_names_the_log_once(tmp_path):
    log = tmp_path / "quiet.log"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", "--model", "nanogpt-tiny", "--frontend", "export,onnx", "--baselines", "none",
         "--seq-len", "16", "--repeat", "2", "--warmup", "0", "--solo", "0", "--out", str(tmp_path)],
        cwd=ROOT, env={**os.environ, quiet.ENV: str(log)}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert TORCHVISION not in err and FAST_TAKE not in err, err
    assert "== cell 1/2: nanogpt-tiny × export" in err and "== cell 2/2: nanogpt-tiny × onnx" in err
    assert err.count("built in") == 2 and err.count("ok: TVM median") == 2, err
    assert err.count(str(log)) == 1, err  # named once, though each cell ran in a process of its own
    text = log.read_text()
    for op in ("nms", "roi_align", "roi_pool", "deform_conv2d"):  # the onnx cell's export (the ort baseline's is the same code)
        assert text.count(f"torchvision is not installed. Skipping torchvision::{op}\n") == 1, text
    assert text.count(FAST_TAKE) >= 2, text  # at least one take kernel per build


def test_stderr_filtered_keeps_other_lines_in_order_and_logs_the_matching_one(quiet_log, capfd):
    with quiet.stderr_filtered(quiet.TVM_FAST_TAKE, "tvm"):
        os.write(2, b"before\n" + TVM_LINE.encode() + b"a real error\n")
    out, err = capfd.readouterr()
    first, second, named = err.splitlines()
    assert (first, second) == ("before", "a real error") and str(quiet_log) in named  # the first write names the log
    assert quiet_log.read_text().endswith(f"tvm pid {os.getpid()}: {TVM_LINE}")


def test_stderr_filtered_restores_stderr_when_the_body_raises(quiet_log, capfd):
    fd_target = os.readlink("/proc/self/fd/2") if os.path.exists("/proc/self/fd/2") else None
    with pytest.raises(RuntimeError, match="boom"), quiet.stderr_filtered(quiet.TVM_FAST_TAKE, "tvm"):
        os.write(2, b"said before the error\n")
        raise RuntimeError("boom")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "said before the error\nafter\n"
    assert not quiet_log.exists()
    if fd_target is not None:
        assert os.readlink("/proc/self/fd/2") == fd_target


def test_only_the_torchvision_skips_are_filtered_from_the_exporter_logger(quiet_log):
    logger = logging.getLogger(quiet.TORCHVISION_LOGGER)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())
    logger.addHandler(handler)
    try:
        quiet.silence_torchvision_skips()
        quiet.silence_torchvision_skips()  # idempotent
        assert sum(isinstance(f, quiet._TorchvisionSkips) for f in logger.filters) == 1
        logger.warning(quiet.TORCHVISION_SKIP, "torchvision::nms")
        logger.warning(quiet.TORCHVISION_SKIP, "mylib::nms")  # not torchvision's: stays
        logger.warning("'%s' does not have a 'default' overload.", "torchvision::nms")  # another message: stays
    finally:
        logger.removeHandler(handler)
    assert seen == ["torchvision is not installed. Skipping mylib::nms", "'torchvision::nms' does not have a 'default' overload."]
    assert quiet_log.read_text().endswith(f"torch.onnx pid {os.getpid()}: torchvision is not installed. Skipping torchvision::nms\n")


def test_the_quiet_legalization_of_take_is_tvms_own_without_the_warning(quiet_log, capfd):
    import tvm
    from tvm import relax

    from bench.build.relax import legalize_ops

    bb = relax.BlockBuilder()
    table = relax.Var("table", relax.TensorType((10, 4), "float32"))
    ids = relax.Var("ids", relax.TensorType((1, 3), "int64"))
    with bb.function("main", [table, ids]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.take(table, ids, axis=0))
        bb.emit_func_output(out)
    mod = bb.get()
    theirs = relax.transform.LegalizeOps()(mod)
    assert FAST_TAKE in capfd.readouterr().err  # TVM's own says it (on fd 2)
    ours = legalize_ops()(mod)
    assert FAST_TAKE not in capfd.readouterr().err
    tvm.ir.assert_structural_equal(ours, theirs)
    assert legalize_ops().info.name == "LegalizeOps"  # `gptbench passes` and --disable see the same name
    assert FAST_TAKE in quiet_log.read_text()
