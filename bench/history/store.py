"""The history store: every run's cells kept, with their samples and identity, in one SQLite file (the
default) or a PostgreSQL database (a team's or a CI farm's), through SQLAlchemy Core.

Tables (prefixed gptbench_, so a shared database keeps them apart):
    meta        schema and version of the store
    machines    one row per machine identity: CPU model, mcpu, cores (+ GPU) make its key; memory,
                kernel, hypervisor and host name as first seen
    runs        one row per report added (its SHA-256 is unique: adding a report twice adds it once),
                with the report itself, the harness commit and the versions
    points      one row per cell of a run: its series key, status, parity, timing flags, TVM identity,
                the weights it ran with
    latencies   one row per backend timed in a cell: median, samples, the median's uncertainty

A series is one cell key (what was measured, the variant less the TVM environment's name) on one machine
identity (bench.history.series). Every add is one transaction: an interrupted or failed add leaves the
store as it was; concurrent adds serialise (SQLite: BEGIN IMMEDIATE; PostgreSQL: a unique report digest,
retried on conflict)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, MetaData, String, Table, Text, create_engine, event, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError

from bench.core.errors import UserError
from bench.record import ID_FIELDS, Cell
from bench.reports.report import checked_cells

SCHEMA = "gptbench.history"
SCHEMA_VERSION = 1
DEFAULT_STORE = "results/history.sqlite"
ENV_VAR = "GPTBENCH_HISTORY"
SQLITE_MAGIC = b"SQLite format 3\x00"

metadata = MetaData()
meta_t = Table("gptbench_meta", metadata,
               Column("key", String(64), primary_key=True),
               Column("value", Text, nullable=False))
machines_t = Table("gptbench_machines", metadata,
                   Column("id", Integer, primary_key=True, autoincrement=True),
                   Column("key", String(500), unique=True, nullable=False),
                   Column("cpu", Text), Column("mcpu", Text), Column("cores", Integer), Column("gpu", Text),
                   Column("memory_gb", Float), Column("kernel", Text), Column("hypervisor", Text), Column("hostname", Text))
runs_t = Table("gptbench_runs", metadata,
               Column("id", Integer, primary_key=True, autoincrement=True),
               Column("digest", String(64), unique=True, nullable=False),
               Column("name", Text, nullable=False), Column("kind", String(32), nullable=False),
               Column("created", String(40), nullable=False), Column("added", String(40), nullable=False),
               Column("source", Text), Column("command", Text),
               Column("harness_commit", String(64)), Column("harness_dirty", Boolean),
               Column("machine_id", Integer, ForeignKey("gptbench_machines.id"), nullable=False),
               Column("tvm_version", Text), Column("torch", Text), Column("onnxruntime", Text),
               Column("partial", Boolean, nullable=False),
               Column("report", Text, nullable=False))
points_t = Table("gptbench_points", metadata,
                 Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("run_id", Integer, ForeignKey("gptbench_runs.id", ondelete="CASCADE"), nullable=False, index=True),
                 Column("position", Integer, nullable=False),
                 Column("series", String(1000), nullable=False, index=True),
                 Column("cell_id", Text, nullable=False),
                 Column("model", Text), Column("frontend", Text), Column("target", Text), Column("scenario", Text),
                 Column("variant", Text), Column("tvm_env", Text),
                 Column("tvm_version", Text), Column("tvm_commit", Text), Column("tvm_flags", Text),
                 Column("weights", Text),
                 Column("status", String(32), nullable=False), Column("parity_ok", Boolean),
                 Column("unstable", Boolean, nullable=False), Column("flags", Text))
latencies_t = Table("gptbench_latencies", metadata,
                    Column("point_id", Integer, ForeignKey("gptbench_points.id", ondelete="CASCADE"), primary_key=True),
                    Column("backend", String(64), primary_key=True),
                    Column("median", Float, nullable=False), Column("n", Integer, nullable=False),
                    Column("rel_se", Float, nullable=False), Column("solo_diff", Float),
                    Column("unstable", Boolean, nullable=False),
                    Column("samples", Text, nullable=False))
TABLES = [t.name for t in metadata.sorted_tables]


# ----------------------------------------------------------------------------------------- identity
def machine_identity(env: dict) -> dict:
    """The machine a report was measured on, from its environment: the key (what makes two runs
    comparable: CPU model, TVM's mcpu for it, usable cores, the GPU where one was used) and what else is
    known (memory, kernel, hypervisor: in reports from 2026-12-07 on)."""
    tvm = env.get("tvm") or {}
    gpu = env.get("gpu") or {}
    gpu_name = gpu.get("name") if isinstance(gpu, dict) else None
    cpu, mcpu, cores = env.get("cpu") or "unknown CPU", tvm.get("host_mcpu") or tvm.get("mcpu"), env.get("cores")
    key = f"{cpu} | {mcpu or 'mcpu?'} | {cores or '?'}c" + (f" | {gpu_name}" if gpu_name else "")
    kernel = env.get("kernel")
    if not kernel and env.get("os"):  # older reports: platform.platform() is "Linux-<release>-<arch>-with-…"
        m = re.match(r"Linux-(.+?)-(x86_64|aarch64|arm64)", env["os"])
        kernel = m.group(1) if m else None
    return dict(key=key, cpu=cpu, mcpu=mcpu, cores=cores, gpu=gpu_name, memory_gb=env.get("memory_gb"), kernel=kernel,
                hypervisor=env.get("hypervisor"), hostname=env.get("hostname"))


def cell_key(cell: Cell) -> str:
    """The cell's id with the TVM environment's name taken out of its variant: one series follows a cell
    across TVM builds (bench.ab matches its two sides the same way)."""
    key = "|".join(str(getattr(cell, k)) for k in ID_FIELDS)
    variant = cell.variant_without_env()
    return f"{key}|{variant}" if variant else key


def series_key(machine_key: str, cell: Cell) -> str:
    return f"{machine_key} :: {cell_key(cell)}"


def rel_se(samples_ms: list[float]) -> float:
    """The uncertainty of a median from its samples, on the log scale (≈ relative): 1.2533 × the samples'
    robust spread (1.4826 × MAD) / √n, over the median. Robust to the odd slow call."""
    x = np.asarray(samples_ms, dtype=np.float64)
    med = float(np.median(x))
    if len(x) < 2 or med <= 0:
        return 0.0
    mad = float(np.median(np.abs(x - med)))
    return 1.2533 * 1.4826 * mad / np.sqrt(len(x)) / med


def _tvm_identity(cell: Cell, env: dict) -> tuple[str | None, str | None, str | None]:
    """(version, commit, build flags as JSON) of the TVM a cell ran: its build notes where the report has
    them, else the run's own TVM when the cell used it, else the environment's name."""
    build = (cell.notes or {}).get("tvm_build") or {}
    flags = build.get("flags")
    run_version = (env.get("tvm") or {}).get("version")
    own = not cell.tvm_env or (run_version or "").startswith(cell.tvm_env)
    version = build.get("version") or (run_version if own else cell.tvm_env)
    return version, build.get("commit"), json.dumps(flags, sort_keys=True) if flags else None


def backend_unstable(timing: dict, backend: str) -> bool:
    """Was this backend's timing in the cell flagged: its own solo check beyond tolerance, or any flag that
    is not a solo check (a busy machine, which disturbs every backend)."""
    flags = timing.get("flags") or []
    return any(not f.startswith("solo check: ") or f.startswith(f"solo check: {backend}: ") for f in flags)


def _weights(cell: Cell) -> str | None:
    w = cell.weights or {}
    return w.get("source") or (f"{w.get('kind')}" if w.get("kind") else None)


# ------------------------------------------------------------------------------------------- opening
@dataclass
class Store:
    engine: Engine
    where: str  # the path or the URL with its password hidden

    def close(self) -> None:
        self.engine.dispose()


def resolve(spec: str | None, default: str = DEFAULT_STORE) -> str:
    """--history, else $GPTBENCH_HISTORY, else the default (results/history.sqlite; a run's: beside its reports)."""
    return spec or os.environ.get(ENV_VAR) or default


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # pysqlite's own BEGIN off: ours below
        dbapi_conn.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # writers queue here, not halfway through a transaction

    return engine


def _engine(spec: str) -> tuple[Engine, str]:
    if "://" not in spec:
        path = Path(spec)
        if path.is_dir():
            raise UserError(f"--history {spec}: is a directory; name a store file (e.g. {DEFAULT_STORE}) or a postgresql:// URL")
        if path.is_file() and path.stat().st_size:
            with open(path, "rb") as f:
                if f.read(16) != SQLITE_MAGIC:
                    raise UserError(f"--history {spec}: not a gptbench history store (not an SQLite file); name a new file "
                                    "or a store gptbench made")
        elif not path.parent.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"--history {spec}: cannot create its directory ({e.strerror or e})") from None
        return _sqlite_engine(f"sqlite:///{path.resolve()}"), str(path)
    try:
        url = make_url(spec)
    except ArgumentError:
        raise UserError(f"--history {spec}: not a database URL (expected postgresql://USER@HOST[:PORT]/DB or a file path)") from None
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(spec), spec
    if url.get_backend_name() != "postgresql":
        raise UserError(f"--history {_hide_password(spec)}: unsupported database {url.get_backend_name()!r}; use a "
                        "postgresql:// URL or an SQLite file path")
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 10}, pool_pre_ping=True)
    except (ArgumentError, ImportError, ModuleNotFoundError) as e:
        raise UserError(f"--history {_hide_password(spec)}: {e}; the PostgreSQL driver is `pip install 'psycopg[binary]'`") from None
    return engine, _hide_password(spec)


