"""Latency measurement: one-call timers, a timing plan, summary statistics, a solo check.

What a sample is: the latency of one call of one backend, in seconds (reported in ms):
- TVM: the VM's own `time_evaluator` with number=1, repeat=1 (argument conversion outside the
  clock; on CUDA it synchronises the device);
- PyTorch on CPU: `time.perf_counter` around the call under `torch.inference_mode`;
- PyTorch on CUDA: CUDA events around the call, after synchronising;
- ONNX Runtime and other host-side calls: `time.perf_counter` around `session.run`.

How samples are taken (method "blocks", the default): every backend of a cell lives in the same
process, and the measurement goes in **rounds**; a round gives every backend one **block**, in an
order rotated from round to round. A block is: wait until the process is idle (the thread pools
of the backend that ran before have stopped spinning: the process's CPU time stops growing,
checked in 5 ms windows, at most `settle_max_s`), one warm-up call (discarded: it pays for caches
the other backend evicted), then `block` timed calls. So each backend runs as a user would run
it, alone and in a loop, while slow drifts of the machine still fall on every backend alike,
because the blocks alternate all through the measurement.

Why not one call per backend per round (method "interleaved", what this harness did before and
still offers for comparison): the runtimes' thread pools (PyTorch's OpenMP, ONNX Runtime's
intra-op pool, TVM's pool) keep spinning for a while after a call; the next backend's call then
shares the cores with them. Measured on a 2-core znver4 (issue 16): ONNX Runtime read 11.2 ms
interleaved against 5.4 ms alone, eager 19.0 ms against 8.0 ms. Why not one process per backend:
separate processes minutes apart drift by up to 40% on the shared VMs this runs on, and a worker
per backend would have to import, build or compile every backend again.

The solo check: after the rounds, every backend runs one more, longer block on its own (`solo`
calls after settling). Its median is reported next to the paired median; a difference above
`SOLO_TOLERANCE` is flagged in the report and on stderr: either the machine drifted during the
measurement or the backends disturbed each other.

`gptbench timers` (bench/timers.py) checks all this against timers nobody here wrote.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

METHODS = ("blocks", "interleaved")
SOLO_TOLERANCE = 0.10  # |solo median / paired median - 1| above this is flagged
SETTLE_WINDOW_S = 0.005
SETTLE_BUSY = 0.2  # the process counts as idle when it used under 20% of one core in a window


@dataclass(frozen=True)
class TimingPlan:
    """How a cell's backends are timed (see the module docstring)."""

    warmup: int = 5  # calls per backend before the first round, discarded
    repeat: int = 30  # timed samples per backend
    method: str = "blocks"
    block: int = 5  # timed calls per block (method "blocks")
    solo: int = 10  # calls in the solo check per backend (0: no solo check)
    settle_max_s: float = 0.5  # longest wait for the process to go idle before a block

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown timing method {self.method!r}; choose from: {', '.join(METHODS)}")
        if self.repeat < 1 or self.block < 1:
            raise ValueError(f"--repeat and --block must be >= 1, got {self.repeat} and {self.block}")
        if self.warmup < 0 or self.solo < 0 or self.settle_max_s < 0:
            raise ValueError("--warmup, --solo and the settle time must not be negative")

    @property
    def rounds(self) -> int:
        return self.repeat if self.method == "interleaved" else math.ceil(self.repeat / min(self.block, self.repeat))

    def describe(self) -> str:
        if self.method == "interleaved":
            what = f"{self.warmup} warmup calls, then {self.repeat} interleaved rounds of one call per backend"
        else:
            b = min(self.block, self.repeat)
            what = (f"{self.warmup} warmup calls, then {self.rounds} rounds; each round gives every backend a block "
                    f"(idle wait, 1 discarded call, {b} timed calls), order rotated per round")
        return what + (f"; solo check: {self.solo} calls per backend after the rounds" if self.solo else "")


@dataclass
class Measurement:
    samples: dict[str, list[float]]  # seconds, per backend
    solo: dict[str, list[float]]  # seconds, per backend (empty without a solo check)
    settle_s: list[float]  # how long each idle wait took
    unsettled: int  # idle waits that gave up at settle_max_s

    def solo_check(self) -> dict[str, tuple[float, float, float]]:
        """Per backend: (median in the rounds ms, solo median ms, solo / rounds - 1)."""
        import numpy as np

        out = {}
        for name, s in self.solo.items():
            paired = float(np.median(self.samples[name])) * 1e3
            alone = float(np.median(s)) * 1e3
            out[name] = (paired, alone, alone / paired - 1 if paired > 0 else float("nan"))
        return out

    def summary(self, plan: TimingPlan) -> dict:
        """What the report keeps about the method and the solo check (latencies go elsewhere)."""
        import numpy as np

        solo = {name: dict(n=len(self.solo[name]), median=round(alone, 6), paired_median=round(paired, 6), diff=round(diff, 4),
                           flagged=bool(abs(diff) > SOLO_TOLERANCE))
                for name, (paired, alone, diff) in self.solo_check().items()}
        settle = np.asarray(self.settle_s or [0.0]) * 1e3
        return dict(plan=asdict(plan), describe=plan.describe(), rounds=plan.rounds, solo_tolerance=SOLO_TOLERANCE, solo=solo,
                    settle_ms=dict(n=len(self.settle_s), median=round(float(np.median(settle)), 3), max=round(float(settle.max()), 3),
                                   gave_up=self.unsettled))

    def flags(self) -> list[str]:
        """One line per backend whose solo median differs from its paired median beyond the tolerance."""
        return [f"{name}: solo median {alone:.3f} ms vs {paired:.3f} ms in the rounds ({diff * 100:+.1f}%, beyond ±{SOLO_TOLERANCE:.0%})"
                for name, (paired, alone, diff) in self.solo_check().items() if abs(diff) > SOLO_TOLERANCE]


