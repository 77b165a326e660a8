"""Helpers the verdict rules share: decoding recorded pagemap lists and SNAPSHOT bytes, describing ioctl
results, the target's kernel configuration, and the negative controls several cases record the same way."""

from __future__ import annotations

import errno
import re
from collections import Counter

from hmmbench.cases.facts import KernelConfig  # noqa: F401 - the rules take it from here
from hmmbench.cases.verdict import Check, Checks, Outcome
from hmmbench.guest.pagemap import decode_pagemap
from hmmbench.guest.uapi import SNAPSHOT_FLAGS, decode_snapshot
from hmmbench.kernel import expected

# Python's errorcode picks ENOTSUP for 95 and EDEADLOCK for 35; the kernel returns -EOPNOTSUPP and -EDEADLK.
_KERNEL_NAMES = {errno.EOPNOTSUPP: "EOPNOTSUPP", errno.EDEADLK: "EDEADLK"}


def errname(value: int | None) -> str:
    if not value:
        return "0"
    return _KERNEL_NAMES.get(value) or errno.errorcode.get(value, str(value))


def ioctl_text(r: dict) -> str:
    if r.get("unsupported"):
        return r["unsupported"]
    return f"ret={r.get('ret')} errno={errname(r.get('errno'))} cpages={r.get('cpages')}"


def ok_ioctl(r: dict, npages: int | None = None) -> bool:
    return r.get("ret") == 0 and (npages is None or r.get("cpages") == npages)


def failed_with(r: dict, *names: str) -> bool:
    return r.get("ret") == -1 and errname(r.get("errno")) in names


def decoded(entries: list[int]) -> list[dict]:
    return [decode_pagemap(e) for e in entries]


def count(items: list[bool]) -> str:
    return f"{sum(items)}/{len(items)}"


def exclusive_types(release: str) -> set[int]:
    """Every swap type a device-exclusive entry may have on this kernel (write and read variants)."""
    table = expected.device_exclusive_swap_types(release) or {}
    return set(table.values())


def is_exclusive(d: dict, types: set[int]) -> bool:
    return not d["present"] and d["swap"] and d.get("swap_type") in types


def type_histogram(entries: list[int]) -> dict[int, int]:
    return dict(Counter(d.get("swap_type") for d in decoded(entries) if d["swap"]))


def pfns(entries: list[int]) -> list[int]:
    return [d.get("pfn", d.get("swap_offset", 0)) for d in decoded(entries)]


def all_present_same(entries: list[int], before: list[int]) -> bool:
    now = decoded(entries)
    return all(d["present"] for d in now) and pfns(entries) == pfns(before)


# ----------------------------------------------------------------------------- the kernel's configuration


def noted(key: str, seen: str) -> list[Check]:
    """The checks of a verdict that only records what was seen (a host-decided SKIP, say)."""
    return [Check(key, Outcome.NOTE, seen)]


def undecided(c: Checks, key: str, why: str) -> None:
    """Record that a check could not be decided here (a failed control: the verdict becomes ERROR, never PASS)."""
    c.control(key, False, why)


def no_control(c: Checks, checks: str, why: str) -> None:
    """Say in the evidence which checks have no negative control in this run, and why none can exist."""
    c.note("checks without a negative control", f"{checks}: {why}")


# ----------------------------------------------------------------------------- per-page observations


def bits(entries: list[int], key: str) -> list[bool]:
    """One decoded pagemap flag (``soft_dirty``, ``uffd_wp``, ``present`` ...) of each entry."""
    return [bool(d.get(key)) for d in decoded(entries)]


def snapshot_writable(byte: int) -> bool:
    """HMM_DMIRROR_SNAPSHOT says the CPU PTE is present and writable (HMM_DMIRROR_PROT_WRITE)."""
    return byte != SNAPSHOT_FLAGS["ERROR"] and bool(byte & SNAPSHOT_FLAGS["WRITE"])


def snapshot_readonly(byte: int) -> bool:
    """HMM_DMIRROR_SNAPSHOT says the CPU PTE is present and read-only (PROT_READ without PROT_WRITE)."""
    if byte == SNAPSHOT_FLAGS["ERROR"]:
        return False
    return bool(byte & SNAPSHOT_FLAGS["READ"]) and not byte & SNAPSHOT_FLAGS["WRITE"]


def snapshot_text(flags: list[int]) -> str:
    """A SNAPSHOT result as counted flag sets: ``8x WRITE`` or ``4x READ, 4x NONE``."""
    counts = Counter("|".join(decode_snapshot(b)) for b in flags)
    return ", ".join(f"{n}x {name}" for name, n in sorted(counts.items()))


