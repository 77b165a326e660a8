"""migrate_refused: what MIGRATE_TO_DEV does not move (file and shared memory), and that nothing moves.

Covers hmm-tests migrate_file_private (written MAP_PRIVATE file pages, i.e. anonymous copies, do
move), migrate_shared (MAP_SHARED anonymous memory: -ENOENT) and migrate_mixed (PROT_NONE and a hole:
-EINVAL; zero, read-only and read-write pages move to the remote device; a page on the remote device is
not taken by the local one: -ENOENT), with page state before and after and both views of every range.

Why these answers: mm/migrate_device.c collects a PTE-less page only in an anonymous VMA, and
__migrate_device_pages refuses any folio with a mapping that is not anonymous ("only support anonymous
memory migrating to device private or coherent memory"), so page-cache and shmem pages stay where they
are; lib/test_hmm.c dmirror_migrate_to_device then reads the mirror back page by page and answers
-ENOENT at the first page it does not hold (cpages = the pages before it), -EINVAL for a VMA that is
missing or not readable.

Rule (every check must hold, and every control read the other way, for PASS):
  1. File MAP_PRIVATE pages the process wrote (private anonymous copies) move: ret 0, cpages == npages,
     the mirror holds the written data, every page on the device after, the data intact and the file
     unchanged, on tmpfs and on ext4 (the control of rule 2: the same ioctl moves pages here).
  2. Untouched and read-only-faulted file MAP_PRIVATE pages, file MAP_SHARED pages (read or written) and
     MAP_SHARED anonymous pages (untouched or written) are refused: ret -1, errno ENOENT, cpages 0; no
     page moves: each PTE is the same before and after (same PFN, present or absent alike), except a page
     of a large folio (KPF_COMPOUND_HEAD/TAIL before), which the kernel may split and unmap before it
     refuses it (mm/migrate_device.c migrate_vma_split_folio splits every large folio it collects, and a
     split page-cache folio's PTEs are dropped, to be refaulted): its PTE may be absent after, and it
     must then read back intact on a PFN of the same file (a note says how many were split); both
     views agree, the memory and the file keep their data (a written MAP_SHARED file holds what was
     written, the file of a MAP_PRIVATE mapping its original content).
  3. migrate_mixed: MIGRATE_TO_DEV of a PROT_NONE range and of a range with a hole each return EINVAL;
     the zero page, a written read-only page and two read-write pages move to the remote device (ret 0,
     cpages 4, device-private entries of the read type for the two read-only pages and of the write type
     for the others, per migrate_vma_collect_pmd's MIGRATE_PFN_WRITE); the local device asking for one of
     them gets ENOENT and the page stays on the remote device; the data reads back 0, 3, 3, 3.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import decoded, failed_with, ioctl_text, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import ON_DEVICE, calibrated, calibration_gap, compare
from hmmbench.guest.pagemap import KPF

SPEC = CaseSpec(
    name="migrate_refused",
    order=220,
    description="MIGRATE_TO_DEV of file and shared memory: refused (ENOENT) and nothing moves; migrate_mixed",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": "private"}, {"memory": "coherent"}],
    timeout=300.0,
)


def _same_ptes(before: list[int], after: list[int]) -> bool:
    def key(d: dict) -> tuple:
        return (d["present"], d["swap"], d.get("pfn"), d.get("swap_type"), d.get("swap_offset"))

    return [key(d) for d in decoded(before)] == [key(d) for d in decoded(after)]


def _large(kpageflags: int | None) -> bool:
    return bool(kpageflags) and bool(kpageflags >> KPF["COMPOUND_HEAD"] & 1 or kpageflags >> KPF["COMPOUND_TAIL"] & 1)


def _unmoved(before: dict, after: list[int]) -> tuple[bool, int]:
    """(every page unmoved, how many pages of a large folio lost their PTE): a PTE is unchanged, or the
    page was in a large folio and is now unmapped (split, not migrated)."""
    dropped = 0
    ok = True
    for raw_b, kf, raw_a in zip(before["pagemap"], before.get("kpageflags") or [], after, strict=False):
        if _same_ptes([raw_b], [raw_a]):
            continue
        b, a = decoded([raw_b, raw_a])
        if b["present"] and _large(kf) and not a["present"] and not a["swap"]:
            dropped += 1
        else:
            ok = False
    return ok, dropped


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, kind, local, remote = obs["npages"], obs["memory"], obs["local"], obs["remote"]
    cal = calibrated(c, obs)
    on_device = ON_DEVICE[kind]
    if gap := calibration_gap(cal, kind, local):
        return c.error(gap)
    moved_somewhere = False
    for r in obs["regions"]:
        label, mig = r["label"], r["migrate"]
        after = compare(c, r["views"], cal, owners=local)
        moves = r["file"] and not r["shared"] and r["touch"] == "written"
        extra = f", file unchanged {r.get('file_intact')}" if r["file"] else ""
        if moves:
            ok = (ok_ioctl(mig, n) and r["mirror_matches"] and after.kinds() == {on_device: n}
                  and r["data_intact"] and r.get("file_intact") is True)
            moved_somewhere |= ok
            c.check(f"moved: {label}", ok, f"{ioctl_text(mig)}, mirror {r['mirror_matches']}, CPU {after.kinds()}, "
                    f"data {r['data_intact']}{extra}", f"cpages={n}, every page {on_device}")
        else:
            same, dropped = _unmoved(r["before"], r["views"]["cpu"]["pagemap"])
            ok = failed_with(mig, "ENOENT") and mig.get("cpages") == 0 and same and r["data_intact"] \
                and r.get("file_intact", True) is True
            c.check(f"refused, nothing moved: {label}", ok, f"{ioctl_text(mig)}, PTEs unchanged {same}, CPU "
                    f"{after.kinds()}, data {r['data_intact']}{extra}", "ret=-1 errno=ENOENT cpages=0, PTEs unchanged")
            if dropped:
                back = r.get("after_access") or {}
                large_after = sum(_large(k) for k in back.get("kpageflags") or [])
                c.note(f"large folio split and unmapped by the refused MIGRATE_TO_DEV: {label}",
                       f"{dropped}/{n} PTEs of large-folio pages dropped; after a refault {large_after}/{n} "
                       f"pages are in a large folio")
    c.control("the same MIGRATE_TO_DEV moves written MAP_PRIVATE file pages", moved_somewhere,
              "see the 'moved:' checks")

    m = obs["mixed"]
    compare(c, m["prot_none_views"], cal, prot_none=True)
    c.check("mixed: PROT_NONE range refused with EINVAL", failed_with(m["prot_none"], "EINVAL"),
            ioctl_text(m["prot_none"]), "errno=EINVAL")
    c.check("mixed: a range with a hole refused with EINVAL", m["munmap_hole"][0] == 0
            and failed_with(m["hole"], "EINVAL"), f"munmap {m['munmap_hole']}, {ioctl_text(m['hole'])}", "errno=EINVAL")
    compare(c, m["before"], cal)
    ar = compare(c, m["after_remote"], cal, owners=remote)
    want_w = [False, False, True, True]
    types_ok = kind != "private" or [p.writable for p in ar.pages] == want_w
    c.check("mixed: zero, read-only and read-write pages move to the remote device",
            ok_ioctl(m["to_remote"], 4) and ar.kinds() == {on_device: 4} and types_ok
            and all(p.owner == remote for p in ar.pages if kind == "coherent"),
            f"{ioctl_text(m['to_remote'])}, CPU {ar.kinds()}, writable {[p.writable for p in ar.pages]}",
            "cpages=4, read type for pages 2-3, write type for 4-5" if kind == "private" else "cpages=4")
    al = compare(c, m["after_local"], cal, owners=remote)
    c.check("mixed: a page on the remote device is not taken by the local one",
            failed_with(m["to_local"], "ENOENT") and m["to_local"].get("cpages") == 0
            and _same_ptes(m["after_remote"]["cpu"]["pagemap"], m["after_local"]["cpu"]["pagemap"]),
            f"{ioctl_text(m['to_local'])}, CPU {al.kinds()}", "errno=ENOENT cpages=0, nothing moved")
    c.check("mixed: data reads back", m["data"] == [0, 3, 3, 3] and m["zero_read"] == 0, str(m["data"]), "[0, 3, 3, 3]")
    return c.verdict(f"{len(obs['regions'])} kinds of mapping: only written MAP_PRIVATE file pages move; "
                     f"migrate_mixed as hmm-tests expects")
