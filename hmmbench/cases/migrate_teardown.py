"""migrate_teardown: munmap and process exit with pages on the device leave nothing behind.

Covers hmm-tests migrate_multiple (migrate and back NTIMES), anon_teardown (a device READ racing a
munmap of half the range, here with the pages on the device) and migrate_release's teardown side
(pages freed while on the device), with the device's own allocation as the evidence: test_hmm exposes
no counters, but its allocator is a LIFO free list (lib/test_hmm.c dmirror_devmem_free pushes a freed
device page, dmirror_devmem_alloc_page pops one), so the device PFNs the next MIGRATE_TO_DEV gets show
whether the pages of a teardown were freed. Kernel messages during any of it fail the case by themselves.

Rule (every check must hold, and every control read the other way, for PASS):
  1. migrate_multiple: every cycle migrates every page (ret 0, cpages == npages, the mirror holds the
     data), comes back (a CPU read for device-private memory, MIGRATE_TO_SYS ret 0 for coherent memory)
     to system pages with the data intact, and munmap returns 0.
  2. Migrate then munmap with every page on the device, CYCLES times: every cycle migrates every page,
     and the set of device PFNs over all cycles stays within 2 x npages (a leak of each cycle's pages
     would make it CYCLES x npages). Control: HELD ranges migrated and kept at once get pairwise
     disjoint PFNs (the measure grows when pages are not freed); a fresh MIGRATE_TO_DEV after they are
     unmapped gets PFNs among theirs.
  3. A device READ of the unmapped range fails with EFAULT (no VMA: hmm_range_fault), after the mirror's
     entries were dropped by the munmap's invalidation.
  4. anon_teardown: every READ racing the munmap either succeeds with the data (ret 0, cpages == npages)
     or fails (ret -1 with EFAULT or EBUSY); every munmap returns 0; the first half's views agree after.
  5. Exit: a child that migrated pages through its own mirror and exited (status 0) or was killed
     (SIGKILL) with them on the device frees them: the parent's next MIGRATE_TO_DEV of as many pages gets
     exactly the child's device PFNs.
"""

from __future__ import annotations

import errno

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import errname, ioctl_text, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import ON_DEVICE, calibrated, calibration_gap, compare

SPEC = CaseSpec(
    name="migrate_teardown",
    order=240,
    description="munmap/exit with pages on the device, many times: the device gets its pages back",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": "private"}, {"memory": "coherent"}],
    timeout=600.0,
)


def _ok(rec: dict, n: int) -> bool:
    return ok_ioctl(rec, n) and rec.get("mirror_matches") is True and None not in rec.get("pfns", [None])


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, kind, local = obs["npages"], obs["memory"], obs["local"]
    cal = calibrated(c, obs)
    on_device = ON_DEVICE[kind]
    if gap := calibration_gap(cal, kind, local):
        return c.error(gap)

    mult = obs["multiple"]
    back = compare(c, obs["multiple_views"], cal, owners=local)
    good = [_ok(r, n) and r["data_intact"] and r["munmap"][0] == 0
            and (kind == "private" or (r.get("to_sys") or {}).get("ret") == 0) for r in mult]
    c.check("migrate_multiple: every cycle migrates, comes back intact and unmaps", all(good)
            and back.kinds() == {"system": n}, f"{sum(good)}/{len(mult)} cycles; after the way back {back.kinds()}")

    cyc = obs["cycles"]
    before = compare(c, obs["cycle_views"], cal, owners=local)
    c.check("teardown cycles: every page on the device before munmap", all(_ok(r, n) for r in cyc)
            and before.kinds() == {on_device: n}, f"{sum(_ok(r, n) for r in cyc)}/{len(cyc)} cycles, "
            f"first {before.kinds()}")
    seen = {p for r in cyc for p in r.get("pfns") or [] if p is not None}
    c.check("teardown cycles: device pages are reused, not leaked", len(seen) <= 2 * n,
            f"{len(seen)} distinct device PFNs over {len(cyc)} cycles of {n} pages", f"<= {2 * n}")
    held = obs["held"]
    sets = [set(r.get("pfns") or []) for r in held]
    union = set().union(*sets) if sets else set()
    c.control("ranges held at once get disjoint device PFNs", all(_ok(r, n) for r in held)
              and len(union) == n * len(held), f"{len(union)} distinct PFNs for {len(held)} ranges of {n}")
    ah = obs["after_held"]
    c.check("a fresh MIGRATE_TO_DEV gets the pages the munmap freed", _ok(ah, n) and set(ah["pfns"]) <= union,
            f"{ioctl_text(ah)}, {len(set(ah.get('pfns') or []) & union)}/{n} among the freed ranges' PFNs")

    ru = obs["read_unmapped"]
    c.check("a device READ of the unmapped range fails with EFAULT", ru.get("ret") == -1
            and ru.get("errno") == errno.EFAULT, ioctl_text(ru), "ret=-1 errno=EFAULT")

    tear = obs["anon_teardown"]
    okr = [(ok_ioctl(r["read"], n) and r["read_matches"]) or (r["read"].get("ret") == -1
           and errname(r["read"].get("errno")) in ("EFAULT", "EBUSY")) for r in tear]
    unm = [(r.get("munmap_half") or [1])[0] == 0 and r["munmap"][0] == 0 for r in tear]
    c.check("anon_teardown: each racing READ succeeds with the data or fails cleanly", all(okr) and all(unm),
            f"{sum(okr)}/{len(tear)} READs as allowed, munmaps {sum(unm)}/{len(tear)}")
    c.note("anon_teardown: READs that completed before the munmap",
           f"{sum(ok_ioctl(r['read'], n) for r in tear)}/{len(tear)}")
    first = next((r["views_first_half"] for r in tear if r.get("views_first_half")), None)
    if first is not None:
        compare(c, first, cal, owners=local)

    for i, e in enumerate(obs["exits"]):
        ch, st, pa = e["child"], e["status"], e["parent_after"]
        ended = (st.get("exited") and st.get("code") == 0) if e["how"] == "exit" else st.get("signal") == 9
        same = set(pa.get("pfns") or []) == set(ch.get("pfns") or [None])
        c.check(f"exit {i} ({e['how']}): the child's device pages are freed", _ok(ch, n) and ended and _ok(pa, n)
                and same, f"child {ioctl_text(ch)} {e['how']} {st}; parent's next MIGRATE_TO_DEV "
                f"{len(set(pa.get('pfns') or []) & set(ch.get('pfns') or []))}/{n} of the child's PFNs")
    return c.verdict(f"{len(mult)} migrate_multiple, {len(cyc)} munmap and {len(obs['exits'])} exit teardowns "
                     f"of {n} {kind} pages: every device page freed")
