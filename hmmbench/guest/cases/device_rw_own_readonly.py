"""device_rw_own_readonly: a device's READ and WRITE of its own device memory after mprotect(PROT_READ).

n written pages are migrated to the local device (private: dmirror0, coherent: dmirror2); then
mprotect(PROT_READ) of the range. The mprotect keeps the pages on the device (a device-private entry
becomes its read type; a coherent PTE read-only) but its MMU notifier (MMU_NOTIFY_PROTECTION_VMA) makes
test_hmm forget its mirror of them, so the device's next access must go through hmm_range_fault again,
which for the device's own private pages reports the device PFN without faulting. Recorded: both views
after the migration and after the mprotect; then per the variant's ``access`` either a WRITE by the
device (to be refused: the VMA is read-only) or a READ by the device (ret, cpages, faults, the data),
each alone in its run so that one's kernel trouble does not hide the other's observations, and the
views after it; then a CPU read and the data.
"""

from __future__ import annotations

from .. import devmem, uapi


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    access = params.get("access", "read")
    n = int(params.get("npages", 8))
    local, remote = devmem.devices_of(kind)
    ps = ctx.page_size
    size = n * ps
    dev = devmem.open_device(ctx, local, need=("READ", "WRITE", "MIGRATE_TO_DEV", "SNAPSHOT"))
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"memory": kind, "access": access, "npages": n, "local": local, "remote": remote,
                 "calibration": devmem.calibrate(ctx, devices)}
    buf, data = ctx.base_pages(n, 13000)
    addr = ctx.libc.addr(buf)
    obs["migrate"] = dev.command("MIGRATE_TO_DEV", addr, n, ctx.ffi.new("char[]", size))
    obs["views"] = [devmem.views(ctx, "after MIGRATE_TO_DEV", buf, n, devices)]
    obs["mprotect"] = ctx.libc.call("mprotect", buf, size, uapi.PROT_READ)
    obs["views"].append(devmem.views(ctx, "after mprotect(PROT_READ)", buf, n, devices))
    if access == "write":
        obs["write"] = dev.command("WRITE", addr, n, ctx.ffi.new("char[]", bytes(size)))
        obs["views"].append(devmem.views(ctx, "after the device's WRITE", buf, n, devices))
    else:
        out = ctx.ffi.new("char[]", size)
        obs["read"] = dev.command("READ", addr, n, out)
        obs["read_data"] = ctx.ffi.buffer(out, size)[:] == data
        obs["views"].append(devmem.views(ctx, "after the device's READ", buf, n, devices))
    obs["cpu_data"] = ctx.ffi.buffer(buf, size)[:] == data
    return obs
