"""The timing plan with fake timers and clocks: round scheduling, idle waits, the solo check."""

from __future__ import annotations

import pytest

from bench.measure.timing import SETTLE_WINDOW_S, TimingPlan, measure, settle


def recording_timers(names, seconds=None):
    calls: list[str] = []
    seconds = seconds or {}
    timers = {n: (lambda n=n: calls.append(n) or seconds.get(n, 1.0)) for n in names}
    return calls, timers


def no_wait():
    return 0.0, True


def test_interleave_rotates_the_order_and_discards_warmup():
    calls, timers = recording_timers("abc")
    samples = measure(timers, TimingPlan(warmup=1, repeat=3, method="interleaved", solo=0)).samples
    assert calls == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}


def test_blocks_give_each_backend_a_warm_up_call_then_a_block_in_rotated_order():
    calls, timers = recording_timers("ab")
    plan = TimingPlan(warmup=1, repeat=4, block=2, solo=0)
    m = measure(timers, plan, settle_fn=no_wait)
    # warm-up a, warm-up b; round 1: a (1 discarded + 2), b (1 + 2); round 2 starts with b
    assert calls == ["a", "b"] + ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3
    assert {k: len(v) for k, v in m.samples.items()} == {"a": 4, "b": 4}
    assert plan.rounds == 2 and m.solo == {}


def test_blocks_stop_at_repeat_when_it_is_not_a_multiple_of_the_block():
    calls, timers = recording_timers("ab")
    m = measure(timers, TimingPlan(warmup=0, repeat=7, block=3, solo=0), settle_fn=no_wait)
    assert {k: len(v) for k, v in m.samples.items()} == {"a": 7, "b": 7}
    assert calls.count("a") == 7 + 3  # one discarded call per block, three blocks


def test_every_block_and_solo_run_waits_for_idle_first():
    waits = []

    def fake_settle():
        waits.append(1)
        return 0.01, len(waits) != 3  # the third wait gives up

    _, timers = recording_timers("ab")
    m = measure(timers, TimingPlan(warmup=1, repeat=4, block=2, solo=3), settle_fn=fake_settle)
    # 2 warm-ups + 2 rounds × 2 blocks + 2 solo runs
    assert len(waits) == 2 + 4 + 2 == len(m.settle_s)
    assert m.unsettled == 1
    assert {k: len(v) for k, v in m.solo.items()} == {"a": 3, "b": 3}


def test_interleaved_method_does_not_wait_between_calls():
    waits = []
    _, timers = recording_timers("ab")
    measure(timers, TimingPlan(warmup=1, repeat=3, method="interleaved", solo=0), settle_fn=lambda: waits.append(1) or (0.0, True))
    assert waits == []


def test_solo_check_flags_a_backend_beyond_ten_percent_and_only_that_one():
    state = {"solo": False}

    def timer(paired, alone):
        return lambda: alone if state["solo"] else paired

    timers = {"tvm": timer(0.010, 0.0104), "ort": timer(0.020, 0.010)}  # ort: 2x slower in the rounds than alone
    m = measure(timers, TimingPlan(warmup=0, repeat=4, block=2, solo=0), settle_fn=no_wait)
    state["solo"] = True
    m.solo = {n: [t() for _ in range(3)] for n, t in timers.items()}
    flags = m.flags()
    assert len(flags) == 1 and flags[0].startswith("ort:") and "-50.0%" in flags[0]
    summary = m.summary(TimingPlan(warmup=0, repeat=4, block=2))
    assert summary["solo"]["ort"]["flagged"] and not summary["solo"]["tvm"]["flagged"]
    assert summary["solo"]["tvm"]["diff"] == pytest.approx(0.04)


class FakeClocks:
    """A wall clock advanced by sleep() and a CPU clock that grows at `busy` cores while busy_until."""

    def __init__(self, busy_until: float, busy: float = 2.0):
        self.now, self.cpu, self.busy_until, self.busy = 0.0, 0.0, busy_until, busy

    def sleep(self, s: float) -> None:
        busy = max(0.0, min(self.now + s, self.busy_until) - self.now)
        self.cpu += busy * self.busy
        self.now += s


def test_settle_waits_until_the_pools_stop_spinning():
    c = FakeClocks(busy_until=0.05)
    waited, idle = settle(0.5, cpu_clock=lambda: c.cpu, clock=lambda: c.now, sleep=c.sleep)
    assert idle and 0.05 <= waited <= 0.05 + 2 * SETTLE_WINDOW_S


def test_settle_gives_up_at_its_limit_when_something_keeps_spinning():
    c = FakeClocks(busy_until=10.0)
    waited, idle = settle(0.1, cpu_clock=lambda: c.cpu, clock=lambda: c.now, sleep=c.sleep)
    assert not idle and 0.1 <= waited < 0.1 + 2 * SETTLE_WINDOW_S


@pytest.mark.parametrize("kw", [dict(method="zigzag"), dict(block=0), dict(repeat=0), dict(solo=-1)])
def test_bad_plans_are_refused(kw):
    with pytest.raises(ValueError):
        TimingPlan(**kw)


def test_machine_probe_sees_a_process_spinning_on_another_core():
    import subprocess
    import sys
    import time

    from bench.measure.timing import MachineProbe

    spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 3: pass"])
    try:
        time.sleep(0.3)
        probe = MachineProbe()
        time.sleep(1.0)  # this process idles; the spinner does not
        m = probe.result()
    finally:
        spinner.kill()
        spinner.wait()
    assert m["others_cores"] >= 0.5, m
    assert not m["quiet"] and "busy" in m["warning"]


def test_machine_verdict_threshold():
    from bench.measure.timing import machine_verdict

    base = dict(steal_cores=0.0, loadavg_before=0.1, loadavg_after=0.1, seconds=1.0)
    assert machine_verdict(dict(base, others_cores=0.05))["quiet"]
    loud = machine_verdict(dict(base, others_cores=0.9))
    assert not loud["quiet"] and "0.90 cores" in loud["warning"]
