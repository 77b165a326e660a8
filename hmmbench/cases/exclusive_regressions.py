"""exclusive_regressions: device-exclusive paths of regressions fixed in 2025-2026, one variant each.

Kernel messages during a variant (a WARN in zap_nonpresent_ptes, a bad mapcount, an oops) are judged by
the harness; these rules judge page state and data.

Rule (every check must hold, and every control read the other way, for PASS):
  mthp_free (64 KiB mTHP, MADV_FREE, EXCLUSIVE of its last page, memcg reclaim, then MADV_PAGEOUT):
    1. hugepages-64kB/enabled accepts "always"; whether a 64 KiB folio formed (KPF_COMPOUND_HEAD on the
       first page, COMPOUND_TAIL on the others, contiguous PFNs) is noted: without one the variant runs
       on base pages and says so.
    2. MADV_FREE returns 0; EXCLUSIVE of the last page returns 0 and that page is a device-exclusive entry
       (on a kernel that refuses a page of a large folio, the refusal is noted and no entry is expected).
    3. No mapcount damage at any step: every present page of the range reads kpagecount 1 (mapped once,
       private) and KPF_ANON (control: a memfd page mapped twice reads 2, so the check can fail).
    4. mthp_reclaim is the same without MADV_FREE (to tell which path a finding needs): every page then
       reads its own data. Data (mthp_free): every page reads its own data or zeros (MADV_FREE lets
       reclaim discard clean pages), never anything else; the exclusive page reads its own data (GUP
       FOLL_WRITE dirtied it, so it is not discardable: the device may have written it).
  file_cow_munmap (MAP_PRIVATE ext4 file of 16 pages, 0-14 CoW'd and exclusive, 15 the file's own page):
    5. EXCLUSIVE of the CoW'd pages succeeds; they are device-exclusive.
    6. A hole punched over pages 8-15 keeps every private CoW copy (truncate_pagecache_range ->
       unmap_mapping_range with even_cows false: zap_nonpresent_ptes leaves anon folios) and unmaps the
       file's page (control: the zap did run); truncation to 12 pages removes the copies beyond the new
       size (truncate_pagecache: even_cows true) and leaves pages 0-11.
    7. CPU reads of pages 0-3 and 8-11 restore them with the CoW data; MADV_DONTNEED of the exclusive
       pages 4-7 leaves nothing there; EXCLUSIVE of 8-11 again succeeds; munmap of the range with those
       entries returns 0 and leaves nothing.
  close_migrated (base pages and a THP on dmirror0's device-private memory, the file closed):
    8. MIGRATE_TO_DEV moves every page (device-private before the close); closing the file evicts every
       page of the device back to system memory (lib/test_hmm.c dmirror_fops_release ->
       dmirror_device_evict_chunk); a CPU read of every page then finds the data intact; the views agree
       at every step (a device-private PMD's SNAPSHOT PMD bit is noted, not held against it).
  uffd_wp (userfaultfd WP on 4 exclusive pages, pages 0 and 1 write-protected, page 0 written by another
  thread):
    9. userfaultfd, UFFDIO_API and UFFDIO_REGISTER(MODE_WP) work (refusal decided with the kernel's
       configuration, as in exclusive_soft_dirty); EXCLUSIVE and UFFDIO_WRITEPROTECT succeed; bit 57 is
       set on pages 0 and 1 and clear on 2 and 3 (control).
    10. The write to page 0 does not go through while protected: a WP page-fault event for page 0
        arrives, the writer has not finished and page 0 holds the old data; the protection (bit 57) is
        still on page 0 while the writer waits; after UFFDIO_WRITEPROTECT clears it the writer finishes
        (no hang) and the data lands.
    11. Control: the same thread's write to page 2 (exclusive, not protected) finishes with no event.
    12. Page 1 (protected, never written) still has bit 57 at the end; every page's data is what was
        written; no writer thread is left blocked.
Covers, beside hmm-tests: exclusive, exclusive_cow, migrate_release (close with pages on the device),
anon_teardown; mTHP, MADV_FREE, truncation and uffd-wp mixes are hmmbench's own.
"""

from __future__ import annotations

import errno

