"""device_access: the device's READ and WRITE ioctls on memory of each permission and kind.

Sections (each its own buffer; both views of the whole buffer, every device, after every step):
  anon_read        pages 0-1 left zero (0 unpopulated, 1 the zero page by a CPU read), the rest written,
                   then mprotect(PROT_READ); READ of all; what the device read.
  anon_read_prot   written, mprotect(PROT_NONE), the mirror buffer filled with a sentinel; READ; the
                   sentinel after; mprotect(PROT_READ) and the data.
  anon_write       unpopulated read-write; WRITE of a pattern; the data.
  anon_write_prot  unpopulated PROT_READ; READ of one page; WRITE of all; the data (zeros); then
                   mprotect(PROT_READ|PROT_WRITE) and WRITE again; the data.
  anon_write_huge  a 2 MiB-aligned MADV_HUGEPAGE region, unpopulated; WRITE of all 512 pages; whether a
                   THP formed (KPF_THP, AnonHugePages, THP counters).
  anon_write_hugetlbfs  a MAP_HUGETLB 2 MiB page (mmap errno recorded); WRITE of all 512 pages.
  file_read        a file (tmpfs /tmp as hmm-tests, and ext4 /var/tmp) written with pwrite, mapped
                   MAP_SHARED PROT_READ; READ.
  file_write       a file ftruncate'd, mapped MAP_SHARED read-write; WRITE; the mapping and pread.
  double_map       written, mprotect(PROT_READ); READ by the local then the remote device; MIGRATE_TO_DEV
                   to the remote device; READ by the local device.
  device_write     written, MIGRATE_TO_DEV to the local device; WRITE by the local device (onto its own
                   memory), a CPU read; MIGRATE_TO_DEV again; WRITE by the remote device; a CPU read.
Every ioctl's ret/errno/cpages/faults, /proc/vmstat pgfault around it (remote faults count there, not in
the task's minflt), data comparisons as booleans. Device memory is private (dmirror0 local, 1 remote) or
coherent (2, 3) per the variant; the calibration of this kernel's device-page encoding is recorded.
"""

from __future__ import annotations

import os

from .. import devmem, pagemap, uapi
from ..memops import pattern, read_file, smaps_field, touch_read, vmstat, write_file

HUGE = 2 << 20
THP_COUNTERS = ("thp_fault_alloc", "thp_fault_fallback", "thp_fault_fallback_charge")


def _meminfo(*names: str) -> dict[str, int | None]:
    lines = (read_file("/proc/meminfo") or "").splitlines()
    have = {line.split(":")[0]: int(line.split()[1]) for line in lines if ":" in line and len(line.split()) >= 2}
    return {n: have.get(n) for n in names}


class Section:
    """One section's record: its steps (ioctls with the pgfault count around them) and views."""

    def __init__(self, ctx, name: str, ptr, npages: int, devices: dict) -> None:
        self.ctx, self.name, self.ptr, self.npages, self.devices = ctx, name, ptr, npages, devices
        self.addr = ctx.libc.addr(ptr)
        self.rec: dict = {"npages": npages, "views": []}

    def views(self, label: str) -> None:
        self.rec["views"].append(devmem.views(self.ctx, f"{self.name}: {label}", self.ptr, self.npages, self.devices))

    def cmd(self, key: str, dev, name: str, npages: int | None = None, buf=None) -> dict:
        before = vmstat("pgfault")["pgfault"]
        r = dev.command(name, self.addr, self.npages if npages is None else npages, buf)
        after = vmstat("pgfault")["pgfault"]
        r["pgfault_delta"] = None if before is None or after is None else after - before
        self.rec[key] = r
        return r

    def same(self, key: str, buf, data: bytes) -> bool:
        self.rec[key] = self.ctx.ffi.buffer(buf, len(data))[:] == data
        return self.rec[key]


def _anon(ctx, n: int, prot: int = uapi.PROT_READ | uapi.PROT_WRITE):
    p = ctx.mmap_anon(n, prot)
    ctx.libc.call("madvise", p, n * ctx.page_size, uapi.MADV_NOHUGEPAGE)
    return p


