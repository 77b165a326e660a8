"""exclusive_ksm: KSM scanning a region where one of two identical pages is device-exclusive.

Pages: A (exclusive) and B hold the same data; C and D hold other identical data and are the control
pair that shows KSM really merged something. After KSM ran for several full scans: is A still an
exclusive entry on its own frame, did C and D merge? Then a device WRITE to A, and CPU reads of A and B.
"""

from __future__ import annotations

import os
import time

from .. import pagemap, uapi
from ..memops import pattern, read_file, write_file
from ..skip import Skip

KSM = "/sys/kernel/mm/ksm"
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
    saved = {k: read_file(f"{KSM}/{k}") for k in ("run", "pages_to_scan", "sleep_millisecs")}
    try:
        write_file(f"{KSM}/pages_to_scan", "10000")
        write_file(f"{KSM}/sleep_millisecs", "0")
        start_scans = int(read_file(f"{KSM}/full_scans") or 0)
        obs["ksm_run"] = write_file(f"{KSM}/run", "1")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and int(read_file(f"{KSM}/full_scans") or 0) < start_scans + SCANS:
            time.sleep(0.2)
        obs["full_scans"] = int(read_file(f"{KSM}/full_scans") or 0) - start_scans
        obs["pages_sharing"] = read_file(f"{KSM}/pages_sharing")
        obs["after_ksm"] = ctx.page_state(buf, 4)
        write_file(f"{KSM}/run", "0")
        src = ctx.ffi.new("char[]", new)
        obs["device_write"] = dev.command("WRITE", ctx.libc.addr(buf), 1, src)
        obs["a_is_new"] = ctx.ffi.buffer(buf, ps)[:] == new
        obs["b_is_same"] = ctx.ffi.buffer(buf + ps, ps)[:] == same
        obs["c_d_intact"] = ctx.ffi.buffer(buf + 2 * ps, 2 * ps)[:] == other + other
        obs["after_cpu"] = ctx.page_state(buf, 4)
    finally:
        write_file(f"{KSM}/run", "2")  # unmerge everything this case merged
        for k, v in saved.items():
            if v is not None and k != "run":
                write_file(f"{KSM}/{k}", v)
        write_file(f"{KSM}/run", saved.get("run") or "0")
    obs["ksm_flag"] = pagemap.KPF["KSM"]
    return obs
