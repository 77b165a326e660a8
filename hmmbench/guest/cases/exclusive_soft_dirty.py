"""exclusive_soft_dirty: soft-dirty and uffd-wp bits across the exclusive -> restore round trip.

Why the setup is what it is: every new VMA has VM_SOFTDIRTY until `echo 4 > /proc/PID/clear_refs`,
and while it has it fs/proc/task_mmu.c reports pagemap bit 55 for *every* page of the VMA whatever its
PTE or swap entry says; so every buffer is mapped first, then clear_refs runs once, and only then are
the bits read (the VMA flags, `sd` in smaps' VmFlags, are recorded too). In each buffer only some
pages are written after clear_refs: the others must read 0, the negative control. And a restore of a
*writable* exclusive entry may set soft-dirty by itself (6.12: maybe_mkwrite(pte_mkdirty()), and x86's
pte_mkdirty() sets _PAGE_SOFT_DIRTY), so whether an entry's own soft-dirty bit is carried is observed
on the read-only restore path.

plain: an ordinary buffer; page 0 written after clear_refs, page 1 not (is soft-dirty tracked at all?).
ro (read-only restore path): exclusive -> clear_refs -> CPU write of the first half (restores and
dirties them) -> EXCLUSIVE of that half again (entries carrying soft-dirty; the second half's entries
are clean) -> mprotect(PROT_READ) -> CPU read of all (restored read-only) -> SNAPSHOT.
rw (writable restore path): exclusive -> clear_refs -> CPU read of the first half (restored in a RW
VMA) -> SNAPSHOT -> CPU write of that half -> SNAPSHOT; the second half stays exclusive and clean.
uffd: uffd register (WP mode) -> exclusive -> UFFDIO_WRITEPROTECT of the first half -> mprotect(PROT_READ)
-> mprotect(RW) -> CPU read -> SNAPSHOT: the uffd-wp bit (pagemap bit 57) on each step, the second half
(never write-protected) the control. No CPU write is made to a write-protected page (it would wait for
a userfault handler). userfaultfd() or UFFDIO_REGISTER failing is recorded, not skipped: the host
decides with the kernel's configuration.
"""

from __future__ import annotations

import os

from .. import uapi
from ..memops import snapshot, snapshot_controls, touch_read, touch_write, vma_flags, write_file
from ..skip import Skip

NPAGES = 8
HALF = NPAGES // 2
CLEAR_REFS = "/proc/self/clear_refs"
SYS_USERFAULTFD = 323
UFFD_API = 0xAA
UFFDIO_API = uapi.iowr(chr(0xAA), 0x3F, 24)
UFFDIO_REGISTER = uapi.iowr(chr(0xAA), 0x00, 32)
UFFDIO_WRITEPROTECT = uapi.iowr(chr(0xAA), 0x06, 24)
UFFDIO_REGISTER_MODE_WP = 1 << 1
UFFDIO_WRITEPROTECT_MODE_WP = 1 << 0

UFFD_CDEF = """
struct uffdio_api { uint64_t api; uint64_t features; uint64_t ioctls; };
struct uffdio_range { uint64_t start; uint64_t len; };
struct uffdio_register { struct uffdio_range range; uint64_t mode; uint64_t ioctls; };
struct uffdio_writeprotect { struct uffdio_range range; uint64_t mode; };
"""


def _ioctl(ctx, fd: int, request: int, arg) -> tuple[int, int]:
    return ctx.libc.call("ioctl", fd, ctx.ffi.cast("unsigned long", request), ctx.ffi.cast("void *", arg))


