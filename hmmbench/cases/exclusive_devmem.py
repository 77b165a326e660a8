"""exclusive_devmem: device-exclusive entries meet device-private memory (dmirror0, dmirror1 remote).

What the kernel does, from its sources (the same on 6.12 and 7.2): make_device_exclusive() (mm/rmap.c;
6.12 make_device_exclusive_range) takes each page with GUP FOLL_WRITE, and a device-private entry
faults back to system memory on the way (do_swap_page -> dmirror_devmem_fault); the exclusive entry is
then made on the system page. migrate_vma_collect_pmd() (mm/migrate_device.c) migrates only present
pages, holes and device-private entries of its own owner: "Other special swap entries are not
migratable", so a device-exclusive entry is skipped, neither restored nor refused (the ioctl returns 0;
test_hmm's notifier ignores its own MMU_NOTIFY_MIGRATE, so the mirror keeps holding the page).
fork() (copy_nonpresent_pte) restores a device-exclusive entry in the parent before copying it and copies
a device-private entry into the child, read-only in both. KSM and MADV_PAGEOUT walk only present PTEs.

Rule (every check must hold, and every control read the other way, for PASS):
  1. Every view (the CPU's and every device's, CHECK_EXCLUSIVE per page) of every step agrees
     (hmmbench.cases.views), in the parent and in the fork's child.
  2. on_device: MIGRATE_TO_DEV puts every page on the device (control: system pages before EXCLUSIVE
     would make them exclusive); EXCLUSIVE of the migrated first half returns 0 with cpages = half and
     the data, the first half is then device-exclusive (held by dmirror0) and the second half still
     device-private; a CPU read brings every page back to a system page with the data intact.
     on_remote_device: the same with EXCLUSIVE by dmirror1 of pages on dmirror0's memory (the first half
     then held by dmirror1, per page CHECK_EXCLUSIVE).
  3. migrate_exclusive: after EXCLUSIVE of the first half, MIGRATE_TO_DEV of the whole range returns 0
     with cpages = npages and the data; the exclusive pages stay device-exclusive on their PFNs (skipped
     by migrate_vma_collect_pmd), the others are device-private; a CPU read restores every page, data
     intact.
  4. fork with exclusive, migrated and ordinary quarters: in the parent after fork, the exclusive quarter
     is a present system page (restored by the copy), the migrated quarter a read-only device-private
     entry, the rest system; the child shows the same kinds, reads its data intact and exits 0; the
     parent's data is intact and every page present after its read.
  5. ksm: KSM runs and merges the control pair (same PFN; otherwise "not merged" cannot fail: ERROR);
     the exclusive page stays device-exclusive on its PFN and the migrated page device-private; the
     ordinary twin of their data keeps its own PFN; a device WRITE lands in the exclusive page and
     every other page is intact.
  6. reclaim: with swap on, MADV_PAGEOUT swaps ordinary pages out (control: without that nothing could
     be lost); the exclusive quarter stays device-exclusive on its PFNs, the migrated quarter
     device-private; a CPU read brings every page back, data intact. Without swap (no swap disk, or
     swapon refused: recorded) the reclaim flow is noted, not judged.
Covers, beside hmm-tests: migrate, migrate_fault, hmm_cow_in_device (fork of device-private pages),
exclusive, exclusive_cow; the mixes with device-exclusive entries are hmmbench's own.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import decoded, ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import Calibration, ViewsJudged, calibrated, compare

SPEC = CaseSpec(
    name="exclusive_devmem",
    order=400,
    description="device-exclusive beside device-private pages: EXCLUSIVE of migrated pages, MIGRATE_TO_DEV of "
                "exclusive ones, fork, KSM, reclaim; both views every step",
    rule=__doc__.split("Rule", 1)[1],
    timeout=600.0,
)

EXCL, PRIV, SYS = "device-exclusive", "device-private", "system"


def _only(judged: ViewsJudged, lo: int, hi: int, kind: str) -> bool:
    return set(judged.kinds(lo, hi)) == {kind}


def _offsets(view: dict, lo: int, hi: int) -> list[int]:
    return [d.get("pfn", d.get("swap_offset")) for d in decoded(view["cpu"]["pagemap"][lo:hi])]


def _judge_views(c: Checks, flow: dict, cal: Calibration, local: int) -> dict[str, ViewsJudged]:
    return {v["label"]: compare(c, v, cal, owners=local, exclusive_owner=local) for v in flow["views"]}


def _on_device(c: Checks, obs: dict, cal: Calibration, local: int) -> None:
    f, n = obs["on_device"], obs["npages"]
    half = n // 2
    j = _judge_views(c, f, cal, local)
    mig = j["on_device: after MIGRATE_TO_DEV"]
    c.check("on_device: MIGRATE_TO_DEV puts every page on the device", ok_ioctl(f["migrate"], n)
            and _only(mig, 0, n, PRIV), f"{ioctl_text(f['migrate'])}; CPU {mig.kinds()}", f"{n} device-private")
    ex = j["on_device: after EXCLUSIVE of the first half"]
    c.check("on_device: EXCLUSIVE of device-private pages succeeds with the data",
            ok_ioctl(f["exclusive"], half) and f["exclusive_mirror_matches"],
            f"{ioctl_text(f['exclusive'])}, mirror data {f['exclusive_mirror_matches']}", f"ret=0 cpages={half}")
    c.check("on_device: the exclusive half is device-exclusive, the other half still on the device",
            _only(ex, 0, half, EXCL) and _only(ex, half, n, PRIV),
            f"first half {ex.kinds(0, half)}, second half {ex.kinds(half, n)}")
    c.control("on_device: pages were device-private before EXCLUSIVE", _only(mig, 0, half, PRIV),
              f"first half {mig.kinds(0, half)}")
    back = j["on_device: after a CPU read of every page"]
    c.check("on_device: a CPU read brings every page back, data intact",
            _only(back, 0, n, SYS) and f["data_intact"], f"CPU {back.kinds()}, data {f['data_intact']}")


def _on_remote_device(c: Checks, obs: dict, cal: Calibration, local: int, remote: int) -> None:
    f, n = obs["on_remote_device"], obs["npages"]
    half = n // 2
    j = {v["label"]: compare(c, v, cal, owners=local, exclusive_owner=remote) for v in f["views"]}
    mig = j["on_remote_device: after MIGRATE_TO_DEV"]
    ex = j["on_remote_device: after EXCLUSIVE of the first half by the remote device"]
    c.check("on_remote_device: MIGRATE_TO_DEV puts every page on the device", ok_ioctl(f["migrate"], n)
            and _only(mig, 0, n, PRIV), f"{ioctl_text(f['migrate'])}; CPU {mig.kinds()}")
    c.check("on_remote_device: EXCLUSIVE by the remote device of another's device-private pages",
            ok_ioctl(f["exclusive"], half) and f["exclusive_mirror_matches"] and _only(ex, 0, half, EXCL)
            and _only(ex, half, n, PRIV), f"{ioctl_text(f['exclusive'])}, mirror data {f['exclusive_mirror_matches']}; "
            f"first half {ex.kinds(0, half)}, second half {ex.kinds(half, n)}",
            f"ret=0 cpages={half}, first half device-exclusive held by dmirror{remote}, second half device-private")
    back = j["on_remote_device: after a CPU read of every page"]
    c.check("on_remote_device: a CPU read brings every page back, data intact",
            _only(back, 0, n, SYS) and f["data_intact"], f"CPU {back.kinds()}, data {f['data_intact']}")


def _migrate_exclusive(c: Checks, obs: dict, cal: Calibration, local: int) -> None:
    f, n = obs["migrate_exclusive"], obs["npages"]
    half = n // 2
    j = _judge_views(c, f, cal, local)
    ex = j["migrate_exclusive: after EXCLUSIVE of the first half"]
    c.check("migrate_exclusive: EXCLUSIVE of the first half", ok_ioctl(f["exclusive"], half)
            and _only(ex, 0, half, EXCL) and _only(ex, half, n, SYS),
            f"{ioctl_text(f['exclusive'])}; CPU {ex.kinds()}")
    mig = j["migrate_exclusive: after MIGRATE_TO_DEV of the whole range"]
    c.check("migrate_exclusive: MIGRATE_TO_DEV returns every page's data", ok_ioctl(f["migrate"], n)
            and f["migrate_mirror_matches"], f"{ioctl_text(f['migrate'])}, mirror data {f['migrate_mirror_matches']}",
            f"ret=0 cpages={n}")
    views = {v["label"]: v for v in f["views"]}
    before, after = _offsets(views[ex.label], 0, half), _offsets(views[mig.label], 0, half)
    c.check("migrate_exclusive: exclusive entries are skipped, kept on their PFNs",
            _only(mig, 0, half, EXCL) and before == after,
            f"first half {mig.kinds(0, half)}, PFNs {'kept' if before == after else f'{before} -> {after}'}",
            "device-exclusive on the same PFNs (migrate_vma_collect_pmd skips them)")
    c.check("migrate_exclusive: the ordinary pages move to the device", _only(mig, half, n, PRIV),
            f"second half {mig.kinds(half, n)}")
    back = j["migrate_exclusive: after a CPU read of every page"]
    c.check("migrate_exclusive: a CPU read restores every page, data intact",
            _only(back, 0, n, SYS) and f["data_intact"], f"CPU {back.kinds()}, data {f['data_intact']}")


def _fork(c: Checks, obs: dict, cal: Calibration, local: int) -> None:
    f, n = obs["fork"], obs["npages"]
    q = f["quarter"]
    j = _judge_views(c, f, cal, local)
    pre = j["fork: parent before fork"]
    c.check("fork: the range holds exclusive, migrated and ordinary pages",
            ok_ioctl(f["exclusive"], q) and ok_ioctl(f["migrate"], q) and _only(pre, 0, q, EXCL)
            and _only(pre, q, 2 * q, PRIV) and _only(pre, 2 * q, n, SYS),
            f"EXCLUSIVE {ioctl_text(f['exclusive'])}, MIGRATE_TO_DEV {ioctl_text(f['migrate'])}; CPU {pre.kinds()}")

    def kinds_after_fork(v: ViewsJudged) -> bool:
        private = v.pages[q:2 * q]
        return (_only(v, 0, q, SYS) and _only(v, q, 2 * q, PRIV) and _only(v, 2 * q, n, SYS)
                and not any(p.writable for p in private))

    par = j["fork: parent after fork"]
    c.check("fork: parent after fork: exclusive restored, device-private kept read-only", kinds_after_fork(par),
            f"quarters {[par.kinds(i * q, (i + 1) * q) for i in range(n // q)]}, device-private writable "
            f"{[p.writable for p in par.pages[q:2 * q]]}")
    child = f.get("child") or {}
    if "views" in child:
        cj = {v["label"]: compare(c, v, cal, owners=local, exclusive_owner=local) for v in child["views"]}
        ca = cj["fork: in the child after fork"]
        c.check("fork: child after fork: the same kinds", kinds_after_fork(ca),
                f"quarters {[ca.kinds(i * q, (i + 1) * q) for i in range(n // q)]}")
        cr = cj["fork: in the child after its read of every page"]
        c.note("fork: child after its read", f"CPU {cr.kinds()}")
    c.check("fork: child reads its data intact and exits 0", child.get("data_intact") is True
            and f["child_exit"].get("code") == 0 and not f.get("child_timed_out"),
            f"data {child.get('data_intact')}, exit {f['child_exit']}, timed out {f.get('child_timed_out')}"
            + (f", error {child['error']}" if child.get("error") else ""))
    pc = j["fork: parent after the child's reads"]
    c.note("fork: parent after the child's reads", f"CPU {pc.kinds()}")
    end = j["fork: parent after its own read of every page"]
    c.check("fork: parent data intact, every page present after its read", f["data_intact"]
            and _only(end, 0, n, SYS), f"data {f['data_intact']}, CPU {end.kinds()}")


def _ksm(c: Checks, obs: dict, cal: Calibration, local: int) -> None:
    f = obs["ksm"]
    if "absent" in f:
        c.note("ksm", f["absent"])
        return
    j = _judge_views(c, f, cal, local)
    pre, post = j["ksm: before KSM"], j["ksm: after KSM"]
    started = (f.get("ksm_run") or [False])[0]
    c.check("ksm: KSM starts, pages made exclusive and migrated", bool(started) and ok_ioctl(f["exclusive"], 1)
            and ok_ioctl(f["migrate"], 1) and pre.pages[0].kind == EXCL and pre.pages[1].kind == PRIV,
            f"run {f.get('ksm_run')}, EXCLUSIVE {ioctl_text(f['exclusive'])}, MIGRATE_TO_DEV "
            f"{ioctl_text(f['migrate'])}; CPU {pre.kinds()}")
    views = {v["label"]: v for v in f["views"]}
    p_pre, p_post = _offsets(views["ksm: before KSM"], 0, f["npages"]), _offsets(views["ksm: after KSM"], 0,
                                                                                f["npages"])
    c.control("ksm: KSM merged the control pair", p_post[3] == p_post[4] and p_pre[3] != p_pre[4],
              f"control PFNs {p_pre[3:5]} -> {p_post[3:5]} after {f.get('full_scans')} full scans, pages_sharing "
              f"{f.get('pages_sharing')}")
    c.check("ksm: the exclusive and the migrated page are left alone", post.pages[0].kind == EXCL
            and post.pages[1].kind == PRIV and p_post[:2] == p_pre[:2],
            f"kinds {[p.kind for p in post.pages[:2]]}, PFNs/offsets {p_pre[:2]} -> {p_post[:2]}")
    c.check("ksm: their ordinary twin keeps its own PFN", p_post[2] == p_pre[2] and p_post[2] not in p_post[3:],
            f"PFN {p_pre[2]} -> {p_post[2]}")
    d = f.get("data") or {}
    c.check("ksm: a device WRITE lands in the exclusive page, the rest intact", ok_ioctl(f["device_write"], 1)
            and d.get("exclusive_is_new") is True and d.get("others_intact") is True,
            f"WRITE {ioctl_text(f['device_write'])}, data {d}")


def _reclaim(c: Checks, obs: dict, cal: Calibration, local: int) -> None:
    f = obs["reclaim"]
    n, q = f["npages"], f["quarter"]
    j = _judge_views(c, f, cal, local)
    pre, post = j["reclaim: before MADV_PAGEOUT"], j["reclaim: after MADV_PAGEOUT"]
    c.check("reclaim: a quarter exclusive, a quarter migrated", ok_ioctl(f["exclusive"], q)
            and ok_ioctl(f["migrate"], q) and _only(pre, 0, q, EXCL) and _only(pre, q, 2 * q, PRIV),
            f"EXCLUSIVE {ioctl_text(f['exclusive'])}, MIGRATE_TO_DEV {ioctl_text(f['migrate'])}; CPU {pre.kinds()}")
    if not f["swap"].get("ok"):
        c.note("reclaim: swap not set up, MADV_PAGEOUT not judged", str(f["swap"]))
    else:
        swapped = post.kinds(2 * q, n).get("other-swap", 0)
        c.control("reclaim: MADV_PAGEOUT swapped ordinary pages out", swapped > 0,
                  f"{swapped}/{n - 2 * q} ordinary pages swapped; madvise {f['pageout']}")
        views = {v["label"]: v for v in f["views"]}
        kept = _offsets(views["reclaim: before MADV_PAGEOUT"], 0, 2 * q) == \
            _offsets(views["reclaim: after MADV_PAGEOUT"], 0, 2 * q)
        c.check("reclaim: exclusive and device-private pages kept", _only(post, 0, q, EXCL)
                and _only(post, q, 2 * q, PRIV) and kept,
                f"first quarter {post.kinds(0, q)}, second {post.kinds(q, 2 * q)}, PFNs/offsets kept {kept}")
    back = j["reclaim: after a CPU read of every page"]
    c.check("reclaim: a CPU read brings every page back, data intact", _only(back, 0, n, SYS)
            and f["data_intact"], f"CPU {back.kinds()}, data {f['data_intact']}")


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    local = obs["local"]
    cal = calibrated(c, obs)
    if cal.private_write is None or not cal.exclusive:
        return c.error("calibration found no device-private or no device-exclusive swap type")
    _on_device(c, obs, cal, local)
    _on_remote_device(c, obs, cal, local, obs["remote"])
    _migrate_exclusive(c, obs, cal, local)
    _fork(c, obs, cal, local)
    _ksm(c, obs, cal, local)
    _reclaim(c, obs, cal, local)
    no_control(c, "ioctl results, data comparisons, child exit",
               "return values and byte comparisons with patterns that differ page by page; the page kinds have "
               "their controls in the views before each step")
    return c.verdict(f"{obs['npages']} pages per flow: EXCLUSIVE of migrated pages, MIGRATE_TO_DEV of exclusive "
                     "ones, fork, KSM and reclaim; both views agree at every step")
