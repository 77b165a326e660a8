"""exclusive_regressions: device-exclusive paths where regressions were fixed in 2025-2026, one per variant.

mthp_free: 64 KiB mTHP (hugepages-64kB/enabled set to "always" for the case, restored after; whether a
  64 KiB folio formed is recorded from kpageflags), MADV_FREE of the folio, EXCLUSIVE of its last page,
  then reclaim: memory.reclaim of a fresh memory cgroup the case moved into before allocating (swap on
  if the runner's /dev/vdb is there), then MADV_PAGEOUT. Page state (pagemap, kpageflags, kpagecount)
  after every step and after a CPU read of every page; a page mapped twice (a memfd mapped two times)
  is the control that kpagecount reads other than 1.
mthp_reclaim: the same without MADV_FREE (which path a finding needs).
file_cow_munmap: a MAP_PRIVATE ext4 file range whose pages but the last were copied on write (the last
  stays the file's own page, only read), the CoW'd ones made exclusive; a hole punched over the second
  half (unmap_mapping_range with even_cows false: private copies stay), the file truncated to 12
  pages (even_cows true: the copies beyond go too), CPU reads of what is left, MADV_DONTNEED of a
  quarter, EXCLUSIVE again of the kept copies and munmap of the range while they are exclusive.
close_migrated: base pages and a 2 MiB THP (MADV_HUGEPAGE) migrated to dmirror0's device-private
  memory, then the dmirror file closed; both views (a fresh open of dmirror0 and the others) after
  the close, then a CPU read of every page and its data.
uffd_wp: a userfaultfd registered in write-protect mode on 4 pages, EXCLUSIVE of all four, then
  UFFDIO_WRITEPROTECT of pages 0 and 1; a second thread writes page 0 (memcpy, no GIL): the uffd event
  is awaited (bounded), pagemap read while the writer waits, then the protection of page 0 is
  resolved; the same thread then writes page 2 (exclusive, not protected: no event expected). Every
  wait is bounded; a writer still blocked at the end is recorded, then released by closing the uffd.
"""

from __future__ import annotations

import os
import select
import threading
import time

from .. import devmem, uapi
from ..memops import pattern, read_file, touch_read, write_file
from ..skip import Skip

MADV_FREE = 8
THP = "/sys/kernel/mm/transparent_hugepage"
MTHP64 = f"{THP}/hugepages-64kB"
CGROOT = "/sys/fs/cgroup"


# ----------------------------------------------------------------------------------------------- helpers

def _aligned(ctx, npages: int, align_pages: int):
    """An anonymous mapping of ``npages`` whose start is aligned to ``align_pages`` (the rest unmapped)."""
    ps = ctx.page_size
    raw = ctx.mmap_anon(npages + align_pages)
    a = ctx.libc.addr(raw)
    start = (a + align_pages * ps - 1) // (align_pages * ps) * (align_pages * ps)
    if start > a:
        ctx.libc.call("munmap", raw, start - a)
    tail = (a + (npages + align_pages) * ps) - (start + npages * ps)
    if tail:
        ctx.libc.call("munmap", ctx.ffi.cast("unsigned char *", start + npages * ps), tail)
    return ctx.ffi.cast("unsigned char *", start)


def _swap() -> dict:
    if len((read_file("/proc/swaps") or "").splitlines()) > 1:
        return {"already": True, "ok": True}
    if not os.path.exists("/dev/vdb"):
        return {"ok": False, "absent": "no active swap and no /dev/vdb swap disk"}
    import subprocess

    mk = subprocess.run(["mkswap", "-f", "/dev/vdb"], capture_output=True, text=True)
    on = subprocess.run(["swapon", "/dev/vdb"], capture_output=True, text=True)
    return {"ok": on.returncode == 0, "mkswap": mk.returncode, "swapon": on.returncode,
            "stderr": (mk.stderr + on.stderr).strip()[-300:]}