def _uffd_flow(ctx, dev, p, data: bytes) -> dict:
    """uffd-wp on exclusive entries; every failure on the way is recorded and ends the flow."""
    ffi, ps, n = ctx.ffi, ctx.page_size, NPAGES
    size = n * ps
    ffi.cdef(UFFD_CDEF, override=True)
    flags = ffi.cast("int", os.O_CLOEXEC | os.O_NONBLOCK)
    fd, err = ctx.libc.call("syscall", ffi.cast("long", SYS_USERFAULTFD), flags)
    out: dict = {"userfaultfd": [fd if fd < 0 else 0, err]}
    if fd < 0:
        return out
    try:
        api = ffi.new("struct uffdio_api *", {"api": UFFD_API, "features": 0})
        out["api"] = _ioctl(ctx, fd, UFFDIO_API, api)
        if out["api"][0] != 0:
            return out
        addr = ctx.libc.addr(p)
        span = {"start": addr, "len": size}
        reg = ffi.new("struct uffdio_register *", {"range": span, "mode": UFFDIO_REGISTER_MODE_WP})
        out["register"] = _ioctl(ctx, fd, UFFDIO_REGISTER, reg)
        if out["register"][0] != 0:
            return out
        mirror = ffi.new("char[]", size)
        out["exclusive"] = dev.command("EXCLUSIVE", addr, n, mirror)
        half = {"start": addr, "len": HALF * ps}
        wp = ffi.new("struct uffdio_writeprotect *", {"range": half, "mode": UFFDIO_WRITEPROTECT_MODE_WP})
        out["writeprotect"] = _ioctl(ctx, fd, UFFDIO_WRITEPROTECT, wp)
        out["after_wp"] = ctx.pagemap(p, n)
        out["mprotect_read"] = ctx.libc.call("mprotect", p, size, uapi.PROT_READ)
        out["mprotect_rw"] = ctx.libc.call("mprotect", p, size, uapi.PROT_READ | uapi.PROT_WRITE)
        out["after_mprotect"] = ctx.pagemap(p, n)
        touch_read(p, n, ps)
        out["after_read"] = ctx.pagemap(p, n)
        out["snapshot_after_read"] = snapshot(ctx, dev, p, n)
        out["data_intact"] = ffi.buffer(p, size)[:] == data
        unwp = ffi.new("struct uffdio_writeprotect *", {"range": span, "mode": 0})
        out["unprotect"] = _ioctl(ctx, fd, UFFDIO_WRITEPROTECT, unwp)
    finally:
        os.close(fd)
    return out


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    if not os.path.exists(CLEAR_REFS):
        raise Skip(f"no {CLEAR_REFS} (kernel without CONFIG_PROC_PAGE_MONITOR)")
    dev = ctx.device(0)
    obs: dict = {"npages": n, "written": HALF}
    mirror = ctx.ffi.new("char[]", size)
    # Every mapping this case reads is made before clear_refs (a new mapping has VM_SOFTDIRTY, and one
    # merged into a neighbour gives it VM_SOFTDIRTY too).
    obs["snapshot_controls"] = snapshot_controls(ctx, dev)
    plain, _ = ctx.base_pages(2, 9)
    ro, ro_data = ctx.base_pages(n, 1)
    rw, rw_data = ctx.base_pages(n, 2)
    uf, uf_data = ctx.base_pages(n, 3)
    addrs = {"plain": ctx.libc.addr(plain), "ro": ctx.libc.addr(ro), "rw": ctx.libc.addr(rw)}
    obs["ro_exclusive"] = dev.command("EXCLUSIVE", addrs["ro"], n, mirror)
    obs["rw_exclusive"] = dev.command("EXCLUSIVE", addrs["rw"], n, mirror)
    obs["vma_flags_before_clear"] = {k: vma_flags(a) for k, a in addrs.items()}

    obs["clear_refs"] = write_file(CLEAR_REFS, "4")
    obs["vma_flags_after_clear"] = {k: vma_flags(a) for k, a in addrs.items()}
    touch_write(plain, 1, ps)
    obs["plain_after_write"] = ctx.pagemap(plain, 2)
    obs["ro_after_clear"] = ctx.pagemap(ro, n)
    obs["rw_after_clear"] = ctx.pagemap(rw, n)

    touch_write(ro, HALF, ps)
    obs["ro_rewrite_exclusive"] = dev.command("EXCLUSIVE", addrs["ro"], HALF, mirror)
    obs["ro_marked"] = ctx.pagemap(ro, n)
    obs["ro_mprotect"] = ctx.libc.call("mprotect", ro, size, uapi.PROT_READ)
    obs["ro_after_mprotect"] = ctx.pagemap(ro, n)
    touch_read(ro, n, ps)
    obs["ro_after_read"] = ctx.pagemap(ro, n)
    obs["ro_snapshot"] = snapshot(ctx, dev, ro, n)
    obs["ro_data_intact"] = ctx.ffi.buffer(ro, size)[:] == ro_data

    touch_read(rw, HALF, ps)
    obs["rw_after_read"] = ctx.pagemap(rw, n)
    obs["rw_snapshot_after_read"] = snapshot(ctx, dev, rw, n)
    touch_write(rw, HALF, ps)
    obs["rw_after_write"] = ctx.pagemap(rw, n)
    obs["rw_snapshot_after_write"] = snapshot(ctx, dev, rw, n)
    obs["rw_data_intact"] = ctx.ffi.buffer(rw, size)[:] == rw_data
    obs["vma_flags_at_end"] = {k: vma_flags(a) for k, a in addrs.items()}

    obs["uffd"] = _uffd_flow(ctx, dev, uf, uf_data)
    return obs
