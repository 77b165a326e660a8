"""device_thp_fail_alloc: HMM_DMIRROR_FLAGS with HMM_DMIRROR_FLAG_FAIL_ALLOC, test_hmm's one-shot failure of
its next device (or system) huge allocation, on a 2 MiB-aligned THP region (hmm-tests
migrate_anon_huge_err, variant data; migrate_anon_huge_zero_err, variant zero).

data: a written MADV_HUGEPAGE THP; FLAGS(FAIL_ALLOC); MIGRATE_TO_DEV of the 512 pages and what the mirror
read; both views of every page; a CPU read of one tail page (page 2, hmm-tests' ptr[2048]) with both
views of every page after it; the data. Then a fresh THP region migrated without the flag (both views),
FLAGS(FAIL_ALLOC), MIGRATE_TO_SYS, both views of every page and the data.
zero: a read-only MADV_HUGEPAGE region never touched; FLAGS(FAIL_ALLOC); MIGRATE_TO_DEV; both views; a
CPU read of page 2, both views; then a fresh read-only region read once (the huge zero page), both
views, FLAGS(FAIL_ALLOC), MIGRATE_TO_DEV, both views, a CPU read of every page, both views, the data.
"""

from __future__ import annotations

from .. import devmem, uapi
from ..memops import free_blocks, read_file, smaps_field, touch_read
from ..skip import Skip
from .device_thp import HUGE, TOUCHED, thp_region, thp_state

FAIL_ALLOC = 1  # HMM_DMIRROR_FLAG_FAIL_ALLOC


def observe(ctx, params: dict) -> dict:
    fill = params.get("fill", "data")
    if "FLAGS" not in ctx.numbers:
        raise Skip(f"device-private THP not supported: test_hmm of {ctx.release} has no HMM_DMIRROR_FLAGS "
                   "(HMM_DMIRROR_FLAG_FAIL_ALLOC came with device-private THP)")
    ps = ctx.page_size
    per = HUGE // ps
    local, remote = devmem.devices_of(devmem.PRIVATE)
    dev = devmem.open_device(ctx, local, need=("MIGRATE_TO_DEV", "FLAGS"))
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"fill": fill, "npages": per, "local": local, "touched": TOUCHED, "flags_ioctl": True,
                 "calibration": devmem.calibrate(ctx, devices),
                 "thp_enabled": read_file("/sys/kernel/mm/transparent_hugepage/enabled"),
                 "thp_defrag": read_file("/sys/kernel/mm/transparent_hugepage/defrag"),
                 "use_zero_page": read_file("/sys/kernel/mm/transparent_hugepage/use_zero_page"),
                 "pages_per_thp": per}
    prot = uapi.PROT_READ | (uapi.PROT_WRITE if fill == "data" else 0)
    mirror = ctx.ffi.new("char[]", HUGE)

    # Part 1: the device allocation fails once while migrating to the device.
    raw, start, region = thp_region(ctx, per, prot)
    obs["madvise"] = ctx.libc.call("madvise", region, HUGE, uapi.MADV_HUGEPAGE)
    if fill == "data":
        from ..memops import pattern

        data = pattern(per, ps)
        ctx.ffi.memmove(region, data, HUGE)
    else:
        data = bytes(HUGE)
    obs["system"] = thp_state(ctx, region, start, per)
    obs["head_kpageflags"] = ctx.page_state(region, 1)["kpageflags"]
    obs["anon_huge_kb_before"] = obs["system"]["anon_huge_kb"]
    obs["free_2mb_blocks_before"] = free_blocks((HUGE // ps).bit_length() - 1)
    obs["views"] = [devmem.views(ctx, "before MIGRATE_TO_DEV", region, per, devices)]
    obs["flags_set"] = dev.command("FLAGS", 0, FAIL_ALLOC)
    obs["migrate"] = dev.command("MIGRATE_TO_DEV", start, per, mirror)
    obs["mirror_matches"] = ctx.ffi.buffer(mirror, HUGE)[:] == data
    obs["views"].append(devmem.views(ctx, "after MIGRATE_TO_DEV with FAIL_ALLOC", region, per, devices))
    f0 = ctx.minflt()
    value = touch_read(region, TOUCHED + 1, ps, start=TOUCHED)
    obs["cpu_read_faults"] = ctx.minflt() - f0
    obs["touched_page_matches"] = ctx.ffi.buffer(region + TOUCHED * ps, ps)[:] == data[TOUCHED * ps:(TOUCHED + 1) * ps]
    obs["touched_value"] = value
    obs["views"].append(devmem.views(ctx, "after a CPU read of one page", region, per, devices))
    obs["data_after_fault"] = ctx.ffi.buffer(region, HUGE)[:] == data
    obs["views"].append(devmem.views(ctx, "after a CPU read of every page", region, per, devices))
    ctx.libc.call("munmap", raw, 2 * HUGE)

    # Part 2 (data: the system allocation fails once on the way back; zero: the huge zero page migrated
    # with the device allocation failing).
    raw, start, region = thp_region(ctx, per, prot)
    obs["madvise2"] = ctx.libc.call("madvise", region, HUGE, uapi.MADV_HUGEPAGE)
    if fill == "data":
        ctx.ffi.memmove(region, data, HUGE)
    else:
        obs["first_read"] = region[0]
    obs["system2"] = thp_state(ctx, region, start, per)
    obs["views"].append(devmem.views(ctx, "second region before", region, per, devices))
    if fill == "data":
        obs["migrate2"] = dev.command("MIGRATE_TO_DEV", start, per, mirror)
        obs["views"].append(devmem.views(ctx, "second region after MIGRATE_TO_DEV", region, per, devices))
        obs["flags_set2"] = dev.command("FLAGS", 0, FAIL_ALLOC)
        obs["free_2mb_blocks_before_sys"] = free_blocks((HUGE // ps).bit_length() - 1)
        obs["migrate_to_sys"] = dev.command("MIGRATE_TO_SYS", start, per, mirror)
        obs["views"].append(devmem.views(ctx, "second region after MIGRATE_TO_SYS with FAIL_ALLOC", region, per,
                                         devices))
        obs["after_sys"] = thp_state(ctx, region, start, per)
    else:
        obs["flags_set2"] = dev.command("FLAGS", 0, FAIL_ALLOC)
        obs["migrate2"] = dev.command("MIGRATE_TO_DEV", start, per, mirror)
        obs["mirror2_matches"] = ctx.ffi.buffer(mirror, HUGE)[:] == data
        obs["views"].append(devmem.views(ctx, "second region after MIGRATE_TO_DEV with FAIL_ALLOC", region, per,
                                         devices))
    obs["data2"] = ctx.ffi.buffer(region, HUGE)[:] == data
    obs["views"].append(devmem.views(ctx, "second region after a CPU read of every page", region, per, devices))
    obs["anon_huge_kb_end"] = smaps_field(start, "AnonHugePages")
    return obs
