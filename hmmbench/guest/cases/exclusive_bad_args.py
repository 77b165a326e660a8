"""exclusive_bad_args: EXCLUSIVE with arguments it must refuse, and memory it cannot take.

Each attempt is recorded with its result and the page state of a sentinel RW range (that must not
change) and of the target range where there is one. Last, the control: a valid EXCLUSIVE of the same
sentinel with the same device and mirror, which succeeds and does change its page state.
"""

from __future__ import annotations

from .. import uapi


def observe(ctx, params: dict) -> dict:
    ps = ctx.page_size
    dev = ctx.device(0)
    n = 4
    size = n * ps
    sentinel, sentinel_data = ctx.base_pages(n)
    s_addr = ctx.libc.addr(sentinel)
    mirror = ctx.ffi.new("char[]", size)
    obs: dict = {"sentinel_before": ctx.pagemap(sentinel, n), "attempts": {}}

    def attempt(name: str, addr: int, npages: int, watch=None, watch_n: int = 0) -> None:
        before = ctx.pagemap(watch, watch_n) if watch is not None else None
        cmd = dev.command("EXCLUSIVE", addr, npages, mirror)
        obs["attempts"][name] = {
            "cmd": cmd, "target_before": before,
            "target_after": ctx.pagemap(watch, watch_n) if watch is not None else None,
        }

    attempt("unaligned_address", s_addr + 1, 1)
    attempt("zero_pages", s_addr, 0)
    attempt("overflowing_range", s_addr, (1 << 64) // ps - 1)
    hole = ctx.mmap_anon(n)
    hole_addr = ctx.libc.addr(hole)
    ctx.libc.call("munmap", hole, size)
    attempt("unmapped_range", hole_addr, n)
    none = ctx.mmap_anon(n, prot=uapi.PROT_NONE)
    attempt("prot_none", ctx.libc.addr(none), n)
    ro = ctx.mmap_anon(n)
    ctx.ffi.buffer(ro, size)[:]  # fault in the zero page read-only
    ctx.libc.call("mprotect", ro, size, uapi.PROT_READ)
    attempt("read_only", ctx.libc.addr(ro), n, ro, n)
    obs["sentinel_after"] = ctx.pagemap(sentinel, n)
    obs["sentinel_intact"] = ctx.ffi.buffer(sentinel, size)[:] == sentinel_data
    obs["valid"] = dev.command("EXCLUSIVE", s_addr, n, mirror)
    obs["sentinel_after_valid"] = ctx.pagemap(sentinel, n)
    return obs
