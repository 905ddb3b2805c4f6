#!/usr/bin/env python3
"""Compress tuning databases for git: each MetaSchedule file (database_workload.json,
database_tuning_record.json) becomes NAME.xz beside it (LZMA preset 9, from the standard library), which
is what the repository keeps; the plain files are ignored by git and made again from the .xz on first
use (bench.tuning.database.unpack). MetaSchedule's JSON is repetitive: 92 MB of committed databases
pack into about 2.5 MB, which is what lets the repository travel (to a GPU host, within 64 MiB).

    scripts/pack-tuning-dbs.py DIR…     every tuning database under each DIR (a directory with MetaSchedule's records)

Each .xz is checked by unpacking it and comparing the bytes before it replaces an older one."""

from __future__ import annotations

import lzma
import os
import sys
import tempfile
from pathlib import Path

FILES = ("database_workload.json", "database_tuning_record.json")


def pack(db_dir: Path) -> tuple[int, int]:
    before = after = 0
    for name in FILES:
        plain = db_dir / name
        if not plain.is_file():
            continue
        data = plain.read_bytes()
        packed = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
        if lzma.decompress(packed) != data:
            raise SystemExit(f"{plain}: the packed file does not unpack to the same bytes")
        fd, tmp = tempfile.mkstemp(dir=db_dir, prefix=f".{name}.xz.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(packed)
        os.replace(tmp, db_dir / f"{name}.xz")
        before, after = before + len(data), after + len(packed)
    return before, after


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    total_before = total_after = 0
    for root in map(Path, argv):
        for records in sorted(root.rglob(FILES[1])):
            before, after = pack(records.parent)
            total_before, total_after = total_before + before, total_after + after
            print(f"{records.parent}: {before / 1e6:.2f} MB -> {after / 1e6:.3f} MB")
    print(f"in all: {total_before / 1e6:.1f} MB -> {total_after / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
