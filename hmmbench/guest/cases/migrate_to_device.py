"""migrate_to_device: anonymous pages migrated to a device's memory and back, both views every step.

Observes, for one kind of device memory (private: /dev/hmm_dmirror0 with 1 as the remote device;
coherent: 2 with 3), on a range of base pages filled with a pattern: the views before; MIGRATE_TO_DEV of
the whole range (and what the mirror read); a device READ through the owning device (no CPU fault);
a CPU read of the first half, MIGRATE_TO_DEV of that mix of system and device pages, then a CPU write of
the second half, each with its minor faults;
MIGRATE_TO_DEV again and MIGRATE_TO_SYS; MIGRATE_TO_DEV again and RELEASE; a range mixing exclusive,
migrated and ordinary pages; the data after each way back. Every view is both sides of every page:
pagemap/kpageflags/kpagecount and every mirror's SNAPSHOT (CHECK_EXCLUSIVE too where exclusive pages
are in the range). Plus the calibration of this kernel's encoding of device pages.
"""

from __future__ import annotations

from .. import devmem
from ..memops import touch_read, touch_write


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    npages = int(params.get("npages", 64))
    local, remote = devmem.devices_of(kind)
    ps = ctx.page_size
    size = npages * ps
    dev = devmem.open_device(ctx, local)
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"memory": kind, "npages": npages, "local": local, "remote": remote,
                 "calibration": devmem.calibrate(ctx, devices)}

    buf, expected = ctx.base_pages(npages, 1000)
    addr = ctx.libc.addr(buf)
    half = npages // 2
    obs["views"] = [devmem.views(ctx, "before", buf, npages, devices)]

    mirror = ctx.ffi.new("char[]", size)
    obs["migrate"] = dev.command("MIGRATE_TO_DEV", addr, npages, mirror)
    obs["mirror_matches"] = ctx.ffi.buffer(mirror, size)[:] == expected
    obs["views"].append(devmem.views(ctx, "after MIGRATE_TO_DEV", buf, npages, devices))

    back = ctx.ffi.new("char[]", size)
    f0 = ctx.minflt()
    obs["device_read"] = dev.command("READ", addr, npages, back)
    obs["device_read_cpu_faults"] = ctx.minflt() - f0
    obs["device_read_matches"] = ctx.ffi.buffer(back, size)[:] == expected
    obs["views"].append(devmem.views(ctx, "after a READ by the owning device", buf, npages, devices))

    f0 = ctx.minflt()
    touch_read(buf, half, ps)
    obs["cpu_read_faults"] = ctx.minflt() - f0
    obs["views"].append(devmem.views(ctx, "after a CPU read of the first half", buf, npages, devices))
    # hmm-tests migrate_fault: migrate the resulting mix of system and device pages again.
    mirror2 = ctx.ffi.new("char[]", size)
    obs["migrate_mix"] = dev.command("MIGRATE_TO_DEV", addr, npages, mirror2)
    obs["mirror_matches_mix"] = ctx.ffi.buffer(mirror2, size)[:] == expected
    obs["views"].append(devmem.views(ctx, "after MIGRATE_TO_DEV of the mix", buf, npages, devices))
    f0 = ctx.minflt()
    touch_write(buf, npages, ps, start=half)
    obs["cpu_write_faults"] = ctx.minflt() - f0
    obs["views"].append(devmem.views(ctx, "after a CPU write of the second half", buf, npages, devices))
    obs["data_after_cpu"] = ctx.ffi.buffer(buf, size)[:] == expected
    obs["control_write_faults"] = ctx.control_write_faults(npages - half)

    obs["migrate_again"] = dev.command("MIGRATE_TO_DEV", addr, npages, mirror)
    obs["views"].append(devmem.views(ctx, "after a second MIGRATE_TO_DEV", buf, npages, devices))
    obs["migrate_to_sys"] = dev.command("MIGRATE_TO_SYS", addr, npages, mirror)
    obs["views"].append(devmem.views(ctx, "after MIGRATE_TO_SYS", buf, npages, devices))
    obs["data_after_sys"] = ctx.ffi.buffer(buf, size)[:] == expected

    obs["migrate_third"] = dev.command("MIGRATE_TO_DEV", addr, npages, mirror)
    obs["release"] = dev.command("RELEASE", addr, npages)
    obs["views"].append(devmem.views(ctx, "after RELEASE", buf, npages, devices))
    obs["data_after_release"] = ctx.ffi.buffer(buf, size)[:] == expected

    # A range of three kinds: a quarter exclusive, a quarter migrated, the rest ordinary.
    q = max(1, npages // 4)
    mixed, mixed_data = ctx.base_pages(npages, 5000)
    maddr = ctx.libc.addr(mixed)
    obs["mixed_quarter"] = q
    obs["mixed_exclusive"] = dev.command("EXCLUSIVE", maddr, q, mirror)
    obs["mixed_migrate"] = dev.command("MIGRATE_TO_DEV", maddr + q * ps, q, mirror)
    obs["views"].append(devmem.views(ctx, "mixed range: exclusive, migrated, ordinary", mixed, npages, devices,
                                     exclusive=True))
    f0 = ctx.minflt()
    touch_read(mixed, npages, ps)
    obs["mixed_read_faults"] = ctx.minflt() - f0
    obs["views"].append(devmem.views(ctx, "mixed range after a CPU read of every page", mixed, npages, devices,
                                     exclusive=True))
    obs["mixed_data"] = ctx.ffi.buffer(mixed, size)[:] == mixed_data
    return obs
