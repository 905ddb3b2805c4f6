"""Fault injection around writing reports: bad --out, full disk, two runs finishing in the same second."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from bench.record import Cell
from bench.reports.report import load_report, new_report, write_report


def _report(name="same", n_cells=1):
    cell = dict(model="m", frontend="f", target="llvm", scenario="prefill", shapes="static", dtype="float32", status="ok",
                tvm=dict(median=1.0, std=0.1, samples=[1.0] * 50), baselines={}, speedup={})
    r = new_report("run", name, dict(target="llvm"), {}, [Cell.from_json(dict(cell, id=f"m|f{i}")) for i in range(n_cells)])
    r["created"] = "2026-11-25T12:00:00+00:00"  # the same second for every report made here
    return r


def default_sigint() -> None:
    """In the child, before exec: SIGINT's default disposition. A test runner started in the background of a
    non-interactive shell ignores SIGINT, an ignored signal stays ignored across exec, and the run under
    test would then never see the Ctrl-C these tests send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_two_reports_with_the_same_name_in_the_same_second_do_not_overwrite_each_other(tmp_path):
    first = write_report(_report(n_cells=1), tmp_path)
    second = write_report(_report(n_cells=2), tmp_path)
    assert first["json"] != second["json"] and second["json"].name.endswith("-same-2.json")
    assert len(load_report(first["json"])["cells"]) == 1 and len(load_report(second["json"])["cells"]) == 2
    assert len(list(tmp_path.iterdir())) == 6  # three files each, no temporary left


def test_a_full_disk_leaves_no_half_written_report(tmp_path):
    """RLIMIT_FSIZE makes every write past 4 KB fail (EFBIG), as a full disk would."""
    code = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(tmp_path.parent)!r})
        from tests.test_faults import _report
        from bench.reports.report import write_report
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_report(_report(n_cells=40), {str(tmp_path)!r})
        except OSError as e:
            print("OSError", e.errno)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(__import__("pathlib").Path(__file__).parent.parent))
    assert "OSError 27" in proc.stdout, proc.stderr  # EFBIG
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_file_is_refused_before_any_work(gptbench, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--out", f)
    assert code == 2 and "is a file, not a directory" in err and len(err.strip().splitlines()) == 1


def test_out_that_cannot_be_written_is_refused_before_any_work(gptbench):
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--out", "/proc/gptbench-cannot-write-here")
    assert code == 2 and "cannot write there" in err and len(err.strip().splitlines()) == 1


def _start_run(tmp_path, *extra):
    import os
    import subprocess

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--model", "nanogpt-tiny", "--frontend", "export,onnx",
                             "--seq-len", "8", "--repeat", "200", "--warmup", "0", "--solo", "0", "--out", str(tmp_path), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(__import__("pathlib").Path(__file__).parent.parent), preexec_fn=default_sigint)


def _wait_for(proc, text: str, timeout: float = 300.0) -> list[str]:
    import time

    seen, t0 = [], time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"never saw {text!r}: {''.join(seen)[-2000:]}")


import pytest  # noqa: E402


@pytest.mark.parametrize("sig, code, name, stage", [("SIGINT", 130, "SIGINT", "importing"), ("SIGTERM", 143, "SIGTERM", "importing"),
                                                    ("SIGINT", 130, "SIGINT", "timing tvm")])
def test_an_interrupted_run_keeps_its_finished_cells_in_a_partial_report(tmp_path, sig, code, name, stage):
    import signal

    proc = _start_run(tmp_path)
    _wait_for(proc, "== cell 2/2")
    _wait_for(proc, stage)  # the second cell's worker is importing, or timing
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    report = load_report(next(tmp_path.glob("*.json")))
    assert report["partial"] is True and report["interrupted"] == name
    assert [c.status for c in report["cells"]] == ["ok", "interrupted"]
    assert "Partial report" in out


def test_a_killed_run_leaves_no_cell_worker_behind(tmp_path):
    import signal
    import time

    import psutil

    proc = _start_run(tmp_path)
    _wait_for(proc, "importing")
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the cell runs in a worker process"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, [p.cmdline() for p in alive]
    time.sleep(0.1)


# The --trials variant (MetaSchedule's own gradient scheduler unwinding) is opt-in (`make test-slow`): about
# 95 s, and `make test` must stay under 20 minutes on 2 cores; the budgeted session stays in every run.
@pytest.mark.parametrize("limit", [["--budget", "5m"], pytest.param(["--trials", "400"], marks=pytest.mark.slow)])
def test_an_interrupted_tune_keeps_its_records_and_a_valid_description(tmp_path, limit):
    """Ctrl-C during tuning: a budgeted session stops after the batches in flight, a --trials session
    (MetaSchedule's gradient scheduler) unwinds; both save what was measured and exit 130."""
    import os
    import signal
    import subprocess

    from bench.tuning.database import read_meta

    db = tmp_path / "db"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "tune", "--model", "nanogpt-tiny", "--seq-len", "16", "--db", str(db),
                             *limit], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(__import__("pathlib").Path(__file__).parent.parent), preexec_fn=default_sigint)
    _wait_for(proc, "Ctrl-C stops it")  # MetaSchedule is about to start
    import time

    time.sleep(10)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    meta = read_meta(db)
    assert meta is not None, err[-3000:]
    assert meta["last_session"]["stopped_by"] == "interrupt"
    assert meta["records"] == meta["trials"] >= 0
    assert "saved" in err


def test_a_busy_machine_lowers_the_default_threads_and_the_report_says_so(gptbench, tmp_path):
    """A process spinning on a core while `run` starts (no --threads): the run takes fewer threads (at
    least 1), says why on stderr and in the report, and the cell timed beside the spinner is unstable."""
    import os
    import subprocess
    import time

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "8", "--repeat", "3",
                                  "--warmup", "0", "--solo", "0", "--no-isolate", "--out", tmp_path)
    finally:
        spinner.kill()
        spinner.wait()
    assert code == 0, err
    assert "note: other processes use" in err and "Traceback" not in err
    report = load_report(next(tmp_path.glob("*.json")))
    usable = len(os.sched_getaffinity(0))
    assert 1 <= report["config"]["threads"] <= max(1, usable - 1)
    assert "other processes use" in report["config"]["threads_note"]
    (cell,) = report["cells"]
    assert cell.threads == report["config"]["threads"] and cell.unstable
    assert any("the machine was busy while timing" in f for f in cell.timing["flags"])
    assert "Threads: other processes use" in out and "| unstable |" in out
