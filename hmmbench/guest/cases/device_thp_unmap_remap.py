"""device_thp_unmap_remap: a device-private THP partly unmapped, or moved by mremap, then faulted back
(hmm-tests migrate_partial_unmap_fault and migrate_remap_fault, their THP half).

unmap: for each offset (0, 1/4, 1/2 of 2 MiB) a written MADV_HUGEPAGE THP migrated to dmirror0 (both
views), munmap of half of it at that offset, both views of every page still mapped (each piece; SNAPSHOT
of an unmapped address is not a page's view), a CPU read of every page still mapped, both views again,
the data of those pages.
remap: for mremap before or after the migration, with or without MREMAP_DONTUNMAP, to 2 MiB past the
region plus each offset: the migration's return and what the mirror read, mremap's return, both views
of the whole moved range after each step (and of the old range under DONTUNMAP), a CPU read of every
page, both views, the data.
"""

from __future__ import annotations

from .. import devmem, uapi
from ..memops import pattern, touch_read
from .device_thp import HUGE, thp_state

SYS_MREMAP = 25
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4


def _mremap(ctx, old: int, size: int, flags: int, new: int) -> tuple[int, int]:
    ffi = ctx.ffi
    ffi.errno = 0
    ret = ctx.libc.lib.syscall(ffi.cast("long", SYS_MREMAP), ffi.cast("unsigned long", old),
                               ffi.cast("unsigned long", size), ffi.cast("unsigned long", size),
                               ffi.cast("unsigned long", flags), ffi.cast("unsigned long", new))
    return int(ret), (ffi.errno if ret == -1 else 0)


def _ptr(ctx, addr: int):
    return ctx.ffi.cast("unsigned char *", addr)


def observe(ctx, params: dict) -> dict:
    op = params.get("op", "unmap")
    ps = ctx.page_size
    per = HUGE // ps
    local, remote = devmem.devices_of(devmem.PRIVATE)
    dev = devmem.open_device(ctx, local)
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"op": op, "npages": per, "local": local, "flags_ioctl": "FLAGS" in ctx.numbers,
                 "calibration": devmem.calibrate(ctx, devices), "runs": []}
    data = pattern(per, ps)
    mirror = ctx.ffi.new("char[]", HUGE)
    offsets = [0, per // 4, per // 2]
    if op == "unmap":
        for off in offsets:
            run: dict = {"offset": off, "views": []}
            raw = ctx.mmap_anon(2 * per)
            start = (ctx.libc.addr(raw) + HUGE - 1) & ~(HUGE - 1)
            region = _ptr(ctx, start)
            run["madvise"] = ctx.libc.call("madvise", region, HUGE, uapi.MADV_HUGEPAGE)
            ctx.ffi.memmove(region, data, HUGE)
            run["system"] = thp_state(ctx, region, start, per)
            run["migrate"] = dev.command("MIGRATE_TO_DEV", start, per, mirror)
            run["mirror_matches"] = ctx.ffi.buffer(mirror, HUGE)[:] == data
            run["views"].append(devmem.views(ctx, f"offset {off}: after MIGRATE_TO_DEV", region, per, devices))
            half = per // 2
            run["munmap"] = ctx.libc.call("munmap", _ptr(ctx, start + off * ps), half * ps)
            pieces = [(lo, hi) for lo, hi in ((0, off), (off + half, per)) if hi > lo]
            run["pieces"] = pieces
            for lo, hi in pieces:
                run["views"].append(devmem.views(ctx, f"offset {off}: pages {lo}-{hi} after munmap",
                                                 _ptr(ctx, start + lo * ps), hi - lo, devices))
            f0 = ctx.minflt()
            for lo, hi in pieces:
                touch_read(region, hi, ps, start=lo)
            run["read_faults"] = ctx.minflt() - f0
            intact = True
            for lo, hi in pieces:
                intact &= ctx.ffi.buffer(_ptr(ctx, start + lo * ps), (hi - lo) * ps)[:] == data[lo * ps:hi * ps]
                run["views"].append(devmem.views(ctx, f"offset {off}: pages {lo}-{hi} after a CPU read",
                                                 _ptr(ctx, start + lo * ps), hi - lo, devices))
            run["data_intact"] = intact
            ctx.libc.call("munmap", raw, 2 * per * ps)
            obs["runs"].append(run)
        return obs

    for before in (True, False):
        for dontunmap in (False, True):
            for off in offsets:
                tag = f"{'before' if before else 'after'}{' dontunmap' if dontunmap else ''} offset {off}"
                run = {"before": before, "dontunmap": dontunmap, "offset": off, "tag": tag, "views": []}
                flags = MREMAP_MAYMOVE | MREMAP_FIXED | (MREMAP_DONTUNMAP if dontunmap else 0)
                raw = ctx.mmap_anon(8 * per)
                rawaddr = ctx.libc.addr(raw)
                start = (rawaddr + HUGE - 1) & ~(HUGE - 1)
                region = _ptr(ctx, start)
                run["madvise"] = ctx.libc.call("madvise", region, HUGE, uapi.MADV_HUGEPAGE)
                ctx.libc.call("munmap", _ptr(ctx, start + HUGE), 2 * HUGE)
                ctx.ffi.memmove(region, data, HUGE)
                run["system"] = thp_state(ctx, region, start, per)
                dest = start + HUGE + off * ps
                cur = start
                if before:
                    run["mremap"] = _mremap(ctx, start, HUGE, flags, dest)
                    cur = dest if run["mremap"][0] == dest else start
                    run["views"].append(devmem.views(ctx, f"{tag}: after mremap", _ptr(ctx, cur), per, devices))
                run["migrate"] = dev.command("MIGRATE_TO_DEV", cur, per, mirror)
                run["mirror_matches"] = ctx.ffi.buffer(mirror, HUGE)[:] == data
                run["views"].append(devmem.views(ctx, f"{tag}: after MIGRATE_TO_DEV", _ptr(ctx, cur), per, devices))
                if not before:
                    run["mremap"] = _mremap(ctx, start, HUGE, flags, dest)
                    cur = dest if run["mremap"][0] == dest else start
                    run["views"].append(devmem.views(ctx, f"{tag}: after mremap", _ptr(ctx, cur), per, devices))
                if dontunmap and run["mremap"][0] == dest:
                    run["views"].append(devmem.views(ctx, f"{tag}: old range after mremap", region, per, devices))
                run["moved_to"] = "dest" if cur == dest else "start"
                f0 = ctx.minflt()
                touch_read(_ptr(ctx, cur), per, ps)
                run["read_faults"] = ctx.minflt() - f0
                run["views"].append(devmem.views(ctx, f"{tag}: after a CPU read", _ptr(ctx, cur), per, devices))
                run["data_intact"] = ctx.ffi.buffer(_ptr(ctx, cur), HUGE)[:] == data
                ctx.libc.call("munmap", _ptr(ctx, cur), HUGE)
                ctx.libc.call("munmap", raw, 8 * HUGE)
                obs["runs"].append(run)
    return obs
