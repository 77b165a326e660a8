"""exclusive_device_rw: the device reads and writes pages it holds exclusively.

While exclusive: HMM_DMIRROR_READ must return the CPU's data (served from the device's atomic mapping);
HMM_DMIRROR_WRITE of new data must land in the pages; CHECK_EXCLUSIVE after each tells whether the
device still holds them; a CPU read then sees the device's data. The READ's output buffer is zeroed,
and compared before the call too (so its match is the call's own).
"""

from __future__ import annotations

from ..memops import pattern

NPAGES = 16


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    dev = ctx.device(0)
    buf, cpu_data = ctx.base_pages(n)
    dev_data = pattern(n, ps, 777)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", size)
    obs: dict = {"npages": n, "before": ctx.pagemap(buf, n)}
    obs["exclusive"] = dev.command("EXCLUSIVE", addr, n, mirror)
    out = ctx.ffi.new("char[]", size)
    obs["device_read_matched_before"] = ctx.ffi.buffer(out, size)[:] == cpu_data
    obs["device_read"] = dev.command("READ", addr, n, out)
    obs["device_read_matches"] = ctx.ffi.buffer(out, size)[:] == cpu_data
    obs["after_device_read"] = ctx.pagemap(buf, n)
    obs["check_after_device_read"] = dev.command("CHECK_EXCLUSIVE", addr, n)
    src = ctx.ffi.new("char[]", dev_data)
    obs["device_write"] = dev.command("WRITE", addr, n, src)
    obs["after_device_write"] = ctx.pagemap(buf, n)
    obs["check_after_device_write"] = dev.command("CHECK_EXCLUSIVE", addr, n)
    obs["cpu_sees_device_data"] = ctx.ffi.buffer(buf, size)[:] == dev_data
    obs["after_cpu"] = ctx.pagemap(buf, n)
    return obs
