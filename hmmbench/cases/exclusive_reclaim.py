"""exclusive_reclaim: reclaim with swap while some pages are device-exclusive.

Rule (PASS needs all): EXCLUSIVE succeeds; reclaim really swapped out ordinary pages of the range (the
control: without it nothing could have been lost and the check below cannot fail: ERROR); no exclusive
page was lost: each is still a device-exclusive entry on its original PFN or was swapped out, i.e. is
an entry of the same swap type as the ordinary pages reclaim swapped (not just any other swap entry);
all data intact after the CPU reads everything back; no kernel message.
Recorded: how many exclusive pages reclaim managed to swap (MADV_PAGEOUT never touches non-present
PTEs; before the series rmap-based reclaim could not handle them either).
If swap or the memory cgroup cannot be set up the host decides: without CONFIG_SWAP / CONFIG_MEMCG a
SKIP; mkswap (user space) failing an ERROR; swapon or the cgroup move refused on a kernel that has the
option a FAIL; without the kernel's configuration the rule says it cannot tell (ERROR).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import (
    decoded,
    ioctl_text,
    no_control,
    noted,
    ok_ioctl,
    pfns,
    pfns_visible,
    undecided,
)
from hmmbench.cases.verdict import Checks, Status, Verdict

SPEC = CaseSpec(
    name="exclusive_reclaim",
    order=150,
    description="MADV_PAGEOUT + memcg reclaim with swap: exclusive pages not lost, data intact",
    rule=__doc__.split("Rule", 1)[1],
    timeout=400.0,
)


def judge_setup_failed(obs: dict, facts: TargetFacts) -> Verdict:
    """swapon or the cgroup move did not work: decide with the kernel's configuration."""
    cfg = facts.config
    c = Checks()
    swap = obs["swap"]
    if not swap["ok"]:
        seen = (f"mkswap {swap.get('mkswap')} {swap.get('mkswap_stderr')!r}, swapon {swap.get('swapon')} "
                f"{swap.get('swapon_stderr')!r}")
        if cfg.enabled("CONFIG_SWAP") is False:
            return Verdict(Status.SKIP, f"kernel without swap ({cfg.describe('CONFIG_SWAP')})", noted("setup", seen))
        if swap.get("mkswap"):
            undecided(c, "swap disk prepared (mkswap)", seen)
        elif not cfg.known:
            undecided(c, "kernel configuration known (swapon refused)", f"{seen}; {cfg.describe()}")
        else:
            c.check("swapon of the swap disk succeeds", False, seen, cfg.describe("CONFIG_SWAP"))
        return c.verdict("")
    cg = obs["cgroup"]
    seen = f"cgroup.procs: {cg.get('error')}; +memory: {cg.get('enable_memory')}"
    if cfg.enabled("CONFIG_MEMCG") is False:
        return Verdict(Status.SKIP, f"kernel without memory cgroups ({cfg.describe('CONFIG_MEMCG')})",
                       noted("setup", seen))
    if not cfg.known:
        undecided(c, "kernel configuration known (memory cgroup refused)", f"{seen}; {cfg.describe()}")
    else:
        c.check("moving the case into a memory cgroup succeeds", False, seen, cfg.describe("CONFIG_MEMCG"))
    return c.verdict("")


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    if not obs["swap"].get("ok", True) or not obs.get("cgroup", {"ok": True})["ok"]:
        return judge_setup_failed(obs, facts)
    k, n = obs["nexclusive"], obs["npages"]
    after = decoded(obs["after_reclaim"])
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["exclusive"], k), ioctl_text(obs["exclusive"]))
    swap_types = {d.get("swap_type") for d in after[k:] if not d["present"] and d["swap"]}
    ordinary_swapped = sum(1 for d in after[k:] if not d["present"] and d["swap"])
    c.control("reclaim swapped out ordinary pages of the range", ordinary_swapped > 0,
              f"{ordinary_swapped}/{n - k} (swap types {sorted(swap_types)}); pageout {obs['pageout']}, "
              f"reclaim {obs['reclaim']}")
    excl_types = {d.get("swap_type") for d in decoded(obs["while_exclusive"])[:k] if d["swap"]}
    orig = pfns(obs["before"])[:k]
    kept = [d["swap"] and d.get("swap_type") in excl_types and d.get("swap_offset") == p
            for d, p in zip(after[:k], orig, strict=True)]
    swapped = [d["swap"] and d.get("swap_type") in swap_types and d.get("swap_type") not in excl_types
               for d in after[:k]]
    accounted = all(a or b for a, b in zip(kept, swapped, strict=True))
    c.check("no exclusive page lost (still exclusive, or swapped)", accounted,
            f"{sum(kept)} still exclusive, {sum(swapped)} swapped, of {k}",
            f"each on its PFN with type {sorted(excl_types)}, or a swap entry of type {sorted(swap_types)}")
    pfns_visible(c, obs["before"][:k])
    c.note("exclusive pages after reclaim", f"{sum(kept)} still exclusive, {sum(swapped)} swapped")
    c.check("data intact after CPU read-back", obs["data_intact"], str(obs["data_intact"]))
    no_control(c, "EXCLUSIVE succeeds, data intact", "an ioctl's return value and a byte comparison of all pages "
               "(swapped ones included) with the pattern written")
    return c.verdict(f"{ordinary_swapped} ordinary pages swapped; exclusive: {sum(kept)} kept, "
                     f"{sum(swapped)} swapped; data intact")
