"""exclusive_repeat: EXCLUSIVE again on exclusive pages and after partial CPU access, across 64-page batches.

test_hmm converts in batches of 64 pages, so ranges of 63, 64, 65 and 1024 pages cross batch
boundaries differently. For each range: EXCLUSIVE, EXCLUSIVE again, CPU touch of every third page,
EXCLUSIVE again; page state after each step; the mirror is zeroed before each call and compared after
it (so each call's match is its own, not left over from the call before); data checked at the end.
"""

from __future__ import annotations

from ..memops import touch_read

SIZES = (63, 64, 65, 1024)


def _one_range(ctx, dev, n: int) -> dict:
    ps = ctx.page_size
    size = n * ps
    buf, data = ctx.base_pages(n, n)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", size)
    zeros = bytes(size)
    r: dict = {"npages": n, "before": ctx.pagemap(buf, n), "mirror_matched_zeroed": zeros == data}

    def call(step: str) -> None:
        ctx.ffi.memmove(mirror, zeros, size)
        r[step] = dev.command("EXCLUSIVE", addr, n, mirror)
        r[f"mirror_after_{step}"] = ctx.ffi.buffer(mirror, size)[:] == data
        r[f"after_{step}"] = ctx.pagemap(buf, n)

    call("first")
    call("second")
    touch_read(buf, n, ps, start=0, step=3)
    r["after_partial_cpu"] = ctx.pagemap(buf, n)
    call("third")
    r["mirror_matches"] = all(r[f"mirror_after_{s}"] for s in ("first", "second", "third"))
    touch_read(buf, n, ps)
    r["data_intact"] = ctx.ffi.buffer(buf, size)[:] == data
    ctx.libc.call("munmap", buf, size)
    return r


def observe(ctx, params: dict) -> dict:
    dev = ctx.device(0)
    return {"ranges": {str(n): _one_range(ctx, dev, n) for n in SIZES}}
