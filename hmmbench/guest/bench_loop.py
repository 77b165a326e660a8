"""The device-exclusive -> CPU-restore loop as the agent runs it (Python + cffi), for ``hmmbench bench``.

The same work per iteration as bench_c/exclusive_loop.c: one HMM_DMIRROR_EXCLUSIVE of one page through
the agent's own prepared ioctl (Dmirror.prepared, what a hot loop in a case uses), then one CPU read of
the page (which restores it).
"""

from __future__ import annotations

import os
import time

from . import uapi


def run(iterations: int, uapi_spec: dict | None = None) -> dict:
    libc = uapi.shared_libc()
    dev = uapi.Dmirror(libc, "/dev/hmm_dmirror0", uapi.numbers_for(os.uname().release, uapi_spec))
    p = libc.mmap(4096, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_PRIVATE | uapi.MAP_ANONYMOUS)
    libc.call("madvise", p, 4096, uapi.MADV_NOHUGEPAGE)
    p[0] = 1
    mirror = libc.ffi.new("char[]", 4096)
    addr = libc.addr(p)
    exclusive = dev.prepared("EXCLUSIVE", addr, 1, mirror)
    total = 0
    start = time.monotonic()
    for _ in range(iterations):
        if exclusive() != 0:
            return {"error": f"EXCLUSIVE failed: {dev.command('EXCLUSIVE', addr, 1, mirror)}"}
        total += p[0]
    seconds = time.monotonic() - start
    dev.close()
    return {"iterations": iterations, "seconds": round(seconds, 6), "sum": total}