def open_store(spec: str | None = None, *, create: bool = True) -> Store:
    """The store at spec (a path or URL; see resolve), made if it is new and create; UserError (one line)
    for a file or database that is not a gptbench store, a newer store, or a server that does not answer."""
    spec = resolve(spec)
    if not create and "://" not in spec and not Path(spec).exists():
        raise UserError(f"--history {spec}: no gptbench history store there yet; `gptbench history add REPORT…` makes one "
                        "(and `run` adds to one)")
    engine, where = _engine(spec)
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
    except OperationalError as e:
        engine.dispose()
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e).splitlines()[0]
        if "file is not a database" in reason:
            raise UserError(f"--history {where}: not a gptbench history store (not an SQLite database)") from None
        raise UserError(f"--history {where}: cannot open the store ({reason})") from None
    except SQLAlchemyError as e:
        engine.dispose()
        raise UserError(f"--history {where}: cannot open the store ({str(e).splitlines()[0]})") from None
    store = Store(engine, where)
    if meta_t.name in names:
        _check_meta(store)
        missing = [t for t in TABLES if t not in names]
        if missing:
            store.close()
            raise UserError(f"--history {where}: a damaged gptbench store (tables {', '.join(missing)} missing)")
        return store
    others = sorted(n for n in names if not n.startswith("gptbench_"))
    if "://" not in spec and others:
        store.close()
        raise UserError(f"--history {where}: an SQLite database, but not a gptbench history store (it has tables "
                        f"{', '.join(others[:5])}); name a new file")
    if not create:
        store.close()
        raise UserError(f"--history {where}: no gptbench history store there yet; `gptbench history add REPORT…` makes one")
    with engine.begin() as conn:
        metadata.create_all(conn)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        conn.execute(meta_t.insert(), [dict(key="schema", value=SCHEMA), dict(key="schema_version", value=str(SCHEMA_VERSION)),
                                       dict(key="created", value=now)])
    return store


