"""device_thp: a 2 MiB-aligned THP region migrated to device-private memory, both views every step.

Observes, for one way of filling the region (``fill``): ``data``, a MADV_HUGEPAGE THP written with the
pattern (hmm-tests migrate_anon_huge_fault, migrate_anon_huge_free); ``empty``, a read-only
MADV_HUGEPAGE region never touched (migrate_anon_huge_empty); ``zero``, the same read once so the CPU
maps the huge zero page (migrate_anon_huge_zero). Then: whether a THP (or the huge zero page) backs the
region (kpageflags of every page, AnonHugePages, the THP mode, the THP fault counters and the free 2
MiB blocks, as exclusive_thp records them); MIGRATE_TO_DEV of the 512 pages as one range and what the
mirror read; both views of all 512 pages (pagemap of each and every mirror's SNAPSHOT, whose PMD flag
says the CPU entry is PMD-level); a CPU read of one tail page (page 2, hmm-tests' ptr[2048]) with its
minor faults and both views of the whole region after it, AnonHugePages again; the data. For ``data``
also a second MIGRATE_TO_DEV then MIGRATE_TO_SYS, and a third then MADV_FREE of the device-private
region, each with both views of every page after it.

The guest decides nothing: whether the kernel kept the folio whole on the device is for the host.
"""

from __future__ import annotations

from .. import devmem, pagemap, uapi
from ..memops import free_blocks, pattern, read_file, smaps_field, touch_read, vmstat

HUGE = 2 << 20
TOUCHED = 2  # the page holding int 2048, the one hmm-tests reads back first
THP_COUNTERS = ("thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge",
                "thp_migration_success", "thp_migration_split", "thp_split_pmd")
MADV_FREE = 8


def thp_region(ctx, pages: int, prot: int):
    """A mapping of twice ``pages`` pages and the 2 MiB-aligned address inside it (hmm-tests' ALIGN)."""
    raw = ctx.mmap_anon(2 * pages, prot)
    start = (ctx.libc.addr(raw) + HUGE - 1) & ~(HUGE - 1)
    return raw, start, ctx.ffi.cast("unsigned char *", start)


def thp_state(ctx, region, start: int, per: int) -> dict:
    """Whether a THP backs the region: kpageflags of every page's PFN, AnonHugePages of the VMA."""
    state = ctx.page_state(region, per)
    flags = state["kpageflags"]
    return {"kpageflags_thp": [bool(f is not None and f >> pagemap.KPF["THP"] & 1) for f in flags],
            "kpageflags_zero": [bool(f is not None and f >> pagemap.KPF["ZERO_PAGE"] & 1) for f in flags],
            "anon_huge_kb": smaps_field(start, "AnonHugePages")}


