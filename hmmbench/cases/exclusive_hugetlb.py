"""exclusive_hugetlb: MAP_HUGETLB memory cannot be made exclusive, and asking must not crash.

Rule (PASS needs all): EXCLUSIVE on one page and on the whole 2 MiB huge page both fail (EBUSY before
the series, EOPNOTSUPP after: the expectation, not the key, names the errno); the page state is
unchanged; data intact; no kernel message (CVE-2025-22034: "kernel BUG at mm/page_table_check.c" on
6.10 .. 6.12.22). Control: in the same run EXCLUSIVE of an ordinary anonymous page succeeds and turns
its PTE into a swap entry, so the refusals and "unchanged" are about hugetlb, not a device that
refuses everything.
If the MAP_HUGETLB mmap is refused the host decides: a kernel without CONFIG_HUGETLBFS, no huge page
reserved (HugePages_Free 0 after asking for two: no memory) or a default huge page size other than
2 MiB is a SKIP with that reason; a refusal with free 2 MiB huge pages on a CONFIG_HUGETLBFS=y kernel
is a FAIL; without the kernel's configuration the rule says it cannot tell (ERROR).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import (
    decoded,
    errname,
    ioctl_text,
    no_control,
    noted,
    ok_ioctl,
    pfns,
    pfns_visible,
    undecided,
)
from hmmbench.cases.verdict import Checks, Status, Verdict
from hmmbench.kernel import expected

SPEC = CaseSpec(
    name="exclusive_hugetlb",
    order=60,
    description="MAP_HUGETLB: refused without an oops (CVE-2025-22034)",
    rule=__doc__.split("Rule", 1)[1],
)


def judge_mmap_refused(obs: dict, facts: TargetFacts) -> Verdict:
    cfg = facts.config
    mem = obs.get("meminfo") or {}
    seen = (f"mmap {obs['mmap'].get('error')}; nr_hugepages {obs.get('nr_hugepages')} (asked via "
            f"{obs.get('reserve')}), HugePages_Free {mem.get('HugePages_Free')}, "
            f"Hugepagesize {mem.get('Hugepagesize')} kB")
    if cfg.enabled("CONFIG_HUGETLBFS") is False:
        return Verdict(Status.SKIP, f"kernel without hugetlb ({cfg.describe('CONFIG_HUGETLBFS')})",
                       noted("hugetlb state", seen))
    if mem.get("Hugepagesize") not in (None, 2048):
        return Verdict(Status.SKIP, f"default huge page size is {mem['Hugepagesize']} kB; the case maps 2 MiB",
                       noted("hugetlb state", seen))
    if not mem.get("HugePages_Free"):
        return Verdict(Status.SKIP, "no 2 MiB huge page could be reserved (HugePages_Free 0 after asking for two)",
                       noted("hugetlb state", seen))
    c = Checks()
    if not cfg.known:
        undecided(c, "kernel configuration known (MAP_HUGETLB refused)", f"{seen}; {cfg.describe()}")
        return c.verdict("")
    c.check("MAP_HUGETLB mmap succeeds", False, seen,
            f"a mapping ({cfg.describe('CONFIG_HUGETLBFS')}, {mem.get('HugePages_Free')} free huge pages)")
    return c.verdict("")


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    if not obs.get("mmap", {"ok": True})["ok"]:
        return judge_mmap_refused(obs, facts)
    post = expected.has_series(facts.release)
    want = "EOPNOTSUPP" if post else "EBUSY"
    why = "patches 1-3 fence hugetlb" if post else "before the series"
    c = Checks()
    for key in ("one_page", "whole"):
        cmd = obs[key]
        got = errname(cmd.get("errno")) if cmd.get("ret") == -1 else f"ret={cmd.get('ret')}"
        c.check(f"{key}: refused", got == want, ioctl_text(cmd), f"ret=-1 errno={want} ({why})")
    for key in ("after_one_page", "after_whole"):
        same = all(d["present"] for d in decoded(obs[key])) and pfns(obs[key]) == pfns(obs["before"])
        c.check(f"{key}: page state unchanged", same, "present, same PFNs" if same else "changed")
    pfns_visible(c, obs["before"])
    ctl, after = obs["control_exclusive"], decoded(obs["control_after"])[0]
    c.control("EXCLUSIVE of an ordinary page succeeds and changes its PTE", ok_ioctl(ctl, 1)
              and not after["present"] and after["swap"], f"{ioctl_text(ctl)}, present {after['present']}")
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    no_control(c, "data intact", "a byte comparison of the huge page with the pattern written to it")
    return c.verdict(f"hugetlb refused ({want}), no state change")
