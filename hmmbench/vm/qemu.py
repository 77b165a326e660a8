"""Boot a built kernel with a guest image under qemu-system-x86_64 and stop it on every exit path.

One :class:`QemuGuest` is one boot: a copy-on-write overlay over the cached image (so the image never
changes), the serial console captured to a file, user-mode networking with SSH forwarded on
127.0.0.1 only, a QMP socket, and optionally two NUMA nodes. The QEMU process dies with hmmbench
(PR_SET_PDEATHSIG) and is stopped by ``close()`` on success, exceptions, Ctrl-C, SIGTERM and timeouts.

The machine is QEMU's ``microvm``: no PCI bus to enumerate, no ACPI tables, no option ROMs, qboot
instead of SeaBIOS. The virtio devices are memory mapped and QEMU names them on the kernel command line
(``virtio_mmio.device=``), SMP comes from the MP table, and NUMA nodes are the kernel's own emulation
(``numa=fake=N``): what a test guest needs, and nothing a TCG boot would spend seconds probing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hmmbench import procs
from hmmbench.errors import HarnessError
from hmmbench.vm import netns
from hmmbench.vm.netns import TapPort
from hmmbench.vm.qmp import Qmp

QEMU = "qemu-system-x86_64"
GUEST_ADDR = "10.0.2.15"
GUEST_GATEWAY = "10.0.2.2"


COHERENT_MIB = 512  # test_hmm's DEVMEM_CHUNK_SIZE (256 MiB) for each of the two coherent devices
LOW_RAM_MIB = 3072  # RAM below the 32-bit device hole of QEMU's x86 machines


@dataclass
class GuestConfig:
    """What a boot looks like; the defaults are what the case suite needs."""

    memory_mib: int = 2048
    cpus: int = 2
    numa_nodes: int = 2
    accel: str = "tcg"
    extra_append: list[str] = field(default_factory=list)
    swap_mib: int = 256  # a sparse scratch disk, /dev/vdb in the guest, for the reclaim case's swap
    tap: TapPort | None = None  # --net tap: this guest's tap device in hmmbench's namespace
    agent_disk: Path | None = None  # a raw tar of the guest agent, /dev/vdc: the guest's init starts it at boot
    # RAM beyond memory_mib, reserved from the kernel and given to test_hmm as the special-purpose memory
    # of its two device-coherent mirrors (/dev/hmm_dmirror2 and 3): one 256 MiB chunk each.
    coherent_mib: int = COHERENT_MIB

    @property
    def coherent_start(self) -> int | None:
        """Physical address of the coherent range, right above the kernel's memory; None when there is
        none, or when it would reach into the hole below 4 GiB (above 3 GiB of RAM)."""
        if not self.coherent_mib or (self.memory_mib + self.coherent_mib) > LOW_RAM_MIB:
            return None
        return self.memory_mib << 20

    @property
    def qemu_memory_mib(self) -> int:
        return self.memory_mib + (self.coherent_mib if self.coherent_start is not None else 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_qemu() -> str:
    path = shutil.which(QEMU)
    if not path:
        raise HarnessError(f"{QEMU} not found", "apt-get install qemu-system-x86 qemu-utils (ci/setup does)")
    return path


def last_meaningful_line(text: str) -> str:
    """The line that says why: the last non-blank line that is not a warning (QEMU prints warnings such
    as an unsupported CPU feature before the error that stops it), else the last warning."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "warning:" not in line.lower()]
    return (errors or lines or [""])[-1]


def kernel_cmdline(cfg: GuestConfig, ip: str = GUEST_ADDR, gateway: str = GUEST_GATEWAY,
                   netmask: str = "255.255.255.0") -> str:
    numa = [f"numa=fake={cfg.numa_nodes}"] if cfg.numa_nodes > 1 else []
    coherent = []
    if (start := cfg.coherent_start) is not None:
        half = cfg.coherent_mib // 2 << 20
        coherent = [f"memmap={cfg.coherent_mib}M${start:#x}", f"test_hmm.spm_addr_dev0={start:#x}",
                    f"test_hmm.spm_addr_dev1={start + half:#x}"]
    parts = [
        "console=ttyS0,115200", "root=/dev/vda", "rw", "rootfstype=ext4", "init=/sbin/hmmbench-init",
        f"ip={ip}::{gateway}:{netmask}:hmmbench:eth0:off", "panic=-1", "printk.devkmsg=on",
        # microvm has no keyboard controller or ACPI reset: reboot by triple fault, which -no-reboot ends.
        "reboot=t",
        # Report a task stuck in D state after 20 s (default 120 s: longer than a case's timeout).
        "sysctl.kernel.hung_task_timeout_secs=20",
    ]
    return " ".join(parts + numa + coherent + cfg.extra_append)


