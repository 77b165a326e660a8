"""device_snapshot: one range whose pages are of every kind at once, seen by every device's SNAPSHOT.

The range (2 MiB aligned, built with MAP_FIXED over one reservation) is, in order:
  pages 0-511     a THP region (MADV_HUGEPAGE, written)
  pages 512-1023  a MAP_HUGETLB 2 MiB page (written); if the mmap is refused, a hole (recorded)
  then one page each (ROWS, in this order): unpopulated, the shared zero page (a CPU read), read-only
  (written then mprotect PROT_READ), read-write (written), zapped (written then MADV_DONTNEED), a page
  of the local device's own mmap (VM_MIXEDMAP, hmm-tests' mixedmap), a MAP_SHARED tmpfs page
  (written), a MAP_PRIVATE ext4 page cache page (read), device memory of the local device (written
  then migrated), of the remote device, of the local device migrated read-only, a device-exclusive
  page (the local device's EXCLUSIVE), and last a PROT_NONE page (written before) and a hole (munmap).
Device memory is private (dmirror0 local, 1 remote) or coherent (2 local, 3 remote) per the variant.

Moments, each both views of the WHOLE range (devmem.views, CHECK_EXCLUSIVE per page too): "initial",
"initial, again" (SNAPSHOT must have faulted nothing in), "after mprotect(PROT_READ) of the huge
regions", "after a device READ of the unpopulated page". Plus: whether a THP formed (KPF_THP,
AnonHugePages, THP counters, the THP mode), the hugetlb reservation and mmap errno, and the
calibration of this kernel's device-page encoding.
"""

from __future__ import annotations

import os

from .. import devmem, pagemap, uapi
from ..memops import pattern, read_file, smaps_field, touch_read, vmstat, write_file

HUGE = 2 << 20
ROWS = ("unpopulated", "zero", "read-only", "read-write", "zapped", "mixedmap", "tmpfs-shared",
        "ext4-private-read", "device-local", "device-remote", "device-local-read-only", "device-exclusive",
        "prot-none", "hole")
THP_COUNTERS = ("thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge")
MADV_DONTNEED = 4


def _meminfo(*names: str) -> dict[str, int | None]:
    lines = (read_file("/proc/meminfo") or "").splitlines()
    have = {line.split(":")[0]: int(line.split()[1]) for line in lines if ":" in line and len(line.split()) >= 2}
    return {n: have.get(n) for n in names}


