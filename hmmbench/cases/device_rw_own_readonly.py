"""device_rw_own_readonly: a device READs and WRITEs its own device memory after mprotect(PROT_READ).

mprotect keeps the pages on the device but its notifier (MMU_NOTIFY_PROTECTION_VMA, not the owner's
MMU_NOTIFY_MIGRATE that dmirror_interval_invalidate ignores) clears test_hmm's mirror of them, so the
device's next READ goes through hmm_range_fault, which reports the device's own private pages by their
device PFN without a fault (mm/hmm.c hmm_vma_handle_pte, dev_private_owner): dmirror_do_fault then
mirrors the device-private struct page itself, not its BACKING_PAGE, and dmirror_do_read copies from it.
No hmm-tests test reaches this (migrate + mprotect + device READ); it is the READ half of anon_read on
the device's own memory, and the WRITE half of anon_write_prot.

Rule (every check must hold, and every control read the other way, for PASS):
  1. MIGRATE_TO_DEV moves every page to the local device (private: device-private entries of the write
     type; coherent: present on its coherent memory).
  2. After mprotect(PROT_READ) every page is still on the device, now read-only (private: entries of the
     read type) and both views agree at every step (SNAPSHOT DEV_*_LOCAL|READ on the owner).
  3. access=write: the device's WRITE is refused with EPERM (what hmm_vma_fault returns without VM_WRITE,
     and what anon_write_prot expects), cpages 0, no page changes, no kernel warning.
  4. access=read: the device's READ returns 0, cpages = npages, faults = 1 (its mirror was cleared), the data is the
     data migrated, and no page moves: the device reads its own memory in place.
  5. A CPU read afterwards sees the data.
  A kernel oops in the READ (a copy from a device-private page that has no kernel mapping) is a FAIL
  with its title (the harness's kernel-report rule).
  Control: mprotect changed what the device sees (|WRITE before, |READ after), so "no page changes"
  could see a change.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import failed_with, ioctl_text, no_control, ok_ioctl
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.cases.views import calibrated, calibration_gap, compare
from hmmbench.guest.uapi import SNAPSHOT_FLAGS as F
from hmmbench.guest.uapi import decode_snapshot

SPEC = CaseSpec(
    name="device_rw_own_readonly",
    order=320,
    description="device READ/WRITE of its own (private, coherent) memory after mprotect(PROT_READ)",
    rule=__doc__.split("Rule", 1)[1],
    variants=[{"memory": m, "access": a} for m in ("private", "coherent") for a in ("write", "read")],
    timeout=180.0,
)


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    c = Checks()
    n, memory, local = obs["npages"], obs["memory"], obs["local"]
    cal = calibrated(c, obs)
    if gap := calibration_gap(cal, memory, local):
        return c.error(gap)
    if len(obs.get("views") or []) < 3:
        return c.error(f"the guest recorded {len(obs.get('views') or [])} of 3 moments")
    v = {x["label"]: x for x in obs["views"]}
    j = {label: compare(c, x, cal, owners=local) for label, x in v.items()}
    want = "device-private" if memory == "private" else "coherent"

    def on_device(label: str, writable: bool | None) -> tuple[bool, str]:
        pages = j[label].pages
        ok = [p.kind == want and (memory == "private" and (writable is None or p.writable == writable)
                                  or memory == "coherent" and p.owner == local) for p in pages]
        return all(ok), f"{sum(ok)}/{n}; {j[label].kinds()}"

    mig = obs["migrate"]
    c.check("MIGRATE_TO_DEV moves every page", ok_ioctl(mig, n), ioctl_text(mig), f"ret=0 cpages={n}")
    ok, seen = on_device("after MIGRATE_TO_DEV", True)
    c.check("every page on the local device after MIGRATE_TO_DEV", ok, seen, f"{n} {want} of dmirror{local}")
    c.check("mprotect(PROT_READ) returns 0", obs["mprotect"][0] == 0, str(obs["mprotect"]))
    ok, seen = on_device("after mprotect(PROT_READ)", False)
    c.check("every page still on the device, read-only, after mprotect", ok, seen,
            f"{n} {want} of dmirror{local}" + (" of the read type" if memory == "private" else ""))
    snap = {label: v[label]["devices"][str(local)]["snapshot"] for label in v}
    before, after = snap["after MIGRATE_TO_DEV"], snap["after mprotect(PROT_READ)"]
    c.control("mprotect changed what the device sees (WRITE to READ)",
              all(b & F["WRITE"] for b in before) and all(b & F["READ"] and not b & F["WRITE"] for b in after),
              f"{'|'.join(decode_snapshot(before[0]))} -> {'|'.join(decode_snapshot(after[0]))}")

    last = v["after mprotect(PROT_READ)"]["cpu"]["pagemap"]
    if obs["access"] == "write":
        w = obs["write"]
        c.check("the device's WRITE to its read-only memory is refused",
                failed_with(w, "EPERM") and w.get("cpages") == 0, f"{ioctl_text(w)} faults={w.get('faults')}",
                "ret=-1 errno=EPERM cpages=0")
        same = last == v["after the device's WRITE"]["cpu"]["pagemap"]
        c.check("the refused WRITE changes no page", same, "same entries" if same else "changed")
    else:
        r = obs["read"]
        c.check("the device's READ of its own read-only memory", ok_ioctl(r, n) and r.get("faults") == 1,
                f"{ioctl_text(r)} faults={r.get('faults')}", f"ret=0 cpages={n} faults=1")
        c.check("the device read the data", obs["read_data"], str(obs["read_data"]))
        same = last == v["after the device's READ"]["cpu"]["pagemap"]
        c.check("the device's READ moves no page", same, "same entries" if same else "changed")
    c.check("a CPU read sees the data", obs["cpu_data"], str(obs["cpu_data"]))
    no_control(c, "ioctl returns and data comparisons", "values the kernel returns and byte comparisons")
    done = "WRITE refused" if obs["access"] == "write" else "READ in place"
    return c.verdict(f"{n} pages on dmirror{local} ({memory}) made read-only: {done}")
