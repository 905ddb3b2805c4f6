"""The tuning-record drop of `take` tasks (bench.tuning.database.drop_records, PREPACK_UNSAFE), on a
database made by hand for a tiny Relax module: seconds, no tuning run."""

from __future__ import annotations

import json

import pytest

from bench.tuning.database import DB_FILES, PREPACK_UNSAFE, drop_records


@pytest.fixture(scope="module")
def tasks():
    """MetaSchedule's tasks of take(table, ids) @ w, extracted as `gptbench tune` does: a take and a matmul."""
    import tvm
    from tvm import relax

    from bench.tuning.search import extract

    bb = relax.BlockBuilder()
    table = relax.Var("table", relax.TensorType((10, 4), "float32"))
    ids = relax.Var("ids", relax.TensorType((1, 3), "int64"))
    w = relax.Var("w", relax.TensorType((4, 4), "float32"))
    with bb.function("main", [table, ids, w]):
        with bb.dataflow():
            rows = bb.emit(relax.op.take(table, ids, axis=0))
            out = bb.emit_output(relax.op.matmul(rows, w))
        bb.emit_func_output(out)
    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    found = extract(bb.get(), target, prepack=False)
    assert sorted(t.task_name for t in found) == ["matmul", "take"]
    return found, target


def _database(db_dir, tasks, target, n_records: dict[str, int]) -> dict[str, str]:
    """n_records[task name] records of each task (an empty trace each); returns task name → workload hash."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    db = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")
    hashes = {}
    for t in tasks:
        workload = db.commit_workload(t.dispatched[0])
        hashes[t.task_name] = str(workload.as_json()[0])
        trace = tvm.s_tir.Schedule(t.dispatched[0]).trace
        for k in range(n_records[t.task_name]):
            db.commit_tuning_record(ms.database.TuningRecord(trace, workload, run_secs=[1e-3 * (k + 1)], target=target))
    return hashes


def _records_by_task(db_dir, hashes: dict[str, str]) -> dict[str, int]:
    workloads = [json.loads(line)[0] for line in (db_dir / DB_FILES[0]).read_text().splitlines() if line.strip()]
    task_of = {i: next(name for name, h in hashes.items() if h == shash) for i, shash in enumerate(workloads)}
    counts = dict.fromkeys(hashes, 0)
    for line in (db_dir / DB_FILES[1]).read_text().splitlines():
        if line.strip():
            counts[task_of[json.loads(line)[0]]] += 1
    return counts


def test_only_the_take_records_go_and_their_count_is_returned(tasks, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    found, target = tasks
    hashes = _database(tmp_path, found, target, {"take": 2, "matmul": 3})
    workloads_before = (tmp_path / DB_FILES[0]).read_text()
    assert _records_by_task(tmp_path, hashes) == {"take": 2, "matmul": 3}

    unsafe = [t for t in found if any(u in t.task_name for u in PREPACK_UNSAFE)]  # as bench.tuning.search selects them
    assert [t.task_name for t in unsafe] == ["take"]
    assert drop_records(tmp_path, unsafe) == 2
    assert _records_by_task(tmp_path, hashes) == {"take": 0, "matmul": 3}
    assert (tmp_path / DB_FILES[0]).read_text() == workloads_before  # workloads stay; only records go
    assert len(ms.database.JSONDatabase(work_dir=str(tmp_path), module_equality="structural")) == 3  # still loads

    assert drop_records(tmp_path, unsafe) == 0  # nothing left to drop
    assert _records_by_task(tmp_path, hashes) == {"take": 0, "matmul": 3}


def test_a_database_without_records_or_without_take_records_drops_nothing(tasks, tmp_path):
    found, target = tasks
    unsafe = [t for t in found if t.task_name == "take"]
    assert drop_records(tmp_path / "none", unsafe) == 0  # no database at all
    hashes = _database(tmp_path, found, target, {"take": 0, "matmul": 2})
    records_before = (tmp_path / DB_FILES[1]).read_text()
    assert drop_records(tmp_path, unsafe) == 0
    assert (tmp_path / DB_FILES[1]).read_text() == records_before
    assert _records_by_task(tmp_path, hashes) == {"take": 0, "matmul": 2}


def test_a_cpu_session_registers_the_cpu_tensor_intrinsics_without_the_cuda_ones():
    """bench.tuning.search.cpu_tensor_intrinsics: TVM's CPU tensor intrinsics registered, the CUDA module (37 s to
    parse on 2 cores) not imported; a MetaSchedule task context then builds without importing it either."""
    import subprocess
    import sys

    code = (
        "import sys, tvm\n"
        "from bench.tuning.search import cpu_tensor_intrinsics\n"
        "assert cpu_tensor_intrinsics() is True and cpu_tensor_intrinsics() is False\n"
        "from tvm.s_tir import meta_schedule as ms\n"
        "ms.TuneContext(target=tvm.target.Target('llvm'))\n"
        "mods = set(sys.modules)\n"
        "assert 'tvm.s_tir.tensor_intrin.x86' in mods and 'tvm.s_tir.tensor_intrin.cuda' not in mods, sorted(mods)\n"
        "from tvm.s_tir.tensor_intrin.x86 import VNNI_DOT_16x4_INTRIN\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
