"""Guest networking with pyroute2: ``--net tap``.

Per run: a network namespace ``hmmbench-<pid>``, a bridge in it, one tap device per guest on that
bridge, addresses on one /24. QEMU is started inside the namespace (so it opens its tap there), and
the harness reaches the guests from inside it too: a short-lived thread enters the namespace and
connects, and the socket (which stays in the namespace it was made in) goes to paramiko. Nothing is
added to the host's own namespace. The namespace is removed when the run ends (normally, on an
exception, on SIGTERM/Ctrl-C); one left by a harness that was killed outright is found and removed by
the next run (its pid is part of the name).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

from pyroute2 import NetNS, netns

from hmmbench import procs, progress
from hmmbench.errors import HarnessError

PREFIX = "hmmbench-"
SUBNET = "10.77.0"
BRIDGE = "hmmbr0"


def _index(ns: NetNS, ifname: str, wait: float = 0.0) -> int:
    """The interface index of ``ifname``, polling up to ``wait`` seconds for it to appear.

    Links are found by scanning ``get_links()``: in pyroute2 0.9 ``NetNS.link_lookup`` sometimes
    answers nothing for a link that exists, and a just-added link may take a moment to be listed.
    """
    deadline = time.monotonic() + wait
    while True:
        for link in ns.get_links():
            if link.get_attr("IFLA_IFNAME") == ifname:
                return link["index"]
        if time.monotonic() >= deadline:
            raise HarnessError(f"interface {ifname} not found in the hmmbench network namespace")
        time.sleep(0.1)


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


class TapNetwork:
    """The namespace, bridge and taps of one run. Use as a context manager."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.name = f"{PREFIX}{self.owner}"
        self.ports: list[TapPort] = []
        self.gateway = f"{SUBNET}.1"

    def __enter__(self) -> TapNetwork:
        if os.geteuid() != 0:
            raise HarnessError("--net tap needs root (network namespaces, bridges, tap devices)")
        remove_leftovers()
        if self.name in netns.listnetns():
            netns.remove(self.name)
        netns.create(self.name)
        procs.register(id(self), self.close)
        try:
            with NetNS(self.name) as ns:
                bridge = self._add_bridge(ns)
                for index in (_index(ns, "lo"), bridge):
                    ns.link("set", index=index, state="up")
                ns.addr("add", index=bridge, address=self.gateway, prefixlen=24)
        except Exception:
            self.close()
            raise
        progress.say(f"network namespace {self.name}: bridge {BRIDGE} {self.gateway}/24")
        return self

    def _add_bridge(self, ns: NetNS) -> int:
        """Add the bridge (again, if the first request did not take) and return its index."""
        for _attempt in range(3):
            try:
                ns.link("add", ifname=BRIDGE, kind="bridge")
            except Exception as exc:  # noqa: BLE001 - "exists" from an earlier attempt is fine
                if "exists" not in str(exc).lower():
                    raise
            try:
                return _index(ns, BRIDGE, wait=2.0)
            except HarnessError:
                continue
        raise HarnessError(f"could not create bridge {BRIDGE} in {self.name} (pyroute2)")

    def add_guest(self) -> TapPort:
        """The next tap name and address. QEMU creates the (non-persistent) tap itself when it starts
        inside the namespace, and :func:`attach` puts it on the bridge; it disappears with QEMU."""
        n = len(self.ports)
        port = TapPort(self.name, f"hmmtap{n}", f"{SUBNET}.{10 + n}", self.gateway)
        self.ports.append(port)
        return port

    def connect(self, host: str, port: int, timeout: float = 8.0) -> socket.socket:
        """A TCP connection to ``host:port`` made from inside the namespace."""
        return connect_in(self.name, host, port, timeout)

    def close(self) -> None:
        if not procs.is_owner(self.owner):  # a forked child unwinding a copy of our stack
            return
        procs.unregister(id(self))
        if self.name in netns.listnetns():
            netns.remove(self.name)

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_in(ns_name: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host:port`` made from inside ``ns_name``.

    setns(CLONE_NEWNET) moves only the calling thread, and a socket stays in the namespace it was
    created in: so a short-lived thread enters the namespace, connects, and hands the socket back.
    No fork: forking a process that runs paramiko's threads can deadlock the child on their locks.
    """
    result: dict = {}

    def worker() -> None:
        try:
            netns.setns(ns_name, flags=0)
            result["sock"] = socket.create_connection((host, port), timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            result["error"] = exc

    thread = threading.Thread(target=worker, name=f"connect-{ns_name}", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if "sock" not in result:
        err = result.get("error") or TimeoutError("no answer")
        raise OSError(f"connect to {host}:{port} in {ns_name} failed: {err}")
    sock = result["sock"]
    sock.settimeout(None)
    return sock


def attach(port: TapPort, timeout: float = 10.0) -> None:
    """Wait for QEMU's tap to appear in the namespace, then put it on the bridge and bring it up."""
    deadline = time.monotonic() + timeout
    with NetNS(port.netns) as ns:
        while True:
            try:
                tap = _index(ns, port.ifname)
                break
            except HarnessError:
                if time.monotonic() > deadline:
                    raise HarnessError(f"QEMU did not create tap {port.ifname} in {port.netns}",
                                       "is /dev/net/tun available (CONFIG_TUN on the host)?") from None
                time.sleep(0.1)
        ns.link("set", index=tap, master=_index(ns, BRIDGE))
        ns.link("set", index=tap, state="up")
