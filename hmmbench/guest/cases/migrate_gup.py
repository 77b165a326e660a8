"""migrate_gup: get_user_pages() on pages that are on the device, through every user-reachable path.

Observes, for one kind of device memory, on a fresh range of NPAGES base pages migrated to the local
device for each path, a GUP of the first half only, then both views of the whole range and the data:
pread and pwrite of /proc/self/mem (access_remote_vm: GUP with FOLL_FORCE); process_vm_readv of the
process's own pages (its ret/errno: ENOSYS without CONFIG_CROSS_MEMORY_ATTACH); an O_DIRECT write from
the range to a file and an O_DIRECT read from the file into it (pin_user_pages), on ext4 (the guest's
disk) and on tmpfs (open's errno recorded where O_DIRECT is refused); and hmm-tests hmm_gup_test through
/sys/kernel/debug/gup_test when it exists (CONFIG_GUP_TEST): GUP_BASIC_TEST, GUP_FAST_BENCHMARK,
PIN_FAST_BENCHMARK with FOLL_LONGTERM and PIN_LONGTERM_BENCHMARK, one page each.
"""

from __future__ import annotations

import os
import struct

from .. import devmem, uapi
from ..memops import pattern

NPAGES = 4
GUP_TEST = "/sys/kernel/debug/gup_test"
GUP_TEST_SIZE = 80  # struct gup_test (mm/gup_test.h): 4 u64, 3 u32, u32[8], padded to 8
GUP_CMDS = {"GUP_FAST_BENCHMARK": 1, "PIN_FAST_BENCHMARK": 2, "PIN_LONGTERM_BENCHMARK": 3, "GUP_BASIC_TEST": 4}
FOLL_WRITE, FOLL_LONGTERM = 0x01, 0x100
SYS_PROCESS_VM_READV = 310  # x86_64


def observe(ctx, params: dict) -> dict:
    kind = params.get("memory", devmem.PRIVATE)
    n = int(params.get("npages", NPAGES))
    half = n // 2
    local, remote = devmem.devices_of(kind)
    ps = ctx.page_size
    size = n * ps
    dev = devmem.open_device(ctx, local)
    devices = devmem.all_devices(ctx, dev, devmem.open_device(ctx, remote))
    obs: dict = {"memory": kind, "npages": n, "half": half, "local": local, "remote": remote,
                 "calibration": devmem.calibrate(ctx, devices), "paths": []}
    mirror = ctx.ffi.new("char[]", size)
    seed = [4000]

    def region():
        seed[0] += 100
        p, data = ctx.base_pages(n, seed[0])
        mig = dev.command("MIGRATE_TO_DEV", ctx.libc.addr(p), n, mirror)
        return p, data, mig

    def finish(name, p, data, mig, op: dict, expect: bytes) -> None:
        rec = {"path": name, "migrate": mig, "op": op}
        rec["views"] = devmem.views(ctx, f"after {name}", p, n, devices)
        rec["data_intact"] = ctx.ffi.buffer(p, size)[:] == expect
        obs["paths"].append(rec)

    # /proc/self/mem: pread, then pwrite.
    p, data, mig = region()
    fd = os.open("/proc/self/mem", os.O_RDWR)
    try:
        got = os.pread(fd, half * ps, ctx.libc.addr(p))
        finish("pread of /proc/self/mem", p, data, mig, {"ret": len(got), "read_matches": got == data[:half * ps]},
               data)
        p, data, mig = region()
        new = pattern(half, ps, 4900)
        wrote = os.pwrite(fd, new, ctx.libc.addr(p))
        finish("pwrite of /proc/self/mem", p, data, mig, {"ret": wrote}, new + data[half * ps:])
    finally:
        os.close(fd)

    # process_vm_readv of this process's own pages.
    p, data, mig = region()
    dst = ctx.ffi.new("char[]", half * ps)
    liov = ctx.ffi.new("uint64_t[2]", [ctx.libc.addr(dst), half * ps])
    riov = ctx.ffi.new("uint64_t[2]", [ctx.libc.addr(p), half * ps])
    ctx.ffi.errno = 0
    ret = ctx.libc.lib.syscall(SYS_PROCESS_VM_READV, ctx.ffi.cast("long", os.getpid()), ctx.ffi.cast("void *", liov),
                               ctx.ffi.cast("long", 1), ctx.ffi.cast("void *", riov), ctx.ffi.cast("long", 1),
                               ctx.ffi.cast("long", 0))
    err = ctx.ffi.errno if ret == -1 else 0
    finish("process_vm_readv", p, data, mig, {"ret": int(ret), "errno": err,
                                              "read_matches": ctx.ffi.buffer(dst, half * ps)[:] == data[:half * ps]},
           data)

    # O_DIRECT from and into the range, on ext4 and tmpfs.
    for fs, directory in (("ext4", "/var/tmp"), ("tmpfs", "/tmp")):
        path = os.path.join(directory, f"hmmbench-gup-{os.getpid()}")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        except OSError as exc:
            obs[f"o_direct_{fs}"] = {"open_errno": exc.errno}
            continue
        obs[f"o_direct_{fs}"] = {"open_errno": 0}
        try:
            p, data, mig = region()
            try:
                op = {"ret": os.pwrite(fd, ctx.ffi.buffer(p, half * ps), 0), "errno": 0}
            except OSError as exc:
                op = {"ret": -1, "errno": exc.errno}
            op["file_matches"] = _read_plain(path, half * ps) == data[:half * ps]
            finish(f"O_DIRECT write from the range ({fs})", p, data, mig, op, data)
            p, data, mig = region()
            try:
                op = {"ret": os.preadv(fd, [ctx.ffi.buffer(p, half * ps)], 0), "errno": 0}
            except OSError as exc:
                op = {"ret": -1, "errno": exc.errno}
            file_data = _read_plain(path, half * ps)
            finish(f"O_DIRECT read into the range ({fs})", p, data, mig, op, file_data + data[half * ps:])
        finally:
            os.close(fd)
            os.unlink(path)

    obs["gup_test_exists"] = os.path.exists(GUP_TEST)
    if obs["gup_test_exists"]:
        p, data, mig = region()
        calls = []
        gfd = os.open(GUP_TEST, os.O_RDWR)
        try:
            for i, (name, flags) in enumerate((("GUP_BASIC_TEST", 0), ("GUP_FAST_BENCHMARK", 0),
                                               ("PIN_FAST_BENCHMARK", FOLL_LONGTERM), ("PIN_LONGTERM_BENCHMARK", 0))):
                arg = ctx.ffi.new("char[]", struct.pack("<QQQQIII32x4x", 0, 0, ctx.libc.addr(p) + i * ps, ps, 1,
                                                        FOLL_WRITE | flags, 0))
                r, e = ctx.libc.call("ioctl", gfd, ctx.ffi.cast("unsigned long", uapi.iowr("g", GUP_CMDS[name],
                                                                                            GUP_TEST_SIZE)),
                                     ctx.ffi.cast("void *", arg))
                calls.append({"call": name, "flags": flags, "ret": r, "errno": e})
        finally:
            os.close(gfd)
        rec = {"path": "gup_test", "migrate": mig, "op": {"calls": calls}}
        rec["views"] = devmem.views(ctx, "after gup_test", p, n, devices)
        rec["data_intact"] = ctx.ffi.buffer(p, size)[:] == data
        obs["gup_test"] = rec
    return obs


def _read_plain(path: str, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, 0)
    finally:
        os.close(fd)
