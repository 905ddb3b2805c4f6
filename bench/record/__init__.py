"""The cell record: what one cell of the matrix measured, typed, with one to_json/from_json.

A report (bench.reports) is a list of these plus the run's configuration and environment. The JSON
form is the report schema's (version 1): every field of `Cell` is a key of the cell object; nested
records (`Parity`, `Latency`, `Baseline`) leave out the fields they do not have (None). Reports
written before these classes existed load unchanged (tests/test_reference_reports.py, when present,
loads every committed one). Free-form maps (timings, notes, metrics, op counts, the timing method's
summary, tuning) stay dicts: their keys depend on the stage and the backend.

`from_json` checks every value the reports and `compare` read (names, numbers, samples) and raises
`RecordError` naming the field, which the loaders turn into a one-line usage error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

STATUSES = ("ok", "mismatch", "import_failed", "build_failed", "run_failed", "crashed", "no_device", "timeout", "interrupted",
            "bundled")
# What `compare` matches cells by: what was measured (plus the variant, when there is one).
ID_FIELDS = ("model", "frontend", "target", "scenario", "batch", "seq_len", "past_len", "new_tokens", "shapes", "dtype")


class RecordError(ValueError):
    """A record whose JSON has a missing or malformed field (the message names it)."""


def _number(where: str, value, *, optional: bool = False, positive: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"{where} should be a finite number, found {value!r}")
    if positive and value <= 0:
        raise RecordError(f"{where} should be > 0, found {value!r}")
    return value


def _typed(where: str, value, kind: type | tuple, *, optional: bool = True):
    if value is None and optional:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise RecordError(f"{where} should be {' or '.join(k.__name__ for k in kinds)}, found {value!r}")
    return value


def _dict(where: str, value) -> dict:
    return dict(_typed(where, value, dict) or {})


def _compact(obj) -> dict:
    """A nested record's JSON: its fields, without the ones it does not have."""
    return {k: v for k, v in asdict(obj).items() if v is not None}


@dataclass
class Latency:
    """Latency statistics of one backend in one cell, in milliseconds (the samples are per call)."""

    n: int
    min: float
    median: float
    mean: float
    p90: float
    p99: float
    std: float
    samples: list[float] = field(repr=False)

    @classmethod
    def from_seconds(cls, seconds: list[float]) -> Latency:
        import numpy as np

        if not seconds:
            raise ValueError("no timing samples")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(n=len(ms), min=float(ms.min()), median=float(np.median(ms)), mean=float(ms.mean()),
                   p90=float(np.percentile(ms, 90)), p99=float(np.percentile(ms, 99)),
                   std=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0, samples=[round(float(x), 6) for x in ms])

    def to_json(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d, where: str = "latency") -> Latency:
        _typed(where, d, dict, optional=False)
        samples = d.get("samples")
        if not isinstance(samples, list) or not samples:
            raise RecordError(f"{where}.samples should be a non-empty list of milliseconds, found {samples!r}")
        for i, s in enumerate(samples):
            _number(f"{where}.samples[{i}]", s)
        if all(s == 0 for s in samples):
            raise RecordError(f"{where}.samples are all zero: not a measurement")
        stats = {k: _number(f"{where}.{k}", d.get(k), optional=k != "median") for k in ("min", "median", "mean", "p90", "p99", "std")}
        if any(v is None for v in stats.values()):  # an older or hand-made record: what it lacks, from its samples
            computed = cls.from_seconds([x / 1e3 for x in samples])
            stats = {k: getattr(computed, k) if v is None else v for k, v in stats.items()}
        n = d.get("n", len(samples))
        return cls(n=_typed(f"{where}.n", n, int, optional=False), samples=list(samples), **stats)


@dataclass
class Parity:
    """TVM's outputs against eager's (bench.measure.parity), or generated tokens against eager's."""

    ok: bool
    reason: str = ""
    tol: float | None = None
    rel_l2: float | None = None
    max_abs: float | None = None
    top1_agree: float | None = None
    outputs: dict | None = None  # output name -> {max_abs, rel_l2}
    tokens_identical: bool | None = None  # generate
    first_divergence: int | None = None  # generate: the first new token that differs
    nll_rel_diff: float | None = None  # ppl: eager's and TVM's loss on the text, relative difference

    def to_json(self) -> dict:
        return _compact(self)

    @classmethod
    def from_json(cls, d, where: str = "parity") -> Parity:
        _typed(where, d, dict, optional=False)
        return cls(ok=_typed(f"{where}.ok", d.get("ok"), bool, optional=False), reason=str(d.get("reason") or ""),
                   tol=_number(f"{where}.tol", d.get("tol"), optional=True),
                   rel_l2=_number(f"{where}.rel_l2", d.get("rel_l2"), optional=True),
                   max_abs=_number(f"{where}.max_abs", d.get("max_abs"), optional=True),
                   top1_agree=_number(f"{where}.top1_agree", d.get("top1_agree"), optional=True),
                   outputs=_typed(f"{where}.outputs", d.get("outputs"), dict),
                   tokens_identical=_typed(f"{where}.tokens_identical", d.get("tokens_identical"), bool),
                   first_divergence=_typed(f"{where}.first_divergence", d.get("first_divergence"), int),
                   nll_rel_diff=_number(f"{where}.nll_rel_diff", d.get("nll_rel_diff"), optional=True))


