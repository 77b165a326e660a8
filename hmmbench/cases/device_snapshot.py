"""device_snapshot: SNAPSHOT (hmm_range_fault without faulting) of one range holding every kind of page.

One 2 MiB-aligned range: a THP region (512 pages), a MAP_HUGETLB 2 MiB page (512), then one page each
of: unpopulated, the zero page, read-only, read-write, zapped (MADV_DONTNEED), the local device's own
mmap (VM_MIXEDMAP), a shared tmpfs page, a private ext4 page-cache page, the local device's memory,
the remote device's, the local device's migrated read-only, a device-exclusive page, a PROT_NONE page
and a hole. Device memory is private (dmirror0/1) or coherent (dmirror2/3) per the variant; every
device present takes a SNAPSHOT of the whole range at every moment.

Covers hmm-tests: snapshot (every row of it, on private and coherent devices), mixedmap, compound
(the PMD flag and its READ/WRITE, on hugetlb and here on THP as well), and the SNAPSHOT halves of
migrate/migrate_mixed (device pages local and remote).

Rule (every check must hold, and every control read the other way, for PASS):
  1. Each row is the kind it was built to be on the CPU (pagemap/kpageflags): unpopulated, zapped and
     hole not mapped, zero page KPF_ZERO_PAGE, device-private entries of the calibrated write/read
     type, coherent pages on the owning device's PFNs, device-exclusive entry; the ioctls that built
     them (MIGRATE_TO_DEV, EXCLUSIVE, mprotect, MADV_DONTNEED, the device mmap) returned 0.
  2. Every device's SNAPSHOT byte of every page is what lib/test_hmm.c dmirror_mkentry makes of what
     mm/hmm.c reports (hmmbench.cases.views), and exactly, per row: unpopulated/zapped NONE; zero page
     ZERO|READ; read-only, mixedmap and the private file page READ; read-write and the shared tmpfs
     page WRITE; PROT_NONE and the hole ERROR (hmm_vma_walk_test / hmm_vma_walk_hole without a VMA);
     device-exclusive NONE on every device; device-private memory DEV_PRIVATE_LOCAL|WRITE (|READ when
     migrated read-only) on its owner and NONE on every other device (no PFN without a fault);
     coherent memory DEV_COHERENT_LOCAL on its owner and DEV_COHERENT_REMOTE on every other device,
     |WRITE (|READ read-only); the THP region and the hugetlb page PMD|WRITE on every page, PMD|READ
     after mprotect(PROT_READ). CHECK_EXCLUSIVE: held only by the local device on the exclusive page.
  3. SNAPSHOT faults nothing in: the CPU view after a first round of SNAPSHOTs equals the one before
     (control: a device READ of the unpopulated page does change it, to the zero page, ZERO|READ).
  4. THP: whether one formed is decided with the configuration: with CONFIG_TRANSPARENT_HUGEPAGE not
     set (or THP [never]) the THP rows are noted, not judged; with THP on, no THP is a FAIL unless the
     kernel counted a failed huge page allocation (noted). Hugetlb: a refused MAP_HUGETLB is noted when
     CONFIG_HUGETLBFS is not set or no huge page could be reserved, a FAIL otherwise; the refused slot
     is then a hole and must read ERROR. Configuration unknown: ERROR (undecided).
  Control: the range's SNAPSHOT bytes take many values (a SNAPSHOT that says the same of every kind fails).
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import errname, ioctl_text, no_control, ok_ioctl, thp_fallbacks, thp_formed_or_why, undecided
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import Calibration, calibrated, calibration_gap, compare
from hmmbench.guest.pagemap import KPF
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F
from hmmbench.guest.uapi import decode_snapshot

SPEC = CaseSpec(
    name="device_snapshot",
    order=300,
    description="SNAPSHOT of one range of every page kind (THP, hugetlb, zero, RO/RW, PROT_NONE, hole, "
                "device private/coherent local and remote, exclusive) from every device",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": "private"}, {"memory": "coherent"}],
    timeout=300.0,
)

R, W = F["READ"], F["WRITE"]
FIXED = {"unpopulated": F["NONE"], "zapped": F["NONE"], "zero": F["ZERO"] | R, "read-only": R, "mixedmap": R,
         "ext4-private-read": R, "read-write": W, "tmpfs-shared": W, "prot-none": F["ERROR"],
         "hole": F["ERROR"], "device-exclusive": F["NONE"]}
DEVICE_ROWS = {"device-local": ("local", W), "device-remote": ("remote", W), "device-local-read-only": ("local", R)}
CPU_KIND = {"unpopulated": "none", "zapped": "none", "hole": "none", "zero": "zero", "read-only": "system",
            "read-write": "system", "mixedmap": "system", "tmpfs-shared": "system", "ext4-private-read": "system",
            "prot-none": "system", "device-exclusive": "device-exclusive"}


def name(byte: int) -> str:
    return "|".join(decode_snapshot(byte))


def device_byte(memory: str, owner: int, device: int, perm: int) -> int:
    """What ``device`` says of a page of ``owner``'s memory (mm/hmm.c + dmirror_mkentry)."""
    if memory == "private":
        return F["DEV_PRIVATE_LOCAL"] | perm if device == owner else F["NONE"]
    return (F["DEV_COHERENT_LOCAL"] if device == owner else F["DEV_COHERENT_REMOTE"]) | perm



