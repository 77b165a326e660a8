"""exclusive_exit: a process ends (or unmaps a range) while its pages are device-exclusive.

The teardown zaps device-exclusive entries (zap_pte_range / zap_nonpresent_ptes), a path no other case
reaches: they all take their pages back with the CPU first. Observes: anonymous pages and copy-on-write
copies of a MAP_PRIVATE ext4 file made exclusive, the page state just before the case returns (the
process then exits with them exclusive: the agent's message window closes only after the exit, so a
kernel message there is this case's), and a second CoW'd private file range unmapped with munmap() while
exclusive, with the page state after.
"""

from __future__ import annotations

import os

from .. import uapi
from ..memops import pattern

NPAGES = 8


def _private_file_cow(ctx, n: int, seed: int):
    """A MAP_PRIVATE mapping of an ext4 file whose pages were written: anonymous CoW copies."""
    path = f"/var/tmp/hmmbench-exit-{os.getpid()}-{seed}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, pattern(n, ctx.page_size, seed))
    os.unlink(path)
    p = ctx.libc.mmap(n * ctx.page_size, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_PRIVATE, fd)
    os.close(fd)
    data = pattern(n, ctx.page_size, seed + 1)
    ctx.ffi.memmove(p, data, n * ctx.page_size)  # every page copied on write
    return p


def _exclusive(ctx, dev, p, n: int) -> dict:
    mirror = ctx.ffi.new("char[]", n * ctx.page_size)
    before = ctx.page_state(p, n)
    cmd = dev.command("EXCLUSIVE", ctx.libc.addr(p), n, mirror)
    return {"before": before, "exclusive": cmd, "while_exclusive": ctx.page_state(p, n)}


def observe(ctx, params: dict) -> dict:
    n = NPAGES
    dev = ctx.device(0)
    anon, _ = ctx.base_pages(n, 4242)
    obs: dict = {"npages": n, "anon": _exclusive(ctx, dev, anon, n)}
    obs["file_cow"] = _exclusive(ctx, dev, _private_file_cow(ctx, n, 50), n)
    unmapped = _private_file_cow(ctx, n, 60)
    obs["munmapped"] = _exclusive(ctx, dev, unmapped, n)
    obs["munmapped"]["munmap"] = ctx.libc.call("munmap", unmapped, n * ctx.page_size)
    obs["munmapped"]["after_munmap"] = ctx.pagemap(unmapped, n)
    # Returning now: the process exits with `anon` and `file_cow` still device-exclusive.
    obs["at_exit"] = {"anon": ctx.pagemap(anon, n)}
    return obs
