"""device_thp: a 2 MiB-aligned THP region migrated to device-private memory as one PMD-level entry.

Device-private THP (Linux 6.19, issue item 4): with MIGRATE_VMA_SELECT_COMPOUND, mm/migrate_device.c
collects a PMD-mapped THP (migrate_vma_collect_huge_pmd), an empty PMD or the huge zero page
(migrate_vma_collect_hole) as one compound entry; lib/test_hmm.c gives it a 2 MiB device folio and
migrate_vma_insert_huge_pmd_page / remove_migration_pmd install one PMD-level device-private entry
(writable as the VMA is). A CPU fault on it goes to do_huge_pmd_device_private, whose migrate_to_ram
(dmirror_devmem_fault, vmf->pte NULL) migrates the whole folio back as an order-9 folio, and
MIGRATE_TO_SYS does the same (dmirror_devmem_fault_alloc_and_copy: vma_alloc_folio of the folio's
order, 4 KiB pages only if that allocation fails). Covers hmm-tests migrate_anon_huge_fault,
migrate_anon_huge_free (variant data), migrate_anon_huge_empty (empty), migrate_anon_huge_zero (zero).

The feature is decided by presence, never by version: test_hmm's HMM_DMIRROR_FLAGS ioctl (added with
the feature) in this kernel's uapi, or a PMD flag on a device-private page in any SNAPSHOT. A kernel
with neither, whose MIGRATE_TO_DEV split the THP into PTE-level entries, is a SKIP naming the missing
feature.

Rule (every check must hold, and every control read the other way, for PASS):
  1. Before: data, a PMD-mapped THP (KPF_THP on every page, SNAPSHOT WRITE|PMD); empty, nothing
     mapped; zero, the huge zero page (KPF_ZERO_PAGE with KPF_THP, SNAPSHOT READ|PMD). When it is not
     (no THP formed, use_zero_page 0), exclusive_thp's rule decides why (SKIP or FAIL).
  2. MIGRATE_TO_DEV of the 512 pages returns 0 with cpages 512 and the mirror holds the data (zeros
     for empty and zero).
  3. After it the 512 pages are ONE PMD-level device-private entry: the owning device's SNAPSHOT says
     DEV_PRIVATE_LOCAL|PMD on every page and pagemap shows 512 device-private entries on consecutive
     device PFNs from a 2 MiB-aligned one (control: a base page migrated in the same run reads
     DEV_PRIVATE_LOCAL without PMD). The entry is of the write type exactly when the VMA is writable.
  4. Both views of every page agree at every step (hmmbench.cases.views, PMD allowed on a 2 MiB block
     of one device folio; every other device sees NONE, as for a PTE-level entry of another owner:
     mm/hmm.c hmm_vma_handle_pte reports no PFN for it, and include/linux/hmm.h keeps HMM_PFN_ERROR for
     a page the device cannot reach at all. 7.2.13's hmm_vma_handle_absent_pmd fills HMM_PFN_ERROR for
     a PMD-level entry of another owner when no fault is asked, so SNAPSHOT there says ERROR: a FAIL.)
  5. A CPU read of one tail page brings the whole folio back: every page present on system memory,
     as a PMD-mapped THP (KPF_THP on every page, SNAPSHOT PMD on every page), unless there was no free
     2 MiB block before the fault (then 4 KiB pages are what test_hmm defines, noted). Data intact.
  6. data: a second MIGRATE_TO_DEV is one PMD entry again; MIGRATE_TO_SYS returns 0 with cpages 512
     (the uapi's "number of pages copied"; test_hmm's dmirror_successful_migrated_pages counts only
     the compound head's entry: a FAIL) and brings the whole folio back as in 5, data intact; after a
     third MIGRATE_TO_DEV, MADV_FREE of the device-private range returns 0 and every page reads back
     either its data or zeros.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.exclusive_thp import judge_not_formed
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import (
    PMD_PAGES,
    Calibration,
    ViewsJudged,
    calibrated,
    calibration_gap,
    compare,
    device_folio_blocks,
)
from hmmbench.guest.pagemap import KPF
from hmmbench.guest.uapi import SNAPSHOT_FLAGS, decode_snapshot

SPEC = CaseSpec(
    name="device_thp",
    order=350,
    description="2 MiB THP (written, empty, huge zero) -> one PMD-level device-private entry -> CPU fault, "
                "MIGRATE_TO_SYS, MADV_FREE",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"fill": "data"}, {"fill": "empty"}, {"fill": "zero"}],
    timeout=400.0,
)

PMD = SNAPSHOT_FLAGS["PMD"]
LOCAL = SNAPSHOT_FLAGS["DEV_PRIVATE_LOCAL"]
WRITE, READ = SNAPSHOT_FLAGS["WRITE"], SNAPSHOT_FLAGS["READ"]


def snap(view: dict, device: int) -> list[int]:
    return list(view["devices"][str(device)]["snapshot"])


def _bytes_text(flags: list[int]) -> str:
    hist: dict[str, int] = {}
    for b in flags:
        name = "|".join(decode_snapshot(b))
        hist[name] = hist.get(name, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(hist.items(), key=lambda kv: -kv[1]))


def device_pfns_text(judged: ViewsJudged) -> str:
    pfns = [p.device_pfn for p in judged.pages if p.device_pfn is not None]
    if not pfns:
        return "no device PFNs"
    consecutive = all(b == a + 1 for a, b in zip(pfns, pfns[1:], strict=False))
    return (f"device PFNs {pfns[0]:#x}..{pfns[-1]:#x} ({len(pfns)}, "
            + ("consecutive" if consecutive else "not consecutive")
            + f", first {'' if pfns[0] % PMD_PAGES == 0 else 'not '}2 MiB-aligned)")


def pmd_entry(view: dict, judged: ViewsJudged, local: int, lo: int = 0) -> tuple[bool, str]:
    """Whether pages lo..lo+512 are one PMD-level device-private entry of ``local``: its SNAPSHOT says
    DEV_PRIVATE_LOCAL|PMD on every page and the CPU shows one device folio (device_folio_blocks)."""
    flags = snap(view, local)[lo:lo + PMD_PAGES]
    pmd = [b != 0xFF and b & 0xF0 == LOCAL and bool(b & PMD) for b in flags]
    folio = device_folio_blocks(judged.pages, [lo])[lo:lo + PMD_PAGES]
    seen = (f"dmirror{local} SNAPSHOT {_bytes_text(flags)}; CPU {judged.kinds(lo, lo + PMD_PAGES)}, "
            f"{device_pfns_text(ViewsJudged(judged.label, judged.pages[lo:lo + PMD_PAGES]))}")
    return len(flags) == PMD_PAGES and all(pmd) and all(folio), seen


def any_device_pmd(views: list[dict], cal: Calibration, local: int) -> bool:
    """A PMD flag on a DEV_PRIVATE_LOCAL SNAPSHOT byte anywhere: the kernel made a PMD-level entry."""
    return any(b != 0xFF and b & 0xF0 == LOCAL and b & PMD for v in views for b in snap(v, local))


def missing_feature(obs: dict, views: list[dict], cal: Calibration, seen_after: str) -> str | None:
    """The SKIP reason when this kernel has no device-private THP (None when it has)."""
    if obs.get("flags_ioctl") or any_device_pmd(views, cal, obs["local"]):
        return None
    return ("device-private THP not supported: test_hmm has no HMM_DMIRROR_FLAGS and MIGRATE_TO_DEV of a "
            f"2 MiB-aligned THP region made no PMD-level device-private entry ({seen_after})")


def thp_mapped(view: dict, judged: ViewsJudged, device: int, lo: int = 0, hi: int | None = None) -> tuple[bool, str]:
    """Pages present on system memory as a PMD-mapped THP: KPF_THP on every page, SNAPSHOT PMD on every one."""
    hi = view["npages"] if hi is None else hi
    kpf = (view["cpu"].get("kpageflags") or [None] * view["npages"])[lo:hi]
    thp = [f is not None and bool(f >> KPF["THP"] & 1) for f in kpf]
    flags = snap(view, device)[lo:hi]
    pmd = [b != 0xFF and b & 0xF0 == 0 and bool(b & PMD) for b in flags]
    system = judged.kinds(lo, hi) == {"system": hi - lo}
    return system and all(thp) and all(pmd), (f"CPU {judged.kinds(lo, hi)}, KPF_THP {sum(thp)}/{hi - lo}, "
                                              f"dmirror{device} SNAPSHOT {_bytes_text(flags)}")


def whole_folio_back(c: Checks, key: str, view: dict, judged: ViewsJudged, device: int, free_blocks: int | None,
                     anon_kb: int | None) -> None:
    """Rule 5: every page back on system memory as a THP, unless no 2 MiB block was free."""
    n = view["npages"]
    c.check(f"{key}: every page back on system memory", judged.kinds() == {"system": n}, f"CPU {judged.kinds()}",
            f"{n} system pages")
    ok, seen = thp_mapped(view, judged, device)
    seen += f", AnonHugePages {anon_kb} kB, free 2 MiB blocks before {free_blocks}"
    if not ok and free_blocks == 0:
        c.note(f"{key}: folio back as 4 KiB pages (no free 2 MiB block)", seen)
        return
    c.check(f"{key}: the folio comes back as a PMD-mapped THP", ok, seen, "KPF_THP and SNAPSHOT PMD on every page")


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, local, fill = obs["npages"], obs["local"], obs["fill"]
    cal = calibrated(c, obs)
    if gap := calibration_gap(cal, "private", local):
        return c.error(gap)
    views = {v["label"]: v for v in obs["views"]}
    judged = {label: compare(c, v, cal, owners=local, pmd_blocks=[0]) for label, v in views.items()}
    after_view, after = views["after MIGRATE_TO_DEV"], judged["after MIGRATE_TO_DEV"]
    one, seen_one = pmd_entry(after_view, after, local)
    reason = missing_feature(obs, obs["views"], cal, f"MIGRATE_TO_DEV {ioctl_text(obs['migrate'])}; {seen_one}")
    if reason:
        return c.skip(reason)

    before_view, before = views["before MIGRATE_TO_DEV"], judged["before MIGRATE_TO_DEV"]
    if fill == "data":
        formed, seen = thp_mapped(before_view, before, local)
        if not all(obs["system"]["kpageflags_thp"]):
            return judge_not_formed(obs, facts)
        c.control("the region was a PMD-mapped THP before", formed, seen + f", AnonHugePages "
                  f"{obs['system']['anon_huge_kb']} kB")
    elif fill == "empty":
        c.control("nothing was mapped before", before.kinds() == {"none": n}, f"CPU {before.kinds()}")
    else:
        huge_zero = [p.kind == "zero" and p.huge for p in before.pages]
        if not all(huge_zero):
            if (obs.get("use_zero_page") or "").strip() == "0":
                return c.skip("the huge zero page is disabled on the target (transparent_hugepage/use_zero_page 0)")
            if not any(obs["system"]["kpageflags_zero"]):
                return judge_not_formed(obs, facts)
        c.control("the region mapped the huge zero page before", all(huge_zero),
                  f"huge zero page on {sum(huge_zero)}/{n}, CPU {before.kinds()}, dmirror{local} SNAPSHOT "
                  f"{_bytes_text(snap(before_view, local))}")

    ctl = obs["pte_control"]
    ctl_judged = compare(c, ctl, cal, owners=local)
    ctl_byte = snap(ctl, local)[0]
    c.control("a base page on the device reads DEV_PRIVATE_LOCAL without PMD",
              ok_ioctl(obs["pte_control_migrate"], 1) and ctl_byte & 0xF0 == LOCAL and not ctl_byte & PMD,
              f"MIGRATE_TO_DEV {ioctl_text(obs['pte_control_migrate'])}, SNAPSHOT {_bytes_text([ctl_byte])}, "
              f"CPU {ctl_judged.kinds()}")

    mig = obs["migrate"]
    c.check("MIGRATE_TO_DEV moves every page", ok_ioctl(mig, n), f"{ioctl_text(mig)} of {n}", f"ret=0 cpages={n}")
    c.check("mirror holds the data after MIGRATE_TO_DEV", obs["mirror_matches"], str(obs["mirror_matches"]))
    c.check("migrated as one PMD-level device-private entry", one, seen_one,
            "DEV_PRIVATE_LOCAL|PMD on every page, 512 consecutive device PFNs from a 2 MiB-aligned one")
    writable = [p.writable for p in after.pages if p.kind == "device-private"]
    want_write = fill == "data"
    c.check("device-private entry writable exactly as the VMA is", writable == [want_write] * n,
            f"{sum(map(bool, writable))}/{len(writable)} of the write type",
            f"VMA {'read-write' if want_write else 'read-only'}")
    c.note("AnonHugePages while on the device", f"{obs['anon_huge_kb_on_device']} kB")

    fview, fjudged = views["after a CPU read of one page"], judged["after a CPU read of one page"]
    whole_folio_back(c, "CPU read of one page", fview, fjudged, local, obs["free_2mb_blocks_before_fault"],
                     obs["after_fault"]["anon_huge_kb"])
    c.note("minor faults of the one-page read", str(obs["cpu_read_faults"]))
    c.check("data intact after the CPU fault", obs["data_after_fault"], str(obs["data_after_fault"]))

    if fill == "data":
        again, sys_ = obs["migrate_again"], obs["migrate_to_sys"]
        ok2, seen2 = pmd_entry(views["after a second MIGRATE_TO_DEV"], judged["after a second MIGRATE_TO_DEV"], local)
        c.check("second MIGRATE_TO_DEV: one PMD-level entry again", ok_ioctl(again, n) and ok2,
                f"{ioctl_text(again)}; {seen2}")
        c.check("MIGRATE_TO_SYS returns 0", sys_.get("ret") == 0, ioctl_text(sys_), "ret=0")
        c.check("MIGRATE_TO_SYS counts every page it copied", sys_.get("cpages") == n, ioctl_text(sys_),
                f"cpages={n} (lib/test_hmm_uapi.h: the number of pages copied)")
        whole_folio_back(c, "MIGRATE_TO_SYS", views["after MIGRATE_TO_SYS"], judged["after MIGRATE_TO_SYS"], local,
                         obs["free_2mb_blocks_before_sys"], obs["after_sys"]["anon_huge_kb"])
        c.check("data intact after MIGRATE_TO_SYS", obs["data_after_sys"], str(obs["data_after_sys"]))
        third = obs["migrate_third"]
        ok3, seen3 = pmd_entry(views["after a third MIGRATE_TO_DEV"], judged["after a third MIGRATE_TO_DEV"], local)
        c.check("third MIGRATE_TO_DEV: one PMD-level entry", ok_ioctl(third, n) and ok3,
                f"{ioctl_text(third)}; {seen3}")
        c.check("MADV_FREE of the device-private range returns 0", obs["madv_free"][0] == 0, str(obs["madv_free"]),
                "[0, 0]")
        pages = obs["pages_after_free"]
        kinds = {k: pages.count(k) for k in sorted(set(pages))}
        c.check("after MADV_FREE every page is its data or zeros", "other" not in kinds, str(kinds))
    no_control(c, "MIGRATE_TO_DEV/SYS returns, MADV_FREE's return, data comparisons",
               "an ioctl's or syscall's return value and a byte comparison with the pattern written")
    return c.verdict(f"{fill}: {n} pages to dmirror{local} as one PMD-level entry, back as one folio; "
                     f"both views agree at {len(judged)} steps")
