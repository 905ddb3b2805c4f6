"""Remote devices through TVM's RPC tracker, all on loopback: a tracker and two servers started and
stopped by the tests (ports chosen free)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.targets.remote import servers_of, start_farm, stop_farm, tracker_summary

REPO = Path(__file__).resolve().parent.parent
KEY = "gptbench-test"


@pytest.fixture(scope="module")
def farm():
    address, procs = start_farm(2, KEY, 19190 + os.getpid() % 400, lambda msg: None)
    yield address
    stop_farm(procs)
    assert all(p.poll() is not None for p in procs)


def test_run_on_the_device_keeps_parity_and_names_the_device(farm, gptbench, tmp_path):
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", "--frontend", "export", "--scenario", "decode", "--past-len", "12",
                            "--rpc", farm, "--rpc-key", KEY, "--repeat", "4", "--warmup", "1", "--solo", "0", "--out", tmp_path)
    assert code == 0, err[-2000:]
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    cell = report["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    assert cell["parity"]["ok"] and len(cell["parity"]["outputs"]) == 2  # logits and the KV cache, pulled back from the device
    assert cell["tvm"]["n"] == 4 and cell["baselines"] == {}  # nothing but TVM is timed
    remote = cell["notes"]["remote"]
    assert remote["tracker"] == farm and remote["key"] == KEY and len(remote["servers"]) == 2
    assert cell["target_spec"]["mcpu"] == remote["mcpu"] == report["config"]["rpc_device"]["mcpu"]
    assert remote["lib_bytes"] > 0 and "parity reference" in remote["baselines"]
    assert f"Device: TVM ran and was timed on a server of key '{KEY}' at tracker {farm}" in next(tmp_path.glob("*.md")).read_text()


def test_tune_on_the_device_servers_uses_both_and_writes_records(farm, gptbench, tmp_path):
    """16 trials through the two servers; the tracker is watched meanwhile: at some moment both are busy."""
    import threading

    db = tmp_path / "db"
    busy, done = [], threading.Event()

    def watch():
        while not done.is_set():
            queue = tracker_summary(farm).get("queue_info", {}).get(KEY, {})
            busy.append(2 - queue.get("free", 2))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code, out, err = gptbench("tune", "--model", "nanogpt-tiny", "--frontend", "export", "--seq-len", "8", "--trials", "16",
                                  "--only", "matmul", "--rpc", farm, "--rpc-key", KEY, "--db", db)
    finally:
        done.set()
        watcher.join()
    assert code == 0, err[-2000:]
    assert max(busy) == 2, f"never both servers at once: {sorted(set(busy))}"
    records = (db / "database_tuning_record.json").read_text().splitlines()
    assert len(records) >= 8
    meta = json.loads((db / "gptbench-db.json").read_text())
    assert meta["target"]["mcpu"] == tracker_mcpu(farm)


def tracker_mcpu(address: str) -> str:
    from bench.targets.remote import check_key, device_info

    return device_info(address, KEY, check_key(address, KEY))["mcpu"]


@pytest.mark.parametrize("argv,expected", [
    (["--rpc", "nohost"], "expected HOST:PORT"),
    (["--rpc", "127.0.0.1:1"], "no RPC tracker answers there"),
    (["--rpc", "{farm}"], "--rpc needs --rpc-key"),
    (["--rpc", "{farm}", "--rpc-key", "nobody"], "no server of key 'nobody'"),
    (["--rpc", "{farm}", "--rpc-key", KEY, "--baselines", "ort"], "use --baselines none"),
    (["--rpc", "{farm}", "--rpc-key", KEY, "--frontend", "relay-torch"], "--rpc runs llvm prefill or decode"),
])
def test_rpc_usage_errors_are_one_line_exit_2(farm, gptbench, tmp_path, argv, expected):
    argv = [a.replace("{farm}", farm) for a in argv]
    code, _, err = gptbench("run", "--model", "nanogpt-tiny", *argv, "--out", tmp_path)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def test_rpc_up_registers_its_servers_and_stops_them_all(tmp_path):
    log = tmp_path / "up.log"
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "rpc", "up", "--servers", "1", "--key", "up-test",
                                 "--port", str(20190 + os.getpid() % 400)], cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            if "registered" in log.read_text():
                break
            time.sleep(0.5)
        text = log.read_text()
        address = text.split("tracker ")[-1].split(",")[0]
        assert servers_of(tracker_summary(address), "up-test"), text
        pids = [int(p) for p in __import__("re").findall(r"pid (\d+)", text)]
        assert len(pids) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    time.sleep(0.5)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert "stopped" in log.read_text()


def test_a_server_that_dies_mid_tuning_costs_only_its_trials(tmp_path):
    """Two servers; one is killed once the first records are in: the session goes on with the other
    and ends normally, its database valid."""
    address, procs = start_farm(2, "die-test", 21190 + os.getpid() % 400, lambda msg: None)
    db = tmp_path / "db"
    tune = None
    try:
        tune = subprocess.Popen([sys.executable, "-m", "bench.cli", "tune", "--model", "nanogpt-tiny", "--frontend", "export",
                                 "--seq-len", "8", "--trials", "24", "--only", "matmul", "--rpc", address, "--rpc-key", "die-test",
                                 "--db", str(db)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        records = db / "database_tuning_record.json"
        deadline = time.monotonic() + 480  # import, task extraction and the builders' start come first: slow on a busy machine
        while time.monotonic() < deadline:
            if records.exists() and records.read_text().count("\n") >= 4 or tune.poll() is not None:
                break
            time.sleep(0.25)
        assert records.exists(), ("no record before the tuning ended or 480 s passed: " +
                                  (tune.communicate(timeout=60)[0][-2000:] if tune.poll() is not None else "still running"))
        before = records.read_text().count("\n")
        os.killpg(procs[1].pid, signal.SIGKILL)  # the first server, and whatever it was measuring
        out, _ = tune.communicate(timeout=600)
    finally:
        if tune is not None and tune.poll() is None:  # a failed wait above: the tuning must not outlive the test
            tune.kill()
            tune.wait()
        stop_farm(procs)
    assert tune.returncode == 0, out[-3000:]
    after = records.read_text().count("\n")
    assert after > before, out[-2000:]
    meta = json.loads((db / "gptbench-db.json").read_text())
    assert meta["last_session"]["trials"] >= after - before
