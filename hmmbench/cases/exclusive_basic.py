"""exclusive_basic: the device-exclusive round trip on base pages, checked in page state.

Rule (every check must hold, and every control read the other way, for PASS):
  1. HMM_DMIRROR_EXCLUSIVE returns 0 with cpages == npages, and the mirror holds the data (control: the
     zeroed mirror did not hold it before the call).
  2. While exclusive, every PTE is non-present with the swap bit (control: present before), its swap
     offset is the PFN the page had before (control: those PFNs are visible and distinct), and its swap
     type is this kernel's device-exclusive type (29 on 6.2..6.14 where the write variant is used, 30
     from 6.15 on; derived from a device-private calibration otherwise; control: the device-private
     entry's type differs).
  3. HMM_DMIRROR_CHECK_EXCLUSIVE fails with EPERM while the device holds the pages (control: it returns
     0 on a page the device never took).
  4. A CPU read of each page makes the PTE present again with the same PFN (control: non-present before).
  5. The restored PTEs are writable: HMM_DMIRROR_SNAPSHOT right after the read says WRITE for every page
     (SNAPSHOT faults nothing in; control: SNAPSHOT reads READ on an ordinary read-only page, WRITE on a
     writable one). Second, independent signal: the following CPU write faults on fewer than half the
     pages beyond the noise of the same loop on an ordinary buffer (a read-only restore costs one fault
     per page; control: the same loop on read-only zero-page PTEs faults on at least half of them).
  6. The data is intact, and CHECK_EXCLUSIVE then returns 0 (control: EPERM in 3).
"""

from __future__ import annotations

import errno
from collections import Counter

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import (
    count,
    failed_with,
    ioctl_text,
    no_control,
    noted,
    ok_ioctl,
    pfns_visible,
    snapshot_controls,
    snapshot_text,
    snapshot_writable,
    write_fault_signal,
)
from hmmbench.cases.verdict import Checks, Status, Verdict
from hmmbench.guest.pagemap import decode_pagemap
from hmmbench.kernel import expected

SPEC = CaseSpec(
    name="exclusive_basic",
    order=10,
    description="anonymous RW range -> device-exclusive -> CPU read/write restores it",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"npages": 4}, {"npages": 1024}],
    timeout=300.0,
)


