"""Timing statistics, parity arithmetic, report round trip, sliding-window scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.measure.parity import compare
from bench.measure.textdata import perplexity, window_starts
from bench.record import Cell, Latency
from bench.reports.report import load_report, new_report, write_report


def test_stats_from_known_samples():
    s = Latency.from_seconds([0.001, 0.002, 0.003, 0.004, 0.010])
    assert s.n == 5 and s.min == pytest.approx(1.0) and s.median == pytest.approx(3.0)
    assert s.mean == pytest.approx(4.0) and s.p90 == pytest.approx(7.6)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1))
    assert s.samples == [1.0, 2.0, 3.0, 4.0, 10.0]


def test_parity_catches_shape_nan_and_tolerance():
    ref = [np.ones((2, 3))]
    assert compare(ref, [np.ones((2, 3))], 1e-5)["ok"]
    assert "shape" in compare(ref, [np.ones((3, 2))], 1e-5)["reason"]
    bad = np.ones((2, 3))
    bad[0, 0] = np.nan
    assert "non-finite" in compare(ref, [bad], 1e-5)["reason"]
    r = compare(ref, [np.ones((2, 3)) * 1.001], 1e-5)
    assert not r["ok"] and r["rel_l2"] == pytest.approx(1e-3)


def test_top1_agreement_counts_positions():
    ref = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    got = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    assert compare([ref], [got], 10.0)["top1_agree"] == 0.5


def test_report_round_trip(tmp_path):
    cell = Cell.from_json(dict(id="m|f", model="m", frontend="f", target="llvm", scenario="prefill", shapes="static", dtype="float32",
                               status="ok", tvm=dict(median=1.0, std=0.1, samples=[1.0]),
                               baselines={"eager": dict(status="ok", latency=dict(median=2.0, std=0.1, samples=[2.0]))},
                               speedup={"eager": 2.0}))
    report = new_report("run", "unit test", dict(target="llvm"), {}, [cell])
    paths = write_report(report, tmp_path)
    assert paths["json"].name.endswith("-unit-test.json")
    loaded = load_report(paths["json"])["cells"][0]
    assert loaded.speedup["eager"] == 2.0 and loaded.to_json() == cell.to_json()
    assert "| m | f | ok |" in paths["md"].read_text()


def test_window_starts_score_every_token_once():
    for n, length, stride in [(100, 10, 10), (100, 10, 3), (57, 8, 5), (11, 10, 1)]:
        scored = []
        for begin, first in window_starts(n, length, stride):
            assert begin >= 0 and begin + length <= n - 1
            scored += list(range(begin + first + 1, begin + length + 1))
        assert scored == list(range(1, n)), (n, length, stride)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    vocab = 7
    ids = np.arange(50) % vocab
    result = perplexity(lambda x: np.zeros((1, x.shape[1], vocab)), ids, length=10, stride=4)
    assert result["ppl"] == pytest.approx(vocab)
    assert result["tokens"] == 49 and result["nll"] == pytest.approx(math.log(vocab))
