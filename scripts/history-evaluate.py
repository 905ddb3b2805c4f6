#!/usr/bin/env python3
"""How the history's step detection fares on real repeated runs (docs/history.md):

- false alarms: every run of every series judged as the newest of the runs before it (the replay the
  dashboard draws), per backend; nothing changed between these runs, so every step is a false alarm;
- power: TVM's medians scaled by 1.1, 1.2 and 1.5 from one run on (a 10%, 20%, 50% slowdown from run
  i, for every i from the fourth), the first and the second run after the change judged against the
  runs before: the first is a suspect, the second (two in a row) a regression that fails `check`.

    scripts/history-evaluate.py STORE [--match TEXT] [--out FILE.md]

STORE is a history store holding the runs (e.g. `gptbench history add DIR --history STORE`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.markdown import md_table  # noqa: E402
from bench.history import detect  # noqa: E402
from bench.history.series import group, select  # noqa: E402
from bench.history.store import load_points, open_store  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--match", default=None, help="only series whose name or key contains this")
    ap.add_argument("--out", default=None, help="also write the Markdown here")
    args = ap.parse_args()
    store = open_store(args.store, create=False)
    chosen = select(group(load_points(store)), match=args.match)
    rows, power = [], []
    for s in chosen:
        for b in s.backends:
            obs = [o for _, o in s.observations(b)]
            verdicts = detect.replay(obs)
            judged = sum(v.kind != "too few points" for v in verdicts)
            alarms = [f"{i + 1}: {v.describe()}" for i, v in enumerate(verdicts) if v.step]
            suspects = sum(v.suspect for v in verdicts)
            unstable = sum(o.unstable for o in obs)
            rows.append([s.label, b, len(obs), unstable, judged, suspects, len(alarms), "; ".join(alarms) or None])
            if b != "tvm":
                continue
            for factor in (1.1, 1.2, 1.5):
                first = second = tried = 0
                for i in range(detect.MIN_POINTS, len(obs) - 1):
                    a, b2 = (replace(o, median=o.median * factor) for o in obs[i:i + 2])
                    tried += 1
                    v1 = detect.judge(obs[:i], a)
                    first += v1.kind in ("regression", "suspect regression")
                    second += detect.judge([*obs[:i], a], b2).kind == "regression"
                power.append([s.label, f"×{factor}", tried, f"{first} ({first / tried:.0%})", f"{second} ({second / tried:.0%})"])
    text = ("## False alarms over unchanged runs\n\n"
            + md_table(["series", "backend", "runs", "flagged unstable", "judged (≥ 3 runs before)", "suspects (one run)",
                         "steps (false alarms)", "where"], rows)
            + "\n## Power: TVM slowed from one run on, judged against the runs before\n\n"
            + md_table(["series", "slowdown", "changes tried", "first run: suspect", "second run: regression (fails check)"], power)
            + f"\nDetector: α = {detect.ALPHA} (one-sided, Student's t at k − 1 degrees of freedom), minimum change "
              f"{detect.MIN_CHANGE:.0%}, at least {detect.MIN_POINTS} earlier points, lookback {detect.LOOKBACK}, {detect.CONFIRM} "
              "runs in a row; TVM judged on its latency or on its ratio to eager (same run), whichever is quieter over the "
              "baseline.\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
