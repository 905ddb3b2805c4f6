"""The cell record: what one cell of the matrix measured, typed, with one to_json/from_json.

A report (bench.reports) is a list of these plus the run's configuration and environment. The JSON
form is the report schema's (version 1): every field of `Cell` is a key of the cell object; nested
records (`Parity`, `Latency`, `Baseline`) leave out the fields they do not have (None). Reports
written before these classes existed load unchanged (tests/test_reference_reports.py, when present,
loads every committed one). Free-form maps (timings, notes, metrics, op counts, the timing method's
summary, tuning) stay dicts: their keys depend on the stage and the backend.

`cells_from_json` is the one validator of a report's cells (the report loaders, `compare` and the
history store all go through it): every value they read is checked (names, numbers, samples, the
statistics against their samples, a speedup against its medians, unique ids), and a `RecordError`
names the report, the cell and the field, which the loaders turn into a one-line usage error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

STATUSES = ("ok", "mismatch", "import_failed", "build_failed", "run_failed", "crashed", "no_device", "timeout", "interrupted",
            "bundled")
# What `compare` matches cells by: what was measured (plus the variant, when there is one).
ID_FIELDS = ("model", "frontend", "target", "scenario", "batch", "seq_len", "past_len", "new_tokens", "shapes", "dtype")


# What every cell of a report has (the rest has defaults, for reports of older versions).
CELL_KEYS = ("id", "model", "frontend", "target", "scenario", "status")
LATENCY_STATS = ("median", "mean", "min", "p90", "p99")
STAT_RTOL = 1e-3  # stored statistics vs the same statistics recomputed from the samples
STAT_ATOL = 1e-6  # ms: statistics and samples are stored rounded to 6 decimals
SPEEDUP_ATOL = 1e-4  # speedups are stored rounded to 4 decimals


class RecordError(ValueError):
    """A record whose JSON has a missing or malformed field (the message names it)."""


def _show(v) -> str:
    """A value for a one-line error message: its repr, shortened."""
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(v) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number", dict: "an object"}.get(type(v), type(v).__name__)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _q(*path: str) -> str:
    """A field's path as the messages name it: "parity"."rel_l2"."""
    return ".".join(f'"{p}"' for p in path)


_EXPECTED = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "a boolean"}


def _number(where: str, name: str, value, *, optional: bool = False, positive: bool = False, nonnegative: bool = False):
    """`value` of field `name` (a _q path) in `where`: a finite number (> 0 or >= 0 when asked), or None when optional."""
    if value is None and optional:
        return None
    sign = "positive " if positive else "non-negative " if nonnegative else ""
    if not _is_number(value) or not math.isfinite(value) or (positive and value <= 0) or (nonnegative and value < 0):
        raise RecordError(f"{where}: {name} is {_show(value)}, not a {sign}finite number")
    return value


def _typed(where: str, name: str, value, kind: type | tuple, *, optional: bool = True):
    if value is None and optional:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        shown = f"{_kind(value)} ({_show(value)})" if dict in kinds or list in kinds else _show(value)
        raise RecordError(f"{where}: {name} is {shown}, not {' or '.join(_EXPECTED.get(k, k.__name__) for k in kinds)}")
    return value


def _dict(where: str, name: str, value) -> dict:
    return dict(_typed(where, name, value, dict) or {})


def stat_of(key: str, ms) -> float:
    """One of LATENCY_STATS of samples in ms, computed as Latency.from_seconds does."""
    import numpy as np

    if key in ("p90", "p99"):
        return float(np.percentile(ms, int(key[1:])))
    return float({"median": np.median, "mean": np.mean, "min": np.min}[key](ms))