@dataclass
class Baseline:
    """One baseline in one cell: how it was set up, whether it agreed with eager, its latency."""

    status: str  # ok | mismatch | failed
    setup_s: float | None = None
    parity: Parity | None = None
    info: dict | None = None
    latency: Latency | None = None
    error: str | None = None

    def to_json(self) -> dict:
        d = dict(status=self.status, setup_s=self.setup_s, parity=self.parity.to_json() if self.parity else None, info=self.info,
                 latency=self.latency.to_json() if self.latency else None, error=self.error)
        return {k: v for k, v in d.items() if v is not None or k == "parity" and self.status != "failed"}

    @classmethod
    def from_json(cls, d, where: str = "baseline") -> Baseline:
        _typed(where, d, dict, optional=False)
        return cls(status=_typed(f"{where}.status", d.get("status"), str, optional=False),
                   setup_s=_number(f"{where}.setup_s", d.get("setup_s"), optional=True),
                   parity=Parity.from_json(d["parity"], f"{where}.parity") if d.get("parity") is not None else None,
                   info=_typed(f"{where}.info", d.get("info"), dict),
                   latency=Latency.from_json(d["latency"], f"{where}.latency") if d.get("latency") is not None else None,
                   error=_typed(f"{where}.error", d.get("error"), str))


def _memory(where: str, d) -> dict | None:
    """A cell's memory record, its numbers checked."""
    if d is None:
        return None
    _typed(where, d, dict, optional=False)
    _number(f"{where}.weights_mb", d.get("weights_mb"), optional=True)
    for name, m in _dict(f"{where}.backends", d.get("backends")).items():
        _typed(f"{where}.backends.{name}", m, dict, optional=False)
        for key in ("peak_mb", "floor_mb", "model_mb"):
            _number(f"{where}.backends.{name}.{key}", m.get(key), optional=True)
        _typed(f"{where}.backends.{name}.error", m.get("error"), str)
    return d


# Fields a cell has only in some reports: left out of the JSON when absent.
_OPTIONAL = ("traceback", "metrics", "bundle", "pass_times", "pipeline", "verdict", "memory")


