"""Legacy Relay (`tvm.relay.frontend.from_pytorch`): TVM ≤ 0.19 only.

Relay was removed in TVM v0.20; the pinned TVM (0.27) has none. This entry exists so that asking
for `--frontend relay` gives a clear answer instead of an unknown-name error. This harness builds
and runs everything through Relax's VirtualMachine; a Relay path (relay.build + graph executor) is
not implemented, so even with an old TVM installed the answer is the same, stated differently.
"""

from __future__ import annotations

from frontends.base import Frontend, FrontendError, Imported, ImportRequest


class RelayFrontend(Frontend):
    name = "relay"
    title = "TorchScript → relay.frontend.from_pytorch (TVM ≤ 0.19)"
    supports_symbolic = False

    def unavailable_reason(self) -> str | None:
        try:
            import tvm
        except ImportError:  # pragma: no cover - tvm is a hard dependency
            return "TVM is not installed"
        try:
            from tvm import relay  # noqa: F401
        except ImportError:
            return f"TVM {tvm.__version__} has no Relay (removed in v0.20); install TVM <= 0.19 for it"
        return (
            f"TVM {tvm.__version__} has Relay, but this harness builds through Relax only; "
            "the Relay path (relay.build + graph executor) is not implemented"
        )

    def import_model(self, req: ImportRequest) -> Imported:
        raise FrontendError(self.name, "import", self.unavailable_reason() or "unavailable")
