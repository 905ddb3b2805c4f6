"""Remote devices through TVM's RPC tracker (`tvm.exec.rpc_tracker`, `tvm.exec.rpc_server`).

- `run --rpc HOST:PORT --rpc-key KEY`: build here for the device's CPU (its mcpu is asked of a
  server of the key), upload the library, time TVM there with the remote time evaluator, pull the
  outputs back for parity against eager PyTorch run here. Nothing else is timed: a baseline would
  run on this host, not on the device.
- `tune --rpc ...`: MetaSchedule's RPCRunner measures candidates on every server of the key.
- `gptbench rpc up`: a tracker and K servers on this machine (loopback), to try it or to make a
  small tuning farm of one machine's cores; `gptbench rpc status` lists what a tracker holds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from bench.core.errors import UserError
from bench.core.procs import die_with_parent


def parse_address(text: str, flag: str = "--rpc") -> tuple[str, int]:
    host, sep, port = (text or "").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{flag} {text!r}: expected HOST:PORT of an RPC tracker, e.g. 127.0.0.1:9190")
    return host, int(port)


def tracker_summary(address: str) -> dict:
    from tvm import rpc

    host, port = parse_address(address)
    if not _answers(address):
        raise UserError(f"--rpc {address}: no RPC tracker answers there; start one (`gptbench rpc up`) or fix the address")
    try:
        return rpc.connect_tracker(host, port).summary()
    except (OSError, RuntimeError, ValueError) as e:
        raise UserError(f"--rpc {address}: no RPC tracker answers there ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                        "start one (`gptbench rpc up`) or fix the address") from None


def servers_of(summary: dict, key: str) -> list[str]:
    return [f"{s['addr'][0]}:{s['addr'][1]}" for s in summary.get("server_info", []) if s.get("key", "").split(":")[-1] == key]


def check_key(address: str, key: str | None) -> list[str]:
    """The servers of `key` at the tracker, or a UserError (no key, no servers)."""
    summary = tracker_summary(address)
    if not key:
        raise UserError("--rpc needs --rpc-key KEY: the key the device servers registered under")
    servers = servers_of(summary, key)
    if not servers:
        raise UserError(f"--rpc {address}: no server of key {key!r} is registered "
                        f"(start one: python -m tvm.exec.rpc_server --tracker {address} --key {key})")
    return servers


def session(address: str, key: str, timeout: float = 600):
    from tvm import rpc

    host, port = parse_address(address)
    return rpc.connect_tracker(host, port).request(key, priority=1, session_timeout=timeout)


def device_info(address: str, key: str, servers: list[str]) -> dict:
    """What a server of the key says about its CPU (its TVM's LLVM host detection and thread pool)."""
    remote = session(address, key, timeout=60)
    info = dict(tracker=address, key=key, servers=servers)
    try:
        info["mcpu"] = str(remote.get_function("target.llvm_get_system_cpu")())
    except Exception as e:  # noqa: BLE001 - a runtime-only server cannot say
        raise UserError(f"the server of key {key!r} cannot report its CPU (a runtime-only TVM?): {e}") from None
    try:
        info["threads"] = int(remote.get_function("runtime.NumThreads")())
    except Exception:  # noqa: BLE001
        info["threads"] = None
    return info


# ------------------------------------------------------------------------------------- rpc up
def _free_port(start: int) -> int:
    for port in range(start, start + 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise UserError(f"no free port from {start} on 127.0.0.1")


def start_farm(servers: int, key: str, port: int, log) -> tuple[str, list[subprocess.Popen]]:
    """A tracker and `servers` servers on loopback, each its own process (server i on one core
    when the machine has that many). Returns (tracker address, processes); the caller stops them."""
    tracker_port = _free_port(port)
    address = f"127.0.0.1:{tracker_port}"
    py = sys.executable
    procs = [subprocess.Popen([py, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(tracker_port),
                               "--port-end", str(tracker_port + 1)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=_child_of_us)]
    log(f"rpc: tracker on {address} (pid {procs[0].pid})")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    try:
        _wait(lambda: _answers(address), 30, "the tracker did not start")
        for i in range(servers):
            sport = _free_port(tracker_port + 10 + 100 * i)
            env = dict(os.environ)
            if len(cores) >= servers:
                env["TVM_NUM_THREADS"] = str(max(1, len(cores) // servers))
            procs.append(subprocess.Popen([py, "-m", "tvm.exec.rpc_server", "--tracker", address, "--key", key, "--host", "127.0.0.1",
                                           "--port", str(sport), "--port-end", str(sport + 90)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_child_of_us))
            log(f"rpc: server {i + 1} of key {key!r} on 127.0.0.1:{sport}.. (pid {procs[-1].pid})")
        _wait(lambda: len(servers_of(tracker_summary(address), key)) >= servers, 90, f"{servers} server(s) did not register")
    except BaseException:
        stop_farm(procs)
        raise
    return address, procs


def _child_of_us() -> None:
    """In the child before exec: its own process group (stopped as one), and killed if we die."""
    os.setsid()
    die_with_parent()


def _answers(address: str) -> bool:
    """The tracker's port takes connections (a plain socket: TVM's client retries for a minute)."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait(ok, seconds: float, what: str) -> None:
    t0 = time.monotonic()
    while not ok():
        if time.monotonic() - t0 > seconds:
            raise UserError(f"rpc: {what} within {seconds:g} s")
        time.sleep(0.3)


def stop_farm(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
