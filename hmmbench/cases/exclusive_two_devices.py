"""exclusive_two_devices: a second device taking the same pages revokes the first one's access.

Rule (PASS needs all): dmirror0 takes the pages (CHECK_EXCLUSIVE on dmirror0 then EPERM; control: 0
before it took them); dmirror1 takes the same pages; afterwards CHECK_EXCLUSIVE on dmirror0 returns 0
(it lost exclusivity; control: it read EPERM while it held them) and on dmirror1 EPERM (it holds it;
control: 0 before it took them); the PTEs are device-exclusive (control: present before); both
mirrors held the data (control: neither zeroed mirror held it before); a CPU read then sees the data,
and dmirror1 loses access too (control: its EPERM before the read).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import decoded, failed_with, ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_two_devices",
    order=80,
    description="dmirror0 then dmirror1 on the same pages: the first loses exclusivity",
    rule=__doc__.split("Rule", 1)[1],
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("dmirror0 EXCLUSIVE succeeds", ok_ioctl(obs["dev0_exclusive"], n), ioctl_text(obs["dev0_exclusive"]))
    c.check("dmirror0 holds the pages", failed_with(obs["check0_after_dev0"], "EPERM"),
            ioctl_text(obs["check0_after_dev0"]), "ret=-1 errno=EPERM")
    c.control("dmirror0's CHECK_EXCLUSIVE said not held before it took the pages", obs["check0_before"].get("ret") == 0,
              ioctl_text(obs["check0_before"]))
    c.check("dmirror1 EXCLUSIVE succeeds", ok_ioctl(obs["dev1_exclusive"], n), ioctl_text(obs["dev1_exclusive"]))
    c.check("dmirror0 lost exclusivity", obs["check0_after_dev1"].get("ret") == 0, ioctl_text(obs["check0_after_dev1"]),
            "ret=0")
    c.control("dmirror0's CHECK_EXCLUSIVE said held while it held the pages",
              failed_with(obs["check0_after_dev0"], "EPERM"), ioctl_text(obs["check0_after_dev0"]))
    c.check("dmirror1 holds the pages", failed_with(obs["check1_after_dev1"], "EPERM"),
            ioctl_text(obs["check1_after_dev1"]), "ret=-1 errno=EPERM")
    c.control("dmirror1's CHECK_EXCLUSIVE said not held before it took the pages", obs["check1_before"].get("ret") == 0,
              ioctl_text(obs["check1_before"]))
    excl = [not d["present"] and d["swap"] for d in decoded(obs["after_dev1"])]
    c.check("PTEs are device-exclusive after dmirror1", all(excl), f"{sum(excl)}/{n}")
    c.control("the PTEs were present before", all(d["present"] for d in decoded(obs["before"])),
              f"{sum(d['present'] for d in decoded(obs['before']))}/{n} present")
    c.check("both mirrors held the data", obs["mirror0_matches"] and obs["mirror1_matches"],
            f"dmirror0 {obs['mirror0_matches']}, dmirror1 {obs['mirror1_matches']}")
    c.control("neither zeroed mirror held the data before", obs["mirrors_matched_before"] is False,
              str(obs["mirrors_matched_before"]))
    c.check("CPU sees the data", obs["data_intact"], str(obs["data_intact"]))
    c.check("CPU access revokes dmirror1 too", obs["check1_after_cpu"].get("ret") == 0,
            ioctl_text(obs["check1_after_cpu"]), "ret=0")
    c.control("dmirror1's CHECK_EXCLUSIVE said held before the CPU read", failed_with(obs["check1_after_dev1"],
              "EPERM"), ioctl_text(obs["check1_after_dev1"]))
    no_control(c, "EXCLUSIVE succeeds (both), CPU sees the data", "ioctl return values and a byte comparison with "
               "the pattern written")
    return c.verdict("second device took over; first lost access; data consistent")
