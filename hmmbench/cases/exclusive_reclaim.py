"""exclusive_reclaim: reclaim with swap while some pages are device-exclusive.

Rule (PASS needs all): EXCLUSIVE succeeds; reclaim really swapped out ordinary pages of the range
(otherwise the case proves nothing: SKIP); no exclusive page was lost: each is still a device-exclusive
entry on its original PFN or was swapped out and comes back with the right data; all data intact after
the CPU reads everything back; no kernel message.
Recorded: how many exclusive pages reclaim managed to swap (MADV_PAGEOUT never touches non-present
PTEs; before the series rmap-based reclaim could not handle them either).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import decoded, ioctl_text, ok_ioctl, pfns
from hmmbench.verdict import Checks, Status, Verdict

SPEC = register(CaseSpec(
    name="exclusive_reclaim",
    description="MADV_PAGEOUT + memcg reclaim with swap: exclusive pages not lost, data intact",
    rule=__doc__.split("Rule", 1)[1],
    timeout=400.0,
))


def judge(obs: dict, target: dict) -> Verdict:
    k, n = obs["nexclusive"], obs["npages"]
    after = decoded(obs["after_reclaim"])
    ordinary_swapped = sum(1 for d in after[k:] if not d["present"] and d["swap"])
    if ordinary_swapped == 0:
        return Verdict(Status.SKIP, "reclaim swapped out no ordinary page: inconclusive (swap or memcg not working?)",
                       [f"note pageout {obs['pageout']}, reclaim {obs['reclaim']}"])
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], k), ioctl_text(obs["exclusive"]))
    excl_types = {d.get("swap_type") for d in decoded(obs["while_exclusive"])[:k] if d["swap"]}
    orig = pfns(obs["before"])[:k]
    kept = [d["swap"] and d.get("swap_type") in excl_types and d.get("swap_offset") == p
            for d, p in zip(after[:k], orig, strict=True)]
    swapped = [d["swap"] and d.get("swap_type") not in excl_types for d in after[:k]]
    accounted = all(a or b for a, b in zip(kept, swapped, strict=True))
    c.check("no exclusive page lost (still exclusive, or swapped)", accounted,
            f"{sum(kept)} still exclusive, {sum(swapped)} swapped, of {k}")
    c.note("ordinary pages swapped out", f"{ordinary_swapped}/{n - k}")
    c.note("exclusive pages after reclaim", f"{sum(kept)} still exclusive, {sum(swapped)} swapped")
    c.check("data intact after CPU read-back", obs["data_intact"], str(obs["data_intact"]))
    return c.verdict(f"{ordinary_swapped} ordinary pages swapped; exclusive: {sum(kept)} kept, "
                     f"{sum(swapped)} swapped; data intact")
