"""exclusive_basic: the device-exclusive round trip on base pages, checked in page state.

Rule (every check must hold for PASS):
  1. HMM_DMIRROR_EXCLUSIVE returns 0 with cpages == npages, and the mirror holds the data.
  2. While exclusive, every PTE is non-present with the swap bit, its swap offset is the PFN the page
     had before, and its swap type is this kernel's device-exclusive type (29 on 6.2..6.14 where the
     write variant is used, 30 from 6.15 on; derived from a device-private calibration otherwise).
  3. HMM_DMIRROR_CHECK_EXCLUSIVE fails with EPERM while the device holds the pages.
  4. A CPU read of each page makes the PTE present again with the same PFN.
  5. A following CPU write takes no more minor faults than the same loop on an ordinary buffer.
  6. The data is intact, and CHECK_EXCLUSIVE then returns 0.
"""

from __future__ import annotations

import errno
from collections import Counter

from hmmbench import kernelfacts
from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import count, ioctl_text
from hmmbench.guest.pagemap import decode_pagemap
from hmmbench.verdict import Checks, Status, Verdict

SPEC = register(CaseSpec(
    name="exclusive_basic",
    description="anonymous RW range -> device-exclusive -> CPU read/write restores it",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"npages": 4}, {"npages": 1024}],
    timeout=300.0,
))


def expected_types(obs: dict, release: str) -> tuple[set[int], str]:
    """Acceptable device-exclusive swap types and where that expectation came from."""
    table = kernelfacts.device_exclusive_swap_types(release)
    if table is not None:
        wanted = table.get("exclusive", table.get("write"))
        return {wanted}, f"{wanted} (version table for {release})"
    cal = decode_pagemap(obs.get("calibration", {}).get("pagemap", 0))
    if cal.get("swap"):
        derived = kernelfacts.expected_from_calibration(cal["swap_type"], release)
        wanted = derived.get("exclusive", derived.get("write"))
        return {wanted}, f"{wanted} (device-private type {cal['swap_type']} + 2)"
    return set(), "unknown (no version table and no calibration)"


def judge(obs: dict, target: dict) -> Verdict:
    n = obs["npages"]
    release = target.get("release", "")
    c = Checks()
    before = [decode_pagemap(x) for x in obs["before"]["pagemap"]]
    pfns = [d.get("pfn", 0) for d in before]
    if not all(d["present"] for d in before) or not all(pfns):
        seen = f"present {count([d['present'] for d in before])}, PFN visible {count([bool(p) for p in pfns])}"
        return Verdict(Status.ERROR, "pages not present or PFNs hidden before EXCLUSIVE (agent not root?)", [seen])

    ex = obs["exclusive"]
    c.check("EXCLUSIVE succeeds on every page", ex["ret"] == 0 and ex["cpages"] == n, f"{ioctl_text(ex)} of {n}")
    c.check("mirror holds the data", obs["mirror_matches"], str(obs["mirror_matches"]))

    during = [decode_pagemap(x) for x in obs["while_exclusive"]["pagemap"]]
    swapped = [not d["present"] and d["swap"] for d in during]
    c.check("every PTE is a non-present swap entry", all(swapped), f"{count(swapped)} pages")
    same = [d.get("swap_offset") == p for d, p in zip(during, pfns, strict=True)]
    c.check("swap offset == PFN before", all(same), f"{count(same)} pages")
    types = Counter(d.get("swap_type") for d in during if d["swap"])
    wanted, source = expected_types(obs, release)
    c.check("swap type is this kernel's device-exclusive type", bool(wanted) and set(types) <= wanted and bool(types),
            f"seen {dict(types)}, expected {source}")
    cal = decode_pagemap(obs.get("calibration", {}).get("pagemap", 0))
    if cal.get("swap"):
        c.note("calibration (swap type of a device-private entry)",
               f"{cal['swap_type']}, so device-exclusive expected at {cal['swap_type'] + 2}")
    counts = Counter(obs["while_exclusive"].get("kpagecount") or [])
    c.note("kpagecount while exclusive (0 before the series, 1 after)", str(dict(counts)))

    chk = obs["check_exclusive_while"]
    c.check("CHECK_EXCLUSIVE fails with EPERM while exclusive", chk["ret"] == -1 and chk["errno"] == errno.EPERM,
            ioctl_text(chk))

    after = [decode_pagemap(x) for x in obs["after_read"]["pagemap"]]
    back = [d["present"] and d.get("pfn") == p for d, p in zip(after, pfns, strict=True)]
    c.check("CPU read restores a present PTE with the same PFN", all(back),
            f"{count(back)} pages, {obs['read_faults']} minor faults for {n} reads")
    # A page restored read-only faults on its first write, so a read-only restore costs at least one fault
    # per page; the interpreter adds a few of its own (copy-on-write of pages it shares with the agent
    # server it was forked from), so the rule is "fewer faults than pages", not "no fault at all".
    extra = obs["write_faults"] - obs["control_write_faults"]
    c.check("CPU write after the read does not fault every page (restored PTEs writable)", extra < n,
            f"{obs['write_faults']} faults for {n} pages (control loop: {obs['control_write_faults']})")
    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    end = obs["check_exclusive_after"]
    c.check("CHECK_EXCLUSIVE returns 0 after CPU access", end["ret"] == 0, ioctl_text(end))
    return c.verdict(f"{n} pages: exclusive type {sorted(types)}, PFNs kept, restored writable")
