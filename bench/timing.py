"""Latency measurement: one-call timers, interleaved rounds, summary statistics.

Every backend in a cell is timed in the same process, in rounds: each round calls every timer
once, in an order rotated from round to round, so slow drifts of the machine (thermal, other
load) fall on all backends alike rather than on whichever ran last. Samples are kept in the
report so that `compare` can test differences on them.

Timers return seconds for one call:
- TVM: the VM's own `time_evaluator` with number=1, repeat=1 (argument conversion outside the
  clock; on CUDA it synchronises the device);
- PyTorch on CPU: `time.perf_counter` around the call under `torch.inference_mode`;
- PyTorch on CUDA: CUDA events around the call, after synchronising.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Stats:
    """Latency statistics in milliseconds."""

    n: int
    min: float
    median: float
    mean: float
    p90: float
    p99: float
    std: float
    samples: list[float] = field(repr=False)

    @classmethod
    def from_seconds(cls, seconds: list[float]) -> Stats:
        if not seconds:
            raise ValueError("no timing samples")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(
            n=len(ms),
            min=float(ms.min()),
            median=float(np.median(ms)),
            mean=float(ms.mean()),
            p90=float(np.percentile(ms, 90)),
            p99=float(np.percentile(ms, 99)),
            std=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
            samples=[round(float(x), 6) for x in ms],
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def interleave(timers: dict[str, Callable[[], float]], warmup: int, repeat: int, progress=None) -> dict[str, list[float]]:
    """Call every timer `warmup` times (discarded), then `repeat` rounds; seconds per timer."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    names = list(timers)
    for _ in range(warmup):
        for name in names:
            timers[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(timers[name]())
        if progress is not None:
            progress(r + 1, repeat)
    return samples


def torch_timer(fn: Callable, inputs: tuple, device: str = "cpu") -> Callable[[], float]:
    """Seconds for one call of fn(*inputs) under inference_mode."""
    import torch

    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def run_cuda() -> float:
            torch.cuda.synchronize()
            with torch.inference_mode():
                start.record()
                fn(*inputs)
                end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3

        return run_cuda

    def run_cpu() -> float:
        with torch.inference_mode():
            t0 = time.perf_counter()
            fn(*inputs)
            return time.perf_counter() - t0

    return run_cpu


def wall_timer(fn: Callable, *args) -> Callable[[], float]:
    """Seconds for one call of fn(*args) by perf_counter (ONNX Runtime and other host-side calls)."""

    def run() -> float:
        t0 = time.perf_counter()
        fn(*args)
        return time.perf_counter() - t0

    return run
