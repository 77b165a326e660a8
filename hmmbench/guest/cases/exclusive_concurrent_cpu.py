"""exclusive_concurrent_cpu: many threads fault the same exclusive page at the same moment, repeatedly.

Regression case for "mm: take a page reference when removing device exclusive entries" (2023):
concurrent CPU faults on one exclusive entry could lock a page whose refcount had dropped to zero.
The threads touch the page through libc memcpy, a cffi call that releases the GIL, so the faults
really are concurrent on a multi-CPU guest.

Per round, recorded: whether the page was a non-present (exclusive) entry right before the threads
started and present right after they finished (so every round really faulted an exclusive entry back),
and whether each thread's output buffer, zeroed before the round, already matched before it ran (it
must not: otherwise a read that never happened would count as a right one).
"""

from __future__ import annotations

import os
import threading

from ..pagemap import decode_pagemap, read_pagemap

THREADS = 8
ROUNDS = 100


def _fault(barrier: threading.Barrier, lib, out, src) -> None:
    """Wait for every thread, then read 64 bytes of the exclusive page (a CPU fault) without the GIL."""
    barrier.wait()
    lib.memcpy(out, src, 64)


def observe(ctx, params: dict) -> dict:
    ps = ctx.page_size
    dev = ctx.device(0)
    rounds = int(params.get("rounds", ROUNDS))
    buf, data = ctx.base_pages(1, 4242)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", ps)
    ffi = ctx.ffi
    lib = ctx.libc.lib  # lib.memcpy releases the GIL: the threads' faults are concurrent
    outs = [ffi.new("char[]", 64) for _ in range(THREADS)]
    zeros = bytes(64)
    bad_reads = 0
    stale = 0
    exclusive_before = present_after = 0
    ioctl_failures = []
    for rnd in range(rounds):
        cmd = dev.command("EXCLUSIVE", addr, 1, mirror)
        if cmd["ret"] != 0:
            ioctl_failures.append({"round": rnd, **cmd})
            continue
        for i in range(THREADS):
            ffi.memmove(outs[i], zeros, 64)
            off = (i * 64) % ps
            stale += ffi.buffer(outs[i], 64)[:] == data[off:off + 64]
        exclusive_before += not decode_pagemap(read_pagemap(addr, 1, ps)[0])["present"]
        barrier = threading.Barrier(THREADS)
        threads = [threading.Thread(target=_fault, args=(barrier, lib, outs[i], buf + (i * 64) % ps))
                   for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        present_after += decode_pagemap(read_pagemap(addr, 1, ps)[0])["present"]
        for i in range(THREADS):
            off = (i * 64) % ps
            if ffi.buffer(outs[i], 64)[:] != data[off:off + 64]:
                bad_reads += 1
    return {
        "threads": THREADS, "rounds": rounds, "cpus": os.cpu_count(), "ioctl_failures": ioctl_failures[:10],
        "ioctl_failure_count": len(ioctl_failures), "bad_reads": bad_reads, "stale_matches": stale,
        "rounds_exclusive_before": exclusive_before, "rounds_present_after": present_after,
        "final": ctx.pagemap(buf, 1), "data_intact": ffi.buffer(buf, ps)[:] == data,
    }
