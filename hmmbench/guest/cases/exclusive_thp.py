"""exclusive_thp: make one page of a transparent huge page device-exclusive.

Two 2 MiB-aligned MADV_HUGEPAGE THPs: in the first the head page (index 0) is requested, in the
second a tail page (index 5). For each: the ioctl result, every PTE of the folio afterwards, and
AnonHugePages of the VMA (a PMD mapping is split by FOLL_SPLIT_PMD before any PTE can be exclusive).

Whether a THP formed is an observation, not a decision: the kpageflags of both heads, AnonHugePages,
the THP setting, /proc/vmstat's THP fault counters around the first touch (thp_fault_fallback counts
a huge page the kernel wanted but could not allocate; absent without CONFIG_VM_EVENT_COUNTERS) and the
free 2 MiB blocks in /proc/buddyinfo before it are recorded, and when no THP formed the case stops
there and the host decides with the kernel's configuration.
"""

from __future__ import annotations

from .. import pagemap, uapi
from ..memops import free_blocks, pattern, read_file, smaps_field, touch_read, vmstat

HUGE = 2 << 20
TAIL_INDEX = 5
THP_COUNTERS = ("thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge")


def observe(ctx, params: dict) -> dict:
    ps = ctx.page_size
    per = HUGE // ps
    dev = ctx.device(0)
    raw = ctx.mmap_anon(3 * per)  # room to align two THPs
    start = (ctx.libc.addr(raw) + HUGE - 1) & ~(HUGE - 1)
    region = ctx.ffi.cast("unsigned char *", start)
    obs: dict = {"thp_enabled": read_file("/sys/kernel/mm/transparent_hugepage/enabled"),
                 "thp_defrag": read_file("/sys/kernel/mm/transparent_hugepage/defrag"),
                 "pages_per_thp": per, "tail_index": TAIL_INDEX}
    obs["madvise"] = ctx.libc.call("madvise", region, 2 * HUGE, uapi.MADV_HUGEPAGE)
    data = pattern(2 * per, ps)
    obs["free_2mb_blocks_before"] = free_blocks((HUGE // ps).bit_length() - 1)
    obs["vmstat_before"] = vmstat(*THP_COUNTERS)
    ctx.ffi.memmove(region, data, 2 * HUGE)
    obs["vmstat_after"] = vmstat(*THP_COUNTERS)
    before = ctx.pagemap(region, 2 * per)
    heads = [before[0], before[per]]
    flags = pagemap.read_kpageflags(pagemap.pfns_of(heads))
    obs["anon_huge_kb_before"] = smaps_field(start, "AnonHugePages")
    obs["head_kpageflags"] = flags
    obs["before"] = before
    obs["thp_formed"] = all(f is not None and f >> pagemap.KPF["THP"] & 1 for f in flags)
    if not obs["thp_formed"]:
        obs["data_intact"] = ctx.ffi.buffer(region, 2 * HUGE)[:] == data
        return obs
    mirror = ctx.ffi.new("char[]", ps)
    obs["head"] = dev.command("EXCLUSIVE", start, 1, mirror)
    obs["after_head"] = ctx.pagemap(region, per)
    tail_addr = start + HUGE + TAIL_INDEX * ps
    obs["tail"] = dev.command("EXCLUSIVE", tail_addr, 1, mirror)
    obs["after_tail"] = ctx.pagemap(ctx.ffi.cast("unsigned char *", start + HUGE), per)
    obs["anon_huge_kb_after"] = smaps_field(start, "AnonHugePages")
    touch_read(region, 2 * per, ps)
    obs["data_intact"] = ctx.ffi.buffer(region, 2 * HUGE)[:] == data
    return obs