UNIX_PATH_MAX = 108  # sun_path, with its terminating NUL


def qmp_socket_path(run_dir: Path, name: str) -> Path:
    """The QMP socket beside the console, unless that path is too long for a unix socket (a results
    directory deep under a user's tree, pytest's tmp_path): then a short one in the temp directory,
    unique to this process and guest (removed by close() like the one in the run directory)."""
    path = run_dir.resolve() / f".{name}-qmp.sock"
    if len(os.fsencode(path)) < UNIX_PATH_MAX:
        return path
    return Path(tempfile.gettempdir()) / f"hmmbench-{os.getpid()}-{secrets.token_hex(4)}-{name}-qmp.sock"


class QemuGuest:
    """One running guest. Use as a context manager, or call :meth:`close` yourself."""

    def __init__(self, bzimage: Path, rootfs: Path, run_dir: Path, cfg: GuestConfig, name: str = "guest") -> None:
        self.bzimage = bzimage
        self.rootfs = rootfs
        self.run_dir = run_dir
        self.cfg = cfg
        self.name = name
        self.console_path = run_dir / f"{name}-console.log"
        self.qmp_path = qmp_socket_path(run_dir, name)
        self.overlay = run_dir / f".{name}-overlay.qcow2"
        self.swap_disk = run_dir / f".{name}-swap.img"
        self.ssh_port = 0
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.owner = os.getpid()  # close() is a no-op in a forked child holding a copy of this object

    # -------------------------------------------------------------- lifecycle

    def start(self) -> QemuGuest:
        require_qemu()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._make_overlay()
        for attempt in range(3):
            self.ssh_port = free_port()
            cmd = self.command()
            (self.run_dir / f"{self.name}-qemu-cmdline.txt").write_text(" ".join(cmd) + "\n")
            err_path = self.stderr_path
            with open(err_path, "w") as err_file:  # QEMU keeps its own copy of the descriptor
                self.proc = procs.spawn(cmd, netns=self.cfg.tap.netns if self.cfg.tap else None,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err_file)
            procs.register(id(self), self.close)
            self.started_at = time.monotonic()
            time.sleep(0.3)
            if self.proc.poll() is None:
                if self.cfg.tap:
                    netns.attach(self.cfg.tap)
                return self
            err = err_path.read_text(errors="replace").strip()
            procs.unregister(id(self))
            if "hostfwd" not in err and "Could not set up host forwarding" not in err or attempt == 2:
                raise HarnessError(f"qemu exited at once: {self.exit_reason()}",
                                   f"command line in {self.run_dir / f'{self.name}-qemu-cmdline.txt'}, "
                                   f"its stderr in {err_path}")
        return self

    @property
    def stderr_path(self) -> Path:
        return self.run_dir / f"{self.name}-qemu-stderr.log"

    def exit_reason(self) -> str:
        """Why QEMU ended, in its own words: the last meaningful line of its stderr; failing that (a
        guest that reset at once says nothing there) the exit status and the console's last line."""
        try:
            err = self.stderr_path.read_text(errors="replace")
        except OSError:
            err = ""
        if line := last_meaningful_line(err):
            return line
        code = self.proc.poll() if self.proc is not None else None
        status = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
        if console := last_meaningful_line(self.console_text()):
            return f"{status}, nothing on stderr; console's last line: {console}"
        # Seen with -m 10: exit 0 and not a byte anywhere. With -no-reboot a guest reset ends QEMU cleanly.
        why = " (with -no-reboot: the guest reset at once; too little memory?)" if code == 0 else ""
        return f"{status}, nothing on stderr and no console output{why}"

    def command(self) -> list[str]:
        cfg = self.cfg
        cmd = [
            require_qemu(), "-name", f"hmmbench-{self.name}", "-nodefaults", "-display", "none", "-no-reboot",
            "-machine", "microvm,acpi=off,pcie=off,rtc=on,pit=on,pic=on,isa-serial=on",
            "-accel", cfg.accel, "-cpu", "max" if cfg.accel == "tcg" else "host",
            "-smp", str(cfg.cpus), "-m", f"{cfg.qemu_memory_mib}M",
            "-kernel", str(self.bzimage), "-append", self.cmdline(),
            # virtio-mmio disks are named in the order they are created: root /dev/vda, swap /dev/vdb,
            # the agent /dev/vdc.
            *self._disk("root", self.overlay, "qcow2", ",discard=unmap"),
            *(self._disk("swap", self.swap_disk, "raw") if cfg.swap_mib else []),
            *(self._disk("agent", cfg.agent_disk, "raw", ",readonly=on") if cfg.agent_disk else []),
            "-netdev", self.netdev(),
            "-device", f"virtio-net-device,netdev=net0,mac={self.mac()}",
            "-device", "virtio-rng-device",
            "-chardev", f"file,id=con0,path={self.console_path}", "-serial", "chardev:con0",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
        ]
        return cmd

    @staticmethod
    def _disk(name: str, path: Path, fmt: str, extra: str = "") -> list[str]:
        return ["-drive", f"file={path},if=none,id={name},format={fmt},cache=unsafe{extra}",
                "-device", f"virtio-blk-device,drive={name}"]

    def cmdline(self) -> str:
        tap = self.cfg.tap
        if tap:
            return kernel_cmdline(self.cfg, tap.ip, tap.gateway, tap.netmask)
        return kernel_cmdline(self.cfg)

    def netdev(self) -> str:
        tap = self.cfg.tap
        if tap:
            return f"tap,id=net0,ifname={tap.ifname},script=no,downscript=no"
        return f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22"

    def mac(self) -> str:
        """A stable locally administered MAC per tap (guests on one bridge need distinct ones)."""
        n = int(self.cfg.tap.ip.rsplit(".", 1)[1]) if self.cfg.tap else 1
        return f"52:54:00:77:00:{n:02x}"

    @property
    def ssh_address(self) -> tuple[str, int]:
        return (self.cfg.tap.ip, 22) if self.cfg.tap else ("127.0.0.1", self.ssh_port)

    def _make_overlay(self) -> None:
        if self.overlay.exists():
            self.overlay.unlink()
        proc = subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.rootfs), str(self.overlay)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise HarnessError(f"qemu-img create failed: {proc.stderr.strip()}", "apt-get install qemu-utils")
        if self.cfg.swap_mib:
            with open(self.swap_disk, "wb") as fh:
                fh.truncate(self.cfg.swap_mib << 20)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def console_text(self) -> str:
        try:
            return self.console_path.read_text(errors="replace")
        except OSError:
            return ""

    def console_tail(self, lines: int = 15) -> str:
        return "\n".join(self.console_text().splitlines()[-lines:])

    def close(self, grace: float = 5.0) -> None:
        """Stop QEMU: QMP quit, then SIGTERM, then SIGKILL; always reaps the process."""
        proc = self.proc
        if proc is None or not procs.is_owner(self.owner):
            return
        if proc.poll() is None:
            try:
                q = Qmp(self.qmp_path, timeout=2.0)
                try:
                    q.execute("quit")
                except Exception:  # noqa: BLE001 - quit closes the socket under us
                    pass
                q.close()
            except OSError:
                pass
            for sig, wait in ((None, grace), (signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
                if sig is not None and proc.poll() is None:
                    try:
                        proc.send_signal(sig)
                    except ProcessLookupError:
                        pass
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        procs.unregister(id(self))
        for p in (self.overlay, self.qmp_path, self.swap_disk, *([self.cfg.agent_disk] if self.cfg.agent_disk else [])):
            try:
                p.unlink()
            except OSError:
                pass
        self.proc = None

    def __enter__(self) -> QemuGuest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        cfg = self.cfg
        host, port = self.ssh_address
        net = f"tap {cfg.tap.ifname} in {cfg.tap.netns}, " if cfg.tap else ""
        return f"{self.name}: {cfg.accel}, {cfg.cpus} CPUs, {cfg.memory_mib} MiB, {net}ssh {host}:{port}"


def wait_for_console(guest: QemuGuest, needle: str, timeout: float) -> bool:
    """True once ``needle`` appears on the console; False on timeout or when QEMU exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in guest.console_text():
            return True
        if not guest.alive():
            return False
        time.sleep(0.05)
    return False
