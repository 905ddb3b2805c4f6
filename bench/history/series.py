"""Series: the store's points grouped by cell key and machine, each backend judged (bench.history.detect)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from bench.core.errors import UserError
from bench.history.detect import Obs, Verdict, replay

SPARK = "▁▂▃▄▅▆▇█"
# What `check` can fail on: TVM's latency (the compiler under test), any baseline's, a cell that stopped
# being ok (a failed build, a parity mismatch).
RULES = ("tvm", "baselines", "status")
DEFAULT_RULES = ("tvm", "status")


@dataclass
class Series:
    key: str
    machine: str
    points: list[dict] = field(default_factory=list)  # store rows, oldest first

    @property
    def cell(self) -> str:
        return self.key.split(" :: ", 1)[1]

    @property
    def label(self) -> str:
        """model × frontend, scenario and shape, variant: how a person names the cell."""
        p = self.points[-1]
        parts = self.cell.split("|")
        batch, seq, past, new, shapes, dtype = parts[4:10]
        shape = f"b{batch} " + (f"past {past}" if p["scenario"] == "decode" else f"t{seq}") + (f" +{new} new" if new != "0" else "")
        variant = f" {parts[10]}" if len(parts) > 10 else ""
        extra = "".join(f" {v}" for v, default in ((shapes, "static"), (dtype, "float32")) if v != default)
        return f"{p['model']} × {p['frontend']}, {p['target']} {p['scenario']} {shape}{extra}{variant}"

    @property
    def slug(self) -> str:
        import hashlib

        return hashlib.sha256(self.key.encode()).hexdigest()[:12]

    @cached_property
    def backends(self) -> list[str]:
        seen: list[str] = []
        for p in self.points:
            for name in p["latencies"]:
                if name not in seen:
                    seen.append(name)
        return sorted(seen, key=lambda b: (b != "tvm", seen.index(b)))

    def observations(self, backend: str) -> list[tuple[int, Obs]]:
        """(point index, observation) of every point where the backend was timed."""
        out = []
        for i, p in enumerate(self.points):
            lat = p["latencies"].get(backend)
            control = p["latencies"].get("eager") if backend != "eager" else None
            if lat:
                out.append((i, Obs(lat["median"], lat["rel_se"], bool(lat["unstable"]),
                                   (control["median"], control["rel_se"]) if control else None)))
        return out

    @cached_property
    def _verdicts(self) -> dict[str, dict[int, Verdict]]:
        out = {}
        for b in self.backends:
            obs = self.observations(b)
            out[b] = dict(zip([i for i, _ in obs], replay([o for _, o in obs]), strict=True))
        return out

    def verdicts(self, backend: str) -> dict[int, Verdict]:
        """Point index → the verdict it got as the newest point of its time (steps mark the dashboard)."""
        return self._verdicts[backend]

    def newest(self, backend: str) -> Verdict | None:
        """The verdict on the series' newest point, when that point timed the backend."""
        return self._verdicts[backend].get(len(self.points) - 1)

    def last_step(self, backend: str = "tvm") -> tuple[int, Verdict] | None:
        """The most recent step of the backend's series: (the index of its first point, its verdict)."""
        steps = [(i - v.confirmed + 1, v) for i, v in self._verdicts.get(backend, {}).items() if v.step]
        return steps[-1] if steps else None

    def status_change(self) -> str | None:
        """'ok → X' when the newest point failed and the one before it was ok."""
        if len(self.points) >= 2 and self.points[-2]["status"] == "ok" and self.points[-1]["status"] != "ok":
            return f"ok → {self.points[-1]['status']}"
        return None

    def failures(self, rules: tuple[str, ...]) -> list[str]:
        out = []
        if "status" in rules and self.status_change():
            out.append(f"{self.label} [{self.machine}]: {self.status_change()} ({self.points[-1]['run_name']}, {self.points[-1]['created']})")
        for b in self.backends:
            if b == "tvm" and "tvm" not in rules or b != "tvm" and "baselines" not in rules:
                continue
            v = self.newest(b)
            if v is not None and v.kind == "regression":
                out.append(f"{self.label} [{self.machine}]: {b} {v.describe()}")
        return out

    def sparkline(self, backend: str = "tvm", width: int = 20) -> str:
        vals = [o.median for _, o in self.observations(backend)][-width:]
        if not vals:
            return ""
        lo, hi = min(vals), max(vals)
        return "".join(SPARK[0 if hi == lo else min(7, int((v - lo) / (hi - lo) * 8))] for v in vals)


def group(points: list[dict]) -> list[Series]:
    by: dict[str, Series] = {}
    for p in points:
        by.setdefault(p["series"], Series(p["series"], p["machine"])).points.append(p)
    return sorted(by.values(), key=lambda s: (s.machine, s.label))


def parse_rules(text: str | None) -> tuple[str, ...]:
    if not text:
        return DEFAULT_RULES
    rules = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in rules if r not in RULES]
    if bad:
        raise UserError(f"--fail-on {text!r}: unknown rule {bad[0]!r}; choose from {', '.join(RULES)} (comma-separated)")
    return rules


def select(series: list[Series], *, model: str | None = None, frontend: str | None = None, machine: str | None = None,
           match: str | None = None) -> list[Series]:
    """The series whose newest point matches every filter given (model and frontend exactly, machine and
    match as substrings of the machine key and of the series' label or key)."""
    out = []
    for s in series:
        p = s.points[-1]
        if model and p["model"] != model or frontend and p["frontend"] != frontend:
            continue
        if machine and machine.lower() not in s.machine.lower():
            continue
        if match and match.lower() not in s.key.lower() and match.lower() not in s.label.lower():
            continue
        out.append(s)
    return out
