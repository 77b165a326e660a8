"""exclusive_migration: migrate device-exclusive pages away from their PFN.

Method 1, soft offline (CONFIG_MEMORY_FAILURE): write each page's physical address to
/sys/devices/system/memory/soft_offline_page; the kernel migrates the page and retires the old frame.
Method 2, if soft offline is missing: offline the memory block holding the pages (bounded by a
timeout: before the series this can retry forever), then online it again.
Records the write results and times, the PFNs before and after, the data, and CHECK_EXCLUSIVE right
before the migration (the device holds the pages: EPERM) and after it.
"""

from __future__ import annotations

import os

from .. import pagemap
from ..helper_proc import SysfsWriter
from ..memops import read_file, touch_read
from ..skip import Skip

NPAGES = 4
SOFT_OFFLINE = "/sys/devices/system/memory/soft_offline_page"
WRITE_TIMEOUT = 60.0


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    method = "soft_offline" if os.path.exists(SOFT_OFFLINE) else "offline_block"
    if method == "offline_block" and not os.path.isdir("/sys/devices/system/memory"):
        raise Skip("neither soft_offline_page (CONFIG_MEMORY_FAILURE) nor memory blocks (MEMORY_HOTREMOVE)")
    writer = SysfsWriter()  # forked before anything is exclusive
    dev = ctx.device(0)
    buf, data = ctx.base_pages(n, 31337)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", size)
    obs: dict = {"npages": n, "method": method, "before": ctx.page_state(buf, n)}
    obs["exclusive"] = dev.command("EXCLUSIVE", addr, n, mirror)
    obs["while_exclusive"] = ctx.page_state(buf, n)
    obs["check_exclusive_before_migration"] = dev.command("CHECK_EXCLUSIVE", addr, n)
    pfns = pagemap.pfns_of(obs["before"]["pagemap"])
    writes = []
    hung = False
    if method == "soft_offline":
        for pfn in pfns:
            res = writer.write(SOFT_OFFLINE, hex(pfn * ps), WRITE_TIMEOUT)
            writes.append({"pfn": pfn, **res})
            if res.get("timeout"):
                hung = True
                break
    else:
        block_size = int(read_file("/sys/devices/system/memory/block_size_bytes") or "0", 16)
        block = pfns[0] * ps // block_size
        state = f"/sys/devices/system/memory/memory{block}/state"
        zones = read_file(f"/sys/devices/system/memory/memory{block}/valid_zones")
        obs["block"] = {"index": block, "valid_zones": zones}
        res = writer.write(state, "offline", WRITE_TIMEOUT)
        writes.append({"block": block, "action": "offline", **res})
        hung = bool(res.get("timeout"))
        if res.get("ok"):
            writes.append({"block": block, "action": "online", **writer.write(state, "online", WRITE_TIMEOUT)})
    obs["writes"] = writes
    obs["write_hung"] = hung
    obs["after_migration"] = ctx.page_state(buf, n)
    obs["check_exclusive_after_migration"] = dev.command("CHECK_EXCLUSIVE", addr, n)
    touch_read(buf, n, ps)
    obs["after_cpu"] = ctx.page_state(buf, n)
    obs["data_intact"] = ctx.ffi.buffer(buf, size)[:] == data
    writer.close(kill=hung)
    return obs
