"""device_access: the device's READ and WRITE on memory of each permission and kind, with page state after.

Every section records the ioctl's ret/errno/cpages/faults (``faults`` counts the times test_hmm had to
call hmm_range_fault with faulting on: dmirror_read/dmirror_write retry once after a fault of the whole
rest of the range) and both views of the whole buffer after each step. Device memory is private
(dmirror0 local, 1 remote) or coherent (2, 3) per the variant.

Covers hmm-tests: anon_read, anon_read_prot, anon_write, anon_write_prot, anon_write_huge,
anon_write_hugetlbfs, file_read, file_write, double_map (with the page state the tests do not look
at), plus a device WRITE onto its own device memory and by the other device.

Rule (every check must hold, and every control read the other way, for PASS):
  1. At every step every page's CPU view and every device's SNAPSHOT agree (hmmbench.cases.views;
     PROT_NONE pages read ERROR).
  2. anon_read: READ of a read-only range whose page 0 is unpopulated and page 1 the zero page returns
     0, cpages = npages, faults = 1, and reads zeros then the data; after it page 0 maps the zero page
     (the device's read fault, SNAPSHOT ZERO|READ) and every other page keeps its PFN.
  3. anon_read_prot: READ of PROT_NONE memory fails with EFAULT (hmm_vma_walk_test: no VM_READ), cpages
     0, the mirror buffer untouched, every page unchanged; after mprotect(PROT_READ) the data is intact.
  4. anon_write: WRITE of unpopulated read-write memory returns 0, cpages = npages, faults = 1; the data
     lands; every page is then a present system page the device sees WRITE.
  5. anon_write_prot: READ of one page of unpopulated PROT_READ memory: 0, cpages 1, faults 1, and that
     page now maps the zero page (the rest stay unpopulated); WRITE fails with EPERM (hmm_vma_fault: no
     VM_WRITE), cpages 0, the memory stays zeros and the page state unchanged; after mprotect(RW) WRITE
     returns 0, cpages = npages, faults = 1, the data lands, page 0 is off the zero page (COW), all WRITE.
  6. anon_write_huge: WRITE of an unpopulated MADV_HUGEPAGE 2 MiB region: 0, 512, faults 1, data; a
     THP is formed by the device's write fault (SNAPSHOT PMD|WRITE on all 512 pages) unless the kernel
     has no THP (noted) or counted a failed huge page allocation (noted); config unknown: ERROR.
  7. anon_write_hugetlbfs: WRITE of a MAP_HUGETLB page: 0, 512, faults 1, data, PMD|WRITE on all pages.
     A refused mmap is noted with CONFIG_HUGETLBFS unset or no huge page to reserve, a FAIL otherwise.
  8. file_read / file_write (tmpfs as hmm-tests does, and ext4): READ of a MAP_SHARED PROT_READ file
     mapping and WRITE of a read-write one return 0, cpages = npages, faults 1; the data read is the
     file's, the data written is in the mapping and in the file (pread); the pages are then present file
     pages (PM_FILE) the device sees READ, resp. WRITE.
  9. double_map: READ by the local and by the remote device of the same read-only memory, each 0,
     npages, faults 1, data; MIGRATE_TO_DEV to the remote device moves every page there; READ by the local
     device then returns the data with faults 1 and: device-private pages come back to system memory
     (the local device may not map another's private memory), device-coherent pages stay on the remote
     device's memory (the CPU and any device reach it in place).
 10. device_write: after MIGRATE_TO_DEV to the local device, its WRITE lands with no fault (test_hmm
     mirrors the pages it migrated) and moves no page; the CPU reads the new data. After a second
     MIGRATE_TO_DEV (private; coherent pages are not collected by MIGRATE_VMA_SELECT_SYSTEM: every entry
     must stay the same), a WRITE
     by the remote device lands with one fault and: private pages come back to system memory; coherent
     pages stay on the local device's memory.
  Controls: the same run shows the state every "unchanged" check needs to see change (a READ that maps
  the zero page, pages that leave the device), and SNAPSHOT reads both READ and WRITE on system pages.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import (
    decoded,
    errname,
    failed_with,
    ioctl_text,
    no_control,
    ok_ioctl,
    thp_fallbacks,
    thp_formed_or_why,
    undecided,
)
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import calibrated, calibration_gap, compare
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F
from hmmbench.guest.uapi import decode_snapshot

SPEC = CaseSpec(
    name="device_access",
    order=310,
    description="device READ/WRITE on unpopulated, zero, read-only, PROT_NONE, THP, hugetlb, file and "
                "device memory: errno, data, faults, page state after",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": "private"}, {"memory": "coherent"}],
    timeout=300.0,
)

R, W, PMD = F["READ"], F["WRITE"], F["PMD"]


def cmd_text(r: dict) -> str:
    return f"{ioctl_text(r)} faults={r.get('faults')}"


def ok_cmd(r: dict, npages: int, faults: int | None) -> bool:
    return ok_ioctl(r, npages) and (faults is None or r.get("faults") == faults)


def want_cmd(npages: int, faults: int | None) -> str:
    return f"ret=0 cpages={npages}" + (f" faults={faults}" if faults is not None else "")


def snap_text(flags: list[int]) -> str:
    counts: dict[str, int] = {}
    for b in flags:
        k = "|".join(decode_snapshot(b))
        counts[k] = counts.get(k, 0) + 1
    return ", ".join(f"{n}x {k}" for k, n in sorted(counts.items()))


class Judge:
    def __init__(self, obs: dict, facts: TargetFacts) -> None:
        self.c = Checks()
        self.obs, self.facts = obs, facts
        self.local, self.remote, self.memory = obs["local"], obs["remote"], obs["memory"]
        self.cal = calibrated(self.c, obs)
        self.moments: dict[str, dict] = {}

    def views(self, sec: dict, owners: int | None = None, prot_none: bool = False) -> dict[str, object]:
        """Compare every moment of a section; returns label -> (views record, judged)."""
        out = {}
        for v in sec["views"]:
            out[v["label"].split(": ", 1)[1]] = (v, compare(self.c, v, self.cal, owners=owners, prot_none=prot_none))
        return out

    def local_snapshot(self, v: dict) -> list[int]:
        return v["devices"][str(self.local)]["snapshot"]

    def cmd(self, key: str, r: dict, npages: int, faults: int | None) -> bool:
        return self.c.check(key, ok_cmd(r, npages, faults), cmd_text(r), want_cmd(npages, faults))

    def snapshot_is(self, key: str, v: dict, want: list[int] | int) -> bool:
        flags = self.local_snapshot(v)
        want_list = want if isinstance(want, list) else [want] * len(flags)
        return self.c.check(key, flags == want_list, f"dmirror{self.local}: {snap_text(flags)}",
                            snap_text(want_list))



def judge_anon_read(j: Judge, sec: dict) -> None:
    c, n = j.c, sec["npages"]
    m = j.views(sec)
    (vb, before), (va, after) = m["before READ"], m["after READ"]
    kinds = [p.kind for p in before.pages]
    c.check("anon_read: built as unpopulated, zero page, then system pages",
            kinds[:2] == ["none", "zero"] and set(kinds[2:]) == {"system"}, str(before.kinds()))
    j.cmd("anon_read: READ", sec["read"], n, 1)
    c.check("anon_read: device read zeros then the data", sec["read_data"], str(sec["read_data"]))
    c.check("anon_read: the unpopulated page now maps the zero page", after.pages[0].kind == "zero",
            after.pages[0].text, "the shared zero page")
    same = vb["cpu"]["pagemap"][1:] == va["cpu"]["pagemap"][1:]
    c.check("anon_read: every other page unchanged", same, "same entries" if same else "changed")
    j.snapshot_is("anon_read: device view after READ", va, [F["ZERO"] | R] * 2 + [R] * (n - 2))


def judge_anon_read_prot(j: Judge, sec: dict) -> None:
    c = j.c
    m = j.views(sec, prot_none=True)
    (vb, _), (va, _) = m["before READ"], m["after READ"]
    r = sec["read"]
    c.check("anon_read_prot: READ of PROT_NONE memory refused", failed_with(r, "EFAULT") and r.get("cpages") == 0,
            cmd_text(r), "ret=-1 errno=EFAULT cpages=0")
    c.check("anon_read_prot: mirror buffer untouched", sec["mirror_untouched"], str(sec["mirror_untouched"]))
    same = vb["cpu"]["pagemap"] == va["cpu"]["pagemap"]
    c.check("anon_read_prot: every page unchanged", same and all(d["present"] for d in decoded(va["cpu"]["pagemap"])),
            "same present entries" if same else "changed")
    c.check("anon_read_prot: data intact after mprotect(PROT_READ)", sec["mprotect_read"][0] == 0
            and sec["data_intact"], f"mprotect {sec['mprotect_read']}, data {sec['data_intact']}")


def judge_anon_write(j: Judge, sec: dict) -> None:
    c, n = j.c, sec["npages"]
    m = j.views(sec)
    before, (va, after) = m["before WRITE"][1], m["after WRITE"]
    c.check("anon_write: unpopulated before WRITE", set(before.kinds()) == {"none"}, str(before.kinds()))
    j.cmd("anon_write: WRITE", sec["write"], n, 1)
    c.check("anon_write: data landed", sec["data"], str(sec["data"]))
    c.check("anon_write: every page a system page after", set(after.kinds()) == {"system"}, str(after.kinds()))
    j.snapshot_is("anon_write: device view after WRITE", va, W)


def judge_anon_write_prot(j: Judge, sec: dict) -> None:
    c, n = j.c, sec["npages"]
    m = j.views(sec)
    c.check("anon_write_prot: unpopulated before", set(m["before READ"][1].kinds()) == {"none"},
            str(m["before READ"][1].kinds()))
    j.cmd("anon_write_prot: READ of one page", sec["read_one"], 1, 1)
    v1, one = m["after READ of one page"]
    c.check("anon_write_prot: READ maps the zero page at page 0 only",
            [p.kind for p in one.pages] == ["zero"] + ["none"] * (n - 1), str(one.kinds()))
    r = sec["write_ro"]
    c.check("anon_write_prot: WRITE to read-only memory refused", failed_with(r, "EPERM") and r.get("cpages") == 0,
            cmd_text(r), "ret=-1 errno=EPERM cpages=0")
    c.check("anon_write_prot: memory still zeros", sec["zeros_after_refused_write"],
            str(sec["zeros_after_refused_write"]))
    v2 = m["after WRITE to read-only"][0]
    c.check("anon_write_prot: refused WRITE changes no page", v1["cpu"]["pagemap"] == v2["cpu"]["pagemap"],
            "same entries" if v1["cpu"]["pagemap"] == v2["cpu"]["pagemap"] else "changed")
    j.snapshot_is("anon_write_prot: device view after the refused WRITE", v2, [F["ZERO"] | R] + [F["NONE"]] * (n - 1))
    c.check("anon_write_prot: mprotect(PROT_READ|PROT_WRITE)", sec["mprotect_rw"][0] == 0, str(sec["mprotect_rw"]))
    j.cmd("anon_write_prot: WRITE after mprotect", sec["write_rw"], n, 1)
    c.check("anon_write_prot: data landed", sec["data"], str(sec["data"]))
    v3, last = m["after WRITE to read-write"]
    c.check("anon_write_prot: every page a system page, page 0 off the zero page", set(last.kinds()) == {"system"},
            f"{last.kinds()}; page 0 {last.pages[0].text}")
    j.snapshot_is("anon_write_prot: device view after WRITE", v3, W)


def judge_thp(j: Judge, sec: dict) -> bool:
    c, facts = j.c, j.facts
    seen = (f"head kpageflags {sec.get('head_kpageflags')}, AnonHugePages {sec.get('anon_huge_kb')} kB, enabled "
            f"{sec.get('thp_enabled')!r}, MADV_HUGEPAGE {sec.get('madvise')}, counters {sec.get('thp_vmstat_before')}"
            f" -> {sec.get('thp_vmstat_after')}")
    return thp_formed_or_why(c, facts, sec["thp_formed"], seen, sec.get("thp_enabled"),
                             thp_fallbacks(sec.get("thp_vmstat_before"), sec.get("thp_vmstat_after")),
                             "anon_write_huge: the device's write fault formed a THP", "a THP",
                             "anon_write_huge: no THP on this kernel",
                             "anon_write_huge: the kernel could not allocate a huge page")


def judge_anon_write_huge(j: Judge, sec: dict) -> None:
    c, n = j.c, sec["npages"]
    m = j.views(sec)
    j.cmd("anon_write_huge: WRITE", sec["write"], n, 1)
    c.check("anon_write_huge: data landed", sec["data"], str(sec["data"]))
    if judge_thp(j, sec):
        j.snapshot_is("anon_write_huge: device view after WRITE", m["after WRITE"][0], W | PMD)


def judge_hugetlbfs(j: Judge, sec: dict) -> None:
    c, cfg = j.c, j.facts.config
    mem = sec.get("meminfo") or {}
    h = sec["mmap"]
    seen = (f"mmap {h.get('error') or 'ok'} (errno {errname(h.get('errno'))}); nr_hugepages "
            f"{sec.get('nr_hugepages_before')} + 1 via {sec.get('reserve')}, HugePages_Free {mem.get('HugePages_Free')}"
            f", Hugepagesize {mem.get('Hugepagesize')} kB")
    if not h["ok"]:
        if cfg.enabled("CONFIG_HUGETLBFS") is False:
            c.note("anon_write_hugetlbfs: no hugetlb on this kernel", f"{cfg.describe('CONFIG_HUGETLBFS')}; {seen}")
        elif mem.get("Hugepagesize") not in (None, 2048) or mem.get("HugePages_Free") == 0:
            c.note("anon_write_hugetlbfs: no 2 MiB huge page to be had", seen)
        elif not cfg.known:
            undecided(c, "kernel configuration known (MAP_HUGETLB refused)", seen)
        else:
            c.check("anon_write_hugetlbfs: MAP_HUGETLB mmap succeeds", False, seen,
                    f"a mapping ({cfg.describe('CONFIG_HUGETLBFS')})")
        return
    c.check("anon_write_hugetlbfs: MAP_HUGETLB mmap succeeds", True, seen)
    n = sec["npages"]
    m = j.views(sec)
    j.cmd("anon_write_hugetlbfs: WRITE", sec["write"], n, 1)
    c.check("anon_write_hugetlbfs: data landed", sec["data"], str(sec["data"]))
    j.snapshot_is("anon_write_hugetlbfs: device view after WRITE", m["after WRITE"][0], W | PMD)


def judge_file(j: Judge, sec: dict, fs: str, write: bool) -> None:
    c, n = j.c, sec["npages"]
    what = "file_write" if write else "file_read"
    m = j.views(sec)
    before = m["before WRITE" if write else "before READ"][1]
    va, after = m["after WRITE" if write else "after READ"]
    c.check(f"{what} {fs}: not mapped before", set(before.kinds()) == {"none"}, str(before.kinds()))
    j.cmd(f"{what} {fs}: {'WRITE' if write else 'READ'}", sec["write" if write else "read"], n, 1)
    if write:
        c.check(f"{what} {fs}: data in the mapping and in the file", sec["data"] and sec["file_data"],
                f"mapping {sec['data']}, pread {sec['file_data']}")
    else:
        c.check(f"{what} {fs}: device read the file's data", sec["data"], str(sec["data"]))
    filed = [d["present"] and d["file"] for d in decoded(va["cpu"]["pagemap"])]
    c.check(f"{what} {fs}: every page a present file page after", all(filed) and set(after.kinds()) == {"system"},
            f"{sum(filed)}/{n} present with PM_FILE; {after.kinds()}")
    j.snapshot_is(f"{what} {fs}: device view after", va, W if write else R)


def judge_double_map(j: Judge, sec: dict) -> None:
    c, n = j.c, sec["npages"]
    m = j.views(sec, owners=j.remote)
    for key, who in (("read_local", "local"), ("read_remote", "remote")):
        j.cmd(f"double_map: READ by the {who} device", sec[key], n, 1)
        c.check(f"double_map: {who} device read the data", sec[f"{key}_data"], str(sec[f"{key}_data"]))
    v0 = m["after READ by both devices"][0]
    j.snapshot_is("double_map: device view of the read-only pages", v0, R)
    j.cmd("double_map: MIGRATE_TO_DEV to the remote device", sec["migrate_remote"], n, None)
    on = m["after MIGRATE_TO_DEV to the remote device"][1]
    want = "device-private" if j.memory == "private" else "coherent"
    moved = [p.kind == want and (j.memory == "private" or p.owner == j.remote) for p in on.pages]
    c.check("double_map: every page on the remote device", all(moved), f"{sum(moved)}/{n}; {on.kinds()}",
            f"{n} {want} of dmirror{j.remote}")
    j.cmd("double_map: READ by the local device after the migration", sec["read_local_after_migrate"], n, 1)
    c.check("double_map: local device read the data after the migration", sec["read_local_after_migrate_data"],
            str(sec["read_local_after_migrate_data"]))
    after = m["after READ by the local device"][1]
    if j.memory == "private":
        c.check("double_map: the local READ brought the remote's private pages back to system memory",
                set(after.kinds()) == {"system"}, str(after.kinds()), f"{n} system pages")
    else:
        stay = [p.kind == "coherent" and p.owner == j.remote for p in after.pages]
        c.check("double_map: coherent pages stay on the remote device through the local READ", all(stay),
                f"{sum(stay)}/{n}; {after.kinds()}", f"{n} coherent of dmirror{j.remote}")


def judge_device_write(j: Judge, sec: dict) -> None:
    c, n = j.c, sec["npages"]
    m = j.views(sec, owners=j.local)
    want = "device-private" if j.memory == "private" else "coherent"

    def on(label: str, owner: int) -> tuple[bool, str]:
        pages = m[label][1]
        ok = [p.kind == want and (j.memory == "private" or p.owner == owner) for p in pages.pages]
        return all(ok), f"{sum(ok)}/{n}; {pages.kinds()}"

    j.cmd("device_write: MIGRATE_TO_DEV to the local device", sec["migrate_local"], n, None)
    ok, seen = on("after MIGRATE_TO_DEV to the local device", j.local)
    c.check("device_write: every page on the local device", ok, seen, f"{n} {want} of dmirror{j.local}")
    j.cmd("device_write: WRITE by the local device onto its own memory", sec["write_local"], n, 0)
    ok, seen = on("after WRITE by the local device", j.local)
    c.check("device_write: the local WRITE moves no page", ok, seen, f"{n} {want} of dmirror{j.local}")
    c.check("device_write: CPU reads the local device's data", sec["cpu_sees_local_write"],
            str(sec["cpu_sees_local_write"]))
    again = sec["migrate_local_again"]
    if j.memory == "private":
        j.cmd("device_write: a second MIGRATE_TO_DEV", again, n, None)
    else:
        # migrate_vma_collect_pmd skips device-coherent pages unless MIGRATE_VMA_SELECT_DEVICE_COHERENT is asked
        # (test_hmm asks MIGRATE_VMA_SELECT_SYSTEM): nothing moves; cpages counts the pages the mirror can read.
        a = m["after WRITE by the local device"][0]["cpu"]["pagemap"]
        b = m["after a second MIGRATE_TO_DEV to the local device"][0]["cpu"]["pagemap"]
        c.check("device_write: a second MIGRATE_TO_DEV leaves coherent pages where they are", a == b,
                f"{cmd_text(again)}; entries {'the same' if a == b else 'changed'}", "the same entries (PFNs)")
    ok, seen = on("after a second MIGRATE_TO_DEV to the local device", j.local)
    c.check("device_write: every page on the local device before the remote WRITE", ok, seen)
    j.cmd("device_write: WRITE by the remote device", sec["write_remote"], n, 1)
    c.check("device_write: CPU reads the remote device's data", sec["cpu_sees_remote_write"],
            str(sec["cpu_sees_remote_write"]))
    after = m["after WRITE by the remote device"][1]
    if j.memory == "private":
        c.check("device_write: the remote WRITE brought the pages back to system memory",
                set(after.kinds()) == {"system"}, str(after.kinds()), f"{n} system pages")
    else:
        ok, seen = on("after WRITE by the remote device", j.local)
        c.check("device_write: coherent pages stay on the local device through the remote WRITE", ok, seen,
                f"{n} coherent of dmirror{j.local}")


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    j = Judge(obs, facts)
    c = j.c
    if gap := calibration_gap(j.cal, obs["memory"], j.local, j.remote):
        return c.error(gap)
    s = obs["sections"]
    judge_anon_read(j, s["anon_read"])
    judge_anon_read_prot(j, s["anon_read_prot"])
    judge_anon_write(j, s["anon_write"])
    judge_anon_write_prot(j, s["anon_write_prot"])
    judge_anon_write_huge(j, s["anon_write_huge"])
    judge_hugetlbfs(j, s["anon_write_hugetlbfs"])
    for fs in ("tmpfs", "ext4"):
        judge_file(j, s[f"file_read_{fs}"], fs, False)
        judge_file(j, s[f"file_write_{fs}"], fs, True)
    judge_double_map(j, s["double_map"])
    judge_device_write(j, s["device_write"])
    for name, sec in s.items():
        deltas = {k: v.get("pgfault_delta") for k, v in sec.items() if isinstance(v, dict) and "pgfault_delta" in v}
        if deltas:
            c.note(f"{name}: pgfault delta per ioctl", str(deltas))
    # Controls: the "unchanged" checks could see a change (anon_read's READ maps the zero page, pages leave
    # the device in double_map/device_write); the READ/WRITE device-view checks read both ways in this run.
    ar = s["anon_read"]["views"]
    p0 = decoded([ar[0]["cpu"]["pagemap"][0], ar[1]["cpu"]["pagemap"][0]])
    c.control("a device READ changes the page state where it faults (anon_read page 0)",
              not p0[0]["present"] and p0[1]["present"],
              f"page 0 entry {ar[0]['cpu']['pagemap'][0]:#x} -> {ar[1]['cpu']['pagemap'][0]:#x}")
    r_seen = j.local_snapshot(s["double_map"]["views"][0])[0]
    w_seen = j.local_snapshot(s["anon_write"]["views"][-1])[0]
    c.control("SNAPSHOT reads a read-only system page READ and a written one WRITE", r_seen == R and w_seen == W,
              f"read-only {'|'.join(decode_snapshot(r_seen))}, written {'|'.join(decode_snapshot(w_seen))}")
    no_control(c, "ioctl returns, errno, cpages, faults and data comparisons",
               "values the kernel returns and byte comparisons with the pattern written")
    return c.verdict(f"READ/WRITE on {len(s)} kinds of memory ({obs['memory']} device memory): errno, data, "
                     f"faults and page state as test_hmm and mm/hmm.c define")