def _twice_mapped(ctx) -> dict:
    """The control of kpagecount: one memfd page mapped at two addresses reads 2."""
    ps = ctx.page_size
    fd = os.memfd_create("hmmbench-kpagecount")
    try:
        os.ftruncate(fd, ps)
        a = ctx.libc.mmap(ps, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED, fd)
        b = ctx.libc.mmap(ps, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED, fd)
        a[0] = 1
        _ = b[0]
        state = ctx.page_state(a, 1)
        same = ctx.pagemap(b, 1)
        ctx.libc.call("munmap", a, ps)
        ctx.libc.call("munmap", b, ps)
        return {"state": state, "other": same}
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------- mthp_free

def _mthp_free(ctx, dev, free: bool = True) -> dict:
    if not os.path.exists(f"{MTHP64}/enabled"):
        raise Skip(f"no {MTHP64}/enabled (kernel without multi-size THP of 64 KiB)")
    ps = ctx.page_size
    n = 64 * 1024 // ps
    obs: dict = {"npages": n, "free": free, "control": _twice_mapped(ctx), "swap": _swap()}
    saved = read_file(f"{MTHP64}/enabled") or ""
    current = saved.split("[", 1)[-1].split("]", 1)[0] if "[" in saved else saved
    obs["mthp_enabled_before"] = saved
    cg = None
    try:
        # Into the memory cgroup first: memory.reclaim reclaims what is charged to it, and a page is
        # charged where it was allocated.
        obs["cgroup"], cg = _enter_cgroup()
        obs["mthp_enable"] = write_file(f"{MTHP64}/enabled", "always")
        stats = f"{MTHP64}/stats/anon_fault_alloc"
        f0 = read_file(stats)
        buf = _aligned(ctx, n, n)
        data = pattern(n, ps, 6400)
        ctx.ffi.memmove(buf, data, n * ps)
        obs["anon_fault_alloc"] = [f0, read_file(stats)]
        addr = ctx.libc.addr(buf)
        obs["before"] = ctx.page_state(buf, n)
        obs["madv_free"] = ctx.libc.call("madvise", buf, n * ps, MADV_FREE) if free else None
        obs["after_free"] = ctx.page_state(buf, n)
        mirror = ctx.ffi.new("char[]", ps)
        obs["exclusive"] = dev.command("EXCLUSIVE", addr + (n - 1) * ps, 1, mirror)
        obs["exclusive_data"] = ctx.ffi.buffer(mirror, ps)[:] == data[(n - 1) * ps:]
        obs["after_exclusive"] = ctx.page_state(buf, n)
        # memcg reclaim first: it reaches the still-large lazyfree folio through the rmap
        # (try_to_unmap_one) with the exclusive PTE in it; MADV_PAGEOUT would split it first.
        if cg and obs["cgroup"].get("ok"):
            obs["reclaim"] = [write_file(f"{cg}/memory.reclaim", "8M") for _ in range(3)]
        obs["after_reclaim"] = ctx.page_state(buf, n)
        obs["pageout"] = ctx.libc.call("madvise", buf, n * ps, uapi.MADV_PAGEOUT)
        obs["after_pageout"] = ctx.page_state(buf, n)
        obs["check_exclusive"] = dev.command("CHECK_EXCLUSIVE", addr + (n - 1) * ps, 1)
        seen = ctx.ffi.buffer(buf, n * ps)[:]  # a CPU read of every page
        zero = bytes(ps)
        obs["pages"] = ["original" if seen[i * ps:(i + 1) * ps] == data[i * ps:(i + 1) * ps]
                        else "zero" if seen[i * ps:(i + 1) * ps] == zero else "other" for i in range(n)]
        obs["after_read"] = ctx.page_state(buf, n)
        touch_read(buf, n, ps)
        ctx.libc.call("munmap", buf, n * ps)
    finally:
        if cg:
            _leave_cgroup(cg)
        if current:
            obs["mthp_restore"] = write_file(f"{MTHP64}/enabled", current)
    return obs


def _enter_cgroup() -> tuple[dict, str | None]:
    if not os.path.exists(f"{CGROOT}/cgroup.subtree_control"):
        return {"ok": False, "absent": "no cgroup2 at /sys/fs/cgroup"}, None
    enable = write_file(f"{CGROOT}/cgroup.subtree_control", "+memory")
    path = f"{CGROOT}/hmmbench-regress-{os.getpid()}"
    os.makedirs(path, exist_ok=True)
    if not os.path.exists(f"{path}/memory.reclaim"):
        return {"ok": False, "absent": "no memory.reclaim", "enable_memory": enable}, path
    ok, err = write_file(f"{path}/cgroup.procs", str(os.getpid()))
    return {"ok": ok, "error": err, "enable_memory": enable}, path


