"""exclusive_hugetlb: MAP_HUGETLB memory cannot be made exclusive, and asking must not crash.

Rule (PASS needs all): EXCLUSIVE on one page and on the whole 2 MiB huge page both fail (EBUSY before
the series, EOPNOTSUPP after); the page state is unchanged; data intact; no kernel message
(CVE-2025-22034: "kernel BUG at mm/page_table_check.c" on 6.10 .. 6.12.22).
"""

from __future__ import annotations

from hmmbench import kernelfacts
from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import decoded, errname, ioctl_text, pfns
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_hugetlb",
    description="MAP_HUGETLB: refused without an oops (CVE-2025-22034)",
    rule=__doc__.split("Rule", 1)[1],
))


def judge(obs: dict, target: dict) -> Verdict:
    expected = "EOPNOTSUPP" if kernelfacts.has_series(target.get("release", "")) else "EBUSY"
    c = Checks()
    for key in ("one_page", "whole"):
        cmd = obs[key]
        got = errname(cmd.get("errno")) if cmd.get("ret") == -1 else f"ret={cmd.get('ret')}"
        c.check(f"{key}: refused with {expected}", got == expected, ioctl_text(cmd))
    for key in ("after_one_page", "after_whole"):
        same = all(d["present"] for d in decoded(obs[key])) and pfns(obs[key]) == pfns(obs["before"])
        c.check(f"{key}: page state unchanged", same, "present, same PFNs" if same else "changed")
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    return c.verdict(f"hugetlb refused ({expected}), no state change")
