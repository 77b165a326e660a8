"""device_thp_unmap_remap: a device-private THP partly unmapped, or moved with mremap, then faulted back.

A PMD-level device-private entry (device_thp) must survive the page-table operations that split or move
a PMD: munmap of part of it splits the PMD into 512 device-private PTEs on the same device folio
(mm/huge_memory.c __split_huge_pmd_locked, device-private branch) and zaps the unmapped ones; a later CPU
read of a remaining page faults that page alone (dmirror_devmem_fault with vmf->pte: order 0, the device
folio split by migrate_vma_split_folio). mremap moves the PMD whole to a 2 MiB-aligned destination
(move_huge_pmd) and splits it first otherwise. Covers the THP half of hmm-tests
migrate_partial_unmap_fault (variant unmap: offsets 0, 1/4, 1/2) and migrate_remap_fault (variant remap:
mremap before or after the migration, with and without MREMAP_DONTUNMAP, at each offset). A kernel
without device-private THP (no HMM_DMIRROR_FLAGS and no PMD-level entry after MIGRATE_TO_DEV) is a SKIP.

Rule (every check must hold, and every control read the other way, for PASS), for every run:
  1. A THP backed the region (KPF_THP on every page) before anything else.
  2. MIGRATE_TO_DEV returns 0 with cpages 512 and the mirror holds the data; unmap, and remap after the
     migration: the 512 pages are one PMD-level device-private entry (device_thp's check).
  3. unmap: munmap returns 0; every page still mapped is device-private afterwards (nothing came back,
     nothing was lost); a CPU read of every one brings each back to system memory, data intact.
  4. remap: mremap returns the destination; the moved range holds what was there (system pages when
     moved before the migration, device-private entries after); under MREMAP_DONTUNMAP the old range
     maps nothing; a CPU read of every page of the moved range brings all back, data intact.
  5. Both views of every mapped page agree after every step (hmmbench.cases.views, as device_thp).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.device_thp import missing_feature, pmd_entry
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import calibrated, calibration_gap, compare

SPEC = CaseSpec(
    name="device_thp_unmap_remap",
    order=370,
    description="device-private THP partly unmapped, or moved by mremap (before/after, DONTUNMAP), then faulted",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"op": "unmap"}, {"op": "remap"}],
    timeout=600.0,
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, local, op = obs["npages"], obs["local"], obs["op"]
    cal = calibrated(c, obs)
    if gap := calibration_gap(cal, "private", local):
        return c.error(gap)
    judged_runs = []
    for run in obs["runs"]:
        views = {v["label"]: v for v in run["views"]}
        judged_runs.append((views, {label: compare(c, v, cal, owners=local,
                                                   pmd_blocks=[0] if v["npages"] == n else [])
                                    for label, v in views.items()}))
    first = obs["runs"][0]
    fviews, fjudged = judged_runs[0]
    label0 = next(label for label in fviews if label.endswith("after MIGRATE_TO_DEV"))
    _, seen0 = pmd_entry(fviews[label0], fjudged[label0], local)
    reason = missing_feature(obs, [v for run in obs["runs"] for v in run["views"]], cal,
                             f"MIGRATE_TO_DEV {ioctl_text(first['migrate'])}; {seen0}")
    if reason:
        return c.skip(reason)

    for run, (views, judged) in zip(obs["runs"], judged_runs, strict=True):
        tag = run.get("tag") or f"offset {run['offset']}"
        thp = run["system"]["kpageflags_thp"]
        c.check(f"{tag}: a THP backed the region", all(thp), f"KPF_THP {sum(thp)}/{n}, AnonHugePages "
                f"{run['system']['anon_huge_kb']} kB, madvise {run['madvise']}")
        mig = run["migrate"]
        c.check(f"{tag}: MIGRATE_TO_DEV moves every page", ok_ioctl(mig, n) and run["mirror_matches"],
                f"{ioctl_text(mig)}, mirror {run['mirror_matches']}", f"cpages={n}, mirror holds the data")
        mlabel = f"{tag}: after MIGRATE_TO_DEV"
        if op == "unmap" or not run["before"]:
            ok, seen = pmd_entry(views[mlabel], judged[mlabel], local)
            c.check(f"{tag}: migrated as one PMD-level device-private entry", ok, seen)
        else:
            c.note(f"{tag}: after mremap and MIGRATE_TO_DEV", f"CPU {judged[mlabel].kinds()}")
        if op == "unmap":
            c.check(f"{tag}: munmap returns 0", run["munmap"][0] == 0, str(run["munmap"]), "[0, 0]")
            for lo, hi in run["pieces"]:
                after = judged[f"{tag}: pages {lo}-{hi} after munmap"]
                c.check(f"{tag}: pages {lo}-{hi} stay device-private after munmap",
                        after.kinds() == {"device-private": hi - lo}, f"CPU {after.kinds()}")
                back = judged[f"{tag}: pages {lo}-{hi} after a CPU read"]
                c.check(f"{tag}: pages {lo}-{hi} back after a CPU read", back.kinds() == {"system": hi - lo},
                        f"CPU {back.kinds()}")
        else:
            c.check(f"{tag}: mremap moves the range", run["moved_to"] == "dest", f"mremap {run['mremap']}")
            moved = judged[f"{tag}: after mremap"]
            want = "system" if run["before"] else "device-private"
            c.check(f"{tag}: the moved range holds what was there", moved.kinds() == {want: n},
                    f"CPU {moved.kinds()}", f"{n} {want}")
            old = judged.get(f"{tag}: old range after mremap")
            if run["dontunmap"]:
                c.check(f"{tag}: DONTUNMAP leaves the old range empty", old is not None
                        and old.kinds() == {"none": n}, f"CPU {old.kinds() if old else 'not recorded'}")
            back = judged[f"{tag}: after a CPU read"]
            c.check(f"{tag}: every page back after a CPU read", back.kinds() == {"system": n}, f"CPU {back.kinds()}")
        c.check(f"{tag}: data intact", run["data_intact"], str(run["data_intact"]))
    no_control(c, "MIGRATE_TO_DEV/munmap/mremap returns, data comparisons",
               "a syscall's or ioctl's return value and a byte comparison with the pattern written")
    return c.verdict(f"{op}: {len(obs['runs'])} runs, device-private THP split or moved and faulted back intact")
