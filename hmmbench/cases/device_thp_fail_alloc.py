"""device_thp_fail_alloc: HMM_DMIRROR_FLAG_FAIL_ALLOC forces test_hmm's 4 KiB fallback for a THP region.

HMM_DMIRROR_FLAGS (lib/test_hmm.c, with device-private THP in 6.19) sets flags on the mirror; FAIL_ALLOC
makes the next huge allocation fail once (dmirror_migrate_alloc_and_copy: no device folio, so 512 device
base pages, the source folio split by migrate_vma_pages; dmirror_devmem_fault_alloc_and_copy: no system
folio on the way back, so 512 system base pages, the device folio split by
migrate_vma_split_unmapped_folio). Covers hmm-tests migrate_anon_huge_err (variant data) and
migrate_anon_huge_zero_err (variant zero). A kernel whose test_hmm has no HMM_DMIRROR_FLAGS is a SKIP
(the guest says so: the interface is absent), naming device-private THP as the missing feature.

Rule (every check must hold, and every control read the other way, for PASS):
  1. FLAGS returns 0 each time.
  2. MIGRATE_TO_DEV after FLAGS(FAIL_ALLOC) returns 0 with cpages 512 and the mirror holds the data
     (zeros for zero); every page is then a device-private entry at PTE level: no PMD flag in the
     owning device's SNAPSHOT (control: the same run's SNAPSHOT shows PMD on a THP or the huge zero
     page); writable exactly as the VMA is. (data: when no THP formed, exclusive_thp's rule decides.)
  3. A CPU read of one tail page brings back exactly that page (a PTE-level entry faults alone:
     dmirror_devmem_fault with vmf->pte is order 0); the other 511 stay on the device; its data and,
     after reading every page, all data intact.
  4. data: a fresh THP migrated without the flag is one PMD-level entry (as in device_thp); MIGRATE_TO_SYS
     after FLAGS(FAIL_ALLOC) returns 0 and leaves every page present on system memory as 4 KiB pages
     (KPF_THP on none, no PMD in SNAPSHOT), data intact.
     zero: the huge zero page (control), migrated after FLAGS(FAIL_ALLOC): cpages 512, mirror zeros, 512
     PTE-level read-type device-private entries; a CPU read of every page brings all back, zeros.
  5. Both views of every page agree at every step (hmmbench.cases.views, as device_thp).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.device_thp import LOCAL, PMD, _bytes_text, pmd_entry, snap
from hmmbench.cases.exclusive_thp import judge_not_formed
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import calibrated, calibration_gap, compare
from hmmbench.guest.pagemap import KPF

SPEC = CaseSpec(
    name="device_thp_fail_alloc",
    order=360,
    description="FLAGS(FAIL_ALLOC): a THP region falls back to 4 KiB device pages, and to 4 KiB system pages "
                "on the way back",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"fill": "data"}, {"fill": "zero"}],
    timeout=400.0,
)


def _pte_level(view: dict, judged, local: int, writable: bool) -> tuple[bool, str]:
    flags = snap(view, local)
    n = view["npages"]
    pte = [b != 0xFF and b & 0xF0 == LOCAL and not b & PMD for b in flags]
    w = [p.writable is writable for p in judged.pages if p.kind == "device-private"]
    return (judged.kinds() == {"device-private": n} and all(pte) and len(w) == n and all(w),
            f"CPU {judged.kinds()}, dmirror{local} SNAPSHOT {_bytes_text(flags)}")


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, local, fill, t = obs["npages"], obs["local"], obs["fill"], obs["touched"]
    cal = calibrated(c, obs)
    if gap := calibration_gap(cal, "private", local):
        return c.error(gap)
    if fill == "data" and not all(obs["system"]["kpageflags_thp"]):
        return judge_not_formed(obs, facts)
    views = {v["label"]: v for v in obs["views"]}
    judged = {label: compare(c, v, cal, owners=local, pmd_blocks=[0]) for label, v in views.items()}
    writable = fill == "data"

    pmd_seen = [label for label, v in views.items() if any(b != 0xFF and b & PMD for b in snap(v, local))]
    c.control("SNAPSHOT shows PMD on a THP or the huge zero page in the same run", bool(pmd_seen),
              f"PMD seen in: {pmd_seen}")
    for key in ("flags_set", "flags_set2"):
        r = obs.get(key)
        if r is not None:
            c.check(f"FLAGS(FAIL_ALLOC) returns 0 ({key[-1] if key[-1] == '2' else '1'})", r.get("ret") == 0,
                    ioctl_text(r), "ret=0")

    mig = obs["migrate"]
    c.check("MIGRATE_TO_DEV with FAIL_ALLOC moves every page", ok_ioctl(mig, n), ioctl_text(mig), f"cpages={n}")
    c.check("mirror holds the data", obs["mirror_matches"], str(obs["mirror_matches"]))
    ok, seen = _pte_level(views["after MIGRATE_TO_DEV with FAIL_ALLOC"],
                          judged["after MIGRATE_TO_DEV with FAIL_ALLOC"], local, writable)
    c.check("FAIL_ALLOC: 512 PTE-level device-private entries", ok, seen,
            f"{n} device-private, DEV_PRIVATE_LOCAL without PMD, {'write' if writable else 'read'} type")

    one = judged["after a CPU read of one page"]
    back = [i for i, p in enumerate(one.pages) if p.kind == "system"]
    c.check("a CPU read of one page brings back exactly that page", back == [t]
            and one.kinds() == {"system": 1, "device-private": n - 1},
            f"system pages {back[:6]}{'...' if len(back) > 6 else ''} ({len(back)}), CPU {one.kinds()}, "
            f"{obs['cpu_read_faults']} faults", f"page {t} only")
    c.check("the touched page's data intact", obs["touched_page_matches"], str(obs["touched_page_matches"]))
    c.check("data intact after a CPU read of every page", obs["data_after_fault"], str(obs["data_after_fault"]))
    every = judged["after a CPU read of every page"]
    c.check("a CPU read of every page brings all back", every.kinds() == {"system": n}, f"CPU {every.kinds()}")

    if fill == "data":
        ok2, seen2 = pmd_entry(views["second region after MIGRATE_TO_DEV"],
                               judged["second region after MIGRATE_TO_DEV"], local)
        c.check("without the flag: one PMD-level device-private entry", ok_ioctl(obs["migrate2"], n) and ok2,
                f"{ioctl_text(obs['migrate2'])}; {seen2}")
        sys_ = obs["migrate_to_sys"]
        c.check("MIGRATE_TO_SYS with FAIL_ALLOC returns 0", sys_.get("ret") == 0, ioctl_text(sys_), "ret=0")
        sv = views["second region after MIGRATE_TO_SYS with FAIL_ALLOC"]
        sj = judged["second region after MIGRATE_TO_SYS with FAIL_ALLOC"]
        kpf = sv["cpu"].get("kpageflags") or [None] * n
        thp = sum(1 for f in kpf if f is not None and f >> KPF["THP"] & 1)
        pmd = sum(1 for b in snap(sv, local) if b != 0xFF and b & PMD)
        c.check("FAIL_ALLOC on the way back: 512 system base pages", sj.kinds() == {"system": n} and thp == 0
                and pmd == 0, f"CPU {sj.kinds()}, KPF_THP on {thp}, SNAPSHOT {_bytes_text(snap(sv, local))}, "
                f"AnonHugePages {obs['after_sys']['anon_huge_kb']} kB", f"{n} system pages, no THP, no PMD")
        c.check("data intact after MIGRATE_TO_SYS", obs["data2"], str(obs["data2"]))
    else:
        zb = judged["second region before"]
        huge_zero = [p.kind == "zero" and p.huge for p in zb.pages]
        if not all(huge_zero) and (obs.get("use_zero_page") or "").strip() == "0":
            c.note("the huge zero page is disabled (use_zero_page 0): second region on the small zero page",
                   f"CPU {zb.kinds()}")
        else:
            c.control("the second region mapped the huge zero page", all(huge_zero),
                      f"huge zero page on {sum(huge_zero)}/{n}, CPU {zb.kinds()}")
        m2 = obs["migrate2"]
        c.check("huge zero page with FAIL_ALLOC: MIGRATE_TO_DEV moves every page", ok_ioctl(m2, n)
                and obs["mirror2_matches"], f"{ioctl_text(m2)}, mirror zeros {obs['mirror2_matches']}")
        ok3, seen3 = _pte_level(views["second region after MIGRATE_TO_DEV with FAIL_ALLOC"],
                                judged["second region after MIGRATE_TO_DEV with FAIL_ALLOC"], local, False)
        c.check("huge zero page with FAIL_ALLOC: 512 PTE-level device-private entries", ok3, seen3)
        c.check("huge zero page: zeros after a CPU read of every page", obs["data2"], str(obs["data2"]))
    end = judged["second region after a CPU read of every page"]
    c.check("second region: every page back after a CPU read", end.kinds() == {"system": n}, f"CPU {end.kinds()}")
    no_control(c, "FLAGS/MIGRATE returns, data comparisons",
               "an ioctl's return value and a byte comparison with the pattern written")
    return c.verdict(f"{fill}: FAIL_ALLOC gave 512 PTE-level device pages"
                     + (" and 512 system base pages on the way back" if fill == "data" else
                        ", also for the huge zero page") + f"; views agree at {len(judged)} steps")