from hmmbench.cases import CaseSpec
from hmmbench.cases.exclusive_soft_dirty import UFFD_WP_OPTIONS
from hmmbench.cases.facts import KernelConfig, TargetFacts
from hmmbench.cases.rules import decoded, errname, ioctl_text, no_control, ok_ioctl, undecided
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import calibrated, compare
from hmmbench.guest.pagemap import KPF
from hmmbench.guest.uapi import SNAPSHOT_FLAGS, decode_snapshot

SPEC = CaseSpec(
    name="exclusive_regressions",
    order=410,
    description="2025-2026 regressions as cases: mTHP + MADV_FREE + reclaim, munmap of CoW'd file pages, "
                "close with pages on the device, uffd-wp write fault on exclusive entries",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"scenario": "mthp_free"}, {"scenario": "mthp_reclaim"}, {"scenario": "file_cow_munmap"},
              {"scenario": "close_migrated"}, {"scenario": "uffd_wp"}],
    timeout=400.0,
)


def _flag(kf: int | None, name: str) -> bool:
    return kf is not None and bool(kf >> KPF[name] & 1)


def _kinds(entries: list[int]) -> list[str]:
    out = []
    for d in decoded(entries):
        out.append("present" if d["present"] else f"swap{d['swap_type']}" if d["swap"] else "none")
    return out


# ----------------------------------------------------------------------------------------------- mthp_free

def _formed(state: dict) -> bool:
    d = decoded(state["pagemap"])
    kf = state["kpageflags"]
    if not all(x["present"] for x in d):
        return False
    p = [x["pfn"] for x in d]
    return (_flag(kf[0], "COMPOUND_HEAD") and all(_flag(k, "COMPOUND_TAIL") for k in kf[1:])
            and p == list(range(p[0], p[0] + len(p))))


def _mapcount_sane(state: dict) -> tuple[bool, str]:
    bad = []
    for i, (d, cnt, kf) in enumerate(zip(decoded(state["pagemap"]), state["kpagecount"], state["kpageflags"],
                                         strict=True)):
        if d["present"] and (cnt != 1 or not _flag(kf, "ANON")):
            bad.append(f"page {i}: kpagecount {cnt}, anon {_flag(kf, 'ANON')}")
    return not bad, "; ".join(bad[:4]) or "every present page: kpagecount 1, anon"


def _mthp_free(c: Checks, obs: dict) -> str:
    n, tag, free = obs["npages"], obs["scenario"], obs.get("free", True)
    c.check(f"{tag}: hugepages-64kB accepts always", bool(obs["mthp_enable"][0]), str(obs["mthp_enable"]))
    formed = _formed(obs["before"])
    c.note(f"{tag}: a 64 KiB folio formed", f"{formed} (anon_fault_alloc {obs.get('anon_fault_alloc')}, "
           f"enabled was {obs.get('mthp_enabled_before')!r})")
    if free:
        c.check(f"{tag}: MADV_FREE succeeds", obs["madv_free"][0] == 0, str(obs["madv_free"]))
    ex = obs["exclusive"]
    last = decoded(obs["after_exclusive"]["pagemap"])[n - 1]
    if ex["ret"] == 0:
        c.check(f"{tag}: EXCLUSIVE of the last page makes it device-exclusive",
                ok_ioctl(ex, 1) and not last["present"] and last["swap"] and obs["exclusive_data"],
                f"{ioctl_text(ex)}, last page {_kinds(obs['after_exclusive']['pagemap'])[n - 1]}, "
                f"data {obs['exclusive_data']}")
    else:
        c.note(f"{tag}: EXCLUSIVE of the last page refused", ioctl_text(ex))
    ctl = obs["control"]["state"]
    c.control(f"{tag}: kpagecount reads 2 for a page mapped twice", ctl["kpagecount"][0] == 2,
              f"kpagecount {ctl['kpagecount'][0]}")
    for step in ("after_free", "after_exclusive", "after_reclaim", "after_pageout", "after_read"):
        ok, seen = _mapcount_sane(obs[step])
        c.check(f"{tag}: no mapcount damage {step.replace('_', ' ')}", ok, seen)
    c.note(f"{tag}: reclaim", f"swap {obs['swap']}, cgroup {obs.get('cgroup')}, pageout {obs['pageout']}, "
           f"reclaim {obs.get('reclaim')}; after reclaim {_kinds(obs['after_reclaim']['pagemap'])}, after "
           f"MADV_PAGEOUT {_kinds(obs['after_pageout']['pagemap'])}")
    pages = obs["pages"]
    if free:
        c.check(f"{tag}: every page reads its data or zeros", all(p in ("original", "zero") for p in pages),
                str(pages))
    else:
        c.check(f"{tag}: every page reads its data", all(p == "original" for p in pages), str(pages))
    if ex["ret"] == 0:
        c.check(f"{tag}: the exclusive page keeps its data", pages[n - 1] == "original", pages[n - 1])
    no_control(c, f"{tag}: ioctl and madvise results, data", "return values, and byte comparisons with a "
               "pattern that differs page by page")
    return f"64 KiB folio formed {formed}; mapcounts sane at 5 steps; data {sorted(set(pages))}"