def _close(stored: float, computed: float, atol: float) -> bool:
    return abs(stored - computed) <= STAT_RTOL * abs(computed) + atol


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
    def from_json(cls, d, where: str = "cell", backend: str = "tvm") -> Latency:
        """A latency record of `backend` in `where`: every sample a positive finite number of ms, `n` their count,
        and every stored statistic what its samples give (a statistic it lacks, an older or hand-made record's,
        is computed from them)."""
        import numpy as np

        if not isinstance(d, dict) or not isinstance(d.get("samples"), list) or "median" not in d:
            raise RecordError(f"{where} has malformed {backend} latency (needs median and samples)")
        samples = d["samples"]
        if not samples:
            raise RecordError(f'{where}: {backend} latency "samples" is empty (a measured backend has at least one sample)')
        for j, v in enumerate(samples):
            if not _is_number(v) or not math.isfinite(v) or v <= 0:
                why = " (a zero latency: every ratio against it would divide by zero)" if _is_number(v) and v == 0 else ""
                raise RecordError(f'{where}: {backend} latency "samples"[{j}] is {_show(v)}: every sample must be a positive, '
                                  f"finite number of ms{why}")
        ms = np.asarray(samples, dtype=np.float64)
        n = len(samples) if d.get("n") is None else d["n"]
        if not isinstance(n, int) or isinstance(n, bool) or n != len(ms):
            raise RecordError(f'{where}: {backend} latency "n" is {_show(n)} but it has {len(ms)} samples: corrupt report')
        if d["median"] is None:
            raise RecordError(f'{where}: {backend} latency "median" is missing')
        stats = {}
        for key in ("std", *LATENCY_STATS):
            v = d.get(key)
            if v is None:
                stats[key] = float(ms.std(ddof=1)) if key == "std" and len(ms) > 1 else 0.0 if key == "std" else stat_of(key, ms)
                continue
            if not _is_number(v) or not math.isfinite(v):
                raise RecordError(f'{where}: {backend} latency "{key}" is {_show(v)}, not a finite number of ms')
            if key != "std" and not _close(v, computed := stat_of(key, ms), STAT_ATOL):
                raise RecordError(f'{where}: {backend} latency "{key}" is {v:g} ms but its samples give {computed:g} ms: '
                                  "corrupt report (the stored statistics do not match the samples)")
            stats[key] = v
        return cls(n=n, samples=list(samples), **stats)


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
    def from_json(cls, d, where: str = "cell", *path: str) -> Parity:
        """`path`: where in the cell the record is (default "parity"; a baseline's: "baselines", NAME, "parity")."""
        path = path or ("parity",)
        _typed(where, _q(*path), d, dict, optional=False)

        def num(key, **kw):
            return _number(where, _q(*path, key), d.get(key), optional=True, **kw)

        return cls(ok=_typed(where, _q(*path, "ok"), d.get("ok"), bool, optional=False), reason=str(d.get("reason") or ""),
                   tol=num("tol", nonnegative=True), rel_l2=num("rel_l2", nonnegative=True), max_abs=num("max_abs"),
                   top1_agree=num("top1_agree"), outputs=_typed(where, _q(*path, "outputs"), d.get("outputs"), dict),
                   tokens_identical=_typed(where, _q(*path, "tokens_identical"), d.get("tokens_identical"), bool),
                   first_divergence=_typed(where, _q(*path, "first_divergence"), d.get("first_divergence"), int),
                   nll_rel_diff=num("nll_rel_diff"))


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
    def from_json(cls, d, where: str = "cell", name: str = "eager") -> Baseline:
        path = ("baselines", name)
        _typed(where, _q(*path), d, dict, optional=False)
        return cls(status=_typed(where, _q(*path, "status"), d.get("status"), str, optional=False),
                   setup_s=_number(where, _q(*path, "setup_s"), d.get("setup_s"), optional=True),
                   parity=Parity.from_json(d["parity"], where, *path, "parity") if d.get("parity") is not None else None,
                   info=_typed(where, _q(*path, "info"), d.get("info"), dict),
                   latency=Latency.from_json(d["latency"], where, name) if d.get("latency") is not None else None,
                   error=_typed(where, _q(*path, "error"), d.get("error"), str))


