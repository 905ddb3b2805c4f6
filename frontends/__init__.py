"""The frontends: one module per import path into TVM Relax, and one explicit registry."""

from __future__ import annotations

from bench.core.errors import UserError, closest
from frontends.base import Frontend, FrontendError, Imported, ImportRequest
from frontends.fx import FxFrontend
from frontends.onnx_import import OnnxFrontend
from frontends.relay import RelayOnnxFrontend, RelayTorchFrontend
from frontends.torch_export import TorchExportFrontend

REGISTRY: list[Frontend] = [TorchExportFrontend(), OnnxFrontend(), FxFrontend(), RelayOnnxFrontend(), RelayTorchFrontend()]
FRONTENDS: dict[str, Frontend] = {f.name: f for f in REGISTRY}


def available() -> list[str]:
    """The frontends a run can ask for (the Relay ones run in the TVM 0.19 environment; a cell says
    when it is not installed)."""
    return [name for name, f in FRONTENDS.items() if f.unavailable_reason() is None]


def choices() -> str:
    """'export, onnx, fx (not available with this TVM: relay)': what a usage error offers."""
    ok = available()
    missing = [n for n in FRONTENDS if n not in ok]
    return ", ".join(ok) + (f" (not available with this TVM: {', '.join(missing)})" if missing else "")


def unknown_frontend(name: str):
    return UserError(f"unknown frontend {name!r}{closest(name, available())}; choose from: {choices()}")


def get_frontend(name: str) -> Frontend:
    if name not in FRONTENDS:
        raise unknown_frontend(name)
    return FRONTENDS[name]


__all__ = ["Frontend", "FrontendError", "Imported", "ImportRequest", "REGISTRY", "FRONTENDS", "available", "choices", "get_frontend",
           "unknown_frontend"]