# ----------------------------------------------------------------------------------------------- file_cow_munmap

def _file_cow_munmap(c: Checks, obs: dict) -> str:
    n = obs["npages"]
    m = n - 1
    before = decoded(obs["before"]["pagemap"])
    kf = obs["before"]["kpageflags"]
    cowed = all(d["present"] and _flag(k, "ANON") for d, k in zip(before[:m], kf[:m], strict=True))
    c.check("file_cow_munmap: the written pages are CoW copies", cowed,
            f"anon {[_flag(k, 'ANON') for k in kf[:m]]}")
    c.control("file_cow_munmap: the unwritten page is the file's page", before[m]["present"]
              and not _flag(kf[m], "ANON") and obs["file_page_intact"], f"anon {_flag(kf[m], 'ANON')}, "
              f"data {obs['file_page_intact']}")
    w = _kinds(obs["while_exclusive"]["pagemap"])
    excl = w[0] if w[0].startswith("swap") else "?"
    c.check("file_cow_munmap: EXCLUSIVE of the CoW'd pages", ok_ioctl(obs["exclusive"], m)
            and set(w[:m]) == {excl}, f"{ioctl_text(obs['exclusive'])}; {w}")
    h = _kinds(obs["after_punch_hole"]["pagemap"])
    c.check("file_cow_munmap: a punched hole keeps the exclusive CoW copies", obs["punch_hole"][0] == 0
            and h[:m] == w[:m], f"fallocate {obs['punch_hole']}; {h[:m]}")
    c.control("file_cow_munmap: the punched hole unmapped the file's page", h[m] == "none", h[m])
    t = _kinds(obs["after_truncate"]["pagemap"])
    c.check("file_cow_munmap: truncation drops the exclusive copies beyond the new size, keeps the rest",
            set(t[12:]) == {"none"} and t[:12] == w[:12], str(t))
    r = _kinds(obs["after_read"]["pagemap"])
    intact = obs["read_back_intact"]
    c.check("file_cow_munmap: CPU reads restore the kept copies with their data", all(intact)
            and set(r[:4]) == {"present"} and set(r[8:12]) == {"present"} and r[4:8] == w[4:8],
            f"data {intact}; {r}")
    d = _kinds(obs["after_dontneed"]["pagemap"])
    c.check("file_cow_munmap: MADV_DONTNEED drops exclusive copies", obs["dontneed"][0] == 0
            and set(d[4:8]) == {"none"}, f"{obs['dontneed']}; {d}")
    b = _kinds(obs["before_munmap"]["pagemap"])
    c.check("file_cow_munmap: EXCLUSIVE again of the restored copies", ok_ioctl(obs["exclusive_again"], 4)
            and set(b[8:12]) == {excl}, f"{ioctl_text(obs['exclusive_again'])}; {b}")
    u = _kinds(obs["after_munmap"])
    c.check("file_cow_munmap: munmap with exclusive entries leaves nothing", obs["munmap"][0] == 0
            and set(u) == {"none"}, f"{obs['munmap']}; {u}")
    no_control(c, "file_cow_munmap: ioctl, madvise and munmap results, data", "return values and byte comparisons")
    return f"{m} CoW'd pages exclusive: kept through a punched hole, cut by truncation, dropped, unmapped"


