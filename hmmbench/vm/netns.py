"""Guest networking with pyroute2: ``--net tap``.

Per run: a network namespace ``hmmbench-<pid>``, a bridge in it, one tap device per guest on that
bridge, addresses on one /24. QEMU is started inside the namespace (so it opens its tap there), and
the harness reaches the guests from inside it too. Everything that must happen inside the namespace
(pyroute2's netlink requests, TCP connections to the guests) runs in a short-lived thread that entered
it with setns(): setns(CLONE_NEWNET) moves only the calling thread, and a socket stays in the namespace it
was made in. No fork: pyroute2's own NetNS forks helper processes, and a fork of a process that runs
paramiko's threads is how the earlier intermittent hang happened. Nothing is added to the host's own
namespace. The namespace is removed when the run ends (normally, on an exception, on SIGTERM/Ctrl-C);
one left by a harness that was killed outright is found and removed by the next run (its pid is part
of the name).
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pyroute2 import IPRoute, netns

from hmmbench import procs, progress
from hmmbench.errors import HarnessError

PREFIX = "hmmbench-"
SUBNET = "10.77.0"
BRIDGE = "hmmbr0"
T = TypeVar("T")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_leftovers() -> list[str]:
    """Delete namespaces of hmmbench runs whose process is gone; returns their names."""
    removed = []
    for name in netns.listnetns():
        if name.startswith(PREFIX):
            tail = name[len(PREFIX):]
            if tail.isdigit() and not _pid_alive(int(tail)):
                netns.remove(name)
                removed.append(name)
    if removed:
        progress.say(f"removed network namespaces left by earlier runs: {', '.join(removed)}")
    return removed


@dataclass(frozen=True)
class TapPort:
    """One guest's attachment: the tap device and the addresses its kernel's ip= option sets."""

    netns: str
    ifname: str
    ip: str
    gateway: str
    netmask: str = "255.255.255.0"


def in_namespace(ns_name: str, work: Callable[[], T], timeout: float = 30.0) -> T:
    """Run ``work()`` in a thread that has entered network namespace ``ns_name``; return its result."""
    result: dict = {}

    def worker() -> None:
        try:
            fd = os.open(f"/run/netns/{ns_name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if procs.setns_net(fd) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {ns_name} failed")
            finally:
                os.close(fd)
            result["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=worker, name=f"in-{ns_name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise HarnessError(f"work inside network namespace {ns_name} did not finish within {timeout:.0f}s")
    if "error" in result:
        raise result["error"]
    return result["value"]


def _index(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


class TapNetwork:
    """The namespace, bridge and taps of one run. Use as a context manager."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.name = f"{PREFIX}{self.owner}"
        self.ports: list[TapPort] = []
        self.gateway = f"{SUBNET}.1"
        self._lock = threading.Lock()
        self.joined = False

    @classmethod
    def join(cls, name: str) -> TapNetwork:
        """The network another process of the same run made (a pytest-xdist worker joins its
        controller's): guests can be added to it, but it is not this process's to remove."""
        net = cls()
        net.name, net.joined = name, True
        return net

    def __enter__(self) -> TapNetwork:
        if os.geteuid() != 0:
            raise HarnessError("--net tap needs root (network namespaces, bridges, tap devices)")
        remove_leftovers()
        if self.name in netns.listnetns():
            netns.remove(self.name)
        netns.create(self.name)
        procs.register(id(self), self.close)
        try:
            in_namespace(self.name, self._setup)
        except Exception:
            self.close()
            raise
        progress.say(f"network namespace {self.name}: bridge {BRIDGE} {self.gateway}/24")
        return self

    def _setup(self) -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname=BRIDGE, kind="bridge")
            bridge = _index(ipr, BRIDGE)
            if bridge is None:
                raise HarnessError(f"could not create bridge {BRIDGE} in {self.name}")
            for index in (_index(ipr, "lo"), bridge):
                ipr.link("set", index=index, state="up")
            ipr.addr("add", index=bridge, address=self.gateway, prefixlen=24)

    def add_guest(self, index: int | None = None) -> TapPort:
        """The next tap name and address (or those of guest ``index``: workers in several processes take
        their own). QEMU creates the (non-persistent) tap itself when it starts inside the namespace, and
        :func:`attach` puts it on the bridge; it disappears with QEMU."""
        with self._lock:
            n = len(self.ports) if index is None else index
            port = TapPort(self.name, f"hmmtap{n}", f"{SUBNET}.{10 + n}", self.gateway)
            self.ports.append(port)
        return port

    def connect(self, host: str, port: int, timeout: float = 8.0) -> socket.socket:
        """A TCP connection to ``host:port`` made from inside the namespace."""
        return connect_in(self.name, host, port, timeout)

    def close(self) -> None:
        if self.joined or not procs.is_owner(self.owner):  # not ours, or a forked child's copy of our stack
            return
        procs.unregister(id(self))
        if self.name in netns.listnetns():
            netns.remove(self.name)

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_in(ns_name: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host:port`` made from inside ``ns_name`` (blocking socket for paramiko)."""
    try:
        sock = in_namespace(ns_name, lambda: socket.create_connection((host, port), timeout=timeout), timeout + 5)
    except (OSError, HarnessError) as exc:
        raise OSError(f"connect to {host}:{port} in {ns_name} failed: {exc}") from exc
    sock.settimeout(None)
    return sock


def attach(port: TapPort, timeout: float = 10.0) -> None:
    """Wait for QEMU's tap to appear in the namespace, then put it on the bridge and bring it up."""

    def work() -> None:
        deadline = time.monotonic() + timeout
        with IPRoute() as ipr:
            while (tap := _index(ipr, port.ifname)) is None:
                if time.monotonic() > deadline:
                    raise HarnessError(f"QEMU did not create tap {port.ifname} in {port.netns}",
                                       "is /dev/net/tun available (CONFIG_TUN on the host)?")
                time.sleep(0.1)
            bridge = _index(ipr, BRIDGE)
            ipr.link("set", index=tap, master=bridge)
            ipr.link("set", index=tap, state="up")

    in_namespace(port.netns, work, timeout + 10)