def _file_page(ctx, directory: str, addr: int, shared: bool, seed: int) -> None:
    """One page of a file in ``directory`` (unlinked at once) mapped MAP_FIXED at ``addr``."""
    ps = ctx.page_size
    path = os.path.join(directory, f"hmmbench-snapshot-{os.getpid()}-{seed}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pattern(1, ps, seed))
        os.unlink(path)
        flags = (uapi.MAP_SHARED if shared else uapi.MAP_PRIVATE) | uapi.MAP_FIXED
        ctx.libc.mmap(ps, uapi.PROT_READ | uapi.PROT_WRITE, flags, fd, 0, addr)
    finally:
        os.close(fd)


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    local, remote = devmem.devices_of(kind)
    ps = ctx.page_size
    per = HUGE // ps
    dev = devmem.open_device(ctx, local, need=("MIGRATE_TO_DEV", "SNAPSHOT", "EXCLUSIVE", "CHECK_EXCLUSIVE"))
    other = devmem.open_device(ctx, remote)
    devices = devmem.all_devices(ctx, dev, other)
    obs: dict = {"memory": kind, "local": local, "remote": remote, "rows": list(ROWS), "pages_per_huge": per,
                 "calibration": devmem.calibrate(ctx, devices)}

    npages = 2 * per + len(ROWS)
    raw = ctx.mmap_anon(npages + per, prot=uapi.PROT_NONE)  # a reservation with room to align
    raw_addr = ctx.libc.addr(raw)
    start = (raw_addr + HUGE - 1) & ~(HUGE - 1)
    end = start + npages * ps
    if start > raw_addr:
        ctx.libc.call("munmap", raw, start - raw_addr)
    tail = raw_addr + (npages + per) * ps
    if tail > end:
        ctx.libc.call("munmap", ctx.ffi.cast("void *", end), tail - end)
    base = ctx.ffi.cast("unsigned char *", start)
    obs["npages"] = npages

    def at(page: int):
        return ctx.ffi.cast("unsigned char *", start + page * ps)

    rw = uapi.PROT_READ | uapi.PROT_WRITE
    anon = uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS | uapi.MAP_FIXED

    # THP region.
    obs["thp_enabled"] = read_file("/sys/kernel/mm/transparent_hugepage/enabled")
    obs["thp_defrag"] = read_file("/sys/kernel/mm/transparent_hugepage/defrag")
    ctx.libc.mmap(HUGE, rw, anon, -1, 0, start)
    obs["thp_madvise"] = ctx.libc.call("madvise", base, HUGE, uapi.MADV_HUGEPAGE)
    obs["thp_vmstat_before"] = vmstat(*THP_COUNTERS)
    ctx.ffi.memmove(base, pattern(per, ps, 100), HUGE)
    obs["thp_vmstat_after"] = vmstat(*THP_COUNTERS)
    obs["thp_anon_huge_kb"] = smaps_field(start, "AnonHugePages")
    head = pagemap.read_kpageflags(pagemap.pfns_of(ctx.pagemap(base, 1)))[0]
    obs["thp_head_kpageflags"] = head
    obs["thp_formed"] = head is not None and bool(head >> pagemap.KPF["THP"] & 1)

    # hugetlb page: reserve one more, map it MAP_FIXED; a refusal leaves a hole there.
    nr = read_file("/proc/sys/vm/nr_hugepages")
    obs["nr_hugepages_before"] = nr
    huge_addr = start + HUGE
    if nr is None:
        obs["hugetlb"] = {"ok": False, "errno": None, "error": "no /proc/sys/vm/nr_hugepages"}
    else:
        obs["hugetlb_reserve"] = write_file("/proc/sys/vm/nr_hugepages", str(int(nr) + 1))
        obs["hugetlb_meminfo"] = _meminfo("HugePages_Total", "HugePages_Free", "Hugepagesize")
        try:
            ctx.libc.mmap(HUGE, rw, anon | uapi.MAP_HUGETLB, -1, 0, huge_addr)
            obs["hugetlb"] = {"ok": True, "errno": 0, "error": None}
        except OSError as exc:
            obs["hugetlb"] = {"ok": False, "errno": exc.errno, "error": str(exc)}
    if obs["hugetlb"]["ok"]:
        ctx.ffi.memmove(at(per), pattern(per, ps, 200), HUGE)
    else:
        ctx.libc.call("munmap", at(per), HUGE)

    # The one-page rows: one anonymous base-page VMA, then each row made what it is.
    small = 2 * per
    row = {name: small + i for i, name in enumerate(ROWS)}
    obs["row_page"] = row
    ctx.libc.mmap(len(ROWS) * ps, rw, anon, -1, 0, start + small * ps)
    ctx.libc.call("madvise", at(small), len(ROWS) * ps, uapi.MADV_NOHUGEPAGE)
    for name in ("read-only", "read-write", "zapped", "device-local", "device-remote", "device-local-read-only",
                 "device-exclusive", "prot-none"):
        ctx.ffi.memmove(at(row[name]), pattern(1, ps, 300 + row[name]), ps)
    touch_read(at(row["zero"]), 1, ps)
    obs["mprotect_read_only"] = ctx.libc.call("mprotect", at(row["read-only"]), ps, uapi.PROT_READ)
    obs["madv_dontneed"] = ctx.libc.call("madvise", at(row["zapped"]), ps, MADV_DONTNEED)
    try:
        ctx.libc.mmap(ps, rw, uapi.MAP_PRIVATE | uapi.MAP_FIXED, dev.fd, 0, start + row["mixedmap"] * ps)
        obs["mixedmap_mmap"] = {"ok": True, "error": None}
    except OSError as exc:
        obs["mixedmap_mmap"] = {"ok": False, "error": str(exc)}
    _file_page(ctx, "/dev/shm", start + row["tmpfs-shared"] * ps, True, 400)
    ctx.ffi.memmove(at(row["tmpfs-shared"]), pattern(1, ps, 401), ps)
    _file_page(ctx, "/var/tmp", start + row["ext4-private-read"] * ps, False, 500)
    touch_read(at(row["ext4-private-read"]), 1, ps)
    mirror = ctx.ffi.new("char[]", ps)
    obs["migrate_local"] = dev.command("MIGRATE_TO_DEV", start + row["device-local"] * ps, 1, mirror)
    obs["migrate_remote"] = other.command("MIGRATE_TO_DEV", start + row["device-remote"] * ps, 1, mirror)
    obs["mprotect_device_read_only"] = ctx.libc.call("mprotect", at(row["device-local-read-only"]), ps,
                                                     uapi.PROT_READ)
    obs["migrate_local_read_only"] = dev.command("MIGRATE_TO_DEV", start + row["device-local-read-only"] * ps, 1,
                                                 mirror)
    obs["exclusive"] = dev.command("EXCLUSIVE", start + row["device-exclusive"] * ps, 1, mirror)
    obs["mprotect_prot_none"] = ctx.libc.call("mprotect", at(row["prot-none"]), ps, uapi.PROT_NONE)
    obs["munmap_hole"] = ctx.libc.call("munmap", at(row["hole"]), ps)

    obs["views"] = []
    try:
        obs["views"] += [devmem.views(ctx, "initial", base, npages, devices, exclusive=True),
                        devmem.views(ctx, "initial, again", base, npages, devices, exclusive=True)]
        obs["mprotect_huge"] = ctx.libc.call("mprotect", base, 2 * HUGE if obs["hugetlb"]["ok"] else HUGE,
                                             uapi.PROT_READ)
        obs["views"].append(devmem.views(ctx, "after mprotect(PROT_READ) of the huge regions", base, npages,
                                         devices, exclusive=True))
        out = ctx.ffi.new("char[]", ps)
        obs["device_read_unpopulated"] = dev.command("READ", start + row["unpopulated"] * ps, 1, out)
        obs["device_read_unpopulated_zero"] = ctx.ffi.buffer(out, ps)[:] == bytes(ps)
        obs["views"].append(devmem.views(ctx, "after a device READ of the unpopulated page", base, npages,
                                         devices, exclusive=True))
    finally:
        ctx.libc.call("munmap", base, npages * ps)
        if nr is not None:
            write_file("/proc/sys/vm/nr_hugepages", nr)
    return obs
