"""`gptbench timers` end to end on a tiny model: every independent timer runs and is reported.
(What the numbers say is for the benchmark, run by hand on a quiet machine; here only that it works.)"""

from __future__ import annotations

import json


def test_timers_runs_every_independent_timer_and_writes_its_report(gptbench, tmp_path):
    code, out, err = gptbench("timers", "--model", "nanogpt-tiny", "--seq-len", "8", "--repeat", "5", "--warmup", "1",
                              "--solo", "3", "--out", tmp_path)
    assert code in (0, 1), err  # 1: beyond the 10% goal, which a loaded test machine may well be
    report = json.loads(next(tmp_path.glob("*-timers.json")).read_text())
    assert report["schema"] == "gptbench.timers"
    result = report["results"][0]
    for kind in ("eager", "ort", "tvm"):
        alone = result["alone"][kind]
        assert "error" not in alone, alone
        assert alone["median_ms"] > 0 and alone["n"] >= 1
    assert set(result["runs"]) == {"blocks", "interleaved", "blocks again"}
    assert set(result["agreement"]["blocks"]) == {"eager", "ort", "tvm"}
    assert "torch.utils.benchmark.Timer" in out and "| tvm |" in out


def test_timers_refuses_what_it_cannot_check(gptbench, tmp_path):
    code, _, err = gptbench("timers", "--model", "nanogpt-tiny", "--frontend", "export,onnx", "--out", tmp_path)
    assert code == 2 and "one --frontend" in err