# ----------------------------------------------------------------------------------------------- close_migrated

def decode_text(byte: int) -> str:
    return "|".join(decode_snapshot(byte))


def _private_pmd(byte: int) -> bool:
    return byte != 0xFF and byte & 0xF0 == SNAPSHOT_FLAGS["DEV_PRIVATE_LOCAL"] and bool(byte & SNAPSHOT_FLAGS["PMD"])


def _close_migrated(c: Checks, obs: dict) -> str:
    cal = calibrated(c, obs)
    if cal.private_write is None:
        return "!calibration found no device-private swap type"
    local = obs["local"]
    views, pmd = [], 0
    for v in obs["views"]:
        devices = {}
        for k, d in v["devices"].items():
            snap = []
            for b in d["snapshot"]:
                if _private_pmd(b):  # a device-private PMD (7.2 migrates a THP as one folio) adds PMD
                    pmd += 1
                    b &= ~SNAPSHOT_FLAGS["PMD"]
                snap.append(b)
            devices[k] = {**d, "snapshot": snap}
        views.append({**v, "devices": devices})
    j = {v["label"]: compare(c, v, cal, owners=local, exclusive_owner=local) for v in views}
    c.note("close_migrated: device-private pages reported with the PMD bit", str(pmd))
    # What the other devices say of the THP on dmirror0's memory: mm/hmm.c reads a device-private PTE
    # of another owner as no PFN (NONE) when not asked to fault; the PMD path is the one to watch.
    thp = next(v for v in obs["views"] if v["label"] == "THP range before the close")
    seen = {k: sorted({decode_text(b) for b in d["snapshot"]}) for k, d in sorted(thp["devices"].items())
            if int(k) != local}
    c.note("close_migrated: other devices' SNAPSHOT of the THP on the device", str(seen))
    thp = _flag(obs["thp_before"]["kpageflags"][0], "THP")
    c.note("close_migrated: THP before migration", f"kpageflags THP {thp}, madvise {obs['madv_hugepage']}")
    for what, key in (("base pages", "migrate_base"), ("THP range", "migrate_thp")):
        jb = j[f"{what} before the close"]
        n = len(jb.pages)
        c.check(f"close_migrated: {what} on the device before the close", ok_ioctl(obs[key], n)
                and set(jb.kinds()) == {"device-private"}, f"{ioctl_text(obs[key])}; CPU {jb.kinds()}")
        ja = j[f"{what} after the close"]
        c.check(f"close_migrated: the close evicts the {what} to system memory", set(ja.kinds()) == {"system"},
                f"CPU {ja.kinds()}", "every page system (dmirror_device_evict_chunk)")
        jr = j[f"{what} after a CPU read"]
        intact = obs["base_intact" if key == "migrate_base" else "thp_intact"]
        c.check(f"close_migrated: {what} intact after a CPU read", intact and set(jr.kinds()) == {"system"},
                f"data {intact}, CPU {jr.kinds()}")
    no_control(c, "close_migrated: data", "byte comparisons with patterns that differ page by page; the kinds "
               "have their control in the views before the close")
    return "every page on the device evicted by the close, then read intact"


# ----------------------------------------------------------------------------------------------- uffd_wp

def _uffd_refused(c: Checks, obs: dict, cfg: KernelConfig) -> str | None:
    """None when uffd-wp was set up; otherwise the verdict's text (a note/undecided/failed check added)."""
    options = cfg.describe("CONFIG_USERFAULTFD", *UFFD_WP_OPTIONS)
    ret, err = obs["userfaultfd"]
    if ret < 0:
        seen = f"userfaultfd() failed: errno {errname(err)}"
    else:
        refused = next(((k, obs[k]) for k in ("api", "register") if k in obs and obs[k][0] != 0), None)
        if refused is None:
            return None
        seen = f"{'UFFDIO_API' if refused[0] == 'api' else 'UFFDIO_REGISTER(MODE_WP)'} failed: errno " \
               f"{errname(refused[1][1])}"
    supported = None if not cfg.known else bool(cfg.enabled("CONFIG_USERFAULTFD")) and any(
        cfg.enabled(o) for o in UFFD_WP_OPTIONS)
    if supported is False or (ret < 0 and err == errno.ENOSYS and cfg.enabled("CONFIG_USERFAULTFD") is not True):
        return f"!skip:uffd-wp absent: {seen}; {options}"
    if supported is None:
        undecided(c, "uffd_wp: refusal decidable (kernel configuration unknown)", seen)
    else:
        c.check("uffd_wp: userfaultfd write-protect accepted", False, seen, options)
    return "uffd-wp refused"


