"""exclusive_mapcount: what /proc/kpagecount and KPF_MMAP say about a device-exclusive page.

Before the series the conversion dropped the page's mapcount (folio_remove_rmap_pte), so an exclusive
page looked unmapped to reclaim, migration and hwpoison: the root cause of the swap/migration bugs.
Control: a tmpfs page read while mapped and again after munmap (still in the page cache, mapped by
nobody), so kpagecount and KPF_MMAP are seen reading the other way in the same guest.
"""

from __future__ import annotations

from ..memops import touch_read, unmapped_page_cache_page

NPAGES = 4


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    dev = ctx.device(0)
    buf, data = ctx.base_pages(n, 99)
    mirror = ctx.ffi.new("char[]", size)
    obs: dict = {"npages": n, "before": ctx.page_state(buf, n)}
    obs["exclusive"] = dev.command("EXCLUSIVE", ctx.libc.addr(buf), n, mirror)
    obs["while_exclusive"] = ctx.page_state(buf, n)
    touch_read(buf, n, ps)
    obs["after_restore"] = ctx.page_state(buf, n)
    obs["data_intact"] = ctx.ffi.buffer(buf, size)[:] == data
    obs["unmapped_control"] = unmapped_page_cache_page(ctx)
    return obs
