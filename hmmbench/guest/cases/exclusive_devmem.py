"""exclusive_devmem: device-exclusive entries beside device-private pages, both views of every page.

On /dev/hmm_dmirror0 (device-private memory; dmirror1 the remote device), five flows on base pages
filled with patterns, every view of the whole range after each step (pagemap/kpageflags/kpagecount of
every page and every mirror's SNAPSHOT and per-page CHECK_EXCLUSIVE):

on_device: MIGRATE_TO_DEV of all pages, then EXCLUSIVE of the first half (pages that are on the device:
  what make_device_exclusive() does with them), then a CPU read of every page.
on_remote_device: the same with the EXCLUSIVE made by dmirror1 of pages on dmirror0's memory.
migrate_exclusive: EXCLUSIVE of the first half, then MIGRATE_TO_DEV of the whole range (what
  migrate_vma_collect_pmd() does with a device-exclusive entry), then a CPU read of every page.
fork: a range of exclusive, migrated and ordinary quarters, fork(); the child opens its own mirrors
  (a mirror follows the mm of the process that opened it) and records the views, reads every page
  (data), records the views again and reports over a pipe; the parent records the views after the
  fork, after the child's reads, and after its own read of every page.
ksm: MADV_MERGEABLE on a range where an exclusive page, a migrated page and an ordinary page hold the
  same data, and a control pair of ordinary pages other identical data; KSM runs SCANS full scans;
  then a device WRITE to the exclusive page and a CPU read of every page.
reclaim: swap on (the runner's /dev/vdb, as exclusive_reclaim does), a quarter exclusive and a quarter
  migrated, MADV_PAGEOUT of the whole range, then a CPU read of every page.
Trying is observing: a swap that cannot be set up is recorded (the host decides).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

from .. import devmem, uapi
from ..memops import KSM, ksm_at_full_speed, ksm_scan, pattern, read_file, touch_read, write_file

NPAGES = 8
SCANS = 3
KSM_TIMEOUT = 90.0
CHILD_TIMEOUT = 60.0


def _data(ctx, p, npages: int) -> bytes:
    return ctx.ffi.buffer(p, npages * ctx.page_size)[:]


def _on_device(ctx, dev, devices, obs: dict) -> None:
    n, ps = NPAGES, ctx.page_size
    half = n // 2
    buf, data = ctx.base_pages(n, 1100)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", n * ps)
    out: dict = {"views": []}
    out["migrate"] = dev.command("MIGRATE_TO_DEV", addr, n, mirror)
    out["views"].append(devmem.views(ctx, "on_device: after MIGRATE_TO_DEV", buf, n, devices, exclusive=True))
    f0 = ctx.minflt()
    out["exclusive"] = dev.command("EXCLUSIVE", addr, half, mirror)
    out["exclusive_cpu_faults"] = ctx.minflt() - f0
    out["exclusive_mirror_matches"] = ctx.ffi.buffer(mirror, half * ps)[:] == data[:half * ps]
    out["views"].append(devmem.views(ctx, "on_device: after EXCLUSIVE of the first half", buf, n, devices,
                                     exclusive=True))
    touch_read(buf, n, ps)
    out["views"].append(devmem.views(ctx, "on_device: after a CPU read of every page", buf, n, devices,
                                     exclusive=True))
    out["data_intact"] = _data(ctx, buf, n) == data
    obs["on_device"] = out


def _on_remote_device(ctx, dev, remote, devices, obs: dict) -> None:
    """Pages migrated to dmirror0, half of them then made exclusive by dmirror1."""
    n, ps = NPAGES, ctx.page_size
    half = n // 2
    buf, data = ctx.base_pages(n, 1150)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", n * ps)
    out: dict = {"views": []}
    out["migrate"] = dev.command("MIGRATE_TO_DEV", addr, n, mirror)
    out["views"].append(devmem.views(ctx, "on_remote_device: after MIGRATE_TO_DEV", buf, n, devices,
                                     exclusive=True))
    out["exclusive"] = remote.command("EXCLUSIVE", addr, half, mirror)
    out["exclusive_mirror_matches"] = ctx.ffi.buffer(mirror, half * ps)[:] == data[:half * ps]
    out["views"].append(devmem.views(ctx, "on_remote_device: after EXCLUSIVE of the first half by the remote "
                                     "device", buf, n, devices, exclusive=True))
    touch_read(buf, n, ps)
    out["views"].append(devmem.views(ctx, "on_remote_device: after a CPU read of every page", buf, n, devices,
                                     exclusive=True))
    out["data_intact"] = _data(ctx, buf, n) == data
    obs["on_remote_device"] = out


def _migrate_exclusive(ctx, dev, devices, obs: dict) -> None:
    n, ps = NPAGES, ctx.page_size
    half = n // 2
    buf, data = ctx.base_pages(n, 1200)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", n * ps)
    out: dict = {"views": []}
    out["exclusive"] = dev.command("EXCLUSIVE", addr, half, mirror)
    out["views"].append(devmem.views(ctx, "migrate_exclusive: after EXCLUSIVE of the first half", buf, n,
                                     devices, exclusive=True))
    out["migrate"] = dev.command("MIGRATE_TO_DEV", addr, n, mirror)
    out["migrate_mirror_matches"] = ctx.ffi.buffer(mirror, n * ps)[:] == data
    out["views"].append(devmem.views(ctx, "migrate_exclusive: after MIGRATE_TO_DEV of the whole range", buf,
                                     n, devices, exclusive=True))
    touch_read(buf, n, ps)
    out["views"].append(devmem.views(ctx, "migrate_exclusive: after a CPU read of every page", buf, n,
                                     devices, exclusive=True))
    out["data_intact"] = _data(ctx, buf, n) == data
    obs["migrate_exclusive"] = out


def _mixed(ctx, dev, seed: int):
    """A range whose first quarter is exclusive, second quarter migrated, second half ordinary."""
    n, ps = NPAGES, ctx.page_size
    q = n // 4
    buf, data = ctx.base_pages(n, seed)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", n * ps)
    ex = dev.command("EXCLUSIVE", addr, q, mirror)
    mg = dev.command("MIGRATE_TO_DEV", addr + q * ps, q, mirror)
    return buf, data, {"exclusive": ex, "migrate": mg, "quarter": q}


def _child(ctx, buf, data, report_w: int, go_r: int) -> None:
    """In the fork's child: its own mirrors, both views before and after reading every page. The child
    keeps its mirrors open until the parent has recorded its views (closing a mirror evicts every page
    of its device: lib/test_hmm.c dmirror_fops_release)."""
    n = NPAGES
    out: dict = {}
    try:
        devices = {i: ctx.device(i) for i in devmem.layout()["devices"]}
        out["views"] = [devmem.views(ctx, "fork: in the child after fork", buf, n, devices, exclusive=True)]
        out["data_intact"] = _data(ctx, buf, n) == data  # a CPU read of every page
        out["views"].append(devmem.views(ctx, "fork: in the child after its read of every page", buf, n, devices,
                                         exclusive=True))
    except BaseException as exc:  # noqa: BLE001 - reported, never raised into the agent
        out["error"] = f"{type(exc).__name__}: {exc}"
    os.write(report_w, (json.dumps(out) + "\n").encode())
    os.read(go_r, 1)  # the parent's views are recorded (or the parent is gone)


def _read_line(fd: int, timeout: float) -> tuple[bytes, bool]:
    """Bytes up to a newline from ``fd`` within ``timeout``; (data, timed out)."""
    raw = b""
    deadline = time.monotonic() + timeout
    while not raw.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return raw, True
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return raw, True
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        raw += chunk
    return raw, False


def _fork(ctx, dev, devices, obs: dict) -> None:
    n = NPAGES
    buf, data, out = _mixed(ctx, dev, 1300)
    out["views"] = [devmem.views(ctx, "fork: parent before fork", buf, n, devices, exclusive=True)]
    go_r, go_w = os.pipe()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the agent
        code = 3
        try:
            os.close(go_w)
            os.close(report_r)
            os.read(go_r, 1)
            _child(ctx, buf, data, report_w, go_r)
            code = 0
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(report_w)
    out["views"].append(devmem.views(ctx, "fork: parent after fork", buf, n, devices, exclusive=True))
    os.write(go_w, b"x")
    raw, timed_out = _read_line(report_r, CHILD_TIMEOUT)
    out["child_timed_out"] = timed_out
    try:
        out["child"] = json.loads(raw) if raw else None
    except ValueError:
        out["child"] = {"error": f"unreadable report {raw[:200]!r}"}
    out["views"].append(devmem.views(ctx, "fork: parent after the child's reads", buf, n, devices, exclusive=True))
    os.write(go_w, b"x")
    os.close(go_w)
    os.close(report_r)
    if timed_out:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    out["child_exit"] = {"exited": os.WIFEXITED(status), "code": os.WEXITSTATUS(status) if os.WIFEXITED(status)
                         else None, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
    out["data_intact"] = _data(ctx, buf, n) == data
    out["views"].append(devmem.views(ctx, "fork: parent after its own read of every page", buf, n, devices,
                                     exclusive=True))
    obs["fork"] = out


def _ksm(ctx, dev, devices, obs: dict) -> None:
    """Pages: 0 exclusive, 1 migrated, 2 ordinary (all three the same data X); 3 and 4 a control pair of
    ordinary pages holding Y; 5 ordinary with other data."""
    if not os.path.isdir(KSM):
        obs["ksm"] = {"absent": "no /sys/kernel/mm/ksm (CONFIG_KSM)"}
        return
    n, ps = 6, ctx.page_size
    buf, _ = ctx.base_pages(n, 0)
    x, y, z, new = pattern(1, ps, 11), pattern(1, ps, 22), pattern(1, ps, 44), pattern(1, ps, 33)
    contents = (x, x, x, y, y, z)
    for i, content in enumerate(contents):
        ctx.ffi.memmove(buf + i * ps, content, ps)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", ps)
    out: dict = {"npages": n, "views": []}
    out["madvise_mergeable"] = ctx.libc.call("madvise", buf, n * ps, uapi.MADV_MERGEABLE)
    out["exclusive"] = dev.command("EXCLUSIVE", addr, 1, mirror)
    out["migrate"] = dev.command("MIGRATE_TO_DEV", addr + ps, 1, mirror)
    out["views"].append(devmem.views(ctx, "ksm: before KSM", buf, n, devices, exclusive=True))
    with ksm_at_full_speed():
        out.update(ksm_scan(SCANS, KSM_TIMEOUT))
        write_file(f"{KSM}/run", "0")
        out["views"].append(devmem.views(ctx, "ksm: after KSM", buf, n, devices, exclusive=True))
        src = ctx.ffi.new("char[]", new)
        out["device_write"] = dev.command("WRITE", addr, 1, src)
        out["views"].append(devmem.views(ctx, "ksm: after a device WRITE of the exclusive page", buf, n, devices,
                                         exclusive=True))
        seen = [ctx.ffi.buffer(buf + i * ps, ps)[:] for i in range(n)]  # a CPU read of every page
        out["data"] = {"exclusive_is_new": seen[0] == new,
                       "others_intact": all(s == c for s, c in zip(seen[1:], contents[1:], strict=True))}
        out["views"].append(devmem.views(ctx, "ksm: after a CPU read of every page", buf, n, devices,
                                         exclusive=True))
    obs["ksm"] = out


def _swap() -> dict:
    if len((read_file("/proc/swaps") or "").splitlines()) > 1:
        return {"already": True, "ok": True}
    if not os.path.exists("/dev/vdb"):
        return {"ok": False, "absent": "no active swap and no /dev/vdb swap disk"}
    mk = subprocess.run(["mkswap", "-f", "/dev/vdb"], capture_output=True, text=True)
    on = subprocess.run(["swapon", "/dev/vdb"], capture_output=True, text=True)
    return {"ok": on.returncode == 0, "mkswap": mk.returncode, "mkswap_stderr": mk.stderr.strip()[-300:],
            "swapon": on.returncode, "swapon_stderr": on.stderr.strip()[-300:]}


def _reclaim(ctx, dev, devices, obs: dict) -> None:
    n = 4 * NPAGES
    ps = ctx.page_size
    out: dict = {"npages": n, "swap": _swap(), "views": []}
    q = n // 4
    buf, data = ctx.base_pages(n, 1400)
    addr = ctx.libc.addr(buf)
    mirror = ctx.ffi.new("char[]", n * ps)
    out["quarter"] = q
    out["exclusive"] = dev.command("EXCLUSIVE", addr, q, mirror)
    out["migrate"] = dev.command("MIGRATE_TO_DEV", addr + q * ps, q, mirror)
    out["views"].append(devmem.views(ctx, "reclaim: before MADV_PAGEOUT", buf, n, devices, exclusive=True))
    out["pageout"] = ctx.libc.call("madvise", buf, n * ps, uapi.MADV_PAGEOUT)
    out["views"].append(devmem.views(ctx, "reclaim: after MADV_PAGEOUT", buf, n, devices, exclusive=True))
    touch_read(buf, n, ps)
    out["views"].append(devmem.views(ctx, "reclaim: after a CPU read of every page", buf, n, devices,
                                     exclusive=True))
    out["data_intact"] = _data(ctx, buf, n) == data
    obs["reclaim"] = out


def observe(ctx, params: dict) -> dict:
    local, remote = devmem.devices_of(devmem.PRIVATE)
    dev = devmem.open_device(ctx, local, need=("MIGRATE_TO_DEV", "EXCLUSIVE", "CHECK_EXCLUSIVE", "SNAPSHOT"))
    other = devmem.open_device(ctx, remote, need=("EXCLUSIVE",))
    devices = devmem.all_devices(ctx, dev, other)
    obs: dict = {"npages": NPAGES, "local": local, "remote": remote, "calibration": devmem.calibrate(ctx, devices)}
    _on_device(ctx, dev, devices, obs)
    _on_remote_device(ctx, dev, other, devices, obs)
    _migrate_exclusive(ctx, dev, devices, obs)
    _fork(ctx, dev, devices, obs)
    _ksm(ctx, dev, devices, obs)
    _reclaim(ctx, dev, devices, obs)
    return obs