def snapshot_controls(c: Checks, ctl: dict) -> bool:
    """The SNAPSHOT negative control: on an ordinary written page SNAPSHOT reads WRITE, and on the same kind of
    page after mprotect(PROT_READ) it reads READ, so a writability check built on SNAPSHOT can read either way."""
    rw, ro = ctl["rw"]["flags"][0], ctl["ro"]["flags"][0]
    ok = snapshot_writable(rw) and snapshot_readonly(ro)
    c.control("SNAPSHOT reads a writable PTE as WRITE and a read-only one as READ", ok,
              f"writable page {'|'.join(decode_snapshot(rw))}, read-only page {'|'.join(decode_snapshot(ro))}")
    return ok


def pfns_visible(c: Checks, entries: list[int], label: str = "") -> bool:
    """Control for PFN comparisons: the PFNs read before are non-zero and distinct, so a page that moved or a
    swap offset that is not its PFN would show (without CAP_SYS_ADMIN every PFN reads 0 and all compare equal)."""
    p = pfns(entries)
    ok = bool(p) and all(p) and len(set(p)) == len(p)
    c.control(f"{label}PFNs visible and distinct before", ok, f"{len(set(p))} distinct non-zero of {len(p)}"
              if all(p) else f"{sum(1 for x in p if not x)} of {len(p)} PFNs read 0")
    return ok


# Below this many pages a fault count cannot separate a read-only restore (one fault per page) from a
# writable one (none) plus the forked interpreter's own copy-on-write faults (0-2 seen, varying from one
# loop to the next): 2 faults for 4 pages is either (seen on 6.12). SNAPSHOT, per page, decides there.
FAULT_SIGNAL_MIN_PAGES = 8


def write_fault_signal(c: Checks, key: str, faults: int, noise: int, readonly_faults: int, npages: int,
                       expect_writable: bool) -> None:
    """The write-fault count as a second signal of a restored PTE's writability, with its threshold halfway.

    A read-only restore costs one write fault per page, a writable one about none; the loop's own noise
    (``noise``: the same loop on an ordinary buffer) is subtracted and the line is drawn at half the pages,
    where the two outcomes are farthest apart. The control is the same loop on pages that are mapped
    read-only (the shared zero page): it must land on the far side of the line. On fewer than
    FAULT_SIGNAL_MIN_PAGES pages the count is only recorded.
    """
    if npages < FAULT_SIGNAL_MIN_PAGES:
        c.note(key, f"{faults} faults for {npages} pages (noise {noise}; read-only control {readonly_faults}): "
                    f"too few pages for a count to stand clear of the interpreter's own faults, SNAPSHOT decides")
        return
    extra = faults - noise
    writable = 2 * extra < npages
    want = "writable: fewer than half the pages fault" if expect_writable else "read-only: at least half fault"
    c.check(key, writable == expect_writable, f"{faults} faults for {npages} pages (noise {noise}, extra {extra})",
            want)
    c.control("a write to read-only PTEs faults on at least half the pages", 2 * (readonly_faults - noise) >= npages,
              f"{readonly_faults} faults for {npages} writes to zero-page PTEs (noise {noise})")


# ------------------------------------------------------------------------------------------------ THP


def thp_mode(enabled: str | None) -> str | None:
    """The selected THP mode from ``always [madvise] never``."""
    m = re.search(r"\[(\w+)\]", enabled or "")
    return m.group(1) if m else None


def thp_fallbacks(before: dict | None, after: dict | None) -> int | None:
    """How many huge-page allocations failed between two vmstat readings (None: counters missing)."""
    before, after = before or {}, after or {}
    names = ("thp_fault_fallback", "thp_fault_fallback_charge")
    if any(before.get(k) is None or after.get(k) is None for k in names):
        return None
    return sum(after[k] - before[k] for k in names)


def thp_formed_or_why(c: Checks, facts, formed: bool, seen: str, enabled: str | None, fallbacks: int | None,
                      key: str, wanted: str, no_thp: str, no_huge_page: str) -> bool:
    """Whether a THP formed where the case asked for one (True), else why not, judged from the kernel's
    configuration: no THP configured or mode never (note ``no_thp``), configuration unknown (undecided),
    the kernel could not allocate a huge page (note ``no_huge_page``), otherwise ``key`` fails."""
    if formed:
        c.check(key, True, seen)
        return True
    configured = facts.config.enabled("CONFIG_TRANSPARENT_HUGEPAGE")
    if configured is False or thp_mode(enabled) == "never":
        c.note(no_thp, f"{facts.config.describe('CONFIG_TRANSPARENT_HUGEPAGE')}; {seen}")
        return False
    if configured is None:
        undecided(c, "kernel configuration known (no THP formed)", seen)
        return False
    if fallbacks:
        c.note(no_huge_page, seen)
        return False
    c.check(key, False, seen, f"{wanted} ({facts.config.describe('CONFIG_TRANSPARENT_HUGEPAGE')})")
    return False