def expected_types(obs: dict, release: str) -> tuple[set[int], str]:
    """Acceptable device-exclusive swap types and where that expectation came from."""
    table = expected.device_exclusive_swap_types(release)
    if table is not None:
        wanted = table.get("exclusive", table.get("write"))
        return {wanted}, f"{wanted} (version table for {release})"
    cal = decode_pagemap(obs.get("calibration", {}).get("pagemap", 0))
    if cal.get("swap"):
        derived = expected.expected_from_calibration(cal["swap_type"], release)
        wanted = derived.get("exclusive", derived.get("write"))
        return {wanted}, f"{wanted} (device-private type {cal['swap_type']} + 2)"
    return set(), "unknown (no version table and no calibration)"


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    n = obs["npages"]
    release = facts.release
    c = Checks()
    before = [decode_pagemap(x) for x in obs["before"]["pagemap"]]
    pfns = [d.get("pfn", 0) for d in before]
    if not all(d["present"] for d in before) or not all(pfns):
        seen = f"present {count([d['present'] for d in before])}, PFN visible {count([bool(p) for p in pfns])}"
        return Verdict(Status.ERROR, "pages not present or PFNs hidden before EXCLUSIVE (agent not root?)",
                       noted("pages before EXCLUSIVE", seen))

    ex = obs["exclusive"]
    c.check("EXCLUSIVE succeeds on every page", ex["ret"] == 0 and ex["cpages"] == n, f"{ioctl_text(ex)} of {n}")
    c.check("mirror holds the data", obs["mirror_matches"], str(obs["mirror_matches"]))
    c.control("the mirror did not hold the data before EXCLUSIVE", obs["mirror_matches_before"] is False,
              f"zeroed mirror matched: {obs['mirror_matches_before']}")

    during = [decode_pagemap(x) for x in obs["while_exclusive"]["pagemap"]]
    swapped = [not d["present"] and d["swap"] for d in during]
    c.check("every PTE is a non-present swap entry", all(swapped), f"{count(swapped)} pages")
    c.control("the PTEs were present before EXCLUSIVE", True, f"{n}/{n} present")
    same = [d.get("swap_offset") == p for d, p in zip(during, pfns, strict=True)]
    c.check("swap offset == PFN before", all(same), f"{count(same)} pages")
    pfns_visible(c, obs["before"]["pagemap"])
    types = Counter(d.get("swap_type") for d in during if d["swap"])
    wanted, source = expected_types(obs, release)
    c.check("swap type is this kernel's device-exclusive type", bool(wanted) and set(types) <= wanted and bool(types),
            f"seen {dict(types)}", source)
    cal = decode_pagemap(obs.get("calibration", {}).get("pagemap", 0))
    if cal.get("swap"):
        c.note("calibration (swap type of a device-private entry)",
               f"{cal['swap_type']}, so device-exclusive expected at {cal['swap_type'] + 2}")
    c.control("another kind of swap entry (device-private) has another type", cal.get("swap", False)
              and cal.get("swap_type") not in wanted, f"device-private type {cal.get('swap_type')}"
              if cal.get("swap") else f"no calibration entry ({obs.get('calibration')})")
    counts = Counter(obs["while_exclusive"].get("kpagecount") or [])
    c.note("kpagecount while exclusive", f"{dict(counts)} (0 before the series, 1 after)")

    chk = obs["check_exclusive_while"]
    c.check("CHECK_EXCLUSIVE says the device holds the pages", chk["ret"] == -1 and chk["errno"] == errno.EPERM,
            ioctl_text(chk), "ret=-1 errno=EPERM")
    other = obs["check_exclusive_control"]
    c.control("CHECK_EXCLUSIVE says not held on a page the device never took", other["ret"] == 0, ioctl_text(other))

    after = [decode_pagemap(x) for x in obs["after_read"]["pagemap"]]
    back = [d["present"] and d.get("pfn") == p for d, p in zip(after, pfns, strict=True)]
    c.check("CPU read restores a present PTE with the same PFN", all(back),
            f"{count(back)} pages, {obs['read_faults']} minor faults for {n} reads")
    c.control("the PTEs were non-present before the read", all(swapped), f"{count(swapped)} non-present")

    snap = obs["snapshot_after_read"]
    wr = [snapshot_writable(b) for b in snap["flags"]]
    c.check("restored PTEs writable (SNAPSHOT after the read)", ok_ioctl(snap["cmd"], n) and len(wr) == n and all(wr),
            f"{snapshot_text(snap['flags'])} ({ioctl_text(snap['cmd'])})", f"{n}x WRITE")
    snapshot_controls(c, obs["snapshot_controls"])
    write_fault_signal(c, "restored PTEs writable (write faults after the read)", obs["write_faults"],
                       obs["control_write_faults"], obs["readonly_write_faults"], n, expect_writable=True)

    c.check("data intact", obs["data_intact"], str(obs["data_intact"]))
    end = obs["check_exclusive_after"]
    c.check("CHECK_EXCLUSIVE says the device lost the pages after CPU access", end["ret"] == 0, ioctl_text(end),
            "ret=0")
    c.control("CHECK_EXCLUSIVE said held while the device held the pages", failed_with(chk, "EPERM"), ioctl_text(chk))
    no_control(c, "EXCLUSIVE succeeds, data intact",
               "an ioctl's return value and a byte comparison of the buffer with the pattern it was filled "
               "with; nothing in the page state can make them read true")
    return c.verdict(f"{n} pages: exclusive type {sorted(types)}, PFNs kept, restored writable")
