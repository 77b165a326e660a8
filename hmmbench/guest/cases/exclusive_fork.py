"""exclusive_fork: fork() while pages are device-exclusive; parent and child each change their copy.

The parent changes its copy first and the child must still see the original; then the child changes
its copy and the parent must still see its own. The child reports over a pipe and its exit status is
collected with waitpid. Negative control in the same fork: one MAP_SHARED anonymous page, written by
the parent (and then by the child) at the same moments, which the other side *must* see: the same
comparison reading "changed" shows that "unchanged" on the private pages is a real observation.
"""

from __future__ import annotations

import json
import os

from .. import uapi
from ..memops import pattern

NPAGES = 16


def observe(ctx, params: dict) -> dict:
    ps, n = ctx.page_size, NPAGES
    size = n * ps
    dev = ctx.device(0)
    buf, original = ctx.base_pages(n)
    parent_data, child_data = pattern(n, ps, 2), pattern(n, ps, 1)
    shared = ctx.libc.mmap(ps, uapi.PROT_READ | uapi.PROT_WRITE, uapi.MAP_SHARED | uapi.MAP_ANONYMOUS)
    shared_original, shared_parent, shared_child = pattern(1, ps, 70), pattern(1, ps, 71), pattern(1, ps, 72)
    ctx.ffi.memmove(shared, shared_original, ps)
    obs: dict = {"npages": n, "before": ctx.pagemap(buf, n)}
    mirror = ctx.ffi.new("char[]", size)
    obs["exclusive"] = dev.command("EXCLUSIVE", ctx.libc.addr(buf), n, mirror)
    obs["while_exclusive"] = ctx.pagemap(buf, n)

    go_child_r, go_child_w = os.pipe()
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the agent
        code = 3
        try:
            os.close(go_child_w)
            os.close(report_r)
            os.read(go_child_r, 1)
            saw_original = ctx.ffi.buffer(buf, size)[:] == original
            saw_shared_parent = ctx.ffi.buffer(shared, ps)[:] == shared_parent
            ctx.ffi.memmove(buf, child_data, size)
            ctx.ffi.memmove(shared, shared_child, ps)
            saw_own = ctx.ffi.buffer(buf, size)[:] == child_data
            os.write(report_w, json.dumps({"saw_original": saw_original, "saw_own": saw_own,
                                           "saw_shared_parent_write": saw_shared_parent}).encode())
            code = 0 if saw_original and saw_own else 1
        finally:
            os._exit(code)
    os.close(go_child_r)
    os.close(report_w)
    obs["parent_after_fork"] = ctx.pagemap(buf, n)
    ctx.ffi.memmove(buf, parent_data, size)
    ctx.ffi.memmove(shared, shared_parent, ps)
    os.write(go_child_w, b"x")
    raw = b""
    while chunk := os.read(report_r, 4096):
        raw += chunk
    _, status = os.waitpid(pid, 0)
    obs["child_report"] = json.loads(raw) if raw else None
    obs["child_exit"] = {
        "exited": os.WIFEXITED(status), "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
    }
    obs["parent_sees_own"] = ctx.ffi.buffer(buf, size)[:] == parent_data
    obs["parent_saw_shared_child_write"] = ctx.ffi.buffer(shared, ps)[:] == shared_child
    obs["parent_after"] = ctx.pagemap(buf, n)
    return obs
