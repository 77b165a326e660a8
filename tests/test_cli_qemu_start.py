"""When QEMU will not start, the error line carries QEMU's own words (its stderr, kept in the run dir)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hmmbench import failures
from hmmbench.errors import HarnessError
from hmmbench.vm.qemu import GuestConfig, QemuGuest, last_meaningful_line


def test_last_meaningful_line_skips_blanks_and_warnings() -> None:
    text = ("qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.01H:ECX.vmx [bit 5]\n"
            "qemu-system-x86_64: total memory for NUMA nodes (0x3e800000) should equal RAM size (0x3e900000)\n"
            "qemu-system-x86_64: warning: something after\n\n")
    assert last_meaningful_line(text).endswith("should equal RAM size (0x3e900000)")
    assert last_meaningful_line("qemu: warning: only this\n") == "qemu: warning: only this"
    assert last_meaningful_line("\n \n") == ""


@pytest.mark.skipif(not (shutil.which("qemu-system-x86_64") and shutil.which("qemu-img")), reason="no QEMU here")
def test_a_qemu_that_exits_at_once_is_named_by_its_own_stderr(tmp_path: Path) -> None:
    """A real QEMU given a file that is not a kernel: it refuses at once (before running any guest code)."""
    not_a_kernel = tmp_path / "bzImage"
    not_a_kernel.write_bytes(b"not a kernel\n" * 100)
    rootfs = tmp_path / "rootfs.img"
    rootfs.write_bytes(b"\0" * (1 << 20))
    guest = QemuGuest(not_a_kernel, rootfs, tmp_path / "run", GuestConfig(memory_mib=512, swap_mib=0))
    try:
        with pytest.raises(HarnessError) as exc:
            guest.start()
    finally:
        guest.close()
    assert exc.value.reason == "qemu exited at once: qemu: invalid kernel header"
    assert guest.stderr_path.parent == tmp_path / "run" and "invalid kernel header" in guest.stderr_path.read_text()
    line = failures.harness_line(exc.value)
    assert "\n" not in line and str(guest.stderr_path) in line and "qemu-cmdline.txt" in line