def _leave_cgroup(path: str) -> None:
    write_file(f"{CGROOT}/cgroup.procs", str(os.getpid()))
    try:
        os.rmdir(path)
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------- file_cow_munmap

SYS_FALLOCATE = 285
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
MADV_DONTNEED = 4


def _file_cow_munmap(ctx, dev) -> dict:
    """16 pages: 0-14 CoW'd and exclusive, 15 the file's page. A hole punched over 8-15 (even_cows false:
    private copies stay), truncation to 12 pages (even_cows true: 12-14 go), a CPU read of 0-3 and 8-11,
    MADV_DONTNEED of 4-7, munmap of everything."""
    ps, n = ctx.page_size, 16
    path = f"/var/tmp/hmmbench-regress-{os.getpid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    obs: dict = {"npages": n}
    ffi = ctx.ffi
    try:
        os.write(fd, pattern(n, ps, 6500))
        os.unlink(path)
        p = ctx.libc.mmap(n * ps, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_PRIVATE, fd)
        data = pattern(n, ps, 6600)
        m = n - 1  # every page but the last copied on write; the last stays the file's page (read only)
        ffi.memmove(p, data, m * ps)
        obs["file_page_intact"] = ffi.buffer(p + m * ps, ps)[:] == pattern(n, ps, 6500)[m * ps:]
        addr = ctx.libc.addr(p)
        obs["before"] = ctx.page_state(p, n)
        mirror = ffi.new("char[]", m * ps)
        obs["exclusive"] = dev.command("EXCLUSIVE", addr, m, mirror)
        obs["while_exclusive"] = ctx.page_state(p, n)
        obs["punch_hole"] = list(ctx.libc.call("syscall", ffi.cast("long", SYS_FALLOCATE), ffi.cast("int", fd),
                                               ffi.cast("int", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE),
                                               ffi.cast("long", 8 * ps), ffi.cast("long", 8 * ps)))
        obs["after_punch_hole"] = ctx.page_state(p, n)
        os.ftruncate(fd, 12 * ps)
        obs["after_truncate"] = ctx.page_state(p, n)
        obs["read_back_intact"] = (ffi.buffer(p, 4 * ps)[:] == data[:4 * ps],
                                   ffi.buffer(p + 8 * ps, 4 * ps)[:] == data[8 * ps:12 * ps])
        obs["after_read"] = ctx.page_state(p, n)
        obs["dontneed"] = ctx.libc.call("madvise", p + 4 * ps, 4 * ps, MADV_DONTNEED)
        obs["after_dontneed"] = ctx.page_state(p, n)
        obs["exclusive_again"] = dev.command("EXCLUSIVE", addr + 8 * ps, 4, mirror)
        obs["before_munmap"] = ctx.page_state(p, n)
        obs["munmap"] = ctx.libc.call("munmap", p, n * ps)
        obs["after_munmap"] = ctx.pagemap(p, n)
    finally:
        os.close(fd)
    return obs


# ----------------------------------------------------------------------------------------------- close_migrated