@dataclass
class Cell:
    """One (model, frontend, TVM environment) of a run: what was measured, how it went, every number."""

    # what was measured (the id is made of these and the variant)
    model: str
    frontend: str
    target: str
    scenario: str
    batch: int
    seq_len: int
    past_len: int
    new_tokens: int
    shapes: str
    dtype: str
    threads: int | None = None
    variant: str | None = None  # a pipeline variant (+fastmath, -FuseOps, tvm-0.19, ...)
    tvm_env: str | None = None
    id: str = ""
    # how it went
    status: str = "crashed"  # until the cell says otherwise: a worker that dies leaves this
    stage: str | None = None  # the stage in progress, or the one that failed
    error: str | None = None
    unsupported_ops: list[str] = field(default_factory=list)
    # the model and its import
    weights: dict | None = None
    n_params: int | None = None
    timings: dict = field(default_factory=dict)  # export_s, import_s, build_s, cell_s, ...
    source_ops: dict = field(default_factory=dict)
    relax_ops: dict = field(default_factory=dict)
    patches: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    rewrites: dict = field(default_factory=dict)
    target_spec: dict | str | None = None  # TVM 0.27: the target's JSON; Relay (0.19): its string
    tuning: dict | None = None  # the database a build applied: path, hash, records, matched kernels, ...
    # the numbers
    parity: Parity | None = None
    tvm: Latency | None = None
    baselines: dict[str, Baseline] = field(default_factory=dict)
    speedup: dict[str, float] = field(default_factory=dict)  # baseline -> its median / TVM's median
    timing: dict | None = None  # the timing method, the solo check, the machine probe, flags
    peak_rss_mb: float | None = None  # the harness's process (rss_scope says which), not a backend's
    rss_scope: str | None = None
    memory: dict | None = None  # each backend alone in a fresh process: method, weights_mb, backends: {name: peak_mb, floor_mb, model_mb | error}
    metrics: dict | None = None  # validation loss, tokens per second
    traceback: str | None = None
    bundle: dict | None = None  # measured from a bundle: where it was built
    pass_times: list | None = None  # passes reports, the default cell
    pipeline: list | None = None
    verdict: str | None = None  # set by compare on the cells of its own output

    def __post_init__(self) -> None:
        if not self.id:
            self.id = self.make_id()

    def variant_without_env(self) -> str | None:
        """The variant less the TVM environment's name it starts with (`tvm-0.26+fastmath` → `+fastmath`): what
        matches a cell across TVM builds (ab's two sides, a history series)."""
        prefix = f"tvm-{self.tvm_env}"
        variant = self.variant or ""
        return (variant[len(prefix):] if self.tvm_env and variant.startswith(prefix) else variant) or None

    def make_id(self) -> str:
        key = "|".join(str(getattr(self, k)) for k in ID_FIELDS)
        return f"{key}|{self.variant}" if self.variant else key

    def set(self, **changes) -> None:
        """Set several fields at once (a status must be one of STATUSES)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise AttributeError(f"a cell has no field {', '.join(unknown)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"unknown cell status {changes['status']!r}")
        for k, v in changes.items():
            setattr(self, k, v)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def unstable(self) -> bool:
        """Its timing was flagged: a busy machine, or a backend whose solo check moved beyond tolerance."""
        return bool(self.timing and self.timing.get("flags"))

    def latencies(self):
        """(backend, Latency) for TVM and every baseline that was timed."""
        if self.tvm is not None:
            yield "tvm", self.tvm
        for name, b in self.baselines.items():
            if b.latency is not None:
                yield name, b.latency

    def to_json(self) -> dict:
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in _OPTIONAL and v is None:
                continue
            if f.name == "baselines":
                v = {k: b.to_json() for k, b in v.items()}
            elif isinstance(v, (Parity, Latency)):
                v = v.to_json()
            d[f.name] = v
        return d

    @classmethod
    def from_json(cls, d, where: str = "cell") -> Cell:
        _typed(where, d, dict, optional=False)
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        for name in ("model", "frontend", "target", "scenario", "shapes", "dtype", "status"):
            kw[name] = _typed(f"{where}.{name}", d.get(name), str, optional=False)
        for name in ("batch", "seq_len", "past_len", "new_tokens"):
            kw[name] = _typed(f"{where}.{name}", d.get(name, 0), int, optional=False)
        kw["id"] = _typed(f"{where}.id", d.get("id"), str, optional=False)
        for name in ("variant", "tvm_env", "stage", "error", "rss_scope", "traceback", "verdict"):
            kw[name] = _typed(f"{where}.{name}", d.get(name), str)
        kw["threads"] = _typed(f"{where}.threads", d.get("threads"), int)
        kw["n_params"] = _typed(f"{where}.n_params", d.get("n_params"), int)
        kw["peak_rss_mb"] = _number(f"{where}.peak_rss_mb", d.get("peak_rss_mb"), optional=True)
        for name in ("timings", "source_ops", "relax_ops", "notes", "rewrites"):
            kw[name] = _dict(f"{where}.{name}", d.get(name))
        for name in ("weights", "tuning", "timing", "metrics", "bundle"):
            kw[name] = _typed(f"{where}.{name}", d.get(name), dict)
        kw["memory"] = _memory(f"{where}.memory", d.get("memory"))
        kw["target_spec"] = _typed(f"{where}.target_spec", d.get("target_spec"), (dict, str))
        for name in ("unsupported_ops", "patches"):
            kw[name] = list(_typed(f"{where}.{name}", d.get(name), list) or [])
        for name in ("pass_times", "pipeline"):
            kw[name] = _typed(f"{where}.{name}", d.get(name), list)
        kw["parity"] = Parity.from_json(d["parity"], f"{where}.parity") if d.get("parity") is not None else None
        kw["tvm"] = Latency.from_json(d["tvm"], f"{where}.tvm") if d.get("tvm") is not None else None
        baselines = _dict(f"{where}.baselines", d.get("baselines"))
        kw["baselines"] = {name: Baseline.from_json(b, f"{where}.baselines.{name}") for name, b in baselines.items()}
        speedup = _dict(f"{where}.speedup", d.get("speedup"))
        kw["speedup"] = {name: _number(f"{where}.speedup.{name}", v) for name, v in speedup.items()}
        unknown = sorted(set(d) - known)
        if unknown:
            raise RecordError(f"{where} has fields this gptbench does not know: {', '.join(unknown)} (a newer report?)")
        return cls(**kw)
