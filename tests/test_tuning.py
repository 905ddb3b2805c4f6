"""Tuning databases: a real (small) MetaSchedule run, applying it, and refusing foreign databases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.core.env import usable_cores
from bench.tuning.database import META_FILE, count_records, db_hash, read_meta
from bench.tuning.progress import PROGRESS_FILE, read_progress


@pytest.fixture(scope="module")
def tuned_db(tmp_path_factory):
    """nanogpt-tiny prefill, 16 trials: enough to exercise extraction, building, measuring, records."""
    from bench.cli import main

    db = tmp_path_factory.mktemp("db") / "nanogpt-tiny"
    code = main(["tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--trials", "16", "--db", str(db)])
    assert code == 0
    return db


def test_tune_writes_records_and_a_description(tuned_db):
    meta = read_meta(tuned_db)
    # trials count what was measured: MetaSchedule stops starting batches at --trials, the last batch may overshoot
    assert meta["model"] == "nanogpt-tiny" and 16 <= meta["trials"] == meta["records"] <= 16 + 16 and meta["sessions"] == 1
    assert meta["last_session"]["trial_limit"] == 16 and meta["last_session"]["population"] == 512
    assert meta["frontends"] == ["export"] and meta["frontends_failed"] == {}
    assert meta["target"]["kind"] == "llvm" and meta["target"]["mcpu"] and meta["target"]["num_cores"] == usable_cores()
    assert meta["tasks"] > 5 and meta["records"] > 0
    tuned = [r for r in meta["task_summary"] if r["best_ms"] is not None]
    assert tuned, "no task got a measured schedule"
    assert (tuned_db / "SUMMARY.md").read_text().startswith("# tuning database: nanogpt-tiny")


def test_run_with_the_database_applies_it_and_keeps_parity(tuned_db, gptbench, tmp_path):
    code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--repeat", "3",
                              "--warmup", "1", "--no-isolate", "--db", tuned_db, "--baselines", "eager,untuned", "--out", tmp_path)
    assert code == 0, err
    cell = json.loads(next(tmp_path.glob("*.json")).read_text())["cells"][0]
    assert cell["status"] == "ok" and cell["parity"]["rel_l2"] < 1e-5
    untuned = cell["baselines"]["untuned"]  # the same import built without the database, same rounds
    assert untuned["status"] == "ok" and untuned["parity"]["rel_l2"] < 1e-5 and untuned["latency"]["n"] == 3
    assert cell["speedup"]["untuned"] == pytest.approx(untuned["latency"]["median"] / cell["tvm"]["median"], rel=1e-3)
    assert cell["tuning"]["hash"] == read_meta(tuned_db)["hash"]
    tuned = sum(1 for r in read_meta(tuned_db)["task_summary"] if r["best_ms"] is not None)
    assert cell["tuning"]["matched"] == tuned > 0  # same model and shapes: every tuned kernel is found
    assert "Tuning databases" in out


def test_tune_logs_its_progress_and_where_its_time_went(tuned_db):
    meta = read_meta(tuned_db)
    rows = read_progress(tuned_db)
    assert rows and [r["records"] for r in rows] == sorted(r["records"] for r in rows)
    assert rows[-1]["records"] == meta["records"] == count_records(tuned_db)  # the log accounts for every record, in order
    assert rows[-1]["trials"] == meta["trials"] and all(r["session"] == 1 for r in rows)
    times = [r["tuning_s"] for r in rows]
    assert times == sorted(times) and 0 < times[-1] <= meta["wall_s"] + 1
    assert any(r["estimate_ms"] for r in rows)
    profile = meta["last_session"]["profile_s"]  # MetaSchedule's profiler: building and running are a trial's parts
    assert profile["Total"] > 0 and profile["SendToBuilder"] > 0 and profile["SendToRunner"] > 0
    assert "trials a minute" in (tuned_db / "SUMMARY.md").read_text()


def test_database_at_is_the_database_as_it_was_after_n_seconds(tuned_db, tmp_path):
    from bench.tuning.progress import database_at

    rows = read_progress(tuned_db)
    mid = rows[len(rows) // 2]
    cut_dir, cut = database_at(tuned_db, mid["tuning_s"], tmp_path / "cut")
    assert cut["records"] == count_records(cut_dir) == max(r["records"] for r in rows if r["tuning_s"] <= mid["tuning_s"])
    assert cut["of_records"] == count_records(tuned_db) and cut["of_hash"] == read_meta(tuned_db)["hash"]
    full = (tuned_db / "database_tuning_record.json").read_text().splitlines()
    assert (cut_dir / "database_tuning_record.json").read_text().splitlines() == full[:cut["records"]]
    assert read_meta(cut_dir)["hash"] == db_hash(cut_dir) != read_meta(tuned_db)["hash"]
    _, zero = database_at(tuned_db, 0, tmp_path / "zero")
    assert zero["records"] == 0 and zero["tuning_s"] == 0


def test_run_tuned_after_measures_each_cut_and_plots_speedup_against_minutes(tuned_db, gptbench, tmp_path):
    from bench.reports.plot import make_figure
    from bench.reports.report import load_report

    code, out, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--repeat", "3",
                              "--warmup", "1", "--solo", "0", "--no-isolate", "--db", tuned_db, "--tuned-after", "0,all",
                              "--out", tmp_path)
    assert code == 0, err
    report = load_report(next(tmp_path.glob("*.json")))
    zero, whole = report["cells"]
    assert zero.status == whole.status == "ok" and zero.parity.rel_l2 < 1e-5
    assert zero.variant == "+tuned@0s" and whole.variant is None  # distinct cells; `all` is the database as without the flag
    assert zero.tuning["cut"]["records"] == 0 and zero.tuning["matched"] == 0 and zero.tuning["path"] == str(tuned_db)
    assert whole.tuning["matched"] > 0 and "cut" not in whole.tuning
    assert "as it was after 0.0 s of its" in out
    titles = [ax.get_title() for ax in make_figure(report).axes]
    assert any("vs tuning time" in t for t in titles)


def test_tuned_after_usage_errors(tuned_db, gptbench, tmp_path):
    base = ("run", "--model", "nanogpt-tiny", "--out", tmp_path)
    code, _, err = gptbench(*base, "--tuned-after", "1m")
    assert code == 2 and "--tuned-after cuts a tuning database: give --db or --tune-budget" in err
    code, _, err = gptbench(*base, "--db", tuned_db, "--tuned-after", "1m,soon")
    assert code == 2 and "'soon' is not a duration" in err
    old = tmp_path / "old"
    shutil.copytree(tuned_db, old)
    (old / PROGRESS_FILE).unlink()
    code, _, err = gptbench(*base, "--seq-len", "16", "--db", old, "--tuned-after", "1m")
    assert code == 2 and f"has no {PROGRESS_FILE}" in err and len(err.strip().splitlines()) == 1


def test_tuning_again_continues_the_same_database(tuned_db, gptbench):
    before = read_meta(tuned_db)
    code, _, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--trials", "8", "--db", tuned_db)
    assert code == 0, err
    after = read_meta(tuned_db)
    assert after["sessions"] == before["sessions"] + 1
    assert after["records"] == before["records"] + after["last_session"]["trials"] and after["last_session"]["trials"] >= 8
    assert after["trials"] == before["trials"] + after["last_session"]["trials"]


def _tuned_workloads(db: Path) -> set[int]:
    return {json.loads(line)[0] for line in (db / "database_tuning_record.json").open() if line.strip()}


def test_a_session_on_a_database_gives_its_first_batches_to_the_kernels_without_records(tuned_db, gptbench, tmp_path):
    """16 trials tuned two of nanogpt-tiny's tasks (8 a batch); one more batch must go to a third task, not to a
    task the database already has (the extraction order would give it to the first task again)."""
    db = tmp_path / "db"
    shutil.copytree(tuned_db, db)
    before = _tuned_workloads(db)
    code, _, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--trials", "8", "--db", db)
    assert code == 0, err
    assert len(before) >= 1 and len(_tuned_workloads(db)) > len(before), (before, _tuned_workloads(db))


@pytest.mark.parametrize("field,value,message", [
    ("tvm_version", "0.19.0", "made with TVM 0.19.0"),
    ("target", {"kind": "llvm", "mcpu": "sapphirerapids", "num_cores": 2}, "for another target: mcpu 'sapphirerapids'"),
    ("target", {"kind": "llvm", "mcpu": None, "num_cores": 64}, "num_cores 64"),
])
def test_a_database_for_another_tvm_or_target_is_refused(tuned_db, gptbench, tmp_path, field, value, message):
    import shutil

    from bench.core.env import host_mcpu

    copy = tmp_path / "copy"
    shutil.copytree(tuned_db, copy)
    meta = json.loads((copy / META_FILE).read_text())
    if isinstance(value, dict) and value.get("mcpu") is None:
        value = {**value, "mcpu": host_mcpu()}
    meta[field] = value
    (copy / META_FILE).write_text(json.dumps(meta))
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--db", copy, "--out", tmp_path)
    assert code == 2
    assert message in err


def test_a_directory_without_a_description_is_refused(gptbench, tmp_path):
    (tmp_path / "database_workload.json").write_text("")
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--db", tmp_path, "--out", tmp_path)
    assert code == 2
    assert "not made by `gptbench tune`" in err


def test_only_and_skip_that_leave_no_task_are_refused_with_the_task_list(gptbench, tmp_path):
    code, _, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--trials", "8",
                            "--only", "matmul", "--skip", "matmul", "--db", tmp_path / "db")
    assert code == 2
    assert "leave none of the tasks" in err and "fused_matmul" in err


def test_tune_budget_stops_on_time_and_keeps_a_valid_database(gptbench, tmp_path):
    import time

    db = tmp_path / "db"
    t0 = time.monotonic()
    code, out, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--budget", "25s", "--db", db)
    wall = time.monotonic() - t0
    assert code == 0, err
    meta = read_meta(db)
    assert meta["last_session"]["stopped_by"] == "budget" and meta["last_session"]["budget_s"] == 25
    assert meta["last_session"]["population"] == 128  # a budgeted session's evolutionary search (MetaSchedule's: 512)
    assert meta["records"] == meta["trials"] > 0
    assert wall < 25 + 60  # the batches in flight finish after the deadline; nothing starts after it
    assert "stopped by budget" in out


def test_run_tune_budget_uses_a_cached_database_and_tunes_nothing(tuned_db, gptbench, tmp_path):
    import shutil

    from bench.targets import make_target
    from bench.tuning.database import default_db_dir

    cache = tmp_path / "cache"
    where = default_db_dir("nanogpt-tiny", "prefill", 1, 16, 0, make_target("llvm", usable_cores()), True, root=cache)
    shutil.copytree(tuned_db, where)
    meta = json.loads((where / META_FILE).read_text())
    meta["prepack"] = True  # the fixture's database is laid out as --tune-budget's would be
    (where / META_FILE).write_text(json.dumps(meta))
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--repeat", "2", "--warmup", "0",
                            "--no-isolate", "--tune-budget", "5m", "--tune-cache", cache, "--out", tmp_path / "out")
    assert code == 0, err
    assert "tuning database found" in err and "tuning nothing" in err
    cell = json.loads(next((tmp_path / "out").glob("*.json")).read_text())["cells"][0]
    assert cell["tuning"]["path"] == str(where) and cell["tuning"]["from_cache"] is True


def test_run_tune_budget_extends_a_cached_database_to_the_runs_other_frontends(tuned_db, gptbench, tmp_path):
    """A cached database tuned through export, and a run through export and onnx (whose import fuses
    other kernels): the run tunes onnx's kernels into the same database, within the budget; the onnx
    cell then builds with tuned kernels of its own, both cells with the one database."""
    import shutil

    from bench.targets import make_target
    from bench.tuning.database import default_db_dir

    cache = tmp_path / "cache"
    where = default_db_dir("nanogpt-tiny", "prefill", 1, 16, 0, make_target("llvm", usable_cores()), True, root=cache)
    shutil.copytree(tuned_db, where)
    meta = json.loads((where / META_FILE).read_text())
    meta["prepack"] = True
    (where / META_FILE).write_text(json.dumps(meta))
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export,onnx", "--seq-len", "16", "--repeat", "2",
                            "--warmup", "0", "--no-isolate", "--tune-budget", "20s", "--tune-cache", cache, "--out", tmp_path / "out")
    assert code == 0, err
    assert "tuning database found" in err and "tuning the kernels of onnx it has no record for" in err
    after = read_meta(where)
    assert after["frontends"] == ["export", "onnx"] and after["sessions"] == meta["sessions"] + 1 and after["records"] > meta["records"]
    assert after["last_session"]["frontends"] == ["onnx"]
    assert "Estimated latency through onnx" in (where / "SUMMARY.md").read_text()
    cells = {c["frontend"]: c for c in json.loads(next((tmp_path / "out").glob("*.json")).read_text())["cells"]}
    assert cells["onnx"]["status"] == "ok" and cells["onnx"]["tuning"]["matched"] > 0
    assert cells["onnx"]["tuning"]["tuned_in_this_run"]["frontends"] == ["onnx"]
    assert cells["export"]["status"] == "ok" and cells["export"]["tuning"]["hash"] == cells["onnx"]["tuning"]["hash"] == after["hash"]


@pytest.mark.parametrize("args, message", [
    (["--tune-budget", "fast"], "is not a duration"),
    (["--tune-budget", "1m", "--db", "x"], "drop --db"),
    (["--tune-budget", "1m", "--shapes", "symbolic"], "--shapes static"),
])
def test_tune_budget_usage_errors(gptbench, tmp_path, args, message):
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--out", tmp_path, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_tune_needs_trials_or_a_budget(gptbench, tmp_path):
    code, _, err = gptbench("tune", "--model", "nanogpt-tiny", "--db", tmp_path / "db")
    assert code == 2 and "--trials N, --budget DURATION" in err


def test_tune_refuses_a_database_made_for_another_workload(tuned_db, gptbench):
    before = (tuned_db / META_FILE).read_text()
    code, _, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "32", "--trials", "8", "--db", tuned_db)
    assert code == 2 and "tuned for another workload" in err and "seq_len" in err
    assert (tuned_db / META_FILE).read_text() == before  # nothing relabelled


# ------------------------------------------------------------------- a database from another CPU
def _as_if_from(db, tmp_path, mcpu: str = "some-other-cpu"):
    """A copy of the database whose description says another CPU tuned it (as on another machine)."""
    import shutil

    other = tmp_path / "other-cpu"
    shutil.copytree(db, other)
    meta = read_meta(other)
    meta["target"]["mcpu"] = mcpu
    (other / META_FILE).write_text(json.dumps(meta))
    return other


def test_a_database_from_another_cpu_is_refused_unless_asked_and_then_labelled(tuned_db, gptbench, tmp_path):
    other = _as_if_from(tuned_db, tmp_path)
    run = ("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--repeat", "3", "--warmup", "1",
           "--no-isolate", "--db", other, "--out", tmp_path / "out")
    code, _, err = gptbench(*run)
    assert code == 2 and "is for another target: mcpu 'some-other-cpu' (database)" in err and "--foreign-db" in err
    code, out, err = gptbench(*run, "--foreign-db")
    assert code == 0, err
    cell = json.loads(next((tmp_path / "out").glob("*.json")).read_text())["cells"][0]
    here = f"llvm-{read_meta(tuned_db)['target']['mcpu']}-{usable_cores()}c"
    assert cell["status"] == "ok" and cell["tuning"]["applied_across"] == f"tuned on llvm-some-other-cpu-{usable_cores()}c, applied to {here}"
    assert cell["tuning"]["matched"] > 0  # its kernels are found: the workloads do not depend on the mcpu
    assert f"**tuned on llvm-some-other-cpu-{usable_cores()}c, applied to {here}** (--foreign-db)" in out
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--foreign-db", "--out", tmp_path / "out")
    assert code == 2 and "give the --db" in err


def test_warm_start_replays_prepacked_gemms_too(gptbench, tmp_path):
    """With --prepack a GEMM's schedule rewrites its weight's layout: measured with the unscheduled
    function's argument shapes, every such schedule was refused by the runner and dropped (GPT-2's
    four big matmul tasks got no record). Every schedule of this database must replay, build and run."""
    db = tmp_path / "prepacked"
    code, _, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--trials", "16",
                            "--prepack", "--db", db)
    assert code == 0, err
    assert any("matmul" in r["task"] and r["trials"] for r in read_meta(db)["task_summary"])
    code, _, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--prepack",
                            "--warm-start", _as_if_from(db, tmp_path), "--db", tmp_path / "warm")
    assert code == 0, err
    warm = read_meta(tmp_path / "warm")["warm_start"]
    assert warm["replayed"] > 0 and warm["failed"] == 0 and warm["measured"] == warm["replayed"], warm
    assert _workers_left() == []  # the builder's pool, kept between batches, is stopped with the session


def _workers_left() -> list[str]:
    """Command lines of this process's children that are TVM popen workers."""
    import os

    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
                left += [cmd] if "popen" in cmd else []
        except (OSError, IndexError, ValueError):
            continue
    return left


