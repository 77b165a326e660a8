"""One way to open targets: the Session protocol and the factory every workflow calls.

A session is where cases run: a QEMU guest that hmmbench boots (:class:`hmmbench.vm.session.QemuSession`)
or a machine reached over SSH (:class:`hmmbench.targets.remote.RemoteSession`). Both boot (or connect),
give an :class:`~hmmbench.targets.agent.AgentClient` to run cases with, show their console (a guest's
serial console; none for a machine), restart after a hang or a lost connection, and close. Workflows
never build sessions themselves: :func:`open_sessions` chooses the accelerator, shapes the guests and
describes the target for results.json in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hmmbench.kernel.build import BuiltKernel
from hmmbench.reports.results import TargetBlock
from hmmbench.targets.agent import AgentClient
from hmmbench.vm import accel, netns
from hmmbench.vm.image import GuestImage
from hmmbench.vm.netns import TapNetwork
from hmmbench.vm.qemu import GuestConfig


class Session(Protocol):
    """What a workflow uses of a target."""

    agent: AgentClient | None
    boots: int
    boot_seconds: list[float]
    consoles: list[Path]

    @property
    def name(self) -> str: ...

    @property
    def target_info(self) -> dict: ...

    def boot(self) -> AgentClient: ...

    def restart(self, why: str) -> AgentClient: ...

    def alive(self) -> bool: ...

    def console_lines(self) -> list[str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class GuestShape:
    """What the QEMU guests of a run look like (the suite's needs are the defaults)."""

    cpus: int = 2
    memory_mib: int = 2048
    numa_nodes: int = 2
    append: tuple[str, ...] = ()
    accel: str = "auto"  # auto: KVM only after a bounded trial boot proves it works, else TCG
    net: str = "user"  # "user" (QEMU user-mode, SSH forwarded on 127.0.0.1) or "tap" (pyroute2 namespace)


@dataclass
class Opened:
    """The sessions of one run, and the description of the target for results.json."""

    sessions: list
    target: TargetBlock
    net: TapNetwork | None = None


@contextlib.contextmanager
def open_sessions(out_dir: Path, *, kernel: BuiltKernel | None = None, image: GuestImage | None = None,
                  shape: GuestShape = GuestShape(), count: int = 1, machines: list[tuple] | None = None,
                  worker: int | None = None, workers: int = 1, netns_name: str | None = None) -> Iterator[Opened]:
    """The sessions of a run: with ``machines`` (``(SshUrl, RemoteOptions)`` each) one per machine,
    already running its kernel; otherwise ``count`` QEMU guests of ``kernel`` (not booted yet: each
    worker boots its own), on one tap bridge in a network namespace with ``shape.net == "tap"``.
    Every session is closed, and the namespace removed, when the block ends.

    A worker of a run spread over processes (pytest-xdist) opens only its own: ``worker`` is its index of
    ``workers``, which names its guest and its tap, and ``netns_name`` the namespace the controller made."""
    if machines:
        opened = _ssh(machines, worker)
        try:
            yield opened
        finally:
            _close(opened)
        return
    assert kernel is not None and image is not None
    acc, why = accel.choose(kernel.bzimage, image.rootfs, shape.accel)
    cfg = GuestConfig(memory_mib=shape.memory_mib, cpus=shape.cpus, numa_nodes=shape.numa_nodes, accel=acc,
                      extra_append=list(shape.append))
    jobs = max(count, workers)
    target = TargetBlock("qemu", accel=acc, accel_why=why, cpus=cfg.cpus, memory_mib=cfg.memory_mib,
                         numa_nodes=cfg.numa_nodes, append=list(cfg.extra_append), jobs=jobs if jobs > 1 else None)
    if netns_name is not None:
        network = contextlib.nullcontext(TapNetwork.join(netns_name))
    else:
        network = TapNetwork() if shape.net == "tap" else contextlib.nullcontext()
    with network as net:
        opened = Opened(_guests(kernel, image, out_dir, cfg, count, net, worker, workers), target, net)
        if net is not None:
            target.net = f"tap on {netns.BRIDGE} in {net.name}"
        try:
            yield opened
        finally:
            _close(opened)


def _guests(kernel: BuiltKernel, image: GuestImage, out_dir: Path, cfg: GuestConfig, count: int,
            net: TapNetwork | None, worker: int | None, workers: int) -> list:
    from hmmbench.vm.session import QemuSession

    indexes = [worker] if worker is not None else list(range(count))
    several = max(count, workers) > 1
    return [QemuSession(kernel, image, out_dir, dataclasses.replace(cfg, tap=net.add_guest(n) if net else None),
                        net=net, label=f"w{n + 1}-" if several else "") for n in indexes]


def _ssh(machines: list[tuple], worker: int | None = None) -> Opened:
    from hmmbench.targets.remote import RemoteSession

    first = machines[0][0]
    target = TargetBlock("ssh", url=str(first), inventory=[str(u) for u, _ in machines] if len(machines) > 1 else None)
    mine = machines if worker is None else [machines[worker % len(machines)]]
    return Opened([RemoteSession(url, opts) for url, opts in mine], target)


def _close(opened: Opened) -> None:
    for session in opened.sessions:
        session.close()