def _memory(where: str, d) -> dict | None:
    """A cell's memory record, its numbers checked."""
    if d is None:
        return None
    _typed(where, _q("memory"), d, dict, optional=False)
    _number(where, _q("memory", "weights_mb"), d.get("weights_mb"), optional=True)
    for name, m in _dict(where, _q("memory", "backends"), d.get("backends")).items():
        _typed(where, _q("memory", "backends", name), m, dict, optional=False)
        for key in ("peak_mb", "floor_mb", "model_mb"):
            _number(where, _q("memory", "backends", name, key), m.get(key), optional=True)
        _typed(where, _q("memory", "backends", name, "error"), m.get("error"), str)
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
        """A cell from its JSON, every field checked (RecordError naming `where` and the field)."""
        _typed(where, "the cell", d, dict, optional=False)
        missing = [k for k in CELL_KEYS if k not in d]
        if missing:
            raise RecordError(f"{where} lacks {', '.join(missing)}")
        kw: dict[str, Any] = {}
        for name in ("model", "frontend", "target", "scenario", "shapes", "dtype", "status"):
            kw[name] = _typed(where, _q(name), d.get(name), str, optional=False)
        for name in ("batch", "seq_len", "past_len", "new_tokens"):
            kw[name] = _typed(where, _q(name), d.get(name, 0), int, optional=False)
        kw["id"] = _typed(where, _q("id"), d.get("id"), str, optional=False)
        for name in ("variant", "tvm_env", "stage", "error", "rss_scope", "traceback", "verdict"):
            kw[name] = _typed(where, _q(name), d.get(name), str)
        for name in ("threads", "n_params"):
            kw[name] = _typed(where, _q(name), d.get(name), int)
        kw["peak_rss_mb"] = _number(where, _q("peak_rss_mb"), d.get("peak_rss_mb"), optional=True)
        for name in ("timings", "source_ops", "relax_ops", "notes", "rewrites"):
            kw[name] = _dict(where, _q(name), d.get(name))
        for name in ("export_s", "import_s", "build_s"):
            _number(where, _q("timings", name), kw["timings"].get(name), optional=True, nonnegative=True)
        for name in ("weights", "tuning", "timing", "metrics", "bundle"):
            kw[name] = _typed(where, _q(name), d.get(name), dict)
        kw["memory"] = _memory(where, d.get("memory"))
        kw["target_spec"] = _typed(where, _q("target_spec"), d.get("target_spec"), (dict, str))
        for name in ("unsupported_ops", "patches"):
            kw[name] = list(_typed(where, _q(name), d.get(name), list) or [])
        for name in ("pass_times", "pipeline"):
            kw[name] = _typed(where, _q(name), d.get(name), list)
        kw["parity"] = Parity.from_json(d["parity"], where) if d.get("parity") is not None else None
        kw["tvm"] = Latency.from_json(d["tvm"], where, "tvm") if d.get("tvm") is not None else None
        if d.get("baselines") is not None and not isinstance(d["baselines"], dict):
            raise RecordError(f'{where} has malformed "baselines" (an object of backend → record, not {type(d["baselines"]).__name__})')
        kw["baselines"] = {name: Baseline.from_json(b, where, name) for name, b in (d.get("baselines") or {}).items()}
        kw["speedup"] = _speedups(where, d.get("speedup"), kw["tvm"], kw["baselines"])
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise RecordError(f"{where} has fields this gptbench does not know: {', '.join(unknown)} (a newer report?)")
        return cls(**kw)


def _speedups(where: str, d, tvm: Latency | None, baselines: dict[str, Baseline]) -> dict[str, float]:
    """A cell's speedups: each a positive number, and where both latencies are in the cell, their medians' ratio."""
    import numpy as np

    speedup = _dict(where, _q("speedup"), d)
    for name, v in speedup.items():
        _number(where, _q("speedup", name), v, positive=True)
        b = baselines.get(name)
        if tvm is not None and b is not None and b.latency is not None:
            computed = float(np.median(b.latency.samples)) / float(np.median(tvm.samples))
            if not _close(v, computed, SPEEDUP_ATOL):
                raise RecordError(f'{where}: "speedup"."{name}" is {v:g} but the samples give {computed:.4f} '
                                  f"({name} median / tvm median): corrupt report")
    return speedup


def cells_from_json(cells, name: str) -> list[Cell]:
    """The one validator of a report's cells (read_report, load_report, compare, the history store): each cell's
    fields (Cell.from_json) and their ids, unique and non-empty; RecordError naming `name`, the cell and the field."""
    if not isinstance(cells, list):
        raise RecordError(f'{name}: "cells" must be a list')
    seen: set[str] = set()
    out = []
    for i, d in enumerate(cells):
        cid = d.get("id") if isinstance(d, dict) else None
        where = f"{name}: cell {i}" + (f" ({' '.join(cid.split())})" if isinstance(cid, str) and cid.strip() else "")
        if isinstance(d, dict) and "id" in d and (not isinstance(cid, str) or not cid):
            raise RecordError(f'{where}: "id" is {_show(cid)}, not a non-empty string')
        if cid in seen:
            raise RecordError(f'{where}: "id" appears twice in the report: cells could not be matched')
        out.append(Cell.from_json(d, where))
        seen.add(cid)
    return out
