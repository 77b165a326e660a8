"""exclusive_mprotect: mprotect on device-exclusive entries, and what a CPU read restores afterwards.

Flow A (the read-only restore path): exclusive -> mprotect(PROT_READ) -> device WRITE (must be refused)
-> CPU read -> SNAPSHOT (the PTE restored in a read-only VMA) -> data.
Flow B (the RO->RW path): exclusive -> mprotect(PROT_READ) -> mprotect(RW) -> CPU read -> SNAPSHOT (is
the restored PTE writable?) -> CPU write (does it fault?) -> SNAPSHOT after the write -> data.
Controls recorded in the same run: a device WRITE of an ordinary RW buffer (the same call can succeed),
SNAPSHOT of an ordinary writable and read-only page, and the write loop's fault count on an ordinary
buffer (noise) and on read-only zero-page PTEs (what a read-only restore costs).
"""

from __future__ import annotations

from .. import uapi
from ..memops import pattern, readonly_write_faults, snapshot, snapshot_controls, touch_read, touch_write

NPAGES = 8


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    dev = ctx.device(0)
    obs: dict = {"npages": n}
    mirror = ctx.ffi.new("char[]", size)

    a, a_data = ctx.base_pages(NPAGES, 0)
    a_addr = ctx.libc.addr(a)
    obs["a_before"] = ctx.pagemap(a, n)
    obs["a_exclusive"] = dev.command("EXCLUSIVE", a_addr, n, mirror)
    obs["a_while_exclusive"] = ctx.pagemap(a, n)
    obs["a_mprotect_read"] = ctx.libc.call("mprotect", a, size, uapi.PROT_READ)
    obs["a_after_mprotect"] = ctx.pagemap(a, n)
    src = ctx.ffi.new("char[]", pattern(n, ps, 1_000_000))
    obs["a_device_write"] = dev.command("WRITE", a_addr, n, src)
    ordinary, _ = ctx.base_pages(NPAGES, 3000)
    obs["control_device_write"] = dev.command("WRITE", ctx.libc.addr(ordinary), n, src)
    f0 = ctx.minflt()
    touch_read(a, n, ps)
    obs["a_read_faults"] = ctx.minflt() - f0
    obs["a_after_read"] = ctx.pagemap(a, n)
    obs["a_snapshot"] = snapshot(ctx, dev, a, n)
    obs["a_data_intact"] = ctx.ffi.buffer(a, size)[:] == a_data

    b, b_data = ctx.base_pages(NPAGES, 5000)
    b_addr = ctx.libc.addr(b)
    obs["b_before"] = ctx.pagemap(b, n)
    obs["b_exclusive"] = dev.command("EXCLUSIVE", b_addr, n, mirror)
    obs["b_mprotect_read"] = ctx.libc.call("mprotect", b, size, uapi.PROT_READ)
    obs["b_after_mprotect_read"] = ctx.pagemap(b, n)
    obs["b_mprotect_rw"] = ctx.libc.call("mprotect", b, size, uapi.PROT_READ | uapi.PROT_WRITE)
    obs["b_after_mprotect_rw"] = ctx.pagemap(b, n)
    touch_read(b, n, ps)
    obs["b_after_read"] = ctx.pagemap(b, n)
    snap = snapshot(ctx, dev, b, n)
    obs["b_snapshot_cmd"], obs["b_snapshot"] = snap["cmd"], snap["flags"]
    obs["b_data_intact"] = ctx.ffi.buffer(b, size)[:] == b_data
    obs["snapshot_controls"] = snapshot_controls(ctx, dev)

    obs["control_write_faults"] = ctx.control_write_faults(n)
    obs["readonly_write_faults"] = readonly_write_faults(ctx, n)
    f0 = ctx.minflt()
    touch_write(b, n, ps)
    obs["b_write_faults"] = ctx.minflt() - f0
    obs["b_snapshot_after_write"] = snapshot(ctx, dev, b, n)
    obs["b_data_after_write"] = ctx.ffi.buffer(b, size)[:] == b_data
    return obs
