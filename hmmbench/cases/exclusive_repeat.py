"""exclusive_repeat: EXCLUSIVE again, and after partial CPU access, across 64-page batch boundaries.

Rule (PASS needs all, for 63, 64, 65 and 1024 pages): each of the three EXCLUSIVE calls returns 0
with cpages == npages and leaves every PTE device-exclusive on its original PFN; after touching every
third page those pages (and only those) are present; the mirror and the data are intact.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import decoded, ioctl_text, ok_ioctl, pfns
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_repeat",
    description="exclusive twice, and after partial CPU access; 63/64/65/1024 pages",
    rule=__doc__.split("Rule", 1)[1],
    timeout=300.0,
))


def judge(obs: dict, target: dict) -> Verdict:
    c = Checks()
    for size, r in obs["ranges"].items():
        n = r["npages"]
        orig = pfns(r["before"])
        for step in ("first", "second", "third"):
            c.check(f"{size} pages, {step} EXCLUSIVE succeeds", ok_ioctl(r[step], n), ioctl_text(r[step]))
            after = r[f"after_{step}"]
            excl = [not d["present"] and d["swap"] for d in decoded(after)]
            c.check(f"{size} pages, all exclusive after {step}", all(excl) and pfns(after) == orig,
                    f"{sum(excl)}/{n} exclusive, PFNs {'kept' if pfns(after) == orig else 'changed'}")
        partial = decoded(r["after_partial_cpu"])
        expect = [i % 3 == 0 for i in range(n)]
        c.check(f"{size} pages, CPU touch restores exactly the touched pages",
                [d["present"] for d in partial] == expect, f"{sum(d['present'] for d in partial)} present")
        c.check(f"{size} pages, mirror and data intact", r["mirror_matches"] and r["data_intact"],
                f"mirror {r['mirror_matches']}, data {r['data_intact']}")
    return c.verdict("repeat and partial re-exclusive correct for " + ", ".join(obs["ranges"]) + " pages")