def _close_migrated(ctx) -> dict:
    ps = ctx.page_size
    local, remote = devmem.devices_of(devmem.PRIVATE)
    dev = devmem.open_device(ctx, local)
    others = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"local": local, "calibration": devmem.calibrate(ctx, others)}
    nb, nt = 16, 512
    base, base_data = ctx.base_pages(nb, 6700)
    thp = _aligned(ctx, nt, nt)
    obs["madv_hugepage"] = ctx.libc.call("madvise", thp, nt * ps, uapi.MADV_HUGEPAGE)
    thp_data = pattern(nt, ps, 6800)
    ctx.ffi.memmove(thp, thp_data, nt * ps)
    obs["thp_before"] = ctx.page_state(thp, 1)
    obs["views"] = []
    mb, mt = ctx.ffi.new("char[]", nb * ps), ctx.ffi.new("char[]", nt * ps)
    obs["migrate_base"] = dev.command("MIGRATE_TO_DEV", ctx.libc.addr(base), nb, mb)
    obs["migrate_thp"] = dev.command("MIGRATE_TO_DEV", ctx.libc.addr(thp), nt, mt)
    obs["views"].append(devmem.views(ctx, "base pages before the close", base, nb, others))
    obs["views"].append(devmem.views(ctx, "THP range before the close", thp, nt, others))
    dev.close()
    obs["closed"] = True
    fresh = ctx.device(local)  # a new mirror of the same device (the closed one is gone)
    after = dict(others)
    after[local] = fresh
    obs["views"].append(devmem.views(ctx, "base pages after the close", base, nb, after))
    obs["views"].append(devmem.views(ctx, "THP range after the close", thp, nt, after))
    obs["base_intact"] = ctx.ffi.buffer(base, nb * ps)[:] == base_data  # a CPU read of every page
    obs["thp_intact"] = ctx.ffi.buffer(thp, nt * ps)[:] == thp_data
    obs["views"].append(devmem.views(ctx, "base pages after a CPU read", base, nb, after))
    obs["views"].append(devmem.views(ctx, "THP range after a CPU read", thp, nt, after))
    return obs


# ----------------------------------------------------------------------------------------------- uffd_wp

SYS_USERFAULTFD = 323
UFFD_API = 0xAA
UFFDIO_API = uapi.iowr(chr(0xAA), 0x3F, 24)
UFFDIO_REGISTER = uapi.iowr(chr(0xAA), 0x00, 32)
UFFDIO_WRITEPROTECT = uapi.iowr(chr(0xAA), 0x06, 24)
UFFDIO_REGISTER_MODE_WP = 1 << 1
UFFDIO_WRITEPROTECT_MODE_WP = 1 << 0
UFFD_EVENT_PAGEFAULT = 0x12
UFFD_PAGEFAULT_FLAG_WP = 1 << 1
UFFD_CDEF = """
struct uffdio_api { uint64_t api; uint64_t features; uint64_t ioctls; };
struct uffdio_range { uint64_t start; uint64_t len; };
struct uffdio_register { struct uffdio_range range; uint64_t mode; uint64_t ioctls; };
struct uffdio_writeprotect { struct uffdio_range range; uint64_t mode; };
"""
WAIT = 10.0


def _ioctl(ctx, fd: int, request: int, arg) -> list[int]:
    return list(ctx.libc.call("ioctl", fd, ctx.ffi.cast("unsigned long", request), ctx.ffi.cast("void *", arg)))


def _writeprotect(ctx, fd: int, start: int, length: int, on: bool) -> list[int]:
    wp = ctx.ffi.new("struct uffdio_writeprotect *", {"range": {"start": start, "len": length},
                                                      "mode": UFFDIO_WRITEPROTECT_MODE_WP if on else 0})
    return _ioctl(ctx, fd, UFFDIO_WRITEPROTECT, wp)


def _event(fd: int, timeout: float) -> dict | None:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    try:
        raw = os.read(fd, 32)
    except BlockingIOError:
        return {"spurious": True}
    return {"event": raw[0], "flags": int.from_bytes(raw[8:16], "little"),
            "address": int.from_bytes(raw[16:24], "little")}


class _Writer(threading.Thread):
    """Writes 64 bytes into one page per request through libc memcpy (a cffi call: the GIL is released
    while the CPU faults, so the main thread can serve the userfaultfd)."""

    def __init__(self, ctx, src) -> None:
        super().__init__(daemon=True)
        self.lib, self.src = ctx.libc.lib, src
        self.todo: list = []
        self.done: list[float] = []
        self.go = threading.Event()
        self.finished = threading.Event()

    def write(self, dst) -> None:
        self.finished.clear()
        self.todo.append(dst)
        self.go.set()

    def run(self) -> None:
        while True:
            self.go.wait()
            self.go.clear()
            dst = self.todo.pop(0)
            if dst is None:
                return
            t0 = time.monotonic()
            self.lib.memcpy(dst, self.src, 64)
            self.done.append(round(time.monotonic() - t0, 3))
            self.finished.set()


