"""exclusive_ksm: KSM does not merge a device-exclusive page.

Rule (PASS needs all): KSM was started and merged the control pair C/D (the negative control of "A not
merged": in this run KSM does merge identical pages; if it did not, "not merged" cannot fail: ERROR);
EXCLUSIVE on A succeeds; after KSM ran, A is still a device-exclusive entry on its original PFN
(control: present before); A is not merged with its twin B; a device WRITE to A succeeds and the CPU
then sees the new data in A while B keeps the old; C and D intact.
Merging is judged by shared PFNs, not by KPF_KSM: Linux 6.12's fs/proc/page.c tests
`mapping & PAGE_MAPPING_KSM`, which is true for every anonymous page.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import decoded, ioctl_text, no_control, ok_ioctl, pfns
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_ksm",
    order=160,
    description="KSM running: the exclusive page is not merged; device write lands",
    rule=__doc__.split("Rule", 1)[1],
    timeout=300.0,
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    after = obs["after_ksm"]
    p = pfns(after["pagemap"])
    c = Checks()
    started = obs.get("ksm_run", [True])[0]
    c.check("KSM starts", bool(started), str(obs.get("ksm_run")))
    c.control("KSM merged the control pair C/D", p[2] == p[3] and bool(p[2]),
              f"control PFNs {p[2:]} after {obs.get('full_scans')} full scans, "
              f"pages_sharing {obs.get('pages_sharing')}")
    c.check("EXCLUSIVE on A succeeds", ok_ioctl(obs["exclusive"], 1), ioctl_text(obs["exclusive"]))
    a = decoded(after["pagemap"])[0]
    orig_a = pfns(obs["before"]["pagemap"])[0]
    c.check("A is still exclusive on its own frame after KSM", not a["present"] and a["swap"]
            and a.get("swap_offset") == orig_a, f"present {a['present']}, swap type {a.get('swap_type')}, "
            f"offset {a.get('swap_offset')} (PFN before {orig_a})")
    c.control("A was present before EXCLUSIVE", decoded(obs["before"]["pagemap"])[0]["present"],
              f"present {decoded(obs['before']['pagemap'])[0]['present']}")
    c.check("A not merged with B", p[0] != p[1] and p[0] == orig_a, f"PFNs A {p[0]} (was {orig_a}), B {p[1]}")
    c.check("device WRITE to A succeeds", ok_ioctl(obs["device_write"]), ioctl_text(obs["device_write"]))
    c.check("CPU sees the device's data in A, old data in B", obs["a_is_new"] and obs["b_is_same"],
            f"A new {obs['a_is_new']}, B same {obs['b_is_same']}")
    c.check("control pages intact", obs["c_d_intact"], str(obs["c_d_intact"]))
    no_control(c, "KSM starts, EXCLUSIVE / WRITE succeed, data checks",
               "sysfs and ioctl results, and byte comparisons with patterns that differ from each other")
    return c.verdict(f"control pair merged after {obs['full_scans']} scans; exclusive page untouched")
