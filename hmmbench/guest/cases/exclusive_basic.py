"""exclusive_basic: make an anonymous RW range device-exclusive, then take it back with the CPU.

Observes, in order: the page state before; the EXCLUSIVE ioctl and the mirror it filled (and that the
zeroed mirror did not hold the data before); the page state while exclusive; CHECK_EXCLUSIVE while
exclusive, and on an ordinary page this device never took; minor faults and page state after a CPU
read of each page; SNAPSHOT right after that read (per page: is the restored PTE writable?); minor
faults of a CPU write of each page, beside the same write loop on an ordinary buffer (the noise floor)
and on read-only zero-page PTEs (what a read-only restore costs); the data; CHECK_EXCLUSIVE at the end.
Also a calibration: the swap type of a device-private entry, made by MIGRATE_TO_DEV of a scratch page,
and the SNAPSHOT controls (a writable and a read-only ordinary page).

The range is madvise(MADV_NOHUGEPAGE) so this case tests base pages only; THP is exclusive_thp's job.
"""

from __future__ import annotations

from .. import uapi
from ..memops import pattern, readonly_write_faults, snapshot, snapshot_controls, touch_read, touch_write


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
    obs["mirror_matches_before"] = ctx.ffi.buffer(mirror, size)[:] == expected
    obs["exclusive"] = dev.command("EXCLUSIVE", addr, npages, mirror)
    obs["mirror_matches"] = ctx.ffi.buffer(mirror, size)[:] == expected
    obs["while_exclusive"] = ctx.page_state(buf, npages)
    obs["check_exclusive_while"] = dev.command("CHECK_EXCLUSIVE", addr, npages)
    other, _ = ctx.base_pages(1, 8000)
    obs["check_exclusive_control"] = dev.command("CHECK_EXCLUSIVE", ctx.libc.addr(other), 1)

    # CPU read of one byte per page: each should fault the page back from the device.
    f0 = ctx.minflt()
    touch_read(buf, npages, ps)
    obs["read_faults"] = ctx.minflt() - f0
    obs["after_read"] = ctx.page_state(buf, npages)
    obs["snapshot_after_read"] = snapshot(ctx, dev, buf, npages)
    obs["snapshot_controls"] = snapshot_controls(ctx, dev)

    obs["control_write_faults"] = ctx.control_write_faults(npages)
    obs["readonly_write_faults"] = readonly_write_faults(ctx, npages)

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
