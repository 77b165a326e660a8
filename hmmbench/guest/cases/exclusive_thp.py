"""exclusive_thp: make one page of a transparent huge page device-exclusive.

Two 2 MiB-aligned MADV_HUGEPAGE THPs: in the first the head page (index 0) is requested, in the
second a tail page (index 5). For each: the ioctl result, every PTE of the folio afterwards, and
AnonHugePages of the VMA (a PMD mapping is split by FOLL_SPLIT_PMD before any PTE can be exclusive).
"""

from __future__ import annotations

from .. import pagemap, uapi
from ..memops import pattern, read_file, smaps_field, touch_read
from ..skip import Skip

HUGE = 2 << 20
TAIL_INDEX = 5


def observe(ctx, params: dict) -> dict:
    ps = ctx.page_size
    per = HUGE // ps
    dev = ctx.device(0)
    raw = ctx.mmap_anon(3 * per)  # room to align two THPs
    start = (ctx.libc.addr(raw) + HUGE - 1) & ~(HUGE - 1)
    region = ctx.ffi.cast("unsigned char *", start)
    obs: dict = {"thp_enabled": read_file("/sys/kernel/mm/transparent_hugepage/enabled")}
    obs["madvise"] = ctx.libc.call("madvise", region, 2 * HUGE, uapi.MADV_HUGEPAGE)
    data = pattern(2 * per, ps)
    ctx.ffi.memmove(region, data, 2 * HUGE)
    before = ctx.pagemap(region, 2 * per)
    heads = [before[0], before[per]]
    flags = pagemap.read_kpageflags(pagemap.pfns_of(heads))
    obs["anon_huge_kb_before"] = smaps_field(start, "AnonHugePages")
    obs["head_kpageflags"] = flags
    thp = [f is not None and f >> pagemap.KPF["THP"] & 1 for f in flags]
    if not all(thp):
        raise Skip(f"no THP backs the region (THP {obs['thp_enabled']}, AnonHugePages "
                   f"{obs['anon_huge_kb_before']} kB): needs CONFIG_TRANSPARENT_HUGEPAGE and free 2 MiB blocks")
    obs["before"] = before
    mirror = ctx.ffi.new("char[]", ps)
    obs["head"] = dev.command("EXCLUSIVE", start, 1, mirror)
    obs["after_head"] = ctx.pagemap(region, per)
    tail_addr = start + HUGE + TAIL_INDEX * ps
    obs["tail"] = dev.command("EXCLUSIVE", tail_addr, 1, mirror)
    obs["after_tail"] = ctx.pagemap(ctx.ffi.cast("unsigned char *", start + HUGE), per)
    obs["anon_huge_kb_after"] = smaps_field(start, "AnonHugePages")
    obs["pages_per_thp"] = per
    obs["tail_index"] = TAIL_INDEX
    touch_read(region, 2 * per, ps)
    obs["data_intact"] = ctx.ffi.buffer(region, 2 * HUGE)[:] == data
    return obs