def test_warm_start_measures_the_other_cpus_schedules_here_and_records_them(tuned_db, gptbench, tmp_path):
    other = _as_if_from(tuned_db, tmp_path)
    new = tmp_path / "warm"
    code, out, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--warm-start", other,
                              "--db", new)
    assert code == 0, err
    meta = read_meta(new)
    warm = meta["warm_start"]
    assert warm["source_target"] == f"llvm-some-other-cpu-{usable_cores()}c" and warm["replayed"] > 0
    assert warm["measured"] + warm["failed"] == warm["replayed"] and warm["measured"] == meta["records"] > 0
    assert meta["trials"] == 0  # no search ran: only the replayed schedules, measured here
    assert meta["target"] == read_meta(tuned_db)["target"]  # the new database is this machine's
    assert "warm start:" in err and any(r["best_ms"] for r in meta["task_summary"])
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "16", "--repeat", "3",
                            "--warmup", "1", "--no-isolate", "--db", new, "--out", tmp_path / "out")
    assert code == 0, err  # no --foreign-db needed: the records were measured here
    code, _, err = gptbench("tune", "--model", "gpt2-tiny", "--seq-len", "16", "--warm-start", other, "--db", tmp_path / "x")
    assert code == 2 and "tuned for another workload: model 'nanogpt-tiny' (database) vs 'gpt2-tiny' (here)" in err
