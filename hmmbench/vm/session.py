"""A QEMU guest session: boot, prove it is the kernel we built, deploy the agent; reboot on demand.

When a case hangs or the kernel dies, the runner asks for :meth:`QemuSession.restart`: the old guest
is stopped (its console log kept under its boot number) and a fresh one is booted from the same
kernel and a fresh overlay, so the remaining cases start from a clean kernel.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from hmmbench import progress
from hmmbench.errors import HarnessError
from hmmbench.kernel.build import BuiltKernel
from hmmbench.targets.agent import AGENT_PORT, AgentClient, agent_bundle
from hmmbench.targets.ssh import SshConnection, wait_for_ssh
from hmmbench.vm.image import GuestImage
from hmmbench.vm.netns import TapNetwork
from hmmbench.vm.qemu import GuestConfig, QemuGuest, wait_for_console

SSHD_STARTING = "hmmbench-init: sshd starting"  # what vm-images/*/init prints to /dev/kmsg before exec'ing sshd
MARKER_WAIT = 60.0


def boot_timeout() -> float:
    return float(os.environ.get("HMMBENCH_BOOT_TIMEOUT", "300"))


class QemuSession:
    def __init__(self, kernel: BuiltKernel, image: GuestImage, run_dir: Path, cfg: GuestConfig,
                 net: TapNetwork | None = None, label: str = "") -> None:
        self.net = net
        self.label = label  # "w2-": names this worker's consoles when several guests run at once
        self.kernel = kernel
        self.image = image
        self.run_dir = run_dir
        self.cfg = cfg
        self.boots = 0
        self.guest: QemuGuest | None = None
        self.agent: AgentClient | None = None
        self.boot_seconds: list[float] = []
        self.consoles: list[Path] = []
        self.last_info: dict = {}
        self.boot_phases: list[dict[str, float]] = []  # per boot: seconds until SSH answered, deploy, info

    def boot(self) -> AgentClient:
        self.boots += 1
        name = f"{self.label}boot{self.boots}"
        cfg = dataclasses.replace(self.cfg, agent_disk=self._agent_disk(name))
        guest = QemuGuest(self.kernel.bzimage, self.image.rootfs, self.run_dir, cfg, name=name)
        self.guest = guest
        self.consoles.append(guest.console_path)
        start = time.monotonic()
        guest.start()
        with progress.step(f"booting {self.kernel.release} ({guest.describe()})"):
            deadline = start + boot_timeout()
            host, port = guest.ssh_address
            net = self.net
            # A connection tried before sshd listens sits in QEMU's user-mode network while the guest's TCP
            # retries its SYN with backoff (the first answer came 3.5 s after sshd started): wait for the
            # guest's init to say sshd is starting, then connect (a custom init that never says so costs
            # at most MARKER_WAIT before plain polling).
            wait_for_console(guest, SSHD_STARTING, min(MARKER_WAIT, max(0.0, deadline - time.monotonic())))
            ssh_start = time.monotonic()
            ssh = wait_for_ssh(
                lambda: SshConnection(host, port, "root", self.image.client_key,
                                      pinned_host_key=self.image.host_public_key,
                                      sock_factory=(lambda: net.connect(host, port)) if net else None),
                deadline, guest.alive,
                lambda: f"console tail:\n{guest.console_tail()}\n(full console: {guest.console_path})",
            )
            ssh_up = time.monotonic()
            agent = AgentClient(ssh, f"qemu {guest.name}")
            agent.uapi = self.kernel.uapi.to_dict() if self.kernel.uapi else None
            agent.listening = ("127.0.0.1", AGENT_PORT)  # started by the guest's init from its disk
            deployed = time.monotonic()
            info = agent.load_info()
        done = time.monotonic()
        self.boot_seconds.append(done - start)
        self.boot_phases.append({"until_sshd": round(ssh_start - start, 2), "ssh": round(ssh_up - ssh_start, 2),
                                 "agent_info": round(done - deployed, 2)})
        self._verify(info)
        self.agent = agent
        self.last_info = info
        return agent

    def _agent_disk(self, name: str) -> Path:
        """The guest agent as a raw tar disk (512-byte sectors) for this boot: the guest's init unpacks it
        and starts the agent while sshd starts (no copy over SFTP, no interpreter start after boot)."""
        path = self.run_dir / f".{name}-agent.tar"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = agent_bundle()
        path.write_bytes(data + b"\0" * (-len(data) % 512 + 1024))  # tar's end-of-archive blocks, padded
        return path

    def _verify(self, info: dict) -> None:
        """Ready means: the guest runs the kernel just built (release and build string)."""
        if info.get("release") != self.kernel.release or info.get("proc_version") != self.kernel.banner:
            raise HarnessError(
                f"guest runs {info.get('release')} ({info.get('proc_version')}), expected {self.kernel.release} "
                f"({self.kernel.banner})", "the wrong kernel booted; check the QEMU command line in the run dir")

    def restart(self, why: str) -> AgentClient:
        progress.say(f"restarting the guest ({why}); console of the old one: {self.consoles[-1]}")
        self.close()
        return self.boot()

    @property
    def name(self) -> str:
        return self.label.rstrip("-") or "guest"

    @property
    def target_info(self) -> dict:
        return self.agent.info if self.agent else self.last_info

    def alive(self) -> bool:
        return self.guest is not None and self.guest.alive()

    def console_lines(self) -> list[str]:
        return self.guest.console_text().splitlines() if self.guest else []

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()
            self.agent = None
        if self.guest is not None:
            self.guest.close()

