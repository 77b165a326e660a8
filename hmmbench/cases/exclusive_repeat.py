"""exclusive_repeat: EXCLUSIVE again, and after partial CPU access, across 64-page batch boundaries.

Rule (PASS needs all, for 63, 64, 65 and 1024 pages): each of the three EXCLUSIVE calls returns 0
with cpages == npages, fills the mirror it was given (zeroed before each call; control: a zeroed
mirror does not match) and leaves every PTE device-exclusive on its original PFN (controls: present
before, PFNs visible and distinct); after touching every third page those pages (and only those) are
present (the expectation itself mixes present and exclusive pages); the data is intact.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import decoded, ioctl_text, no_control, ok_ioctl, pfns, pfns_visible
from hmmbench.cases.verdict import Checks, Verdict

SPEC = CaseSpec(
    name="exclusive_repeat",
    order=90,
    description="exclusive twice, and after partial CPU access; 63/64/65/1024 pages",
    rule=__doc__.split("Rule", 1)[1],
    timeout=300.0,
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    for size, r in obs["ranges"].items():
        n = r["npages"]
        orig = pfns(r["before"])
        c.control(f"{size} pages: present before", all(d["present"] for d in decoded(r["before"])),
                  f"{sum(d['present'] for d in decoded(r['before']))}/{n} present")
        pfns_visible(c, r["before"], f"{size} pages: ")
        c.control(f"{size} pages: a zeroed mirror does not hold the data", r["mirror_matched_zeroed"] is False,
                  str(r["mirror_matched_zeroed"]))
        for step in ("first", "second", "third"):
            c.check(f"{size} pages, {step} EXCLUSIVE succeeds", ok_ioctl(r[step], n), ioctl_text(r[step]))
            after = r[f"after_{step}"]
            excl = [not d["present"] and d["swap"] for d in decoded(after)]
            c.check(f"{size} pages, all exclusive after {step}", all(excl) and pfns(after) == orig,
                    f"{sum(excl)}/{n} exclusive, PFNs {'kept' if pfns(after) == orig else 'changed'}")
            c.check(f"{size} pages, {step} EXCLUSIVE fills the mirror", r[f"mirror_after_{step}"],
                    str(r[f"mirror_after_{step}"]))
        partial = decoded(r["after_partial_cpu"])
        expect = [i % 3 == 0 for i in range(n)]
        c.check(f"{size} pages, CPU touch restores exactly the touched pages",
                [d["present"] for d in partial] == expect, f"{sum(d['present'] for d in partial)} present",
                f"{sum(expect)} present (every third)")
        c.check(f"{size} pages, data intact", r["data_intact"], str(r["data_intact"]))
    no_control(c, "EXCLUSIVE succeeds, data intact", "ioctl return values and a byte comparison with the pattern "
               "written")
    return c.verdict("repeat and partial re-exclusive correct for " + ", ".join(obs["ranges"]) + " pages")