BUSY_OTHERS = 0.25  # other processes using more than a quarter of a core on average: the machine was not quiet


class MachineProbe:
    """CPU used by *other* processes (and stolen by the hypervisor) while a measurement ran, from
    /proc/stat through psutil: system-wide busy time minus this process's own, over the wall time.
    A quiet machine reads close to 0 cores; a compiler on the other core reads about 1."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process()
        self._t0 = time.perf_counter()
        self._sys0 = psutil.cpu_times()
        self._own0 = self._own()
        self._load0 = _loadavg()

    def _own(self) -> float:
        t = self._proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    @staticmethod
    def _busy(t) -> float:
        return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))

    def result(self) -> dict:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        sys1 = self._psutil.cpu_times()
        others = (self._busy(sys1) - self._busy(self._sys0) - (self._own() - self._own0)) / wall
        steal = (getattr(sys1, "steal", 0.0) - getattr(self._sys0, "steal", 0.0)) / wall
        return machine_verdict(dict(others_cores=round(max(others, 0.0), 3), steal_cores=round(max(steal, 0.0), 3),
                                    loadavg_before=self._load0, loadavg_after=_loadavg(), seconds=round(wall, 2)))


def default_threads(usable: int, keep: str | None = None, sample_s: float = 0.5) -> tuple[int, str | None]:
    """The thread count a run takes when --threads is not given: every usable core, less the cores other
    processes are busy on right now (sampled for `sample_s`), at least 1; and a note saying why, when
    the machine is not quiet (None when it is). `keep`: why the count must stay `usable` (then the note
    only warns)."""
    probe = MachineProbe()
    time.sleep(sample_s)
    m = probe.result()
    busy = m["others_cores"] + m["steal_cores"]
    if busy <= BUSY_OTHERS:
        return usable, None
    threads = max(1, usable - round(busy))
    what = (f"other processes use {busy:.2f} of the {usable} usable cores right now (sampled over {m['seconds']} s, "
            f"load average {m['loadavg_after']})")
    if threads < usable and keep:
        return usable, f"{what}: keeping {usable} threads, {keep}"
    if threads < usable:
        return threads, f"{what}: timing with {threads} thread(s) instead of {usable}; --threads N overrides"
    return threads, f"{what}: no core is free, latencies will be unreliable; measure on a quiet machine"


def _loadavg() -> float | None:
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on Linux
        return None


def machine_verdict(m: dict) -> dict:
    """Adds `quiet` and, when not, a one-line `warning` to a probe result."""
    busy = m["others_cores"] + m["steal_cores"]
    m["quiet"] = busy <= BUSY_OTHERS
    if not m["quiet"]:
        m["warning"] = (f"the machine was busy while timing: other processes used {m['others_cores']:.2f} cores and the "
                        f"hypervisor stole {m['steal_cores']:.2f} on average over {m['seconds']} s (load average "
                        f"{m['loadavg_before']} → {m['loadavg_after']}); latencies are unreliable, measure on a quiet machine")
    return m


def settle(max_s: float, cpu_clock=time.process_time, clock=time.perf_counter, sleep=time.sleep) -> tuple[float, bool]:
    """Wait until this process's threads are idle (CPU time grows by under SETTLE_BUSY of one core in
    a SETTLE_WINDOW_S window), at most max_s. Returns (seconds waited, whether it went idle)."""
    start = clock()
    while True:
        c0, w0 = cpu_clock(), clock()
        sleep(SETTLE_WINDOW_S)
        dc, dw = cpu_clock() - c0, clock() - w0
        if dw > 0 and dc <= SETTLE_BUSY * dw:
            return clock() - start, True
        if clock() - start >= max_s:
            return clock() - start, False


def measure(timers: dict[str, Callable[[], float]], plan: TimingPlan, progress=None, settle_fn=None) -> Measurement:
    """Time every backend by `plan`; returns the samples (seconds) and the solo check."""
    settle_fn = settle_fn or (lambda: settle(plan.settle_max_s))
    names = list(timers)
    waits: list[float] = []
    gave_up = 0

    def idle(always: bool = False) -> None:
        nonlocal gave_up
        if always or plan.method == "blocks":
            waited, ok = settle_fn()
            waits.append(waited)
            gave_up += not ok

    for name in names:  # warm-up, one backend at a time
        idle()
        for _ in range(plan.warmup):
            timers[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    block = 1 if plan.method == "interleaved" else min(plan.block, plan.repeat)
    for r in range(plan.rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            take = min(block, plan.repeat - len(samples[name]))
            if take <= 0:
                continue
            idle()
            if plan.method == "blocks":
                timers[name]()  # the block's warm-up call
            samples[name].extend(timers[name]() for _ in range(take))
        if progress is not None:
            progress(r + 1, plan.rounds)
    solo: dict[str, list[float]] = {}
    if plan.solo:
        for name in names:
            idle(always=True)
            timers[name]()
            solo[name] = [timers[name]() for _ in range(plan.solo)]
    return Measurement(samples, solo, waits, gave_up)


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