def judge_thp(c: Checks, obs: dict, facts: TargetFacts) -> bool:
    """Whether the THP rows are judged as a PMD mapping (True) or only noted (False)."""
    seen = (f"head kpageflags {obs.get('thp_head_kpageflags')}, AnonHugePages {obs.get('thp_anon_huge_kb')} kB, "
            f"enabled {obs.get('thp_enabled')!r}, MADV_HUGEPAGE {obs.get('thp_madvise')}, counters "
            f"{obs.get('thp_vmstat_before')} -> {obs.get('thp_vmstat_after')}")
    return thp_formed_or_why(c, facts, bool(obs.get("thp_formed")), seen, obs.get("thp_enabled"),
                             thp_fallbacks(obs.get("thp_vmstat_before"), obs.get("thp_vmstat_after")),
                             "a THP backs the MADV_HUGEPAGE region", "THP",
                             "THP rows not judged (no THP on this kernel)",
                             "THP rows not judged (the kernel could not allocate a huge page)")


def judge_hugetlb(c: Checks, obs: dict, facts: TargetFacts) -> bool:
    """Whether the hugetlb rows hold a huge page (True) or a hole (False)."""
    h = obs["hugetlb"]
    mem = obs.get("hugetlb_meminfo") or {}
    seen = (f"mmap {h.get('error') or 'ok'} (errno {errname(h.get('errno'))}); nr_hugepages "
            f"{obs.get('nr_hugepages_before')} + 1 via {obs.get('hugetlb_reserve')}, HugePages_Free "
            f"{mem.get('HugePages_Free')}, Hugepagesize {mem.get('Hugepagesize')} kB")
    if h["ok"]:
        c.check("MAP_HUGETLB mmap succeeds", True, seen)
        return True
    cfg = facts.config
    if cfg.enabled("CONFIG_HUGETLBFS") is False:
        c.note("hugetlb rows are a hole (no hugetlb on this kernel)", f"{cfg.describe('CONFIG_HUGETLBFS')}; {seen}")
    elif mem.get("Hugepagesize") not in (None, 2048) or mem.get("HugePages_Free") == 0:
        c.note("hugetlb rows are a hole (no 2 MiB huge page to be had)", seen)
    elif not cfg.known:
        undecided(c, "kernel configuration known (MAP_HUGETLB refused)", seen)
    else:
        c.check("MAP_HUGETLB mmap succeeds", False, seen, f"a mapping ({cfg.describe('CONFIG_HUGETLBFS')})")
    return False