def _check_meta(store: Store) -> None:
    with store.engine.connect() as conn:
        rows = dict(conn.execute(select(meta_t.c.key, meta_t.c.value)).all())
    if rows.get("schema") != SCHEMA:
        store.close()
        raise UserError(f"--history {store.where}: not a gptbench history store (its meta table says {rows.get('schema')!r})")
    if rows.get("schema_version") != str(SCHEMA_VERSION):
        store.close()
        raise UserError(f"--history {store.where}: history store version {rows.get('schema_version')}; this gptbench reads "
                        f"version {SCHEMA_VERSION}")


# ---------------------------------------------------------------------------------------------- adding
@dataclass
class Prepared:
    """A report checked and turned into rows, before any write."""

    source: str
    digest: str
    run: dict
    machine: dict
    points: list[tuple[dict, list[dict]]]  # (point row, its latency rows)


def prepare(report: dict, source: str) -> Prepared:
    """The rows of one report (read by bench.reports.report.read_report); UserError naming a malformed cell."""
    digest = hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()
    env = report.get("environment") or {}
    if not isinstance(env, dict):
        raise UserError(f"{source}: \"environment\" should be an object")
    machine = machine_identity(env)
    versions = env.get("versions") or {}
    git = env.get("git") or {}
    run = dict(digest=digest, name=str(report.get("name") or "run"), kind=str(report.get("kind")), created=str(report.get("created")),
               source=source, command=json.dumps(report.get("command") or []), harness_commit=git.get("commit"),
               harness_dirty=git.get("dirty"), tvm_version=(env.get("tvm") or {}).get("version"), torch=versions.get("torch"),
               onnxruntime=versions.get("onnxruntime"), partial=bool(report.get("partial")),
               report=json.dumps(report, default=str))
    points = []
    for i, cell in enumerate(checked_cells(report.get("cells") or [], source)):
        version, commit, flags = _tvm_identity(cell, env)
        timing = cell.timing or {}
        point = dict(position=i, series=series_key(machine["key"], cell), cell_id=cell.id, model=cell.model, frontend=cell.frontend,
                     target=cell.target, scenario=cell.scenario, variant=cell.variant, tvm_env=cell.tvm_env, tvm_version=version,
                     tvm_commit=commit, tvm_flags=flags, weights=_weights(cell), status=cell.status,
                     parity_ok=cell.parity.ok if cell.parity else None, unstable=cell.unstable,
                     flags=json.dumps(timing.get("flags") or []))
        solo = timing.get("solo") or {}
        lats = [dict(backend=name, median=lat.median, n=lat.n, rel_se=rel_se(lat.samples), solo_diff=(solo.get(name) or {}).get("diff"),
                     unstable=backend_unstable(timing, name), samples=json.dumps(lat.samples))
                for name, lat in cell.latencies()] if cell.status == "ok" else []
        points.append((point, lats))
    return Prepared(source, digest, run, machine, points)


