"""Shared helpers for tests that make reports by hand (compare, plot): latency records with a known
median and noise, and a cell's JSON with its id filled in as the harness makes it."""

from __future__ import annotations

import numpy as np

from bench.record import Cell, Latency

NOISE = 0.03  # sigma of the lognormal noise: about 3% spread, like a quiet CPU


def latency(median_ms: float, seed: int, n: int = 30, noise: float = NOISE) -> dict:
    """A latency record's JSON: n lognormal samples around median_ms (deterministic per seed)."""
    ms = median_ms * np.random.default_rng(seed).lognormal(0.0, noise, n)
    return Latency.from_seconds(list(ms / 1e3)).to_json()


def with_id(cell: dict) -> dict:
    """The cell's JSON with the id the harness gives it (what it measured, plus its variant)."""
    return dict(cell, id=Cell.from_json(dict(cell, id="")).id)
