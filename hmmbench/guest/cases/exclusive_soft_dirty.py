"""exclusive_soft_dirty: soft-dirty and uffd-wp bits across the exclusive -> restore round trip.

Flow 1: write (soft-dirty set) -> exclusive -> CPU read: soft-dirty must still be set.
Flow 2: exclusive -> clear_refs (soft-dirty cleared) -> CPU read -> CPU write: the write must set
soft-dirty again (tracking must not be lost by a restored writable PTE).
Flow 3: uffd register (WP mode) -> exclusive -> UFFDIO_WRITEPROTECT -> mprotect(PROT_READ) ->
mprotect(RW) -> CPU read: the uffd-wp bit (pagemap bit 57) must survive each step. No CPU write is
made to a write-protected page (it would wait for a userfault handler).
"""

from __future__ import annotations

import os

from .. import uapi
from ..memops import touch_read, touch_write, write_file
from ..skip import Skip

NPAGES = 4
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


def _uffd_flow(ctx, dev) -> dict:
    ffi, ps, n = ctx.ffi, ctx.page_size, NPAGES
    size = n * ps
    ffi.cdef(UFFD_CDEF, override=True)
    flags = ffi.cast("int", os.O_CLOEXEC | os.O_NONBLOCK)
    fd, err = ctx.libc.call("syscall", ffi.cast("long", SYS_USERFAULTFD), flags)
    if fd < 0:
        return {"skipped": f"userfaultfd() failed: errno {err} (CONFIG_USERFAULTFD?)"}
    out: dict = {}
    try:
        api = ffi.new("struct uffdio_api *", {"api": UFFD_API, "features": 0})
        out["api"] = _ioctl(ctx, fd, UFFDIO_API, api)
        p, data = ctx.base_pages(NPAGES, 3)
        addr = ctx.libc.addr(p)
        span = {"start": addr, "len": size}
        reg = ffi.new("struct uffdio_register *", {"range": span, "mode": UFFDIO_REGISTER_MODE_WP})
        out["register"] = _ioctl(ctx, fd, UFFDIO_REGISTER, reg)
        if out["register"][0] != 0:
            return {**out, "skipped": f"UFFDIO_REGISTER(MODE_WP) failed: errno {out['register'][1]}"}
        mirror = ffi.new("char[]", size)
        out["exclusive"] = dev.command("EXCLUSIVE", addr, n, mirror)
        wp = ffi.new("struct uffdio_writeprotect *", {"range": span, "mode": UFFDIO_WRITEPROTECT_MODE_WP})
        out["writeprotect"] = _ioctl(ctx, fd, UFFDIO_WRITEPROTECT, wp)
        out["after_wp"] = ctx.pagemap(p, n)
        out["mprotect_read"] = ctx.libc.call("mprotect", p, size, uapi.PROT_READ)
        out["mprotect_rw"] = ctx.libc.call("mprotect", p, size, uapi.PROT_READ | uapi.PROT_WRITE)
        out["after_mprotect"] = ctx.pagemap(p, n)
        touch_read(p, n, ps)
        out["after_read"] = ctx.pagemap(p, n)
        out["data_intact"] = ffi.buffer(p, size)[:] == data
        unwp = ffi.new("struct uffdio_writeprotect *", {"range": span, "mode": 0})
        out["unprotect"] = _ioctl(ctx, fd, UFFDIO_WRITEPROTECT, unwp)
    finally:
        os.close(fd)
    return out


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    dev = ctx.device(0)
    obs: dict = {"npages": n}
    ok, err = write_file("/proc/self/clear_refs", "4")
    if not ok:
        raise Skip(f"cannot clear soft-dirty bits ({err}): kernel without CONFIG_MEM_SOFT_DIRTY?")
    mirror = ctx.ffi.new("char[]", size)

    p1, d1 = ctx.base_pages(NPAGES, 1)
    write_file("/proc/self/clear_refs", "4")
    touch_write(p1, n, ps)
    obs["f1_after_write"] = ctx.pagemap(p1, n)
    obs["f1_exclusive"] = dev.command("EXCLUSIVE", ctx.libc.addr(p1), n, mirror)
    obs["f1_while_exclusive"] = ctx.pagemap(p1, n)
    touch_read(p1, n, ps)
    obs["f1_after_read"] = ctx.pagemap(p1, n)
    obs["f1_data_intact"] = ctx.ffi.buffer(p1, size)[:] == d1

    p2, d2 = ctx.base_pages(NPAGES, 2)
    obs["f2_exclusive"] = dev.command("EXCLUSIVE", ctx.libc.addr(p2), n, mirror)
    obs["f2_clear_refs"] = write_file("/proc/self/clear_refs", "4")
    obs["f2_after_clear"] = ctx.pagemap(p2, n)
    touch_read(p2, n, ps)
    obs["f2_after_read"] = ctx.pagemap(p2, n)
    touch_write(p2, n, ps)
    obs["f2_after_write"] = ctx.pagemap(p2, n)
    obs["f2_data_intact"] = ctx.ffi.buffer(p2, size)[:] == d2

    obs["uffd"] = _uffd_flow(ctx, dev)
    return obs