def observe(ctx, params: dict) -> dict:
    fill = params.get("fill", "data")
    ps = ctx.page_size
    per = HUGE // ps
    local, remote = devmem.devices_of(devmem.PRIVATE)
    dev = devmem.open_device(ctx, local)
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"fill": fill, "npages": per, "local": local, "touched": TOUCHED,
                 "flags_ioctl": "FLAGS" in ctx.numbers,
                 "calibration": devmem.calibrate(ctx, devices),
                 "thp_enabled": read_file("/sys/kernel/mm/transparent_hugepage/enabled"),
                 "thp_defrag": read_file("/sys/kernel/mm/transparent_hugepage/defrag"),
                 "use_zero_page": read_file("/sys/kernel/mm/transparent_hugepage/use_zero_page"),
                 "pages_per_thp": per}
    # The PTE-level control: one base page on the device (SNAPSHOT without PMD, whatever the kernel).
    one, _ = ctx.base_pages(1, 4400)
    one_mirror = ctx.ffi.new("char[]", ps)
    obs["pte_control_migrate"] = dev.command("MIGRATE_TO_DEV", ctx.libc.addr(one), 1, one_mirror)
    obs["pte_control"] = devmem.views(ctx, "a base page on the device", one, 1, devices)

    prot = uapi.PROT_READ | (uapi.PROT_WRITE if fill == "data" else 0)
    _raw, start, region = thp_region(ctx, per, prot)
    obs["madvise"] = ctx.libc.call("madvise", region, HUGE, uapi.MADV_HUGEPAGE)
    obs["free_2mb_blocks_before"] = free_blocks((HUGE // ps).bit_length() - 1)
    obs["vmstat_before"] = vmstat(*THP_COUNTERS)
    if fill == "data":
        data = pattern(per, ps)
        ctx.ffi.memmove(region, data, HUGE)
    else:
        data = bytes(HUGE)
        if fill == "zero":
            obs["first_read"] = region[0]
    obs["vmstat_after"] = vmstat(*THP_COUNTERS)
    obs["system"] = thp_state(ctx, region, start, per)
    # exclusive_thp's names, so its "no THP formed" rule reads this record as it reads its own.
    obs["head_kpageflags"] = ctx.page_state(region, 1)["kpageflags"]
    obs["anon_huge_kb_before"] = obs["system"]["anon_huge_kb"]
    obs["views"] = [devmem.views(ctx, "before MIGRATE_TO_DEV", region, per, devices)]

    mirror = ctx.ffi.new("char[]", HUGE)
    obs["migrate"] = dev.command("MIGRATE_TO_DEV", start, per, mirror)
    obs["mirror_matches"] = ctx.ffi.buffer(mirror, HUGE)[:] == data
    obs["vmstat_migrated"] = vmstat(*THP_COUNTERS)
    obs["views"].append(devmem.views(ctx, "after MIGRATE_TO_DEV", region, per, devices))
    obs["anon_huge_kb_on_device"] = smaps_field(start, "AnonHugePages")

    obs["free_2mb_blocks_before_fault"] = free_blocks((HUGE // ps).bit_length() - 1)
    f0 = ctx.minflt()
    touch_read(region, TOUCHED + 1, ps, start=TOUCHED)
    obs["cpu_read_faults"] = ctx.minflt() - f0
    obs["vmstat_faulted"] = vmstat(*THP_COUNTERS)
    obs["views"].append(devmem.views(ctx, "after a CPU read of one page", region, per, devices))
    obs["after_fault"] = thp_state(ctx, region, start, per)
    obs["data_after_fault"] = ctx.ffi.buffer(region, HUGE)[:] == data
    obs["views"].append(devmem.views(ctx, "after a CPU read of every page", region, per, devices))

    if fill == "data":
        obs["migrate_again"] = dev.command("MIGRATE_TO_DEV", start, per, mirror)
        obs["views"].append(devmem.views(ctx, "after a second MIGRATE_TO_DEV", region, per, devices))
        obs["free_2mb_blocks_before_sys"] = free_blocks((HUGE // ps).bit_length() - 1)
        obs["migrate_to_sys"] = dev.command("MIGRATE_TO_SYS", start, per, mirror)
        obs["views"].append(devmem.views(ctx, "after MIGRATE_TO_SYS", region, per, devices))
        obs["after_sys"] = thp_state(ctx, region, start, per)
        obs["data_after_sys"] = ctx.ffi.buffer(region, HUGE)[:] == data

        obs["migrate_third"] = dev.command("MIGRATE_TO_DEV", start, per, mirror)
        obs["views"].append(devmem.views(ctx, "after a third MIGRATE_TO_DEV", region, per, devices))
        obs["madv_free"] = ctx.libc.call("madvise", region, HUGE, MADV_FREE)
        obs["views"].append(devmem.views(ctx, "after MADV_FREE of the device-private region", region, per,
                                         devices))
        # MADV_FREE lets the kernel drop the data until the next write: each page is the pattern or zeros.
        after = ctx.ffi.buffer(region, HUGE)[:]
        obs["pages_after_free"] = ["data" if after[i * ps:(i + 1) * ps] == data[i * ps:(i + 1) * ps] else
                                   "zero" if after[i * ps:(i + 1) * ps] == bytes(ps) else "other"
                                   for i in range(per)]
        obs["views"].append(devmem.views(ctx, "after MADV_FREE and a CPU read of every page", region, per,
                                         devices))
    return obs
