"""Known, harmless warnings kept off the console at their source; their text goes to a log file.

The console is for progress and results. Two warnings came with every cell and said nothing about it;
each is matched by its exact text, nothing else is silenced, and what is silenced is appended to a
log file (`log_path()`) that the run names once, the first time it writes there.

1. torch.onnx's exporter (torch 2.13), four lines per `torch.onnx.export(dynamo=True)`:

       torchvision is not installed. Skipping torchvision::nms
       (the same for torchvision::roi_align, ::roi_pool and ::deform_conv2d)

   `torch.onnx._internal.exporter._registration._get_overload` logs them through Python logging
   (`logger.warning("torchvision is not installed. Skipping %s", name)`) each time an export builds
   its op registry and torchvision is absent: the registry then has no entries for torchvision's
   detection ops. GPT models use none of them, and torchvision is no dependency of the harness.
   `silence_torchvision_skips()` puts a logging.Filter on that one logger that drops that one
   message for `torchvision::` ops (called by frontends.onnx_import.export_onnx, the one export
   path that the ONNX frontend and the ONNX Runtime baseline share).

2. TVM (0.27), one line per `take` kernel that a build or a tuning run legalizes:

       [hh:mm:ss] /project/include/tvm/topi/transform.h:1261: Warning: Fast mode segfaults when
       there are out-of-bounds indices. Make sure input indices are in bound

   (one line). relax.take legalizes to `topi::take(..., mode="fast")` (its default mode; the
   frontends emit it for the token and position embedding lookups), and topi::take says so with a
   C++ `LOG(WARNING)`, which TVM's non-customised logging writes to std::cerr: Python's logging and
   warnings never see it. Harmless here: the harness only feeds token ids of the model's vocabulary
   and positions below the context length it checks `--seq-len` against. `stderr_filtered()` points
   file descriptor 2 at a temporary file for the duration of one call, then restores it and writes
   every line back to stderr except those matching `TVM_FAST_TAKE`; bench.build.relax runs only
   relax.take's own legalization under it (a LegalizeOps with that one op customised). A real error
   in that window is a Python exception, not stderr text, so it stays visible; other threads' stderr
   output in the window is delayed by that call, not lost.

The log file: `$GPTBENCH_QUIET_LOG` where set (`/dev/null` keeps nothing), else a new file under the
system's temporary directory. The first process of a run that imports this module sets the variable,
so the cells' worker processes append to the same file and only the first writer names it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.core.log import log

ENV = "GPTBENCH_QUIET_LOG"

TORCHVISION_LOGGER = "torch.onnx._internal.exporter._registration"
TORCHVISION_SKIP = "torchvision is not installed. Skipping %s"  # the logging call's format string, exactly

# One line of TVM's C++ logging: "[HH:MM:SS] <path>/topi/transform.h:<line>: Warning: <message>".
TVM_FAST_TAKE = re.compile(
    r"^\[\d\d:\d\d:\d\d\] \S*topi/transform\.h:\d+: Warning: Fast mode segfaults when there are "
    r"out-of-bounds indices\. Make sure input indices are in bound\s*$"
)

_lock = threading.RLock()  # one redirection of fd 2 at a time; one writer of the log at a time


_DEFAULT = Path(tempfile.gettempdir(), "gptbench",
                f"quiet-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log")
os.environ.setdefault(ENV, str(_DEFAULT))  # inherited by the run's cell workers: one file per run


def log_path() -> Path:
    return Path(os.environ.get(ENV) or _DEFAULT)


def record(source: str, text: str) -> None:
    """Append silenced text to the log; the writer that creates the file says where it is, once.
    A log that cannot be written is given up silently: it never stops a run."""
    path = log_path()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = "".join(f"{stamp} {source} pid {os.getpid()}: {line}\n" for line in text.rstrip("\n").splitlines())
    with _lock:
        try:
            if str(path) == os.devnull:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
                first = True
            except FileExistsError:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                first = False
            with os.fdopen(fd, "a") as f:
                f.write(lines)
        except OSError:
            return
    if first:
        log(f"(known harmless warnings of torch.onnx and TVM are kept off the console; their text goes to {path})")


class _TorchvisionSkips(logging.Filter):
    def filter(self, record_: logging.LogRecord) -> bool:
        args = record_.args if isinstance(record_.args, tuple) else ()
        if record_.msg == TORCHVISION_SKIP and len(args) == 1 and str(args[0]).startswith("torchvision::"):
            record("torch.onnx", record_.getMessage())
            return False
        return True


def silence_torchvision_skips() -> None:
    """Filter torch.onnx's "torchvision is not installed. Skipping torchvision::<op>" (see above);
    idempotent, for the rest of the process."""
    logger = logging.getLogger(TORCHVISION_LOGGER)
    if not any(isinstance(f, _TorchvisionSkips) for f in logger.filters):
        logger.addFilter(_TorchvisionSkips())


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _flush_stderr() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # closed or absent (sys.stderr None)
        sys.stderr.flush()


@contextmanager
def stderr_filtered(pattern: re.Pattern, source: str) -> Iterator[None]:
    """Run the body with file descriptor 2 on a temporary file; afterwards every captured line that
    matches `pattern` goes to the log, every other line back to stderr (in order). For text that
    C/C++ code writes to stderr directly. Keep the body short: the whole process's stderr waits.
    Where the redirection cannot be set up (no fd 2, no temporary file) the body runs unfiltered."""
    with _lock:
        _flush_stderr()
        tmp = saved = None
        try:
            tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, on every path
            saved = os.dup(2)
            os.dup2(tmp.fileno(), 2)
        except OSError:
            if saved is not None:
                os.close(saved)
            if tmp is not None:
                tmp.close()
            yield
            return
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            with tmp:
                tmp.seek(0)
                lines = tmp.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            _write_all(2, "".join(line for line in lines if not pattern.match(line)).encode())
            dropped = [line for line in lines if pattern.match(line)]
            if dropped:
                record(source, "".join(dropped))
