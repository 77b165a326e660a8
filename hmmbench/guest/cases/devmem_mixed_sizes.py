"""devmem_mixed_sizes: a 2 MiB THP and base pages migrated to the same device, in both orders.

Observes, on one device (``memory`` private: dmirror0; coherent: dmirror2) and in one ``order``
(thp-first or base-first): RELEASE first, so the device starts with no memory chunk (test_hmm keeps
its chunks for the life of the module, across processes); a 2 MiB-aligned MADV_HUGEPAGE region written
with the pattern (whether a THP backs it: AnonHugePages) and 16 base pages (MADV_NOHUGEPAGE);
MIGRATE_TO_DEV of each in the order given, both views of both ranges after each; MIGRATE_TO_SYS of
both and the data; RELEASE at the end. The kernel's messages during the case are the harness's.
"""

from __future__ import annotations

from .. import devmem, uapi
from ..memops import pattern, smaps_field

HUGE = 2 << 20
BASE = 16


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    order = params.get("order", "thp-first")
    ps = ctx.page_size
    per = HUGE // ps
    local, remote = devmem.devices_of(kind)
    dev = devmem.open_device(ctx, local, need=("MIGRATE_TO_DEV", "MIGRATE_TO_SYS", "RELEASE"))
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"memory": kind, "order": order, "local": local, "huge_pages": per, "base_pages": BASE,
                 "calibration": devmem.calibrate(ctx, devices)}
    # RELEASE ignores its range but the ioctl checks it (addr page-aligned, npages > 0): one scratch page.
    scratch = ctx.mmap_anon(1)
    obs["release_before"] = dev.command("RELEASE", ctx.libc.addr(scratch), 1)

    raw = ctx.mmap_anon(2 * per)
    start = (ctx.libc.addr(raw) + HUGE - 1) & ~(HUGE - 1)
    region = ctx.ffi.cast("unsigned char *", start)
    obs["madvise"] = ctx.libc.call("madvise", region, HUGE, uapi.MADV_HUGEPAGE)
    huge_data = pattern(per, ps, 600)
    ctx.ffi.memmove(region, huge_data, HUGE)
    obs["anon_huge_kb"] = smaps_field(start, "AnonHugePages")
    base, base_data = ctx.base_pages(BASE, 800)
    ranges = {"thp": (region, start, per, huge_data), "base": (base, ctx.libc.addr(base), BASE, base_data)}

    steps = ["thp", "base"] if order == "thp-first" else ["base", "thp"]
    obs["views"] = []
    for name in steps:
        ptr, addr, n, data = ranges[name]
        mirror = ctx.ffi.new("char[]", n * ps)
        obs[f"migrate_{name}"] = dev.command("MIGRATE_TO_DEV", addr, n, mirror)
        obs[f"mirror_{name}"] = ctx.ffi.buffer(mirror, n * ps)[:] == data
        for other in ("thp", "base"):
            optr, _, on, _ = ranges[other]
            obs["views"].append(devmem.views(ctx, f"{other} range after MIGRATE_TO_DEV of {name}", optr, on,
                                             devices))
    for name in ("thp", "base"):
        ptr, addr, n, data = ranges[name]
        mirror = ctx.ffi.new("char[]", n * ps)
        obs[f"to_sys_{name}"] = dev.command("MIGRATE_TO_SYS", addr, n, mirror)
        obs[f"data_{name}"] = ctx.ffi.buffer(ptr, n * ps)[:] == data
        obs["views"].append(devmem.views(ctx, f"{name} range after MIGRATE_TO_SYS", ptr, n, devices))
    ctx.libc.call("munmap", raw, 2 * HUGE)
    ctx.libc.call("munmap", base, BASE * ps)
    obs["release_after"] = dev.command("RELEASE", ctx.libc.addr(scratch), 1)
    return obs
