"""The repository travels: the committed tuning databases are kept packed (database_*.json.xz, made by
scripts/pack-tuning-dbs.py) and unpacked on first use to the same bytes their description's hash was
taken from; the tracked tree stays under 20 MB, so the device tool's 64 MiB takes it whole."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.core.errors import UserError
from bench.tuning.database import DB_FILES, META_FILE, count_records, db_hash, read_meta, unpack

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 20


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout (an image): nothing tracked to measure")
    return [p for p in out.split("\0") if p]


def test_the_tracked_tree_is_under_20_mb():
    sizes = {p: (ROOT / p).stat().st_size for p in _tracked() if (ROOT / p).is_file()}
    total = sum(sizes.values())
    biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
    assert total < LIMIT_MB * 1e6, f"{total / 1e6:.1f} MB tracked; the biggest: {biggest}"


def _committed_databases() -> list[Path]:
    return sorted({(ROOT / p).parent for p in _tracked() if p.endswith(f"{DB_FILES[1]}.xz") or p.endswith(f"/{DB_FILES[1]}")})


def test_committed_databases_are_packed_and_their_plain_files_not_tracked():
    tracked = set(_tracked())
    dbs = _committed_databases()
    assert len(dbs) >= 10
    for db in dbs:
        rel = db.relative_to(ROOT)
        for name in DB_FILES:
            assert f"{rel}/{name}.xz" in tracked, f"{rel}/{name}: not packed (scripts/pack-tuning-dbs.py {rel})"
            assert f"{rel}/{name}" not in tracked, f"{rel}/{name}: the plain file is tracked; keep the .xz only"


@pytest.mark.parametrize("db", _committed_databases(), ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_a_packed_database_unpacks_to_what_its_description_hashed(db, tmp_path):
    copy = tmp_path / "db"
    copy.mkdir()
    for f in db.iterdir():
        if f.name.endswith(".xz") or f.name.endswith(".json") and not f.name.startswith("database_"):
            shutil.copy(f, copy / f.name)
    if (copy / META_FILE).is_file():
        meta = read_meta(copy)  # unpacks
        assert count_records(copy) == meta["records"]
        assert db_hash(copy) == meta["hash"]  # the bytes the description's hash was taken from
    else:  # a Relay database (gptbench-relay-db.json): its records unpack and parse
        from bench.tuning.relay_tune import read_relay_meta

        meta = read_relay_meta(copy)
        assert meta and meta["trials"] > 0
        assert count_records(copy) == sum(1 for line in (copy / DB_FILES[1]).read_text().splitlines() if line.strip()) > 0
    assert all((copy / name).stat().st_size for name in DB_FILES)


def test_unpack_keeps_newer_plain_files_and_refreshes_stale_ones(tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    for name in DB_FILES:
        (db / f"{name}.xz").write_bytes(lzma.compress(b'["a"]\n'))
    unpack(db)
    assert (db / DB_FILES[1]).read_text() == '["a"]\n'
    (db / DB_FILES[1]).write_text('["a"]\n["b"]\n')  # a later tuning session appended here: kept
    unpack(db)
    assert (db / DB_FILES[1]).read_text().count("\n") == 2
    import os

    (db / f"{DB_FILES[1]}.xz").write_bytes(lzma.compress(b'["c"]\n'))  # a newer packed file (a pull): unpacked again
    later = (db / DB_FILES[1]).stat().st_mtime + 10
    os.utime(db / f"{DB_FILES[1]}.xz", (later, later))
    unpack(db)
    assert (db / DB_FILES[1]).read_text() == '["c"]\n'
    assert not [p for p in db.iterdir() if p.name.endswith(".tmp")]


def test_a_corrupt_packed_file_is_one_clear_error(tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    (db / f"{DB_FILES[0]}.xz").write_bytes(b"not xz at all")
    with pytest.raises(UserError, match=r"database_workload\.json\.xz is corrupt .*restore it from git"):
        unpack(db)
    assert not (db / DB_FILES[0]).exists()


def test_the_tuning_curve_databases_still_back_their_reports():
    db = ROOT / "results/reference/tuning-curves-20261126/databases/gpt2-prefill-scratch"
    meta = json.loads((db / META_FILE).read_text())
    assert meta["trials"] >= 900 and (db / f"{DB_FILES[1]}.xz").is_file()
