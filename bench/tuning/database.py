"""What a tuning database is: where it lives, what it was tuned for, whether a run may apply it.

A database is MetaSchedule's JSON pair (`database_workload.json`, `database_tuning_record.json`) with
`gptbench-db.json` beside it (TVM version, target, model, shapes, the frontends whose kernels it holds,
prepack, trials, wall time).
The repository keeps its databases packed (`database_*.json.xz`, scripts/pack-tuning-dbs.py; git
ignores the plain files): every reader here unpacks them first (`unpack`), to the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bench.core.errors import UserError
from bench.core.markdown import md_table
from bench.scenarios import SCENARIOS

META_FILE = "gptbench-db.json"



META_FORMAT = "gptbench-tuning-db-v1"



DB_FILES = ("database_workload.json", "database_tuning_record.json")



TUNING_ROOT = Path("results") / "tuning"



def target_fingerprint(tinfo) -> dict:
    spec = dict(tinfo.spec)
    if spec.get("kind") == "cuda":
        return dict(kind="cuda", arch=spec["arch"])
    return dict(kind="llvm", mcpu=spec["mcpu"], num_cores=spec["num-cores"])



def key_of(fp: dict) -> str:
    """'llvm-znver5-2c', 'cuda-sm_90': a target fingerprint as the database directories name it."""
    return f"cuda-{fp.get('arch')}" if fp.get("kind") == "cuda" else f"llvm-{fp.get('mcpu')}-{fp.get('num_cores')}c"


def target_key(tinfo) -> str:
    return key_of(target_fingerprint(tinfo))


def target_key_of(meta: dict | None) -> str:
    """The target key of the CPU or GPU a database was tuned for."""
    return key_of((meta or {}).get("target") or {})



def default_db_dir(model: str, scenario: str, batch: int, seq_len: int, past_len: int, tinfo, prepack: bool,
                   fast_math: bool = False, root: str | Path | None = None) -> Path:
    import tvm

    shape = f"t{seq_len}" if SCENARIOS[scenario].length == "seq_len" else f"p{past_len}"
    name = f"{model}-{scenario}-b{batch}-{shape}" + ("-prepack" if prepack else "") + ("-fastmath" if fast_math else "")
    return Path(root or TUNING_ROOT) / build_tag(tvm.__version__) / target_key(tinfo) / name


def build_tag(version: str) -> str:
    """`tvm-VERSION` for a release; a development version (two builds may share it) also gets a hash of
    the interpreter that runs it, so that two dev builds never share a database."""
    import hashlib
    import sys

    if "dev" not in version:
        return f"tvm-{version}"
    return f"tvm-{version}-{hashlib.sha256(sys.executable.encode()).hexdigest()[:8]}"



def unpack(db_dir) -> None:
    """Make the plain MetaSchedule files of a packed database (NAME.xz beside NAME) where they are missing
    or older than the packed file (a checkout brought a newer one); a plain file newer than its packed one
    (a later tuning session appended to it) is kept. Atomic: a reader never sees half a file."""
    import lzma
    import os
    import shutil
    import tempfile

    d = Path(db_dir)
    for name in DB_FILES:
        packed, plain = d / f"{name}.xz", d / name
        if not packed.is_file() or plain.is_file() and plain.stat().st_size and plain.stat().st_mtime >= packed.stat().st_mtime:
            continue  # nothing packed, or a plain file already made (or appended to since)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out, lzma.open(packed) as src:
                shutil.copyfileobj(src, out)
            os.replace(tmp, plain)
        except (lzma.LZMAError, EOFError):
            Path(tmp).unlink(missing_ok=True)
            raise UserError(f"{packed} is corrupt (not an xz file, or cut short); restore it from git") from None
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise UserError(f"cannot unpack {packed} there ({e.strerror or e}); copy the database somewhere writable") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_meta(db_dir) -> dict | None:
    path = Path(db_dir) / META_FILE
    if not path.is_file():
        return None
    unpack(db_dir)
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is corrupt ({e.msg}, line {e.lineno}); delete the database or restore the file") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path} is corrupt: a JSON object was expected, found {type(meta).__name__}; delete the database or restore the file")
    if meta.get("format") != META_FORMAT:
        raise UserError(f"{path} is not a gptbench tuning database description (format {meta.get('format')!r})")
    for key, kind in (("target", dict), ("tvm_version", str), ("model", str), ("shapes", dict)):
        if not isinstance(meta.get(key), kind):
            raise UserError(f"{path} is corrupt: \"{key}\" should be a {'JSON object' if kind is dict else 'string'}, "
                            f"found {meta.get(key)!r}; delete the database or restore the file")
    return meta



def db_hash(db_dir) -> str:
    """Content hash of the records: the same hash means the same tuned schedules."""
    unpack(db_dir)
    h = hashlib.sha256()
    for name in DB_FILES:
        path = Path(db_dir) / name
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()[:16]



# Tasks MetaSchedule must not tune with --prepack: its layout rewrite of a gather's table (the
# embedding lookups `take`, indexed by data) computes wrong results in TVM 0.27. Found by parity:
# GPT-2 decode tuned with them gave relative L2 error 0.96; dropping the two `take` records fixed it.
PREPACK_UNSAFE = ("take",)



def drop_records(db_dir, tasks) -> int:
    """Remove every tuning record of these tasks from the database files; returns how many."""
    from tvm.s_tir import meta_schedule as ms

    db_dir = Path(db_dir)
    unpack(db_dir)
    if not (db_dir / DB_FILES[1]).is_file():
        return 0
    db = ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")
    hashes = {str(db.commit_workload(t.dispatched[0]).as_json()[0]) for t in tasks if db.has_workload(t.dispatched[0])}
    workloads = (db_dir / DB_FILES[0]).read_text().splitlines()
    gone = {i for i, line in enumerate(workloads) if line.strip() and json.loads(line)[0] in hashes}
    lines = [line for line in (db_dir / DB_FILES[1]).read_text().splitlines() if line.strip()]
    keep = [line for line in lines if json.loads(line)[0] not in gone]
    if len(keep) != len(lines):
        (db_dir / DB_FILES[1]).write_text("".join(line + "\n" for line in keep))
    return len(lines) - len(keep)



def check_records(db_dir) -> None:
    """UserError naming the file and line when a database file is not JSON lines (a truncated write)."""
    unpack(db_dir)
    for name in DB_FILES:
        path = Path(db_dir) / name
        if not path.is_file():
            continue
        with path.open() as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path} is corrupt at line {lineno} ({e.msg}): a tuning session was cut off while "
                                    f"writing? Delete that line (or the database) and re-tune") from None



def count_records(db_dir) -> int:
    unpack(db_dir)
    path = Path(db_dir) / DB_FILES[1]
    return sum(1 for line in path.open() if line.strip()) if path.is_file() else 0



def validate_database(db_dir, tinfo, foreign: bool = False) -> dict:
    """The database's description, if it was tuned for this TVM and target; else UserError. With
    `foreign` (run --foreign-db), a database tuned for another CPU or core count of the same kind of
    target is accepted too (the cells say where it was tuned)."""
    import tvm

    db = Path(db_dir)
    meta = read_meta(db)
    if meta is None:
        raise UserError(f"{db} has no {META_FILE}: not made by `gptbench tune`, so its TVM version and target are unknown; "
                        "refusing to apply it (re-tune with `gptbench tune --db DIR`)")
    if meta.get("tvm_version") != tvm.__version__:
        raise UserError(f"tuning database {db} was made with TVM {meta.get('tvm_version')}, this is TVM {tvm.__version__}: "
                        "schedules do not carry across versions; re-tune with `gptbench tune`")
    check_records(db)
    want, got = meta.get("target"), target_fingerprint(tinfo)
    if want != got and foreign and want.get("kind") == got.get("kind"):
        return meta
    if want != got:
        diff = ", ".join(f"{k} {want.get(k)!r} (database) vs {got.get(k)!r} (here)" for k in sorted(set(want) | set(got))
                         if want.get(k) != got.get(k))
        hint = " (or run with --threads {})".format(want.get("num_cores")) if want.get("num_cores") != got.get("num_cores") else ""
        raise UserError(f"tuning database {db} is for another target: {diff}; re-tune here with `gptbench tune`{hint}, "
                        "warm-start a tuning from it (`gptbench tune --warm-start`), or apply it as it is with --foreign-db")
    return meta



def db_frontends(meta: dict | None) -> list[str]:
    """The frontends whose kernels a database was tuned on (`frontends`; a database written before it
    held one, in `frontend`)."""
    meta = meta or {}
    return list(meta.get("frontends") or [f for f in str(meta.get("frontend") or "").split(",") if f])


def estimate_lines(meta: dict) -> list[str]:
    """The tuner's estimate of each frontend's kernel time from the best measured kernels: the sum of
    calls x best over the frontend's tasks (a task two frontends share counts the calls of each)."""
    rows, fronts = meta["task_summary"], db_frontends(meta)
    out = []
    for fe in fronts if len(fronts) > 1 else [None]:
        # a row without per-frontend calls (a single-frontend database, or one from before them) is every frontend's
        mine = [r for r in rows if fe is None or not r.get("calls") or fe in r["calls"]]
        calls = [r["calls"][fe] if fe and r.get("calls") else r["weight"] for r in mine]
        known = [n * r["best_ms"] for n, r in zip(calls, mine, strict=True) if r["best_ms"] is not None]
        untuned = sum(1 for r in mine if r["best_ms"] is None)
        out.append(f"Estimated latency{' through ' + fe if fe else ''} from the best measured kernels: {sum(known):.2f} ms "
                   f"(sum of calls × best over its {len(mine)} kernels; kernels only, no VM overhead)"
                   f"{'; ' + str(untuned) + ' task(s) without a valid record' if untuned else ''}.")
    return out


