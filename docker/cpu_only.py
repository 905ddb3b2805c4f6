"""Build-time guard of the `cpu` image: torch must be a CPU build, without the CUDA wheels a CUDA build drags in.

PyPI's torch for Linux x86_64 is a CUDA build: asked for torch==2.13.0 with no CPU wheel in sight, pip
takes it and some 30 nvidia-*/cuda-* wheels with it (about 7 GB, 9 minutes here), and the image is
useless for what it is for. Two checks, each one line on failure (exit 1):

    python cpu_only.py REPORT.json   # the `pip install --dry-run --report REPORT.json torch==...` of torch:
                                     # fails in seconds, before anything large is downloaded
    python cpu_only.py               # the torch installed now (imports it): fails right after the install

Standard library only: the first check runs in a venv without torch.
"""

from __future__ import annotations

import json
import re
import sys

CUDA_PACKAGES = re.compile(r"^(nvidia-.*|cuda-.*|triton|pytorch-triton.*)$")
FIX = ("pass --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (PyTorch's CPU wheels), or put "
       "torch-VERSION+cpu-*.whl into docker/wheels/ (make docker-build copies it from FIND_LINKS)")


def check_report(report: dict) -> str | None:
    """The problem with a pip installation report of torch, or None."""
    install = {i["metadata"]["name"].lower(): i for i in report.get("install", [])}
    torch = install.get("torch")
    if torch is None:
        return None  # torch is already installed as required: the second check looks at it
    version = torch["metadata"]["version"]
    cuda = sorted(name for name in install if CUDA_PACKAGES.match(name))
    if re.search(r"\+(cu|rocm)", version) or cuda:
        where = torch.get("download_info", {}).get("url", "?").rsplit("/", 1)[-1]
        return (f"pip would install torch {version} ({where}) with {len(cuda)} CUDA package(s) "
                f"({', '.join(cuda[:3])}{', ...' if len(cuda) > 3 else ''}): a CUDA build in the cpu image; {FIX}")
    return None


def check_installed() -> str | None:
    """The problem with the torch installed in this environment, or None."""
    import torch

    if torch.version.cuda or torch.version.hip:
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {torch.version.hip}"
        return f"torch {torch.__version__} is a {build} build: a CUDA build in the cpu image; {FIX}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python cpu_only.py [REPORT.json]", file=sys.stderr)
        return 2
    if argv:
        try:
            with open(argv[0]) as f:
                problem = check_report(json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"cpu_only: cannot read the pip report {argv[0]}: {e}", file=sys.stderr)
            return 2
    else:
        problem = check_installed()
    if problem:
        print(f"cpu_only: {problem}", file=sys.stderr)
        return 1
    print("cpu_only: ok, torch is a CPU build" + (" (pip's plan)" if argv else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
