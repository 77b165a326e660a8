"""exclusive_two_devices: dmirror0 takes pages exclusively, then dmirror1 takes the same pages.

Records CHECK_EXCLUSIVE on both devices before and after each step (EPERM = the device still holds
atomic access; 0 = it does not), the page state, the mirrors (zeroed before each call, so a match
means that call filled it), and the data seen by the CPU at the end.
"""

from __future__ import annotations

from ..memops import touch_read
from ..skip import Skip

NPAGES = 16


def observe(ctx, params: dict) -> dict:
    import os

    ps, n = ctx.page_size, NPAGES
    size = n * ps
    if not os.path.exists("/dev/hmm_dmirror1"):
        raise Skip("/dev/hmm_dmirror1 missing (test_hmm creates two device-private mirrors)")
    dev0, dev1 = ctx.device(0), ctx.device(1)
    buf, data = ctx.base_pages(n)
    addr = ctx.libc.addr(buf)
    m0, m1 = ctx.ffi.new("char[]", size), ctx.ffi.new("char[]", size)
    obs: dict = {"npages": n, "before": ctx.pagemap(buf, n)}
    obs["check0_before"] = dev0.command("CHECK_EXCLUSIVE", addr, n)
    obs["mirrors_matched_before"] = ctx.ffi.buffer(m0, size)[:] == data or ctx.ffi.buffer(m1, size)[:] == data
    obs["dev0_exclusive"] = dev0.command("EXCLUSIVE", addr, n, m0)
    obs["after_dev0"] = ctx.pagemap(buf, n)
    obs["check0_after_dev0"] = dev0.command("CHECK_EXCLUSIVE", addr, n)
    obs["check1_before"] = dev1.command("CHECK_EXCLUSIVE", addr, n)
    obs["dev1_exclusive"] = dev1.command("EXCLUSIVE", addr, n, m1)
    obs["after_dev1"] = ctx.pagemap(buf, n)
    obs["check0_after_dev1"] = dev0.command("CHECK_EXCLUSIVE", addr, n)
    obs["check1_after_dev1"] = dev1.command("CHECK_EXCLUSIVE", addr, n)
    obs["mirror0_matches"] = ctx.ffi.buffer(m0, size)[:] == data
    obs["mirror1_matches"] = ctx.ffi.buffer(m1, size)[:] == data
    touch_read(buf, n, ps)
    obs["after_cpu"] = ctx.pagemap(buf, n)
    obs["check1_after_cpu"] = dev1.command("CHECK_EXCLUSIVE", addr, n)
    obs["data_intact"] = ctx.ffi.buffer(buf, size)[:] == data
    return obs
