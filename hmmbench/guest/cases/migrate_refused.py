"""migrate_refused: MIGRATE_TO_DEV of memory the kernel does not move to device memory, and what it does move.

Observes, for one kind of device memory, MIGRATE_TO_DEV of NPAGES pages of each kind of mapping: file
MAP_PRIVATE on tmpfs (/tmp, as hmm-tests' hmm_create_file) and on ext4 (the guest's root disk), each
untouched (no PTE), read (page-cache pages mapped) and written (private anonymous copies); file
MAP_SHARED on both, read and written; MAP_SHARED anonymous, untouched and written. For each: the page
state before, the ioctl's return/errno/cpages, both views of the whole range after, the memory's data
and the file's content after. Then hmm-tests migrate_mixed on the local and remote device: a PROT_NONE
range, a range with a hole, and read-only zero, read-only written and read-write pages moved to the
remote device, then one of them asked for by the local device.
"""

from __future__ import annotations

import os

from .. import devmem, uapi
from ..memops import pattern, touch_read

NPAGES = 8
RW = uapi.PROT_READ | uapi.PROT_WRITE


def _file(ctx, directory: str, npages: int, seed: int) -> tuple[int, str, bytes]:
    path = os.path.join(directory, f"hmmbench-refused-{os.getpid()}-{seed}")
    data = pattern(npages, ctx.page_size, seed)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.fsync(fd)
    return fd, path, data


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    n = int(params.get("npages", NPAGES))
    local, remote = devmem.devices_of(kind)
    ps = ctx.page_size
    size = n * ps
    dev = devmem.open_device(ctx, local)
    rdev = devmem.open_device(ctx, remote)
    devices = devmem.all_devices(ctx, dev, rdev)
    obs: dict = {"memory": kind, "npages": n, "local": local, "remote": remote,
                 "calibration": devmem.calibrate(ctx, devices), "regions": []}
    mirror = ctx.ffi.new("char[]", size)
    files = []
    seed = 3000
    try:
        for fs, directory in (("tmpfs", "/tmp"), ("ext4", "/var/tmp")):
            for shared in (False, True):
                for touch in (("untouched", "read", "written") if not shared else ("read", "written")):
                    seed += 100
                    fd, path, fdata = _file(ctx, directory, n, seed)
                    files.append((fd, path))
                    flags = uapi.MAP_SHARED if shared else uapi.MAP_PRIVATE
                    p = ctx.libc.mmap(size, RW, flags, fd)
                    ctx.libc.call("madvise", p, size, uapi.MADV_NOHUGEPAGE)
                    mine = pattern(n, ps, seed + 50)
                    if touch == "read":
                        touch_read(p, n, ps)
                    elif touch == "written":
                        ctx.ffi.memmove(p, mine, size)
                    label = f"{fs} MAP_{'SHARED' if shared else 'PRIVATE'} file, {touch}"
                    obs["regions"].append(_attempt(ctx, dev, devices, label, p, n, mirror,
                                                   mine if touch == "written" else fdata, fd,
                                                   mine if shared and touch == "written" else fdata,
                                                   {"fs": fs, "shared": shared, "touch": touch, "file": True}))
        for touch in ("untouched", "written"):
            seed += 100
            p = ctx.libc.mmap(size, RW, uapi.MAP_SHARED | uapi.MAP_ANONYMOUS)
            mine = pattern(n, ps, seed)
            if touch == "written":
                ctx.ffi.memmove(p, mine, size)
            obs["regions"].append(_attempt(ctx, dev, devices, f"MAP_SHARED anonymous, {touch}", p, n, mirror,
                                           mine if touch == "written" else bytes(size), None, None,
                                           {"fs": None, "shared": True, "touch": touch, "file": False}))
        obs["mixed"] = _mixed(ctx, dev, rdev, devices, mirror)
    finally:
        for fd, path in files:
            os.close(fd)
            os.unlink(path)
    return obs


def _attempt(ctx, dev, devices, label, p, n, mirror, data, fd, fdata, what) -> dict:
    ps = ctx.page_size
    rec = dict(what, label=label)
    rec["before"] = ctx.page_state(p, n)
    rec["migrate"] = dev.command("MIGRATE_TO_DEV", ctx.libc.addr(p), n, mirror)
    rec["mirror_matches"] = ctx.ffi.buffer(mirror, n * ps)[:] == data
    rec["views"] = devmem.views(ctx, f"after MIGRATE_TO_DEV: {label}", p, n, devices)
    rec["data_intact"] = ctx.ffi.buffer(p, n * ps)[:] == data
    rec["after_access"] = ctx.page_state(p, n)  # after the data check touched every page
    if fd is not None:
        rec["file_intact"] = os.pread(fd, n * ps, 0) == fdata
    return rec


def _mixed(ctx, dev, rdev, devices, mirror) -> dict:
    """hmm-tests migrate_mixed: six pages, PROT_NONE, then a hole at page 1, pages 2..5 of three kinds."""
    ps = ctx.page_size
    out: dict = {}
    p = ctx.mmap_anon(6, uapi.PROT_NONE)
    base = ctx.libc.addr(p)
    out["prot_none"] = rdev.command("MIGRATE_TO_DEV", base, 6, mirror)
    out["prot_none_views"] = devmem.views(ctx, "mixed: PROT_NONE range after MIGRATE_TO_DEV", p, 6, devices)
    out["munmap_hole"] = ctx.libc.call("munmap", p + ps, ps)
    out["hole"] = rdev.command("MIGRATE_TO_DEV", base, 3, mirror)
    out["mprotect"] = [ctx.libc.call("mprotect", p + 2 * ps, ps, uapi.PROT_READ),
                       ctx.libc.call("mprotect", p + 3 * ps, ps, RW),
                       ctx.libc.call("mprotect", p + 4 * ps, 2 * ps, RW)]
    zero_read = p[2 * ps]  # page 2: the read-only zero page
    p[3 * ps] = 3  # page 3: written, then read-only
    out["mprotect"].append(ctx.libc.call("mprotect", p + 3 * ps, ps, uapi.PROT_READ))
    p[4 * ps] = 3
    p[5 * ps] = 3  # pages 4, 5: read-write
    out["zero_read"] = zero_read
    out["before"] = devmem.views(ctx, "mixed: pages 2-5 before", p + 2 * ps, 4, devices)
    out["to_remote"] = rdev.command("MIGRATE_TO_DEV", base + 2 * ps, 4, mirror)
    out["after_remote"] = devmem.views(ctx, "mixed: pages 2-5 after MIGRATE_TO_DEV to the remote device",
                                       p + 2 * ps, 4, devices)
    out["to_local"] = dev.command("MIGRATE_TO_DEV", base + 5 * ps, 1, mirror)
    out["after_local"] = devmem.views(ctx, "mixed: pages 2-5 after the local device asked for page 5",
                                      p + 2 * ps, 4, devices)
    out["page0"] = ctx.page_state(p, 1)
    out["data"] = [p[2 * ps], p[3 * ps], p[4 * ps], p[5 * ps]]
    return out
