"""exclusive_device_rw: device reads and writes of pages it holds exclusively.

Rule (PASS needs all): EXCLUSIVE succeeds; HMM_DMIRROR_READ succeeds and returns the CPU's data
(control: its zeroed output buffer did not match before the call); the READ is served without a fault
(control: the WRITE after it reports one) and the device still holds the pages afterwards: PTEs still
non-present and CHECK_EXCLUSIVE fails with EPERM (control: both read the other way after the WRITE);
HMM_DMIRROR_WRITE succeeds; a CPU read then sees the device's data; PFNs never change (control: the
PFNs are visible and distinct).
Why the WRITE reads the other way: test_hmm's WRITE only uses WRITE-tagged mirror entries, so on an
ATOMIC (exclusive) entry it faults through hmm_range_fault(), which takes the pages back from the
exclusive state (lib/test_hmm.c dmirror_do_write / dmirror_fault).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import all_present_same, decoded, failed_with, ioctl_text, no_control, ok_ioctl, pfns_visible
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_device_rw",
    order=100,
    description="device READ/WRITE while exclusive: data correct both ways",
    rule=__doc__.split("Rule", 1)[1],
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    n = obs["npages"]
    c = Checks()
    rd, wr = obs["device_read"], obs["device_write"]
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], n), ioctl_text(obs["exclusive"]))
    c.check("device READ succeeds", ok_ioctl(rd), ioctl_text(rd))
    c.check("device READ returns the CPU's data", obs["device_read_matches"], str(obs["device_read_matches"]))
    c.control("the zeroed READ buffer did not hold the data before", obs["device_read_matched_before"] is False,
              str(obs["device_read_matched_before"]))
    c.check("device READ served without a fault", rd.get("faults") == 0, f"faults {rd.get('faults')}", "0")
    c.control("the device WRITE on exclusive pages reports a fault", (wr.get("faults") or 0) > 0,
              f"faults {wr.get('faults')}")
    still = [not d["present"] and d["swap"] for d in decoded(obs["after_device_read"])]
    kept = failed_with(obs["check_after_device_read"], "EPERM")
    c.check("device READ keeps the pages exclusive", all(still) and kept,
            f"{sum(still)}/{n} still exclusive, CHECK_EXCLUSIVE {ioctl_text(obs['check_after_device_read'])}",
            f"{n}/{n}, CHECK_EXCLUSIVE EPERM")
    present = sum(d["present"] for d in decoded(obs["after_device_write"]))
    c.control("after the device WRITE the pages read present and not held", present == n
              and obs["check_after_device_write"].get("ret") == 0,
              f"{present}/{n} present, CHECK_EXCLUSIVE {ioctl_text(obs['check_after_device_write'])}")
    c.check("device WRITE succeeds", ok_ioctl(wr), ioctl_text(wr))
    c.check("CPU sees the device's data", obs["cpu_sees_device_data"], str(obs["cpu_sees_device_data"]))
    c.check("PFNs unchanged", all_present_same(obs["after_cpu"], obs["before"]), "present, same PFNs")
    pfns_visible(c, obs["before"])
    no_control(c, "EXCLUSIVE / READ / WRITE succeed, CPU sees the device's data",
               "ioctl return values and a byte comparison with the device's pattern (different from the CPU's)")
    return c.verdict("device read and write correct while exclusive")