def _uffd_wp(ctx, dev) -> dict:
    ffi, ps, n = ctx.ffi, ctx.page_size, 4
    ffi.cdef(UFFD_CDEF, override=True)
    buf, data = ctx.base_pages(n, 6900)
    addr = ctx.libc.addr(buf)
    fd, err = ctx.libc.call("syscall", ffi.cast("long", SYS_USERFAULTFD), ffi.cast("int", os.O_CLOEXEC | os.O_NONBLOCK))
    obs: dict = {"npages": n, "addr": addr, "userfaultfd": [fd if fd < 0 else 0, err]}
    if fd < 0:
        return obs
    writer = None
    try:
        api = ffi.new("struct uffdio_api *", {"api": UFFD_API, "features": 0})
        obs["api"] = _ioctl(ctx, fd, UFFDIO_API, api)
        if obs["api"][0] != 0:
            return obs
        reg = ffi.new("struct uffdio_register *", {"range": {"start": addr, "len": n * ps},
                                                   "mode": UFFDIO_REGISTER_MODE_WP})
        obs["register"] = _ioctl(ctx, fd, UFFDIO_REGISTER, reg)
        if obs["register"][0] != 0:
            return obs
        mirror = ffi.new("char[]", n * ps)
        obs["exclusive"] = dev.command("EXCLUSIVE", addr, n, mirror)
        obs["after_exclusive"] = ctx.pagemap(buf, n)
        obs["writeprotect"] = _writeprotect(ctx, fd, addr, 2 * ps, True)
        obs["after_wp"] = ctx.pagemap(buf, n)
        new = pattern(1, ps, 7000)[:64]
        src = ffi.new("char[]", new)
        writer = _Writer(ctx, src)
        writer.start()
        # Page 0: exclusive and write-protected. The write must end in a uffd event, not in the page.
        writer.write(buf)
        obs["event"] = _event(fd, WAIT)
        obs["finished_before_resolve"] = writer.finished.wait(0.5)
        obs["while_waiting"] = ctx.pagemap(buf, n)
        obs["page0_before_resolve"] = ffi.buffer(buf, 64)[:] == new
        obs["resolve"] = _writeprotect(ctx, fd, addr, ps, False)
        obs["finished_after_resolve"] = writer.finished.wait(WAIT)
        obs["after_resolve"] = ctx.pagemap(buf, n)
        # Page 2: exclusive, not write-protected: the write goes through with no event.
        writer.write(buf + 2 * ps)
        obs["unprotected_finished"] = writer.finished.wait(WAIT)
        obs["unprotected_event"] = _event(fd, 0.5)
        obs["writer_seconds"] = list(writer.done)
        obs["end"] = ctx.pagemap(buf, n)
        obs["snapshot_end"] = list(_snapshot(ctx, dev, buf, n))
        want = bytearray(data)
        want[0:64] = new
        want[2 * ps:2 * ps + 64] = new
        seen = ffi.buffer(buf, n * ps)[:]
        obs["page_data"] = [seen[i * ps:(i + 1) * ps] == bytes(want[i * ps:(i + 1) * ps]) for i in range(n)]
        obs["unprotect_all"] = _writeprotect(ctx, fd, addr, n * ps, False)
    finally:
        if writer is not None:
            writer.write(None)
            writer.join(WAIT)
            obs["writer_alive_at_end"] = writer.is_alive()
        os.close(fd)  # releases any fault still waiting on the uffd
        if writer is not None and writer.is_alive():
            writer.join(WAIT)
            obs["writer_alive_after_close"] = writer.is_alive()
    return obs


def _snapshot(ctx, dev, buf, n: int):
    flags = ctx.ffi.new("unsigned char[]", n)
    dev.command("SNAPSHOT", ctx.libc.addr(buf), n, flags)
    return flags


def observe(ctx, params: dict) -> dict:
    scenario = params["scenario"]
    if scenario == "close_migrated":
        return {"scenario": scenario, **_close_migrated(ctx)}
    dev = ctx.device(0)
    flow = {"mthp_free": _mthp_free, "mthp_reclaim": lambda c, d: _mthp_free(c, d, free=False),
            "file_cow_munmap": _file_cow_munmap, "uffd_wp": _uffd_wp}[scenario]
    return {"scenario": scenario, **flow(ctx, dev)}
