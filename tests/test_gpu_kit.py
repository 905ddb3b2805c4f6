"""The GPU kit (docker/gpu_kit.py): packed here from wheels, cut into parts, carried (copied) to a fresh folder,
checked and unpacked there, and imported through its env.sh; a missing, damaged or foreign kit is one line, exit 2."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KIT = ROOT / "docker" / "gpu_kit.py"
HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_kit", KIT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _wheel(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


@pytest.fixture
def wheels(tmp_path) -> Path:
    """A stand-in apache-tvm (a library that does not compress, sources to strip) and tvm-ffi."""
    d = tmp_path / "wheels"
    d.mkdir()
    _wheel(d / "apache_tvm-0.0.1-py3-none-any.whl", {
        "tvm/__init__.py": b"import tvm_ffi\n__version__ = '0.0.1'\n",
        "tvm/lib/libtvm_compiler.so": os.urandom(300_000),
        "tvm/src/big.cc": b"int x;\n" * 20_000,
        "tvm/include/tvm.h": b"#pragma once\n",
        "apache_tvm-0.0.1.dist-info/METADATA": b"Name: apache-tvm\nVersion: 0.0.1\n"})
    _wheel(d / "apache_tvm_ffi-0.0.1-cp312-cp312-manylinux_2_28_x86_64.whl", {"tvm_ffi/__init__.py": b"OK = True\n"})
    return d


def _kit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(KIT), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def _pack(wheels: Path, out: Path, python: str = HERE) -> dict:
    proc = _kit("pack", "--wheels", wheels, "--out", out, "--python", python, "--part-mib", 0.1)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "MANIFEST.json").read_text())


def _carry(kit: Path, to: Path, parts=None) -> Path:
    """What the device tool does: the kit's files copied to another machine's folder (here: all, or some)."""
    to.mkdir(parents=True)
    for f in kit.iterdir():
        if parts is None or f.name == "MANIFEST.json" or f.name in parts:
            shutil.copy(f, to / f.name)
    return to


def test_a_kit_is_packed_in_parts_carried_unpacked_and_imported(wheels, tmp_path):
    manifest = _pack(wheels, tmp_path / "kit")
    parts = manifest["parts"]
    assert len(parts) >= 3 and all(p["bytes"] <= manifest["part_limit"] == int(0.1 * (1 << 20)) for p in parts)
    assert manifest["stripped"]["tvm/src"] == len(b"int x;\n" * 20_000) and "tvm/include" in manifest["stripped"]
    assert sorted(f.name for f in (tmp_path / "kit").iterdir()) == sorted(["MANIFEST.json", *[p["name"] for p in parts]])
    host = _carry(tmp_path / "kit", tmp_path / "host" / ".gpukit")
    proc = _kit("unpack", host, "--into", tmp_path / "host" / "tvm-kit")
    assert proc.returncode == 0, proc.stderr
    dest = tmp_path / "host" / "tvm-kit"
    assert not (dest / "site" / "tvm" / "src").exists() and (dest / "site" / "tvm" / "lib" / "libtvm_compiler.so").stat().st_size == 300_000
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(["bash", "-c", f". {dest}/env.sh && {sys.executable} -c 'import tvm, tvm_ffi; print(tvm.__version__, tvm_ffi.OK)'"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.split() == ["0.0.1", "True"], out.stderr
    again = _kit("unpack", host, "--into", dest)
    assert again.returncode == 0 and "already holds this kit" in again.stdout


def test_a_missing_part_is_named_before_anything_is_unpacked(wheels, tmp_path):
    manifest = _pack(wheels, tmp_path / "kit")
    first = manifest["parts"][0]["name"]
    host = _carry(tmp_path / "kit", tmp_path / "host", parts={first})  # the first call's part only
    for command in (["check", host], ["unpack", host, "--into", tmp_path / "dest"]):
        proc = _kit(*command)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"{len(manifest['parts']) - 1} of {len(manifest['parts'])} parts missing" in proc.stderr
        assert manifest["parts"][-1]["name"] in proc.stderr and first not in proc.stderr.split("missing:")[1]
    assert not (tmp_path / "dest").exists()


def test_a_damaged_part_or_a_kit_for_another_python_is_refused_in_one_line(wheels, tmp_path):
    manifest = _pack(wheels, tmp_path / "kit")
    host = _carry(tmp_path / "kit", tmp_path / "host")
    second = host / manifest["parts"][1]["name"]
    data = bytearray(second.read_bytes())
    data[100] ^= 0xFF
    second.write_bytes(bytes(data))
    proc = _kit("unpack", host, "--into", tmp_path / "dest")
    assert proc.returncode == 2 and "damaged in transit" in proc.stderr and second.name in proc.stderr
    assert not (tmp_path / "dest").exists() and not list(tmp_path.glob("dest.tmp-*"))
    other = "3.9" if HERE != "3.9" else "3.10"
    _pack(wheels, tmp_path / "kit39", python=other)
    proc = _kit("unpack", tmp_path / "kit39", "--into", tmp_path / "dest")
    assert proc.returncode == 2 and f"the kit is for Python {other}; this is Python {HERE}" in proc.stderr
    proc = _kit("unpack", tmp_path / "nowhere", "--into", tmp_path / "dest")
    assert proc.returncode == 2 and "not a kit" in proc.stderr


def test_bad_pack_arguments_exit_2(tmp_path):
    for args, message in ((["--python", "python3"], "give MAJOR.MINOR"), (["--wheels", tmp_path / "none"], "no such file"),
                          (["--wheels", tmp_path], "no apache-tvm wheel")):
        proc = _kit("pack", "--out", tmp_path / "kit", *args)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "kit").exists()


def test_the_kit_takes_the_projects_pins_and_leaves_room_for_the_tracked_tree():
    kit = _module()
    reqs = kit.requirements()
    pyproject = (ROOT / "pyproject.toml").read_text()
    tvm = [r for r in reqs if r.split("==")[0] in ("apache-tvm", "apache-tvm-ffi")]
    assert len(tvm) == 2 and all(f'"{r}"' in pyproject for r in tvm)
    assert f'"xgboost=={kit.installed("xgboost-cpu", "xgboost")}"' in pyproject  # the installed cost model is the pinned one
    assert any(r.startswith("xgboost-cpu==") for r in reqs) and any(r.startswith("cuda-bindings==") for r in reqs)
    tracked = kit.tracked_bytes()
    assert tracked is not None and kit.default_part_bytes() == (64 - 2) * (1 << 20) - tracked
    assert kit.default_part_bytes() > 30 << 20  # a real kit (about 61 MiB) travels in two calls, not three
