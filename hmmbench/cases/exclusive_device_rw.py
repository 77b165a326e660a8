"""exclusive_device_rw: device reads and writes of pages it holds exclusively.

Rule (PASS needs all): EXCLUSIVE succeeds; HMM_DMIRROR_READ returns the CPU's data without a fault and
the device still holds the pages afterwards (CHECK_EXCLUSIVE fails with EPERM, PTEs still exclusive);
HMM_DMIRROR_WRITE succeeds; a CPU read then sees the device's data; PFNs never change.
Recorded: test_hmm's WRITE only uses WRITE-tagged mirror entries, so on an ATOMIC (exclusive) entry it
faults through hmm_range_fault, which takes the pages back from the exclusive state.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import all_present_same, decoded, failed_with, ioctl_text, ok_ioctl
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
    still = [not d["present"] and d["swap"] for d in decoded(obs["after_device_read"])]
    kept = failed_with(obs["check_after_device_read"], "EPERM")
    c.check("device READ needs no fault and keeps the pages exclusive",
            obs["device_read"].get("faults") == 0 and all(still) and kept,
            f"faults {obs['device_read'].get('faults')}, {sum(still)}/{n} still exclusive, "
            f"CHECK_EXCLUSIVE {ioctl_text(obs['check_after_device_read'])}")
    c.check("device WRITE succeeds", ok_ioctl(obs["device_write"]), ioctl_text(obs["device_write"]))
    present = sum(d["present"] for d in decoded(obs["after_device_write"]))
    c.note("device WRITE on exclusive pages", f"{obs['device_write'].get('faults')} fault(s); afterwards {present}/{n} "
           f"PTEs present, CHECK_EXCLUSIVE {ioctl_text(obs['check_after_device_write'])}")
    c.check("CPU sees the device's data", obs["cpu_sees_device_data"], str(obs["cpu_sees_device_data"]))
    c.check("PFNs unchanged", all_present_same(obs["after_cpu"], obs["before"]), "present, same PFNs")
    return c.verdict("device read and write correct while exclusive")
