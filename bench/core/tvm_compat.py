"""The Relax API differences between TVM builds (bench.core.tvm_envs), in one place.

The harness's Relax path is written for TVM 0.27. It runs unchanged on 0.25.0 and 0.26.0 (measured:
README, "Your TVM under test"), which differ from 0.27 only in the constant class (see the table), and
on TVM's main branch after 0.27 (the CUDA image's source build). The same frontends and build also run,
untuned, in TVM 0.19 (`make tvm-relay`), whose older API differs in these points:

| what                     | TVM 0.27                           | TVM 0.19                          |
|--------------------------|------------------------------------|-----------------------------------|
| compile a module         | `tvm.compile(relax_pipeline=...)`  | `relax.build` (lowering only)     |
| a device tensor          | `tvm.runtime.Tensor`/`.tensor()`   | `tvm.nd.NDArray`/`tvm.nd.array()` |
| the Relax VM             | `tvm.runtime.vm.VirtualMachine`    | `tvm.relax.VirtualMachine`        |
| a device's kind          | `Device.dlpack_device_type()`      | `Device.device_type`              |
| a Relax constant         | `tvm.ir.expr.Constant`, `.value` (0.25, 0.26, main: as 0.19) | `tvm.relax.Constant`, `.data` |
| a var's tensor type      | `.ty`                              | `.struct_info`                    |
| dlight, MetaSchedule     | `tvm.s_tir.dlight`, `.meta_schedule` | `tvm.dlight` (no CPU rules), `tvm.meta_schedule` |
| `derived_object`         | `tvm.ir.utils`                     | `tvm.meta_schedule.utils`         |
| torch.export importer    | `custom_convert_map=`              | converters set on the importer    |

`legacy()` tells them apart by the API itself (TVM 0.19 has no `tvm.compile`), not by a version string;
so does every other helper here (a dev build's version string says nothing about its API).
"""

from __future__ import annotations

from functools import cache


@cache
def legacy() -> bool:
    """True under TVM 0.19's API (no `tvm.compile`)."""
    import tvm

    return not hasattr(tvm, "compile")


def tensor_class():
    import tvm

    return tvm.nd.NDArray if legacy() else tvm.runtime.Tensor


def to_device(array, device):
    """A numpy array as a TVM tensor on `device`."""
    import tvm

    return tvm.nd.array(array, device) if legacy() else tvm.runtime.tensor(array, device)


def virtual_machine():
    """The Relax VM class (0.19's `tvm.runtime.vm` is Relay's VM)."""
    if legacy():
        from tvm.relax import VirtualMachine
    else:
        from tvm.runtime.vm import VirtualMachine
    return VirtualMachine


def device_kind(device) -> int:
    """The DLPack device type of a TVM device (1 is the CPU)."""
    return int(device.device_type) if legacy() else int(device.dlpack_device_type())


def constant_value(expr):
    """The tensor of a Relax constant expression, else None. TVM 0.27 has it as `tvm.ir.expr.Constant`
    with `.value`; 0.19 and TVM's main branch after 0.27 (the CUDA image's source build) as
    `tvm.relax.Constant` with `.data`: told apart by what the installed TVM has, not by version."""
    import tvm

    cls = getattr(tvm.ir.expr, "Constant", None) or getattr(tvm.relax, "Constant", None)
    if cls is None or not isinstance(expr, cls):
        return None
    return expr.value if hasattr(expr, "value") else expr.data


def dlight():
    """The dlight module; TVM 0.19's has GPU rules only (no `dlight.cpu`)."""
    if legacy():
        import tvm.dlight as dl
    else:
        from tvm.s_tir import dlight as dl
    return dl


def meta_schedule():
    """The MetaSchedule package (0.19's also has `relay_integration`)."""
    if legacy():
        import tvm.meta_schedule as ms
    else:
        from tvm.s_tir import meta_schedule as ms
    return ms


def derived_object():
    """The decorator that makes a Python subclass of a MetaSchedule object (PyTaskScheduler, ...)."""
    if legacy():
        from tvm.meta_schedule.utils import derived_object as derived
    else:
        from tvm.ir.utils import derived_object as derived
    return derived
