"""Progress and log lines: stderr, flushed, so they interleave with the cell workers' own."""

from __future__ import annotations

import sys
import time


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)



def round_progress(tag: str, every_s: float = 15.0):
    """A progress callback for `measure` that speaks up at most every `every_s` seconds."""
    state = {"last": time.perf_counter()}

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - state["last"] >= every_s and done < total:
            state["last"] = now
            log(f"{tag} timing round {done}/{total}")

    return report