def summary_markdown(meta: dict) -> str:
    rows = [[r["task"], r["weight"], r["trials"], r["best_ms"], r["weighted_ms"]] for r in meta["task_summary"]]
    failed = meta.get("frontends_failed") or {}
    return "\n".join([
        f"# tuning database: {meta['model']} {meta['scenario']} {meta['shapes']} on {meta['target']}",
        "",
        f"TVM {meta['tvm_version']}, frontend{'s' if len(db_frontends(meta)) > 1 else ''} {', '.join(db_frontends(meta))}"
        + "".join(f" ({fe} not: its import failed, {why})" for fe, why in failed.items()) + f", prepack {meta['prepack']}, fast math {bool(meta.get('fast_math'))}: "
        f"{meta['tasks']} tasks, {meta['trials']} trials in {meta['sessions']} session(s), {meta['wall_s']} s of tuning, "
        f"{meta['records']} records, hash {meta['hash']}."
        + (f" Last session: {meta['last_session']['trials']} trials in {meta['last_session']['wall_s']} s, stopped by "
           f"{meta['last_session']['stopped_by']}." if meta.get("last_session") else ""),
        "",
        *estimate_lines(meta),
        "",
        md_table(["task", "weight", "trials", "best ms", "weight × best ms"], rows),
        *_profile_markdown(meta.get("last_session") or {}),
    ])


