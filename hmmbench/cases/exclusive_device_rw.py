"""exclusive_device_rw: device reads and writes of pages it holds exclusively.

Rule (PASS needs all): EXCLUSIVE succeeds; HMM_DMIRROR_READ returns the CPU's data; HMM_DMIRROR_WRITE
succeeds; the device still holds the pages afterwards (CHECK_EXCLUSIVE fails with EPERM: its own
accesses do not revoke it); a CPU read then sees the device's data; PFNs never change.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import all_present_same, failed_with, ioctl_text, ok_ioctl
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_device_rw",
    description="device READ/WRITE while exclusive: data correct both ways",
    rule=__doc__.split("Rule", 1)[1],
))


def judge(obs: dict, target: dict) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], n), ioctl_text(obs["exclusive"]))
    c.check("device READ succeeds", ok_ioctl(obs["device_read"]), ioctl_text(obs["device_read"]))
    c.check("device READ returns the CPU's data", obs["device_read_matches"], str(obs["device_read_matches"]))
    c.check("device WRITE succeeds", ok_ioctl(obs["device_write"]), ioctl_text(obs["device_write"]))
    c.check("device still holds the pages after its own I/O", failed_with(obs["check_after_device_io"], "EPERM"),
            ioctl_text(obs["check_after_device_io"]))
    c.check("CPU sees the device's data", obs["cpu_sees_device_data"], str(obs["cpu_sees_device_data"]))
    c.check("PFNs unchanged", all_present_same(obs["after_cpu"], obs["before"]), "present, same PFNs")
    return c.verdict("device read and write correct while exclusive")
