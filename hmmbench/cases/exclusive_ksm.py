"""exclusive_ksm: KSM does not merge a device-exclusive page.

Rule (PASS needs all): KSM merged the control pair C/D (otherwise KSM did not run long enough: SKIP);
EXCLUSIVE on A succeeds; after KSM ran, A is still a device-exclusive entry on its original PFN (not
merged with its twin B); a device WRITE to A succeeds and the CPU then sees the new data in A while B
keeps the old; C and D intact.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import decoded, ioctl_text, ok_ioctl, pfns
from hmmbench.verdict import Checks, Status, Verdict

SPEC = register(CaseSpec(
    name="exclusive_ksm",
    description="KSM running: the exclusive page is not merged; device write lands",
    rule=__doc__.split("Rule", 1)[1],
    timeout=300.0,
))


def judge(obs: dict, target: dict) -> Verdict:
    # Merging is judged by shared PFNs, not by KPF_KSM: Linux 6.12's fs/proc/page.c tests
    # `mapping & PAGE_MAPPING_KSM`, which is true for every anonymous page.
    after = obs["after_ksm"]
    p = pfns(after["pagemap"])
    if p[2] != p[3]:
        return Verdict(Status.SKIP, f"KSM did not merge the control pair in {obs.get('full_scans')} full scans",
                       [f"note control PFNs {p[2:]}, pages_sharing {obs.get('pages_sharing')}"])
    c = Checks()
    c.check("EXCLUSIVE on A succeeds", ok_ioctl(obs["exclusive"], 1), ioctl_text(obs["exclusive"]))
    a = decoded(after["pagemap"])[0]
    orig_a = pfns(obs["before"]["pagemap"])[0]
    c.check("A is still exclusive on its own frame after KSM", not a["present"] and a["swap"]
            and a.get("swap_offset") == orig_a, f"{a}")
    c.check("A not merged with B", p[0] != p[1] and p[0] == orig_a, f"PFNs A {p[0]} (was {orig_a}), B {p[1]}")
    c.check("device WRITE to A succeeds", ok_ioctl(obs["device_write"]), ioctl_text(obs["device_write"]))
    c.check("CPU sees the device's data in A, old data in B", obs["a_is_new"] and obs["b_is_same"],
            f"A new {obs['a_is_new']}, B same {obs['b_is_same']}")
    c.check("control pages intact", obs["c_d_intact"], str(obs["c_d_intact"]))
    return c.verdict(f"control pair merged after {obs['full_scans']} scans; exclusive page untouched")
