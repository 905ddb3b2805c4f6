"""Files the harness writes and reads: atomic writes, checked inputs."""

from __future__ import annotations

from pathlib import Path


def save_arrays(path, arrays) -> None:
    """numpy arrays into an .npz, in order (arg0, arg1, ...): a build's weights, a case's inputs."""
    import numpy as np

    np.savez(path, **{f"arg{i}": a for i, a in enumerate(arrays)})


def load_arrays(path) -> list:
    """The arrays `save_arrays` wrote, in order."""
    import numpy as np

    with np.load(path) as z:
        return [z[f"arg{i}"] for i in range(len(z.files))]


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write text (or bytes) to path through a temporary file in the same directory and a rename: a reader (or a
    full disk) never sees half a file; on failure nothing is left behind."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_text_file(flag: str, path: str) -> None:
    """ValueError unless path is a readable UTF-8 text file (checked before any work starts)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {path}: is a directory; give a UTF-8 text file")
    if not p.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    try:
        head = p.open("rb").read(1 << 16)
    except OSError as e:
        raise ValueError(f"{flag} {path}: cannot read it ({e.strerror or e})") from None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the 64 KiB boundary
            raise ValueError(f"{flag} {path}: not UTF-8 text (byte {e.start}: {head[e.start]:#04x}); give a text file") from None
    if b"\x00" in head:
        raise ValueError(f"{flag} {path}: holds NUL bytes: a binary file, not text")
