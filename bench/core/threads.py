"""Thread configuration and memory accounting of this process."""

from __future__ import annotations

import os
import resource


def configure_threads(threads: int) -> None:
    """Same thread count for TVM's pool (read at its first use), PyTorch and OpenMP."""
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)



def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
