"""exclusive_mprotect: mprotect on device-exclusive entries.

Rule (PASS needs all): EXCLUSIVE succeeds; mprotect(PROT_READ) succeeds; a device WRITE to the now
read-only range fails with EPERM; a CPU read returns the original data and makes the PTEs present with
the same PFNs; after mprotect(PROT_READ) then mprotect(RW) and a CPU read, the data is intact.
Recorded, not judged: the swap type before/after mprotect(PROT_READ) (6.12 switches to a separate
read-only type), and whether the PTE restored after RO->RW is writable (SNAPSHOT, write faults):
before the series it is read-only (one extra fault per page), after it writable.
"""

from __future__ import annotations

from hmmbench.cases import CaseSpec, register
from hmmbench.cases._rules import (
    all_present_same,
    decoded,
    failed_with,
    ioctl_text,
    ok_ioctl,
    type_histogram,
)
from hmmbench.guest.uapi import decode_snapshot
from hmmbench.verdict import Checks, Verdict

SPEC = register(CaseSpec(
    name="exclusive_mprotect",
    description="mprotect(PROT_READ) on exclusive entries: device write refused, CPU read works, RO->RW restore",
    rule=__doc__.split("Rule", 1)[1],
))


def restored_writability(obs: dict) -> str:
    flags = {tuple(decode_snapshot(b)) for b in obs["b_snapshot"]}
    if all("WRITE" in f for f in flags):
        return "writable"
    if all("READ" in f and "WRITE" not in f for f in flags):
        return "read-only"
    return f"mixed {sorted(flags)}"


def judge(obs: dict, target: dict) -> Verdict:
    n = obs["npages"]
    c = Checks()
    c.check("EXCLUSIVE succeeds", ok_ioctl(obs["a_exclusive"], n) and ok_ioctl(obs["b_exclusive"], n),
            f"A {ioctl_text(obs['a_exclusive'])}, B {ioctl_text(obs['b_exclusive'])}")
    c.check("mprotect(PROT_READ) succeeds", obs["a_mprotect_read"][0] == 0, str(obs["a_mprotect_read"]))
    before_t, after_t = type_histogram(obs["a_while_exclusive"]), type_histogram(obs["a_after_mprotect"])
    c.note("swap type while exclusive -> after mprotect(PROT_READ)", f"{before_t} -> {after_t}")
    c.check("device WRITE to a read-only exclusive range fails with EPERM", failed_with(obs["a_device_write"], "EPERM"),
            ioctl_text(obs["a_device_write"]))
    c.check("CPU read after mprotect returns the data", obs["a_data_intact"], str(obs["a_data_intact"]))
    present = sum(d["present"] for d in decoded(obs["a_after_read"]))
    c.check("CPU read makes the PTEs present with the same PFNs",
            all_present_same(obs["a_after_read"], obs["a_before"]), f"{present}/{n} present")
    c.check("RO -> RW -> CPU read: data intact", obs["b_data_intact"], str(obs["b_data_intact"]))
    w = restored_writability(obs)
    extra = obs["b_write_faults"] - obs["control_write_faults"]
    c.note("PTE restored after RO->RW and a CPU read (SNAPSHOT)", w)
    c.note("extra faults of a CPU write after that restore", f"{extra} for {n} pages")
    return c.verdict(f"device write refused (EPERM); type {before_t}->{after_t} on mprotect; "
                     f"RO->RW restore gives a {w} PTE")
