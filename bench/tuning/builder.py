"""MetaSchedule's LocalBuilder, with worker processes kept between measurement batches.

LocalBuilder starts a fresh pool of worker processes for every batch of candidates (its comment:
"a known memory leak issue with the PopenPool workers after a couple times of usage"), and each
worker imports TVM before it builds anything: on 2 cores about 2 s per batch, which for the small
kernels of the default model is a large part of a trial. `PooledBuilder` keeps its pool for
`REUSE_BATCHES` batches, then starts a fresh one, which bounds that leak as the restart does. What
it builds, with which function and how errors and timeouts are reported is LocalBuilder's own
code path (its `_worker_func`).
"""

from __future__ import annotations

REUSE_BATCHES = 16  # batches a worker pool builds before it is replaced by a fresh one


def export_shared(mod) -> str:
    """A built candidate as a shared library, linked here in the builder's parallel workers.
    MetaSchedule's default export writes a .tar of object files, which the runner links (g++ -shared)
    when it loads each candidate, one at a time: on 2 cores most of a trial's running time. Measured
    where it was a choice (local CPU runs); an RPC device keeps the tar and links on its side."""
    import os
    import tempfile

    path = os.path.join(tempfile.mkdtemp(prefix="gptbench-candidate-"), "tvm_tmp_mod.so")
    mod.export_library(path)
    return path


def close_builder(builder) -> None:
    """Stop a PooledBuilder's workers; MetaSchedule's LocalBuilder (GPTBENCH_BUILDER=local) stops its own."""
    if hasattr(builder, "close"):
        builder.close()


def pooled_builder(max_workers: int, timeout_sec: float, f_build, reuse: int = REUSE_BATCHES, f_export=None):
    """A MetaSchedule builder: LocalBuilder's work, in worker processes reused for `reuse` batches."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder import local_builder as lb
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    @derived_object
    class PooledBuilder(ms.builder.PyBuilder):
        def __init__(self):
            super().__init__()
            self.pool, self.batches = None, 0

        def _pool(self):
            if self.pool is None or self.batches >= reuse:
                if self.pool is not None:
                    self.pool.shutdown()
                self.pool, self.batches = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_sec), 0
            self.batches += 1
            return self.pool

        def close(self) -> None:
            """Stop the worker processes (at the end of a session: a run goes on to time its cells)."""
            if self.pool is not None:
                self.pool.shutdown()
                self.pool = None

        def build(self, build_inputs):
            jobs = [(f_build, f_export, b.mod, b.target, lb._serialize_params(b.params)) for b in build_inputs]  # noqa: SLF001
            results = []
            for r in self._pool().map_with_error_catching(lambda x: lb._worker_func(*x), jobs):  # noqa: SLF001
                if r.status == StatusKind.COMPLETE:
                    results.append(ms.builder.BuilderResult(r.value, None))
                elif r.status == StatusKind.TIMEOUT:
                    results.append(ms.builder.BuilderResult(None, f"LocalBuilder: Timeout, killed after {timeout_sec} seconds"))
                else:
                    results.append(ms.builder.BuilderResult(None, "LocalBuilder: An exception occurred\n" + str(r.value)))
            return results

    return PooledBuilder()
