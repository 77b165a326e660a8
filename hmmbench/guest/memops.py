"""Small memory operations the cases share: patterns, one-touch-per-page loops, files, sysfs.

The touch loops index a ``unsigned char *`` from cffi, so each iteration is one real load or store
by the CPU on that page (the way a page fault is provoked), with no Python allocation in between that
could add minor faults of its own.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Iterator
from contextlib import contextmanager

from . import pagemap, uapi


def pattern(npages: int, page_size: int, seed: int = 0) -> bytes:
    """hmm-tests' pattern (the buffer as int32s holds seed, seed+1, ...)."""
    return array("i", range(seed, seed + npages * page_size // 4)).tobytes()


def touch_read(p, npages: int, page_size: int, start: int = 0, step: int = 1) -> int:
    total = 0
    for i in range(start, npages, step):
        total += p[i * page_size]
    return total


def touch_write(p, npages: int, page_size: int, start: int = 0, step: int = 1) -> None:
    for i in range(start, npages, step):
        p[i * page_size] = p[i * page_size]


def write_file(path: str, text: str) -> tuple[bool, str]:
    """Write a sysfs/procfs file; (ok, error) instead of an exception, since errors are observations."""
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        return True, ""
    except OSError as exc:
        return False, f"{type(exc).__name__}: errno {exc.errno} ({os.strerror(exc.errno or 0)})"


def read_file(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def smaps_field(addr: int, field: str) -> int | None:
    """A kB field (AnonHugePages, Rss, Swap ...) of the VMA containing ``addr`` in /proc/self/smaps."""
    text = read_file("/proc/self/smaps") or ""
    inside = False
    for line in text.splitlines():
        head = line.split()[0] if line else ""
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def vma_flags(addr: int) -> list[str]:
    """The VmFlags of the VMA containing ``addr`` (/proc/self/smaps): ``sd`` is VM_SOFTDIRTY, which makes
    pagemap report every page of the VMA soft-dirty whatever its PTE says, until clear_refs clears it."""
    text = read_file("/proc/self/smaps") or ""
    inside = False
    for line in text.splitlines():
        head = line.split()[0] if line else ""
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    return []


def vmstat(*names: str) -> dict[str, int | None]:
    """Counters from /proc/vmstat (None for a counter this kernel does not have)."""
    text = read_file("/proc/vmstat") or ""
    have = dict(line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)
    return {n: int(have[n]) if n in have else None for n in names}


def free_blocks(min_order: int) -> int | None:
    """Free blocks of at least 2^min_order pages over all zones (/proc/buddyinfo); None if unreadable."""
    text = read_file("/proc/buddyinfo")
    if text is None:
        return None
    total = 0
    for line in text.splitlines():
        counts = line.split(",", 1)[-1].split()[2:]  # after "zone", the zone's name
        total += sum(int(x) for x in counts[min_order:])
    return total


# ------------------------------------------------------------------- observations shared by several cases
# These take the agent's CaseContext (``ctx``) and a Dmirror; they only observe, never judge.


def snapshot(ctx, dev, ptr, npages: int) -> dict:
    """HMM_DMIRROR_SNAPSHOT of ``npages`` pages: one byte per page saying how the CPU maps it (NONE, READ,
    WRITE, ZERO, PMD ...). It walks the CPU page table with hmm_range_fault() asking for no fault
    (lib/test_hmm.c dmirror_snapshot: default_flags 0), so reading it changes nothing: a device-exclusive
    entry reads NONE and stays exclusive, a present PTE reads READ or WRITE as it is."""
    out = ctx.ffi.new("unsigned char[]", npages)
    cmd = dev.command("SNAPSHOT", ctx.libc.addr(ptr), npages, out)
    return {"cmd": cmd, "flags": list(out)}


def snapshot_controls(ctx, dev) -> dict:
    """SNAPSHOT of an ordinary written page (present, writable) and of one made read-only by mprotect: the
    negative control of every writability check that reads SNAPSHOT (it must be able to say either)."""
    rw, _ = ctx.base_pages(1, 4100)
    ro, _ = ctx.base_pages(1, 4200)
    ctx.libc.call("mprotect", ro, ctx.page_size, uapi.PROT_READ)
    return {"rw": snapshot(ctx, dev, rw, 1), "ro": snapshot(ctx, dev, ro, 1)}


def readonly_write_faults(ctx, npages: int) -> int:
    """Minor faults of the one-write-per-page loop on pages mapped read-only: a fresh buffer read first, so
    each PTE maps the shared zero page and each write must fault (copy-on-write). The far side of every
    "restored PTE writable" fault count: what a read-only restore costs."""
    p = ctx.mmap_anon(npages)
    ctx.libc.call("madvise", p, npages * ctx.page_size, uapi.MADV_NOHUGEPAGE)
    touch_read(p, npages, ctx.page_size)
    f0 = ctx.minflt()
    touch_write(p, npages, ctx.page_size)
    return ctx.minflt() - f0


def unmapped_page_cache_page(ctx) -> dict:
    """kpagecount and kpageflags of a tmpfs page while it is mapped and after munmap (the page stays in the
    page cache, now mapped by nobody): the negative control of mapcount checks, a page whose kpagecount
    reads 0 and whose KPF_MMAP is clear in the same guest."""
    ps = ctx.page_size
    path = f"/dev/shm/hmmbench-unmapped-{os.getpid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pattern(1, ps, 6100))
        p = ctx.libc.mmap(ps, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED, fd)
        touch_read(p, 1, ps)  # fault the PTE in: only a mapped page has a PFN in pagemap
        mapped = ctx.page_state(p, 1)
        pfn = pagemap.pfns_of(mapped["pagemap"])[0]
        ctx.libc.call("munmap", p, ps)
        after = {"kpageflags": pagemap.read_kpageflags([pfn]), "kpagecount": pagemap.read_kpagecount([pfn])}
    finally:
        os.close(fd)
        os.unlink(path)
    return {"pfn": pfn, "mapped": mapped, "unmapped": after}


KSM = "/sys/kernel/mm/ksm"


@contextmanager
def ksm_at_full_speed() -> Iterator[None]:
    """KSM scanning as fast as it can for the block (pages_to_scan 10000, no sleep); afterwards it unmerges
    everything (run=2: nothing the case merged outlives it) and gets back the settings it had."""
    saved = {k: read_file(f"{KSM}/{k}") for k in ("run", "pages_to_scan", "sleep_millisecs")}
    try:
        write_file(f"{KSM}/pages_to_scan", "10000")
        write_file(f"{KSM}/sleep_millisecs", "0")
        yield
    finally:
        write_file(f"{KSM}/run", "2")
        for k, v in saved.items():
            if v is not None and k != "run":
                write_file(f"{KSM}/{k}", v)
        write_file(f"{KSM}/run", saved.get("run") or "0")


def ksm_scan(scans: int, timeout: float) -> dict:
    """Start KSM and wait for ``scans`` full scans (or ``timeout`` seconds): what the write to ``run``
    returned, how many full scans there were and KSM's pages_sharing. KSM keeps running: the caller
    records what it merged, then stops it (``run`` 0) where its own sequence needs."""
    start = int(read_file(f"{KSM}/full_scans") or 0)
    run = write_file(f"{KSM}/run", "1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and int(read_file(f"{KSM}/full_scans") or 0) < start + scans:
        time.sleep(0.2)
    return {"ksm_run": run, "full_scans": int(read_file(f"{KSM}/full_scans") or 0) - start,
            "pages_sharing": read_file(f"{KSM}/pages_sharing")}
