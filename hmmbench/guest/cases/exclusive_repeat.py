"""exclusive_repeat: EXCLUSIVE again on exclusive pages and after partial CPU access, across 64-page batches.

test_hmm converts in batches of 64 pages, so ranges of 63, 64, 65 and 1024 pages cross batch
boundaries differently. For each range: EXCLUSIVE, EXCLUSIVE again, CPU touch of every third page,
EXCLUSIVE again; page state after each step; data checked at the end.
"""

from __future__ import annotations

from ..memops import touch_read

SIZES = (63, 64, 65, 1024)


def observe(ctx, params: dict) -> dict:
    ps = ctx.page_size
    dev = ctx.device(0)
    obs: dict = {"ranges": {}}
    for n in SIZES:
        size = n * ps
        buf, data = ctx.base_pages(n, n)
        addr = ctx.libc.addr(buf)
        mirror = ctx.ffi.new("char[]", size)
        r: dict = {"npages": n, "before": ctx.pagemap(buf, n)}
        r["first"] = dev.command("EXCLUSIVE", addr, n, mirror)
        r["after_first"] = ctx.pagemap(buf, n)
        r["second"] = dev.command("EXCLUSIVE", addr, n, mirror)
        r["after_second"] = ctx.pagemap(buf, n)
        touch_read(buf, n, ps, start=0, step=3)
        r["after_partial_cpu"] = ctx.pagemap(buf, n)
        r["third"] = dev.command("EXCLUSIVE", addr, n, mirror)
        r["after_third"] = ctx.pagemap(buf, n)
        r["mirror_matches"] = ctx.ffi.buffer(mirror, size)[:] == data
        touch_read(buf, n, ps)
        r["data_intact"] = ctx.ffi.buffer(buf, size)[:] == data
        obs["ranges"][str(n)] = r
        ctx.libc.call("munmap", buf, size)
    return obs