def _file(ctx, directory: str, n: int, data: bytes | None, prot: int, tag: str):
    """A file of n pages in ``directory`` (unlinked at once), written with ``data`` (pwrite) or ftruncate'd,
    mapped MAP_SHARED; returns (pointer, fd)."""
    path = os.path.join(directory, f"hmmbench-access-{os.getpid()}-{tag}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.unlink(path)
    if data is not None:
        os.pwrite(fd, data, 0)
    else:
        os.ftruncate(fd, n * ctx.page_size)
    return ctx.libc.mmap(n * ctx.page_size, prot, uapi.MAP_SHARED, fd), fd


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    n = int(params.get("npages", 32))
    local, remote = devmem.devices_of(kind)
    ps = ctx.page_size
    size = n * ps
    dev = devmem.open_device(ctx, local, need=("READ", "WRITE", "MIGRATE_TO_DEV", "SNAPSHOT"))
    other = devmem.open_device(ctx, remote)
    devices = devmem.all_devices(ctx, dev, other)
    obs: dict = {"memory": kind, "npages": n, "local": local, "remote": remote,
                 "calibration": devmem.calibrate(ctx, devices), "sections": {}}
    ro, rw = uapi.PROT_READ, uapi.PROT_READ | uapi.PROT_WRITE

    # anon_read
    p = _anon(ctx, n)
    data = bytes(2 * ps) + pattern(n, ps, 1000)[2 * ps:]
    ctx.ffi.memmove(p + 2 * ps, data[2 * ps:], size - 2 * ps)
    s = Section(ctx, "anon_read", p, n, devices)
    s.rec["mprotect"] = ctx.libc.call("mprotect", p, size, ro)
    touch_read(p + ps, 1, ps)
    s.views("before READ")
    out = ctx.ffi.new("char[]", size)
    s.cmd("read", dev, "READ", buf=out)
    s.same("read_data", out, data)
    s.views("after READ")
    obs["sections"]["anon_read"] = s.rec

    # anon_read_prot
    p = _anon(ctx, n)
    data = pattern(n, ps, 2000)
    ctx.ffi.memmove(p, data, size)
    sentinel = pattern(n, ps, -(1 << 30))
    out = ctx.ffi.new("char[]", sentinel)
    s = Section(ctx, "anon_read_prot", p, n, devices)
    s.rec["mprotect_none"] = ctx.libc.call("mprotect", p, size, uapi.PROT_NONE)
    s.views("before READ")
    s.cmd("read", dev, "READ", buf=out)
    s.same("mirror_untouched", out, sentinel)
    s.views("after READ")
    s.rec["mprotect_read"] = ctx.libc.call("mprotect", p, size, ro)
    s.same("data_intact", p, data)
    obs["sections"]["anon_read_prot"] = s.rec

    # anon_write
    p = _anon(ctx, n)
    data = pattern(n, ps, 3000)
    s = Section(ctx, "anon_write", p, n, devices)
    s.views("before WRITE")
    s.cmd("write", dev, "WRITE", buf=ctx.ffi.new("char[]", data))
    s.same("data", p, data)
    s.views("after WRITE")
    obs["sections"]["anon_write"] = s.rec

    # anon_write_prot
    p = _anon(ctx, n, ro)
    data = pattern(n, ps, 4000)
    s = Section(ctx, "anon_write_prot", p, n, devices)
    s.views("before READ")
    s.cmd("read_one", dev, "READ", npages=1, buf=ctx.ffi.new("char[]", ps))
    s.views("after READ of one page")
    s.cmd("write_ro", dev, "WRITE", buf=ctx.ffi.new("char[]", data))
    s.views("after WRITE to read-only")
    s.same("zeros_after_refused_write", p, bytes(size))  # a CPU read: after the views, it maps the zero page
    s.rec["mprotect_rw"] = ctx.libc.call("mprotect", p, size, rw)
    s.views("after mprotect(PROT_READ|PROT_WRITE)")
    s.cmd("write_rw", dev, "WRITE", buf=ctx.ffi.new("char[]", data))
    s.same("data", p, data)
    s.views("after WRITE to read-write")
    obs["sections"]["anon_write_prot"] = s.rec

    # anon_write_huge
    per = HUGE // ps
    raw = ctx.mmap_anon(2 * per)
    start = (ctx.libc.addr(raw) + HUGE - 1) & ~(HUGE - 1)
    p = ctx.ffi.cast("unsigned char *", start)
    data = pattern(per, ps, 5000)
    s = Section(ctx, "anon_write_huge", p, per, devices)
    s.rec["thp_enabled"] = read_file("/sys/kernel/mm/transparent_hugepage/enabled")
    s.rec["madvise"] = ctx.libc.call("madvise", p, HUGE, uapi.MADV_HUGEPAGE)
    s.rec["thp_vmstat_before"] = vmstat(*THP_COUNTERS)
    s.cmd("write", dev, "WRITE", buf=ctx.ffi.new("char[]", data))
    s.rec["thp_vmstat_after"] = vmstat(*THP_COUNTERS)
    s.rec["anon_huge_kb"] = smaps_field(start, "AnonHugePages")
    head = pagemap.read_kpageflags(pagemap.pfns_of(pagemap.read_pagemap(start, 1, ps)))[0]
    s.rec["head_kpageflags"] = head
    s.rec["thp_formed"] = head is not None and bool(head >> pagemap.KPF["THP"] & 1)
    s.same("data", p, data)
    s.views("after WRITE")
    obs["sections"]["anon_write_huge"] = s.rec
    ctx.libc.call("munmap", raw, 2 * HUGE)

    # anon_write_hugetlbfs
    rec: dict = {"nr_hugepages_before": read_file("/proc/sys/vm/nr_hugepages")}
    nr = rec["nr_hugepages_before"]
    if nr is None:
        rec["mmap"] = {"ok": False, "errno": None, "error": "no /proc/sys/vm/nr_hugepages"}
    else:
        rec["reserve"] = write_file("/proc/sys/vm/nr_hugepages", str(int(nr) + 1))
        rec["meminfo"] = _meminfo("HugePages_Total", "HugePages_Free", "Hugepagesize")
        try:
            p = ctx.libc.mmap(HUGE, rw, uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS | uapi.MAP_HUGETLB)
            rec["mmap"] = {"ok": True, "errno": 0, "error": None}
        except OSError as exc:
            rec["mmap"] = {"ok": False, "errno": exc.errno, "error": str(exc)}
    if rec["mmap"]["ok"]:
        data = pattern(per, ps, 6000)
        s = Section(ctx, "anon_write_hugetlbfs", p, per, devices)
        s.rec.update(rec)
        s.cmd("write", dev, "WRITE", buf=ctx.ffi.new("char[]", data))
        s.same("data", p, data)
        s.views("after WRITE")
        rec = s.rec
        ctx.libc.call("munmap", p, HUGE)
    if nr is not None:
        write_file("/proc/sys/vm/nr_hugepages", nr)
    obs["sections"]["anon_write_hugetlbfs"] = rec

    # file_read, file_write on tmpfs and ext4
    for fs, directory in (("tmpfs", "/tmp"), ("ext4", "/var/tmp")):
        data = pattern(n, ps, 7000)
        p, fd = _file(ctx, directory, n, data, ro, f"r{fs}")
        s = Section(ctx, f"file_read {fs}", p, n, devices)
        s.views("before READ")
        out = ctx.ffi.new("char[]", size)
        s.cmd("read", dev, "READ", buf=out)
        s.same("data", out, data)
        s.views("after READ")
        obs["sections"][f"file_read_{fs}"] = s.rec
        os.close(fd)

        data = pattern(n, ps, 8000)
        p, fd = _file(ctx, directory, n, None, rw, f"w{fs}")
        s = Section(ctx, f"file_write {fs}", p, n, devices)
        s.views("before WRITE")
        s.cmd("write", dev, "WRITE", buf=ctx.ffi.new("char[]", data))
        s.same("data", p, data)
        s.rec["file_data"] = os.pread(fd, size, 0) == data
        s.views("after WRITE")
        obs["sections"][f"file_write_{fs}"] = s.rec
        os.close(fd)

    # double_map
    p = _anon(ctx, n)
    data = pattern(n, ps, 9000)
    ctx.ffi.memmove(p, data, size)
    s = Section(ctx, "double_map", p, n, devices)
    s.rec["mprotect"] = ctx.libc.call("mprotect", p, size, ro)
    for key, d in (("read_local", dev), ("read_remote", other)):
        out = ctx.ffi.new("char[]", size)
        s.cmd(key, d, "READ", buf=out)
        s.same(f"{key}_data", out, data)
    s.views("after READ by both devices")
    s.cmd("migrate_remote", other, "MIGRATE_TO_DEV", buf=ctx.ffi.new("char[]", size))
    s.views("after MIGRATE_TO_DEV to the remote device")
    out = ctx.ffi.new("char[]", size)
    s.cmd("read_local_after_migrate", dev, "READ", buf=out)
    s.same("read_local_after_migrate_data", out, data)
    s.views("after READ by the local device")
    obs["sections"]["double_map"] = s.rec

    # device_write: onto the device's own memory, then by the other device
    p = _anon(ctx, n)
    ctx.ffi.memmove(p, pattern(n, ps, 10000), size)
    s = Section(ctx, "device_write", p, n, devices)
    s.cmd("migrate_local", dev, "MIGRATE_TO_DEV", buf=ctx.ffi.new("char[]", size))
    s.views("after MIGRATE_TO_DEV to the local device")
    data = pattern(n, ps, 11000)
    s.cmd("write_local", dev, "WRITE", buf=ctx.ffi.new("char[]", data))
    s.views("after WRITE by the local device")
    s.same("cpu_sees_local_write", p, data)
    s.cmd("migrate_local_again", dev, "MIGRATE_TO_DEV", buf=ctx.ffi.new("char[]", size))
    s.views("after a second MIGRATE_TO_DEV to the local device")
    data = pattern(n, ps, 12000)
    s.cmd("write_remote", other, "WRITE", buf=ctx.ffi.new("char[]", data))
    s.views("after WRITE by the remote device")
    s.same("cpu_sees_remote_write", p, data)
    obs["sections"]["device_write"] = s.rec
    return obs
