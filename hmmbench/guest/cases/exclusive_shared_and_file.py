"""exclusive_shared_and_file: EXCLUSIVE on memory that is not private anonymous.

Mappings tried: MAP_SHARED|MAP_ANONYMOUS (shmem), a MAP_SHARED tmpfs file, a MAP_SHARED ext4 file
(the root filesystem), and a MAP_PRIVATE ext4 file whose pages are still the page cache's. For each:
the ioctl result and the page state before and after (nothing may become exclusive).
"""

from __future__ import annotations

import os

from .. import uapi
from ..memops import pattern

NPAGES = 4


def _file_mapping(ctx, directory: str, shared: bool):
    path = os.path.join(directory, f"hmmbench-exclusive-{os.getpid()}-{int(shared)}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, pattern(NPAGES, ctx.page_size))
    os.unlink(path)
    flags = uapi.MAP_SHARED if shared else uapi.MAP_PRIVATE
    p = ctx.libc.mmap(NPAGES * ctx.page_size, uapi.PROT_READ | uapi.PROT_WRITE, flags, fd)
    os.close(fd)
    return p


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    dev = ctx.device(0)
    mappings = {}
    shm = ctx.libc.mmap(size, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED | uapi.MAP_ANONYMOUS)
    ctx.ffi.memmove(shm, pattern(n, ps), size)
    mappings["shared_anon"] = shm
    mappings["tmpfs_shared"] = _file_mapping(ctx, "/dev/shm", True)
    mappings["ext4_shared"] = _file_mapping(ctx, "/var/tmp", True)
    mappings["ext4_private_pagecache"] = _file_mapping(ctx, "/var/tmp", False)
    fs = {}
    for d in ("/dev/shm", "/var/tmp"):
        st = os.statvfs(d)
        fs[d] = st.f_fsid
    obs: dict = {"npages": n, "mappings": {}}
    mirror = ctx.ffi.new("char[]", size)
    for name, p in mappings.items():
        ctx.ffi.buffer(p, size)[:]  # read every page so each PTE is present
        before = ctx.pagemap(p, n)
        cmd = dev.command("EXCLUSIVE", ctx.libc.addr(p), n, mirror)
        after = ctx.pagemap(p, n)
        obs["mappings"][name] = {
            "before": before, "exclusive": cmd, "after": after,
            "data_intact": ctx.ffi.buffer(p, size)[:] == pattern(n, ps),
        }
    return obs
