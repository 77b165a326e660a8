"""exclusive_thp: one page of a THP made device-exclusive.

Rule (PASS needs all, for the head page and for a tail page of two separate THPs): EXCLUSIVE returns
0 with cpages 1; exactly one PTE of the folio is device-exclusive afterwards, the requested one
(control: every PTE of both folios was present before); every other PTE of the folio is present with
its PFN unchanged (control: the PFNs read before are visible and distinct); data intact after a CPU
read. Before the series a tail page is refused with EBUSY and a head page converts all 512 PTEs of the
folio (the bug the series fixed): both are FAILs.
When no THP formed (kpageflags of a head without KPF_THP) the host decides why: no THP in the kernel
(CONFIG_TRANSPARENT_HUGEPAGE not set, or no /sys/kernel/mm/transparent_hugepage) or THP set to
"never" is a SKIP; the kernel trying and failing to allocate a huge page (thp_fault_fallback rose
while the region was first touched), or, where the kernel has no such counter (no
CONFIG_VM_EVENT_COUNTERS), no free 2 MiB block in /proc/buddyinfo before it, is a SKIP with that
reason; MADV_HUGEPAGE refused, or no THP although THP is enabled and the kernel could have allocated
one, is a FAIL; with neither observation the rule cannot tell and says so (ERROR).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import (
    decoded,
    exclusive_types,
    ioctl_text,
    is_exclusive,
    no_control,
    noted,
    ok_ioctl,
    pfns,
    pfns_visible,
    thp_fallbacks,
    thp_mode,
    undecided,
)
from hmmbench.cases.verdict import Checks, Status, Verdict
from hmmbench.guest.pagemap import KPF

SPEC = CaseSpec(
    name="exclusive_thp",
    order=40,
    description="one page of a THP -> exactly one exclusive PTE (pre-series: EBUSY / whole folio)",
    rule=__doc__.split("Rule", 1)[1],
)


def _folio_check(c: Checks, label: str, cmd: dict, after: list[int], before: list[int], index: int,
                 types: set[int]) -> int:
    dec = decoded(after)
    excl = [i for i, d in enumerate(dec) if is_exclusive(d, types) or (not d["present"] and d["swap"])]
    c.check(f"{label}: EXCLUSIVE of one page succeeds", ok_ioctl(cmd, 1), ioctl_text(cmd), "ret=0 cpages=1")
    c.check(f"{label}: exactly the requested PTE is exclusive", excl == [index],
            f"{len(excl)} of {len(dec)} PTEs exclusive" + (f" (first {excl[:4]})" if excl else ""),
            f"1 of {len(dec)}, index {index}")
    others = [i for i in range(len(dec)) if i != index]
    kept = [dec[i]["present"] and pfns([after[i]])[0] == pfns([before[i]])[0] for i in others]
    c.check(f"{label}: every other PTE present with the same PFN", all(kept), f"{sum(kept)}/{len(others)}")
    return len(excl)



def _fallbacks(obs: dict) -> int | None:
    """How many huge-page allocations failed while the region was first touched (None: counters missing)."""
    return thp_fallbacks(obs.get("vmstat_before"), obs.get("vmstat_after"))

def judge_not_formed(obs: dict, facts: TargetFacts) -> Verdict:
    """No THP backs the region: decide from the kernel's configuration, the THP mode and the fault counters."""
    cfg = facts.config
    mode = thp_mode(obs.get("thp_enabled"))
    flags = ["THP" if f is not None and f >> KPF["THP"] & 1 else hex(f or 0) for f in obs.get("head_kpageflags") or []]
    seen = (f"heads {flags}, AnonHugePages {obs.get('anon_huge_kb_before')} kB, enabled {obs.get('thp_enabled')!r}, "
            f"defrag {obs.get('thp_defrag')!r}, fault counters {obs.get('vmstat_before')} -> "
            f"{obs.get('vmstat_after')}, free 2 MiB blocks before {obs.get('free_2mb_blocks_before')}")
    configured = cfg.enabled("CONFIG_TRANSPARENT_HUGEPAGE")
    if configured is False or (configured is None and obs.get("thp_enabled") is None):
        return Verdict(Status.SKIP, f"no THP on this kernel ({cfg.describe('CONFIG_TRANSPARENT_HUGEPAGE')}; "
                       f"enabled {obs.get('thp_enabled')!r})", noted("THP state", seen))
    if mode == "never":
        return Verdict(Status.SKIP, "THP disabled on the target (transparent_hugepage/enabled is [never])",
                       noted("THP state", seen))
    c = Checks()
    c.check("THP sysfs interface present", obs.get("thp_enabled") is not None, str(obs.get("thp_enabled")),
            cfg.describe("CONFIG_TRANSPARENT_HUGEPAGE"))
    c.check("MADV_HUGEPAGE accepted", obs["madvise"][0] == 0, str(obs["madvise"]), "[0, 0]")
    fallback = _fallbacks(obs)
    free = obs.get("free_2mb_blocks_before")
    if c.failed:
        return c.verdict("")
    if fallback:
        return Verdict(Status.SKIP, f"the kernel tried to allocate huge pages and could not (thp_fault_fallback "
                       f"+{fallback}): no free 2 MiB block", noted("THP state", seen))
    if fallback is None and free == 0:
        return Verdict(Status.SKIP, "no free 2 MiB block before the first touch (/proc/buddyinfo; no THP fault "
                       "counters without CONFIG_VM_EVENT_COUNTERS)", noted("THP state", seen))
    if fallback is None and free is None:
        undecided(c, "could the kernel allocate a huge page (no fault counters, no buddyinfo)", seen)
        return c.verdict("")
    c.check("a THP backs the MADV_HUGEPAGE region", False, seen,
            f"THP on both heads ({cfg.describe('CONFIG_TRANSPARENT_HUGEPAGE')}, THP [{mode}], "
            + ("no allocation failed)" if fallback == 0 else f"{free} free 2 MiB blocks)"))
    return c.verdict("")


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    if not obs.get("thp_formed", True):
        return judge_not_formed(obs, facts)
    per = obs["pages_per_thp"]
    types = exclusive_types(facts.release) or {29, 30}
    c = Checks()
    before = obs["before"]
    c.control("every PTE of both folios was present before", all(d["present"] for d in decoded(before)),
              f"{sum(d['present'] for d in decoded(before))}/{len(before)} present")
    pfns_visible(c, before)
    n_head = _folio_check(c, "head page", obs["head"], obs["after_head"], before[:per], 0, types)
    n_tail = _folio_check(c, "tail page", obs["tail"], obs["after_tail"], before[per:], obs["tail_index"], types)
    c.note("AnonHugePages before -> after (a drop: the PMD was split)",
           f"{obs['anon_huge_kb_before']} kB -> {obs['anon_huge_kb_after']} kB")
    c.check("data intact after CPU read", obs["data_intact"], str(obs["data_intact"]))
    no_control(c, "EXCLUSIVE of one page succeeds, data intact",
               "an ioctl's return value and a byte comparison with the pattern written")
    return c.verdict(f"head: {n_head} PTE exclusive, tail: {n_tail} PTE exclusive, PMD split to PTEs")
