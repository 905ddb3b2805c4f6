"""Child processes that never outlive the run that started them."""

from __future__ import annotations

import contextlib


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies, however the parent died (no orphans)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):  # not Linux
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
