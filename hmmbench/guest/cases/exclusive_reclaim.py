"""exclusive_reclaim: reclaim with swap while some pages are device-exclusive.

Swap on a virtio disk (/dev/vdb, attached by the runner) or any active swap; the case moves itself
into a fresh memory cgroup, makes the first 64 of 512 pages exclusive, then pushes reclaim with
MADV_PAGEOUT and memory.reclaim. Records the page state (which pages went to swap, which stayed
exclusive), then reads everything back with the CPU and checks the data.
Trying is observing: if mkswap/swapon fail or the kernel refuses to move the case into the memory
cgroup, the result is recorded and the case stops there (the host decides with the kernel's
configuration); only a missing interface (no swap disk, no cgroup2, no memory.reclaim) is a SKIP.
"""

from __future__ import annotations

import os
import subprocess

from .. import uapi
from ..memops import read_file, touch_read, write_file
from ..skip import Skip

NPAGES = 512
NEXCL = 64
CGROOT = "/sys/fs/cgroup"


def _swap_active() -> bool:
    lines = (read_file("/proc/swaps") or "").splitlines()
    return len(lines) > 1


def _enable_swap() -> dict:
    if _swap_active():
        return {"already": True, "ok": True}
    if not os.path.exists("/dev/vdb"):
        raise Skip("no swap: no active swap and no /dev/vdb swap disk (run through `hmmbench run`)")
    mk = subprocess.run(["mkswap", "-f", "/dev/vdb"], capture_output=True, text=True)
    on = subprocess.run(["swapon", "/dev/vdb"], capture_output=True, text=True)
    return {"ok": on.returncode == 0, "mkswap": mk.returncode, "mkswap_stderr": mk.stderr.strip()[-300:],
            "swapon": on.returncode, "swapon_stderr": on.stderr.strip()[-300:]}


def _enter_cgroup() -> tuple[str, dict]:
    if not os.path.exists(f"{CGROOT}/cgroup.subtree_control"):
        raise Skip("no cgroup2 at /sys/fs/cgroup (CONFIG_MEMCG / CONFIG_CGROUPS)")
    enable = write_file(f"{CGROOT}/cgroup.subtree_control", "+memory")
    path = f"{CGROOT}/hmmbench-reclaim-{os.getpid()}"
    os.makedirs(path, exist_ok=True)
    if not os.path.exists(f"{path}/memory.reclaim"):
        raise Skip("memory cgroup has no memory.reclaim (needs Linux >= 5.19 with CONFIG_MEMCG)")
    ok, err = write_file(f"{path}/cgroup.procs", str(os.getpid()))
    return path, {"ok": ok, "error": err, "enable_memory": enable}


def _leave_cgroup(path: str) -> None:
    write_file(f"{CGROOT}/cgroup.procs", str(os.getpid()))
    try:
        os.rmdir(path)
    except OSError:
        pass


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    obs: dict = {"npages": n, "nexclusive": NEXCL, "swap": _enable_swap()}
    if not obs["swap"]["ok"]:
        return obs
    cg, obs["cgroup"] = _enter_cgroup()
    if not obs["cgroup"]["ok"]:
        _leave_cgroup(cg)
        return obs
    try:
        dev = ctx.device(0)
        buf, data = ctx.base_pages(n, 777)
        addr = ctx.libc.addr(buf)
        obs["before"] = ctx.pagemap(buf, n)
        mirror = ctx.ffi.new("char[]", NEXCL * ps)
        obs["exclusive"] = dev.command("EXCLUSIVE", addr, NEXCL, mirror)
        obs["while_exclusive"] = ctx.pagemap(buf, n)
        obs["pageout"] = ctx.libc.call("madvise", buf, size, uapi.MADV_PAGEOUT)
        obs["after_pageout"] = ctx.pagemap(buf, n)
        obs["reclaim"] = [write_file(f"{cg}/memory.reclaim", "8M") for _ in range(3)]
        obs["after_reclaim"] = ctx.pagemap(buf, n)
        obs["check_exclusive"] = dev.command("CHECK_EXCLUSIVE", addr, NEXCL)
        stat = (line.split() for line in (read_file(f"{cg}/memory.stat") or "").splitlines())
        obs["memory_stat"] = {k: v for k, v in stat if k in ("anon", "swapcached", "pgscan", "pgsteal")}
        touch_read(buf, n, ps)
        obs["after_cpu"] = ctx.pagemap(buf, n)
        obs["data_intact"] = ctx.ffi.buffer(buf, size)[:] == data
    finally:
        _leave_cgroup(cg)
    return obs
