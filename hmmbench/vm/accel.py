"""Choose the accelerator: KVM only after a bounded trial boot proves it works, else TCG.

On some machines /dev/kvm answers the KVM API but guests hang right after the firmware (see the
project's machine notes), and ``-accel kvm:tcg`` then picks KVM and hangs. So: boot the kernel under
KVM with a bogus init and wait a few seconds for the kernel's first console line. The answer is
cached per (host kernel, QEMU version), since it does not change between runs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hmmbench import cache, progress
from hmmbench.vm.qemu import GuestConfig, QemuGuest, require_qemu, wait_for_console

PROBE_VERSION = 2  # bump when the probe or its answer changes: the answer is cached per host
PROBE_SECONDS = 12.0


def _qemu_version() -> str:
    out = subprocess.run([require_qemu(), "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


def kvm_usable_device() -> bool:
    return os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)


def choose(bzimage: Path, rootfs: Path, requested: str = "auto") -> tuple[str, str]:
    """(accelerator, why) for ``requested`` in auto|kvm|tcg; ``auto`` probes KVM once per host."""
    env = os.environ.get("HMMBENCH_ACCEL")
    if requested == "auto" and env:
        requested = env
    if requested in ("kvm", "tcg"):
        return requested, f"requested ({requested})"
    if not kvm_usable_device():
        return "tcg", "no usable /dev/kvm"
    key = cache.stable_hash(os.uname().release, _qemu_version(), PROBE_VERSION)
    record_path = cache.cache_root() / "accel" / f"{key}.json"
    record = cache.read_json(record_path)
    if record is None:
        record = probe_kvm(bzimage, rootfs, record_path.with_suffix(".probe"))
        cache.write_json(record_path, record)
    return record["accel"], record["why"]


def probe_kvm(bzimage: Path, rootfs: Path, probe_dir: Path) -> dict:
    """Boot under KVM for at most PROBE_SECONDS; KVM works if the kernel printed its banner.

    The probe's QEMU command line, stderr and console stay in ``probe_dir`` (named in the answer), the
    evidence for "why TCG" long after the probe ran.
    """
    with progress.step(f"probing KVM with a {PROBE_SECONDS:.0f}s trial boot"):
        cfg = GuestConfig(memory_mib=256, cpus=1, numa_nodes=1, accel="kvm",
                          extra_append=["init=/hmmbench-kvm-probe-does-not-exist"])
        guest = QemuGuest(bzimage, rootfs, probe_dir, cfg, name="kvm-probe")
        try:
            guest.start()
            ok = wait_for_console(guest, "Linux version", PROBE_SECONDS)
            tail = guest.console_tail(3)
        except Exception as exc:  # noqa: BLE001 - any failure means "do not use KVM"
            ok, tail = False, getattr(exc, "reason", str(exc))
        finally:
            guest.close(grace=0.5)
    if ok:
        return {"accel": "kvm", "why": "KVM trial boot reached the kernel"}
    last = tail.strip().splitlines()[-1] if tail.strip() else "no console output"
    return {"accel": "tcg", "why": f"KVM trial boot did not reach the kernel in {PROBE_SECONDS:.0f}s: {last[:120]} "
                                   f"(evidence in {probe_dir})"}
