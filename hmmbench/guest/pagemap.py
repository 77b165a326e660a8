"""Readers and decoders for /proc/PID/pagemap, /proc/kpageflags and /proc/kpagecount.

Readers return the raw 64-bit values (that is what the guest reports); decoders turn a raw value into
named fields and are used on the host too, so a recorded observation can be decoded again offline.
Encoding (Documentation/admin-guide/mm/pagemap.rst, fs/proc/task_mmu.c):
bits 0-54 PFN if present, else swap type (0-4) and offset (5-54); 55 soft-dirty; 56 exclusively
mapped; 57 uffd-wp; 58 guard region (6.15+); 61 file/shared-anon; 62 swapped; 63 present.
Without CAP_SYS_ADMIN the kernel zeroes bits 0-54.
"""

from __future__ import annotations

import os
import struct

PM_PFN_MASK = (1 << 55) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63
SWP_TYPE_BITS = 5

KPF_NAMES = [
    "LOCKED", "ERROR", "REFERENCED", "UPTODATE", "DIRTY", "LRU", "ACTIVE", "SLAB", "WRITEBACK",
    "RECLAIM", "BUDDY", "MMAP", "ANON", "SWAPCACHE", "SWAPBACKED", "COMPOUND_HEAD", "COMPOUND_TAIL",
    "HUGE", "UNEVICTABLE", "HWPOISON", "NOPAGE", "KSM", "THP", "OFFLINE", "ZERO_PAGE", "IDLE", "PGTABLE",
    # 27..31 unused; 32.. are the kernel's internal page flags (fs/proc/page.c, kernel-page-flags.h).
    "BIT27", "BIT28", "BIT29", "BIT30", "BIT31",
    "RESERVED", "MLOCKED", "MAPPEDTODISK", "PRIVATE", "PRIVATE_2", "OWNER_PRIVATE", "ARCH", "UNCACHED",
    "SOFTDIRTY", "ARCH_2", "ARCH_3",
]
KPF = {name: bit for bit, name in enumerate(KPF_NAMES)}


def decode_pagemap(raw: int) -> dict:
    """Named fields of one pagemap entry."""
    present = bool(raw & PM_PRESENT)
    swap = bool(raw & PM_SWAP)
    low = raw & PM_PFN_MASK
    out = {
        "present": present,
        "swap": swap,
        "file": bool(raw & PM_FILE),
        "mmap_exclusive": bool(raw & PM_MMAP_EXCLUSIVE),
        "soft_dirty": bool(raw & PM_SOFT_DIRTY),
        "uffd_wp": bool(raw & PM_UFFD_WP),
        "guard": bool(raw & PM_GUARD_REGION),
    }
    if present:
        out["pfn"] = low
    elif swap:
        out["swap_type"] = low & ((1 << SWP_TYPE_BITS) - 1)
        out["swap_offset"] = low >> SWP_TYPE_BITS
    return out


def decode_kpageflags(raw: int) -> list[str]:
    """Names of the set KPF_* bits (unknown high bits shown as BIT<n>)."""
    return [KPF_NAMES[b] if b < len(KPF_NAMES) else f"BIT{b}" for b in range(64) if raw >> b & 1]


def _read_u64s(path: str, index: int, count: int) -> list[int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        data = b""
        offset = index * 8
        want = count * 8
        while len(data) < want:
            chunk = os.pread(fd, want - len(data), offset + len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return list(struct.unpack(f"<{len(data) // 8}Q", data[: len(data) // 8 * 8]))


def read_pagemap(addr: int, npages: int, page_size: int = 4096, pid: str = "self") -> list[int]:
    """Raw pagemap entries of ``npages`` pages from virtual address ``addr``."""
    return _read_u64s(f"/proc/{pid}/pagemap", addr // page_size, npages)


def _read_per_pfn(path: str, pfns: list[int]) -> list[int | None]:
    """One u64 per PFN from a /proc/kpage* file, opened once (None for PFN 0, i.e. unknown)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        out: list[int | None] = []
        for p in pfns:
            data = os.pread(fd, 8, p * 8) if p else b""
            out.append(struct.unpack("<Q", data)[0] if len(data) == 8 else None)
        return out
    finally:
        os.close(fd)


def read_kpageflags(pfns: list[int]) -> list[int | None]:
    """Raw /proc/kpageflags of each PFN (None for PFN 0, i.e. unknown)."""
    return _read_per_pfn("/proc/kpageflags", pfns)


def read_kpagecount(pfns: list[int]) -> list[int | None]:
    """Raw /proc/kpagecount (the page's mapcount as the kernel reports it) of each PFN."""
    return _read_per_pfn("/proc/kpagecount", pfns)


def pfns_of(raw_entries: list[int]) -> list[int]:
    """The PFN of each present entry, or of the swap offset of a PFN swap entry (0 where neither)."""
    out = []
    for raw in raw_entries:
        d = decode_pagemap(raw)
        out.append(d.get("pfn", d.get("swap_offset", 0)))
    return out
