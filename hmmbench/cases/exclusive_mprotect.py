"""exclusive_mprotect: mprotect on device-exclusive entries, on both restore paths.

Rule (PASS needs every check to hold and every control to read the other way):
  * EXCLUSIVE, mprotect(PROT_READ) and mprotect(RW) succeed.
  * After mprotect(PROT_READ) the entries are still device-exclusive on their PFNs (control: present
    before). The swap type is recorded (6.12 converts to the separate read-only type 30, 7.2 keeps its
    single type 30).
  * A device WRITE to the read-only exclusive range fails with EPERM (control: the same WRITE of an
    ordinary RW buffer succeeds).
  * Read-only path: a CPU read returns the data and makes the PTEs present with the same PFNs (control:
    non-present before), and the PTE restored in the read-only VMA is read-only: SNAPSHOT says READ,
    never WRITE, for every page (control: SNAPSHOT reads WRITE on an ordinary writable page and READ on
    a read-only one).
  * RO->RW path: after mprotect(PROT_READ), mprotect(RW) and a CPU read, the restored PTE is as writable as
    this kernel's restore rule makes it (SNAPSHOT per page): read-only before the series (6.12's
    restore_exclusive_pte() makes a PTE writable only from a *writable* exclusive entry, and mprotect
    turned it into a readable one), writable after it (patch 5: can_change_pte_writable()). The write
    fault count of the following CPU write agrees, with the line at half the pages (a read-only restore
    costs one fault per page; control: the same loop on read-only zero-page PTEs). After the write every
    PTE is writable (SNAPSHOT) and the data is intact.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.rules import (
    all_present_same,
    decoded,
    exclusive_types,
    failed_with,
    ioctl_text,
    is_exclusive,
    no_control,
    ok_ioctl,
    pfns,
    snapshot_controls,
    snapshot_readonly,
    snapshot_text,
    snapshot_writable,
    type_histogram,
    write_fault_signal,
)
from hmmbench.cases.verdict import Checks, Verdict
from hmmbench.guest.uapi import decode_snapshot
from hmmbench.kernel import expected

SPEC = CaseSpec(
    name="exclusive_mprotect",
    order=20,
    description="mprotect(PROT_READ) on exclusive entries: device write refused, CPU read works, RO->RW restore",
    rule=__doc__.split("Rule", 1)[1],
)


def restored_writability(obs: dict) -> str:
    flags = {tuple(decode_snapshot(b)) for b in obs["b_snapshot"]}
    if all("WRITE" in f for f in flags):
        return "writable"
    if all("READ" in f and "WRITE" not in f for f in flags):
        return "read-only"
    return f"mixed {sorted(flags)}"


def judge(obs: dict, facts: TargetFacts) -> Verdict:
    n = obs["npages"]
    release = facts.release
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["a_exclusive"], n) and ok_ioctl(obs["b_exclusive"], n),
            f"A {ioctl_text(obs['a_exclusive'])}, B {ioctl_text(obs['b_exclusive'])}")
    calls = {"A mprotect(PROT_READ)": obs["a_mprotect_read"], "B mprotect(PROT_READ)": obs["b_mprotect_read"],
             "B mprotect(RW)": obs["b_mprotect_rw"]}
    c.check("mprotect succeeds", all(r[0] == 0 for r in calls.values()),
            ", ".join(f"{k} {r}" for k, r in calls.items()), "0 each")

    types = exclusive_types(release) or {29, 30}
    orig = pfns(obs["a_before"])
    kept = [is_exclusive(d, types) for d in decoded(obs["a_after_mprotect"])]
    c.check("entries stay device-exclusive through mprotect(PROT_READ)",
            all(kept) and pfns(obs["a_after_mprotect"]) == orig, f"{sum(kept)}/{n} exclusive, PFNs "
            f"{'kept' if pfns(obs['a_after_mprotect']) == orig else 'changed'}", f"types {sorted(types)}")
    c.control("the PTEs were present before EXCLUSIVE", all(d["present"] for d in decoded(obs["a_before"])),
              f"{sum(d['present'] for d in decoded(obs['a_before']))}/{n} present")
    before_t, after_t = type_histogram(obs["a_while_exclusive"]), type_histogram(obs["a_after_mprotect"])
    c.note("swap type while exclusive -> after mprotect(PROT_READ)", f"{before_t} -> {after_t}")

    c.check("device WRITE to a read-only exclusive range is refused", failed_with(obs["a_device_write"], "EPERM"),
            ioctl_text(obs["a_device_write"]), "ret=-1 errno=EPERM")
    ctl = obs["control_device_write"]
    c.control("the same device WRITE of an ordinary RW buffer succeeds", ok_ioctl(ctl, n), ioctl_text(ctl))

    c.check("CPU read after mprotect returns the data", obs["a_data_intact"], str(obs["a_data_intact"]))
    present = sum(d["present"] for d in decoded(obs["a_after_read"]))
    c.check("CPU read makes the PTEs present with the same PFNs",
            all_present_same(obs["a_after_read"], obs["a_before"]), f"{present}/{n} present")
    was = sum(d["present"] for d in decoded(obs["a_after_mprotect"]))
    c.control("the PTEs were non-present before the read", was == 0, f"{was}/{n} present")
    snap = obs["a_snapshot"]
    ro = [snapshot_readonly(b) for b in snap["flags"]]
    c.check("PTE restored in a read-only VMA is read-only (SNAPSHOT)", ok_ioctl(snap["cmd"], n) and all(ro),
            f"{snapshot_text(snap['flags'])} ({ioctl_text(snap['cmd'])})", f"{n}x READ")
    snapshot_controls(c, obs["snapshot_controls"])

    post = expected.has_series(release)
    want = "writable" if post else "read-only"
    why = ("patch 5: can_change_pte_writable() on restore" if post else
           "6.12 restore_exclusive_pte(): writable only from a writable entry; mprotect made it readable")
    w = restored_writability(obs)
    c.check("PTE restored after mprotect RO->RW and a CPU read (SNAPSHOT)", ok_ioctl(obs["b_snapshot_cmd"], n)
            and w == want, f"{w}: {snapshot_text(obs['b_snapshot'])}", f"{want} ({why})")
    write_fault_signal(c, "PTE restored after mprotect RO->RW (write faults)", obs["b_write_faults"],
                       obs["control_write_faults"], obs["readonly_write_faults"], n, expect_writable=post)
    c.check("RO -> RW -> CPU read: data intact", obs["b_data_intact"], str(obs["b_data_intact"]))
    after = obs["b_snapshot_after_write"]
    wr = [snapshot_writable(b) for b in after["flags"]]
    c.check("after the CPU write every PTE is writable (SNAPSHOT)", ok_ioctl(after["cmd"], n) and all(wr),
            snapshot_text(after["flags"]), f"{n}x WRITE")
    c.check("data intact after the CPU write", obs["b_data_after_write"], str(obs["b_data_after_write"]))
    no_control(c, "EXCLUSIVE succeeds, mprotect succeeds, data intact",
               "return values and byte comparisons with the pattern written; nothing in the page state can "
               "make them read true")
    return c.verdict(f"device write refused; type {before_t}->{after_t} on mprotect; read-only VMA restores "
                     f"read-only; RO->RW restore gives a {w} PTE")