def _cuts(v: dict, lo: int, hi: int, label: str) -> dict:
    """Pages ``lo`` to ``hi`` of a views record, as a views record of their own."""
    cpu = v["cpu"]
    out = {"label": f"{v['label']}: {label}", "npages": hi - lo,
           "cpu": {k: (cpu.get(k) or [None] * v["npages"])[lo:hi] for k in ("pagemap", "kpageflags", "kpagecount")},
           "devices": {}}
    for d, dv in v["devices"].items():
        out["devices"][d] = {"snapshot_cmd": dv["snapshot_cmd"], "snapshot": dv["snapshot"][lo:hi]}
        if dv.get("check_exclusive") is not None:
            out["devices"][d]["check_exclusive"] = dv["check_exclusive"][lo:hi]
    return out


def judge_views(c: Checks, v: dict, obs: dict, cal: Calibration, huge_ok: bool) -> dict:
    """Both views of one moment, by region (the unreadable rows judged as such); the CPU kinds per page."""
    per, row = obs["pages_per_huge"], obs["row_page"]
    local, remote = obs["local"], obs["remote"]
    owners: list[int | None] = [None] * (len(obs["rows"]))
    for r, (who, _) in DEVICE_ROWS.items():
        owners[row[r] - 2 * per] = local if who == "local" else remote
    first_bad = row["prot-none"]
    pages = []
    pages += compare(c, _cuts(v, 0, per, "THP region"), cal).pages
    pages += compare(c, _cuts(v, per, 2 * per, "hugetlb page"), cal, prot_none=not huge_ok).pages
    pages += compare(c, _cuts(v, 2 * per, first_bad, "one page of each kind"), cal, owners=owners[:first_bad - 2 * per],
                     exclusive_owner=local).pages
    pages += compare(c, _cuts(v, first_bad, v["npages"], "PROT_NONE and unmapped pages"), cal, prot_none=True).pages
    return {"pages": pages}


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    memory, local, remote = obs["memory"], obs["local"], obs["remote"]
    cal = calibrated(c, obs)
    if gap := calibration_gap(cal, memory, local, remote):
        return c.error(gap)
    if len(obs.get("views") or []) < 4:
        return c.error(f"the guest recorded {len(obs.get('views') or [])} of 4 moments")
    per, row = obs["pages_per_huge"], obs["row_page"]
    thp = judge_thp(c, obs, facts)
    huge_ok = judge_hugetlb(c, obs, facts)

    # Rule 1: how each row was built, and what the CPU shows of it.
    for key, r in (("MIGRATE_TO_DEV of the local page", obs["migrate_local"]),
                   ("MIGRATE_TO_DEV of the remote page", obs["migrate_remote"]),
                   ("MIGRATE_TO_DEV of the read-only page", obs["migrate_local_read_only"]),
                   ("EXCLUSIVE of the exclusive page", obs["exclusive"])):
        c.check(key, ok_ioctl(r, 1), ioctl_text(r), "ret=0 cpages=1")
    for key in ("mprotect_read_only", "madv_dontneed", "mprotect_device_read_only", "mprotect_prot_none",
                "munmap_hole", "mprotect_huge"):
        c.check(f"{key} returns 0", obs[key][0] == 0, str(obs[key]), "[0, 0]")
    c.check("the device's own mmap (mixedmap) succeeds", obs["mixedmap_mmap"]["ok"], str(obs["mixedmap_mmap"]))

    views = obs["views"]
    judged = [judge_views(c, v, obs, cal, huge_ok) for v in views]
    first = judged[0]["pages"]
    for r, want in CPU_KIND.items():
        p = first[row[r]]
        c.check(f"{r} page: CPU view", p.kind == want, p.text, want)
    kf = views[0]["cpu"]["kpageflags"]
    for r, (who, perm) in DEVICE_ROWS.items():
        p, owner = first[row[r]], local if who == "local" else remote
        if memory == "private":
            ok = p.kind == "device-private" and p.writable == (perm == W)
            want = f"device-private entry of the {'write' if perm == W else 'read'} type"
        else:
            ok = p.kind == "coherent" and p.owner == owner
            want = f"present on dmirror{owner}'s coherent memory"
        c.check(f"{r} page: CPU view", ok, p.text, want)
    if huge_ok:
        hk = kf[per]
        c.check("hugetlb page: CPU view", all(q.kind == "system" for q in first[per:2 * per])
                and hk is not None and bool(hk >> KPF["HUGE"] & 1),
                f"{judged[0]['pages'][per].text}, kpageflags HUGE {bool(hk and hk >> KPF['HUGE'] & 1)}",
                "512 present pages of a KPF_HUGE page")

    # Rule 2: exact bytes, per row and device.
    labels = [v["label"] for v in views]
    for moment, v in enumerate(views):
        devs = sorted(v["devices"], key=int)
        after_mprotect = moment >= 2
        for r in obs["rows"]:
            i = row[r]
            if r in FIXED:
                want_of = {int(d): FIXED[r] for d in devs}
                if r == "unpopulated" and moment == 3:
                    want_of = {int(d): F["ZERO"] | R for d in devs}
            else:
                who, perm = DEVICE_ROWS[r]
                owner = local if who == "local" else remote
                want_of = {int(d): device_byte(memory, owner, int(d), perm) for d in devs}
            got = {int(d): v["devices"][d]["snapshot"][i] for d in devs}
            c.check(f"{labels[moment]}: {r} page: SNAPSHOT of every device", got == want_of,
                    ", ".join(f"dmirror{d} {name(b)}" for d, b in got.items()),
                    ", ".join(f"dmirror{d} {name(b)}" for d, b in want_of.items()))
        for region, lo, judged_here, want in (
                ("THP region", 0, thp, (R if after_mprotect else W) | F["PMD"]),
                ("hugetlb page", per, True, ((R if after_mprotect else W) | F["PMD"]) if huge_ok else F["ERROR"])):
            if not judged_here:
                continue
            bad = {int(d): [b for b in v["devices"][d]["snapshot"][lo:lo + per] if b != want] for d in devs}
            c.check(f"{labels[moment]}: {region}: SNAPSHOT of every device", not any(bad.values()),
                    "; ".join(f"dmirror{d} {per - len(b)}/{per} {name(want)}"
                              + (f", first other {name(b[0])}" if b else "") for d, b in bad.items()),
                    f"{per}/{per} {name(want)} on every device")
        held = {int(d): [i for i, h in enumerate(v["devices"][d].get("check_exclusive") or []) if h] for d in devs}
        want_held = {int(d): [row["device-exclusive"]] if int(d) == local else [] for d in devs}
        c.check(f"{labels[moment]}: CHECK_EXCLUSIVE held only by the local device, on the exclusive page",
                held == want_held, str(held), str(want_held))

    # Rule 3: SNAPSHOT faults nothing in; the control: a device READ does.
    same = views[0]["cpu"]["pagemap"] == views[1]["cpu"]["pagemap"]
    changed = [i for i, (a, b) in enumerate(zip(views[0]["cpu"]["pagemap"], views[1]["cpu"]["pagemap"],
                                                strict=False)) if a != b]
    c.check("SNAPSHOT of every device changes no page of the CPU's", same,
            f"{len(changed)} pages changed" + (f" (first {changed[:4]})" if changed else ""), "none")
    rd = obs["device_read_unpopulated"]
    last = judged[3]["pages"][row["unpopulated"]]
    c.control("a device READ of the unpopulated page faults it in (the zero page)",
              ok_ioctl(rd, 1) and rd.get("faults") == 1 and obs["device_read_unpopulated_zero"] and last.kind == "zero",
              f"{ioctl_text(rd)} faults={rd.get('faults')}, read zeros {obs['device_read_unpopulated_zero']}, "
              f"CPU {last.text}")
    distinct = {b for b in views[0]["devices"][str(local)]["snapshot"]}
    c.control("SNAPSHOT bytes of the range differ by kind", len(distinct) >= 6,
              f"{len(distinct)} distinct bytes from dmirror{local}: {sorted(name(b) for b in distinct)}")
    no_control(c, "ioctl and mprotect returns, mmap succeeds", "return values of the calls that built the rows")
    return c.verdict(f"{obs['npages']} pages of {len(obs['rows']) + 2} kinds x {len(views[0]['devices'])} devices "
                     f"({memory} device memory): every SNAPSHOT byte as mm/hmm.c defines, at {len(views)} moments")
