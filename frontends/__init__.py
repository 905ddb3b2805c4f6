"""The frontends: one module per import path into TVM Relax, and one explicit registry."""

from __future__ import annotations

from frontends.base import Frontend, FrontendError, Imported, ImportRequest
from frontends.fx import FxFrontend
from frontends.onnx_import import OnnxFrontend
from frontends.relay import RelayFrontend
from frontends.torch_export import TorchExportFrontend

REGISTRY: list[Frontend] = [TorchExportFrontend(), OnnxFrontend(), FxFrontend(), RelayFrontend()]
FRONTENDS: dict[str, Frontend] = {f.name: f for f in REGISTRY}


def get_frontend(name: str) -> Frontend:
    from bench.errors import unknown

    if name not in FRONTENDS:
        raise unknown("frontend", name, list(FRONTENDS))
    return FRONTENDS[name]


__all__ = ["Frontend", "FrontendError", "Imported", "ImportRequest", "REGISTRY", "FRONTENDS", "get_frontend"]