@dataclass
class Added:
    source: str
    run_id: int | None  # None: the report was in the store already
    cells: int


def add(store: Store, prepared: list[Prepared]) -> list[Added]:
    """Add prepared reports in one transaction (all or none); a report already in the store is skipped."""
    for attempt in range(5):
        try:
            with store.engine.begin() as conn:
                return [_add_one(conn, p) for p in prepared]
        except IntegrityError:  # PostgreSQL: another add committed the same report or machine meanwhile
            if attempt == 4:
                raise
        except OperationalError as e:
            raise UserError(f"--history {store.where}: could not add ({str(e.orig or e).splitlines()[0]}); the store is unchanged") from None
    raise AssertionError("unreachable")


def _add_one(conn, p: Prepared) -> Added:
    found = conn.execute(select(runs_t.c.id).where(runs_t.c.digest == p.digest)).first()
    if found:
        return Added(p.source, None, len(p.points))
    machine_id = conn.execute(select(machines_t.c.id).where(machines_t.c.key == p.machine["key"])).scalar()
    if machine_id is None:
        machine_id = conn.execute(machines_t.insert().values(**p.machine)).inserted_primary_key[0]
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    run_id = conn.execute(runs_t.insert().values(**p.run, added=now, machine_id=machine_id)).inserted_primary_key[0]
    for point, lats in p.points:
        point_id = conn.execute(points_t.insert().values(**point, run_id=run_id)).inserted_primary_key[0]
        if lats:
            conn.execute(latencies_t.insert(), [dict(lat, point_id=point_id) for lat in lats])
    return Added(p.source, run_id, len(p.points))


# --------------------------------------------------------------------------------------------- reading
def load_points(store: Store) -> list[dict]:
    """Every point with its run's time, name and machine, and its latencies by backend, oldest first."""
    j = points_t.join(runs_t, points_t.c.run_id == runs_t.c.id).join(machines_t, runs_t.c.machine_id == machines_t.c.id)
    q = select(points_t, runs_t.c.created, runs_t.c.name.label("run_name"), runs_t.c.source, runs_t.c.harness_commit,
               runs_t.c.torch, machines_t.c.key.label("machine")).select_from(j) \
        .order_by(runs_t.c.created, runs_t.c.id, points_t.c.position)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
        lat_rows = conn.execute(select(latencies_t)).all()
    by_point: dict[int, dict] = {}
    for r in lat_rows:
        m = r._mapping
        by_point.setdefault(m["point_id"], {})[m["backend"]] = dict(median=m["median"], n=m["n"], rel_se=m["rel_se"],
                                                                    solo_diff=m["solo_diff"], unstable=m["unstable"],
                                                                    samples=json.loads(m["samples"]))
    for r in rows:
        r["latencies"] = by_point.get(r["id"], {})
        r["flags"] = json.loads(r["flags"] or "[]")
    return rows


def run_report(store: Store, run_id: int) -> dict:
    with store.engine.connect() as conn:
        text = conn.execute(select(runs_t.c.report).where(runs_t.c.id == run_id)).scalar()
    return json.loads(text)


def runs(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(runs_t.c.id, runs_t.c.name, runs_t.c.created, runs_t.c.source,
                                                              runs_t.c.kind).order_by(runs_t.c.created, runs_t.c.id))]


def counts(store: Store) -> dict[str, int]:
    from sqlalchemy import func

    with store.engine.connect() as conn:
        return {t.name.removeprefix("gptbench_"): conn.execute(select(func.count()).select_from(t)).scalar()
                for t in (runs_t, points_t, latencies_t, machines_t)}


# ------------------------------------------------------------------------------------------ finding
def is_report_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(200)
    except OSError:
        return False
    return b'"schema": "gptbench.report"' in head or b'"schema":"gptbench.report"' in head


def find_reports(paths: list[str]) -> tuple[list[Path], int]:
    """The report files named (each must be one: read_report then says what is wrong with it), and those
    under each named directory (any depth; other JSON there, such as tuning databases, `timers` or `ab`
    results, is passed over and counted)."""
    found, passed_over = [], 0
    for spec in paths:
        p = Path(spec)
        if p.is_dir():
            for f in sorted(p.rglob("*.json")):
                if is_report_file(f):
                    found.append(f)
                else:
                    passed_over += 1
        elif p.exists() or not any(ch in spec for ch in "*?["):
            found.append(p)
        else:
            raise UserError(f"{spec}: no such file")
    return found, passed_over
