"""A run's flags (RunConfig: frozen, checked without I/O) and its state (RunState: what prepare and the run find)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

import bench.pipeline.config as C


def _no_io(*_args, **_kwargs):
    raise AssertionError("I/O while a RunConfig was constructed")


def test_a_configuration_is_frozen_and_checked_without_io(monkeypatch, tmp_path):
    """Files, TVM and the RPC tracker are prepare's: a worker rebuilding the flags from JSON repeats none of it."""
    for name in ("Path", "make_target", "device_info", "check_key", "validate_database", "read_progress", "check_text_file"):
        monkeypatch.setattr(C, name, _no_io)
    cfg = C.RunConfig(models=["nanogpt-tiny"], frontends=["export"], db=str(tmp_path / "no-db"), val_text=str(tmp_path / "no.txt"),
                      weights=str(tmp_path / "no.pt"), tuned_after=[60.0], baselines=["ort"])
    assert cfg.baselines == ["eager", "ort"] and cfg.threads >= 1 and cfg.tol == 1e-5  # normalised
    with pytest.raises(FrozenInstanceError):
        cfg.seq_len = 8
    monkeypatch.undo()
    with pytest.raises(ValueError, match="--val-text"):
        C.prepare(cfg)
    (tmp_path / "no.txt").write_text("some text " * 20)
    with pytest.raises(ValueError, match="--db .*no such tuning database directory"):
        C.prepare(cfg)


def test_prepare_checks_the_weights_asked_for(tmp_path):
    cfg = C.RunConfig(models=["nanogpt-tiny"], frontends=["export"], weights=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="--weights .*missing.pt: no such file"):
        C.prepare(cfg)
    ok, state = C.prepare(C.RunConfig(models=["nanogpt-tiny"], frontends=["export"]))
    assert state == C.RunState() and ok.threads >= 1


def test_flags_and_state_travel_to_a_worker_as_one_json_and_come_back_equal():
    cfg = C.RunConfig(models=["nanogpt-tiny"], frontends=["export", "onnx"], seq_len=16, baselines=["ort"], tune_budget=30.0)
    state = C.RunState(dbs={"nanogpt-tiny": "db", "0.26.0|nanogpt-tiny": "db26"}, tuned_now={"nanogpt-tiny": {"from_cache": True}},
                       threads_note="other processes use 1.0 cores")
    data = C.run_json(cfg, state)
    assert data["dbs"] == state.dbs and data["seq_len"] == 16  # a report's config: one flat dict, as before the split
    assert C.run_from_json({**data, "threads_given": True}) == (cfg, state)  # a key of an older report is ignored


def test_each_shape_state_is_its_own():
    state = C.RunState(rpc_device={"mcpu": "znver4"})
    a, b = state.for_shape(), state.for_shape()
    a.dbs["m"] = "db-a"
    assert b.dbs == {} and state.dbs == {} and a.rpc_device == b.rpc_device
    cfg = C.RunConfig(models=["nanogpt-tiny"], frontends=["export"], db=None)
    assert a.db_for(cfg, "m") == "db-a" and b.db_for(cfg, "m") is None