def _uffd_wp(c: Checks, obs: dict, facts: TargetFacts) -> str:
    refused = _uffd_refused(c, obs, facts.config)
    if refused is not None:
        return refused
    n = obs["npages"]
    ex = _kinds(obs["after_exclusive"])
    wp = [d["uffd_wp"] for d in decoded(obs["after_wp"])]
    c.check("uffd_wp: EXCLUSIVE and UFFDIO_WRITEPROTECT succeed", ok_ioctl(obs["exclusive"], n)
            and all(k.startswith("swap") for k in ex) and obs["writeprotect"][0] == 0,
            f"{ioctl_text(obs['exclusive'])}, {ex}, writeprotect {obs['writeprotect']}")
    c.check("uffd_wp: bit 57 on the write-protected exclusive entries", wp[0] and wp[1], str(wp))
    c.control("uffd_wp: bit 57 clear on the unprotected ones", not wp[2] and not wp[3], str(wp))
    ev = obs.get("event") or {}
    while_waiting = decoded(obs["while_waiting"])
    page0 = ev.get("address", -1) & ~0xFFF == obs["addr"]
    got = ev.get("event") == 0x12 and bool(ev.get("flags", 0) & 2) and page0
    c.check("uffd_wp: the write to a protected page raises a WP fault event for it", got,
            f"event {ev or None}, address is page 0: {page0}", "UFFD_EVENT_PAGEFAULT with UFFD_PAGEFAULT_FLAG_WP")
    c.check("uffd_wp: the write waits while protected", not obs["finished_before_resolve"]
            and not obs["page0_before_resolve"], f"writer finished {obs['finished_before_resolve']}, "
            f"data landed {obs['page0_before_resolve']}")
    c.check("uffd_wp: protection kept on the page while the writer waits", while_waiting[0]["uffd_wp"],
            f"page 0 {_kinds(obs['while_waiting'])[0]}, bit 57 {while_waiting[0]['uffd_wp']}")
    c.check("uffd_wp: resolving the protection lets the write finish", obs["resolve"][0] == 0
            and obs["finished_after_resolve"], f"resolve {obs['resolve']}, finished {obs['finished_after_resolve']}")
    c.control("uffd_wp: a write to an unprotected exclusive page finishes with no event",
              obs["unprotected_finished"] and obs.get("unprotected_event") is None,
              f"finished {obs['unprotected_finished']}, event {obs.get('unprotected_event')}")
    end = decoded(obs["end"])
    c.check("uffd_wp: the untouched protected page keeps bit 57", end[1]["uffd_wp"],
            f"page 1 {_kinds(obs['end'])[1]}, bit 57 {end[1]['uffd_wp']}")
    c.check("uffd_wp: every page holds what was written", all(obs["page_data"]), str(obs["page_data"]))
    c.check("uffd_wp: no writer left blocked", not obs.get("writer_alive_at_end"),
            f"alive at end {obs.get('writer_alive_at_end')}, after close {obs.get('writer_alive_after_close')}")
    no_control(c, "uffd_wp: ioctl results, data", "return values and byte comparisons")
    return "write fault on a protected exclusive page: event, wait, protection kept, resolved"


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    scenario = obs["scenario"]
    if scenario in ("mthp_free", "mthp_reclaim"):
        summary = _mthp_free(c, obs)
    elif scenario == "file_cow_munmap":
        summary = _file_cow_munmap(c, obs)
    elif scenario == "close_migrated":
        summary = _close_migrated(c, obs)
    else:
        summary = _uffd_wp(c, obs, facts)
    if summary.startswith("!skip:"):
        return c.skip(summary[len("!skip:"):])
    if summary.startswith("!"):
        return c.error(summary[1:])
    return c.verdict(summary)
