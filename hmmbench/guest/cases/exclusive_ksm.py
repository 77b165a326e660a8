"""exclusive_ksm: KSM scanning a region where one of two identical pages is device-exclusive.

Pages: A (exclusive) and B hold the same data; C and D hold other identical data and are the control
pair that shows KSM really merged something. After KSM ran for several full scans: is A still an
exclusive entry on its own frame, did C and D merge? Then a device WRITE to A, and CPU reads of A and B.
"""

from __future__ import annotations

import os

from .. import pagemap, uapi
from ..memops import KSM, ksm_at_full_speed, ksm_scan, pattern, write_file
from ..skip import Skip

SCANS = 3
TIMEOUT = 90.0


def observe(ctx, params: dict) -> dict:
    ps = ctx.page_size
    if not os.path.isdir(KSM):
        raise Skip("no /sys/kernel/mm/ksm (CONFIG_KSM)")
    dev = ctx.device(0)
    buf = ctx.mmap_anon(4)
    ctx.libc.call("madvise", buf, 4 * ps, uapi.MADV_NOHUGEPAGE)
    same, other, new = pattern(1, ps, 11), pattern(1, ps, 22), pattern(1, ps, 33)
    for i, content in enumerate((same, same, other, other)):
        ctx.ffi.memmove(buf + i * ps, content, ps)
    obs: dict = {"before": ctx.page_state(buf, 4)}
    obs["madvise_mergeable"] = ctx.libc.call("madvise", buf, 4 * ps, uapi.MADV_MERGEABLE)
    mirror = ctx.ffi.new("char[]", ps)
    obs["exclusive"] = dev.command("EXCLUSIVE", ctx.libc.addr(buf), 1, mirror)
    with ksm_at_full_speed():
        obs.update(ksm_scan(SCANS, TIMEOUT))
        obs["after_ksm"] = ctx.page_state(buf, 4)
        write_file(f"{KSM}/run", "0")
        src = ctx.ffi.new("char[]", new)
        obs["device_write"] = dev.command("WRITE", ctx.libc.addr(buf), 1, src)
        obs["a_is_new"] = ctx.ffi.buffer(buf, ps)[:] == new
        obs["b_is_same"] = ctx.ffi.buffer(buf + ps, ps)[:] == same
        obs["c_d_intact"] = ctx.ffi.buffer(buf + 2 * ps, 2 * ps)[:] == other + other
        obs["after_cpu"] = ctx.page_state(buf, 4)
    obs["ksm_flag"] = pagemap.KPF["KSM"]
    return obs
