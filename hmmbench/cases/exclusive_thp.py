"""exclusive_thp: one page of a THP made device-exclusive.

Rule (PASS needs all, for the head page and for a tail page of two separate THPs): EXCLUSIVE returns
0 with cpages 1; exactly one PTE of the folio is device-exclusive afterwards, the requested one; every
other PTE of the folio is present with its PFN unchanged; data intact after a CPU read.
Before the series a tail page is refused with EBUSY and a head page converts all 512 PTEs of the
folio (the bug the series fixed): both are FAILs.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import decoded, exclusive_types, ioctl_text, is_exclusive, ok_ioctl, pfns
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_thp",
    description="one page of a THP -> exactly one exclusive PTE (pre-series: EBUSY / whole folio)",
    rule=__doc__.split("Rule", 1)[1],
))


def _folio_check(c: Checks, label: str, cmd: dict, after: list[int], before: list[int], index: int,
                 types: set[int]) -> int:
    dec = decoded(after)
    excl = [i for i, d in enumerate(dec) if is_exclusive(d, types) or (not d["present"] and d["swap"])]
    c.check(f"{label}: EXCLUSIVE of one page succeeds", ok_ioctl(cmd, 1), ioctl_text(cmd))
    c.check(f"{label}: exactly the requested PTE is exclusive", excl == [index],
            f"{len(excl)} of {len(dec)} PTEs exclusive" + (f" (first {excl[:4]})" if excl else ""))
    others = [i for i in range(len(dec)) if i != index]
    kept = [dec[i]["present"] and pfns([after[i]])[0] == pfns([before[i]])[0] for i in others]
    c.check(f"{label}: every other PTE present with the same PFN", all(kept), f"{sum(kept)}/{len(others)}")
    return len(excl)


def judge(obs: dict, target: dict) -> Verdict:
    per = obs["pages_per_thp"]
    types = exclusive_types(target.get("release", "")) or {29, 30}
    c = Checks()
    before = obs["before"]
    n_head = _folio_check(c, "head page", obs["head"], obs["after_head"], before[:per], 0, types)
    n_tail = _folio_check(c, "tail page", obs["tail"], obs["after_tail"], before[per:], obs["tail_index"], types)
    c.note("AnonHugePages before -> after (a drop: the PMD was split)",
           f"{obs['anon_huge_kb_before']} kB -> {obs['anon_huge_kb_after']} kB")
    c.check("data intact after CPU read", obs["data_intact"], str(obs["data_intact"]))
    return c.verdict(f"head: {n_head} PTE exclusive, tail: {n_tail} PTE exclusive, PMD split to PTEs")
