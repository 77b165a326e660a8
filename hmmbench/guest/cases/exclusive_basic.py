"""exclusive_basic: make an anonymous RW range device-exclusive, then take it back with the CPU.

Observes, in order: the page state before; the EXCLUSIVE ioctl and the mirror it filled; the page
state while exclusive; CHECK_EXCLUSIVE while exclusive; minor faults and page state after a CPU read
of each page; minor faults of a CPU write of each page (and of the same write loop on an ordinary
buffer, the noise floor); the data; CHECK_EXCLUSIVE at the end. Also a calibration: the swap type
of a device-private entry, made by MIGRATE_TO_DEV of a scratch page.

The range is madvise(MADV_NOHUGEPAGE) so this case tests base pages only; THP is exclusive_thp's job.
"""

from __future__ import annotations

from .. import uapi
from ..memops import pattern, touch_read, touch_write


def calibrate_device_private(ctx, dev) -> dict:
    """MIGRATE_TO_DEV one scratch page and report its pagemap entry (device-private swap type)."""
    p = ctx.mmap_anon(1)
    p[0] = 0x5A
    addr = ctx.libc.addr(p)
    mirror = ctx.ffi.new("char[]", ctx.page_size)
    cmd = dev.command("MIGRATE_TO_DEV", addr, 1, mirror)
    entry = ctx.pagemap(p, 1)[0]
    if "MIGRATE_TO_SYS" in dev.numbers:
        dev.command("MIGRATE_TO_SYS", addr, 1, mirror)
    ctx.libc.call("munmap", p, ctx.page_size)
    return {"migrate": cmd, "pagemap": entry}


def observe(ctx, params: dict) -> dict:
    npages = int(params.get("npages", 4))
    ps = ctx.page_size
    size = npages * ps
    dev = ctx.device(0)
    obs: dict = {"npages": npages, "page_size": ps}

    buf = ctx.mmap_anon(npages)
    addr = ctx.libc.addr(buf)
    obs["madvise_nohugepage"] = ctx.libc.call("madvise", buf, size, uapi.MADV_NOHUGEPAGE)
    expected = pattern(npages, ps)
    ctx.ffi.memmove(buf, expected, size)
    obs["before"] = ctx.page_state(buf, npages)

    mirror = ctx.ffi.new("char[]", size)
    obs["exclusive"] = dev.command("EXCLUSIVE", addr, npages, mirror)
    obs["mirror_matches"] = ctx.ffi.buffer(mirror, size)[:] == expected
    obs["while_exclusive"] = ctx.page_state(buf, npages)
    obs["check_exclusive_while"] = dev.command("CHECK_EXCLUSIVE", addr, npages)

    # CPU read of one byte per page: each should fault the page back from the device.
    f0 = ctx.minflt()
    touch_read(buf, npages, ps)
    obs["read_faults"] = ctx.minflt() - f0
    obs["after_read"] = ctx.page_state(buf, npages)

    obs["control_write_faults"] = ctx.control_write_faults(npages)

    f0 = ctx.minflt()
    touch_write(buf, npages, ps)
    obs["write_faults"] = ctx.minflt() - f0
    obs["after_write"] = {"pagemap": ctx.pagemap(buf, npages)}
    obs["data_intact"] = ctx.ffi.buffer(buf, size)[:] == expected
    obs["check_exclusive_after"] = dev.command("CHECK_EXCLUSIVE", addr, npages)

    try:
        obs["calibration"] = calibrate_device_private(ctx, dev)
    except OSError as exc:
        obs["calibration"] = {"error": str(exc)}
    return obs