# MetaSchedule's profiler scopes, as a trial's parts (the others are summed as "other")
PROFILE_PARTS = (("SendToBuilder", "building candidates (lowering, LLVM codegen, in builder processes)"),
                 ("SendToRunner", "running candidates (sending and timing them)"),
                 ("JoinRunnerFutures", "waiting for runs to finish"),
                 ("EvoSearch", "evolutionary search (sampling, mutation, cost-model predictions)"),
                 ("MeasureCallback/UpdateCostModel", "training the cost model"),
                 ("MeasureCallback/AddToDatabase", "recording"))


def _profile_markdown(session: dict) -> list[str]:
    """Where the last session's time went, from MetaSchedule's profiler, and its trials per minute."""
    prof, trials, wall = session.get("profile_s") or {}, session.get("trials") or 0, session.get("wall_s") or 0
    if not prof or not wall:
        return []
    total = float(prof.get("Total", wall))
    parts = [(label, sum(v for k, v in prof.items() if k == scope or k.startswith(scope + "/"))) for scope, label in PROFILE_PARTS]
    parts.append(("other (task scheduling, Python, start-up)", max(0.0, total - sum(v for _l, v in parts))))
    rows = [[label, f"{v:.1f}", f"{100 * v / total:.0f}%", f"{1000 * v / trials:.0f}" if trials else ""] for label, v in parts]
    return ["", f"Last session: {trials} trials in {wall} s, {60 * trials / wall:.1f} trials a minute. Where its time went "
            "(MetaSchedule's profiler; builds run in parallel worker processes, so a part is wall time of the tuning loop):", "",
            md_table(["part", "s", "share", "ms a trial"], rows)]


def prepacked(db_dir) -> bool:
    """Whether a build with this database must lift the weight layout rewrites (tuned with --prepack)."""
    return bool(db_dir) and bool((read_meta(db_dir) or {}).get("prepack"))
