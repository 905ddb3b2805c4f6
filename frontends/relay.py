"""Legacy Relay (`tvm.relay.frontend.from_pytorch`): TVM ≤ 0.19 only.

Relay was removed in TVM v0.20; the pinned TVM (0.27) has none. This entry exists so that asking
for `--frontend relay` gives a clear answer instead of an unknown-name error. This harness builds
and runs everything through Relax's VirtualMachine; a Relay path (relay.build + graph executor) is
not implemented, so even with an old TVM installed the answer is the same, stated differently.
"""

from __future__ import annotations

import re

from frontends.base import Frontend, FrontendError, Imported, ImportRequest


def installed_tvm_version() -> str | None:
    """The version of the TVM that `import tvm` would load, from its package metadata, without importing
    it (TVM pulls in numpy and more: a usage error must not wait for that). None when that tvm is not
    an installed distribution's, e.g. a source tree on PYTHONPATH: then only importing it tells."""
    from importlib import metadata, util
    from pathlib import Path

    spec = util.find_spec("tvm")
    if spec is None or not spec.origin:
        return None
    for dist in ("apache-tvm", "tvm"):
        try:
            found = metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            continue
        if Path(found.locate_file("tvm/__init__.py")).resolve() == Path(spec.origin).resolve():
            return found.version
    return None


class RelayFrontend(Frontend):
    name = "relay"
    title = "TorchScript → relay.frontend.from_pytorch (TVM ≤ 0.19)"
    supports_symbolic = False

    def unavailable_reason(self) -> str | None:
        version = installed_tvm_version()
        release = re.match(r"(\d+)\.(\d+)", version or "")
        if release and (int(release[1]), int(release[2])) >= (0, 20):
            return f"TVM {version} has no Relay (removed in v0.20); install TVM <= 0.19 for it"
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
