"""Child processes that never outlive the run that started them."""

from __future__ import annotations


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies, however the parent died (no orphans)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
