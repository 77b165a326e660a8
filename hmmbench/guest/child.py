"""A forked child a case drives step by step: the parent names a step, the child runs it and answers.

Why: fork() cases (migrate_fork, migrate_gup, migrate_teardown) need the child to act at chosen moments
(read, write, issue a device command through its own mirror, exit) while the parent looks at both
processes' page tables in between (its own pagemap, and the child's through /proc/CHILD/pagemap). The
child never returns into the agent: it ends with os._exit, and every step's answer is one JSON line.
"""

from __future__ import annotations

import json
import os
import traceback


class Child:
    """``steps`` maps a step name to a function of one dict argument returning a JSON-able dict; it runs
    in the child. Start it with fork() at the moment the case wants; ``run`` asks for one step."""

    def __init__(self, steps: dict) -> None:
        req_r, self._req_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                os.close(self._req_w)
                os.close(self._res_r)
                code = self._serve(steps, req_r, res_w)
            except BaseException:  # noqa: BLE001 - the child must never return into the agent
                code = 3
            os._exit(code)
        os.close(req_r)
        os.close(res_w)
        self.status: dict | None = None

    @staticmethod
    def _serve(steps: dict, req_r: int, res_w: int) -> int:
        with os.fdopen(req_r, "r") as requests:
            for line in requests:
                req = json.loads(line)
                if req["step"] == "exit":
                    return int(req.get("code", 0))
                try:
                    res = steps[req["step"]](req.get("args") or {})
                except Exception as exc:  # noqa: BLE001 - reported to the parent as the step's answer
                    res = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
                os.write(res_w, (json.dumps(res) + "\n").encode())
        return 0

    def run(self, step: str, **args) -> dict:
        os.write(self._req_w, (json.dumps({"step": step, "args": args}) + "\n").encode())
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(self._res_r, 1 << 16)
            if not chunk:
                return {"error": "child died before answering"}
            line += chunk
        return json.loads(line)

    def exit(self, code: int = 0) -> dict:
        """Ask the child to exit and reap it: how it ended."""
        try:
            os.write(self._req_w, (json.dumps({"step": "exit", "code": code}) + "\n").encode())
        except OSError:
            pass
        return self.reap()

    def kill(self, sig: int = 9) -> dict:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        return self.reap()

    def reap(self) -> dict:
        if self.status is None:
            _, st = os.waitpid(self.pid, 0)
            self.status = {"exited": os.WIFEXITED(st), "code": os.WEXITSTATUS(st) if os.WIFEXITED(st) else None,
                           "signal": os.WTERMSIG(st) if os.WIFSIGNALED(st) else None}
            for fd in (self._req_w, self._res_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
        return self.status


def page_state_of(pid: int, addr: int, npages: int, page_size: int) -> dict:
    """Another process's pagemap of ``npages`` pages at ``addr`` (/proc/PID/pagemap), with the kpageflags
    and kpagecount of each PFN, read by the parent while the child waits."""
    from . import pagemap

    entries = pagemap.read_pagemap(addr, npages, page_size, pid=str(pid))
    pfns = pagemap.pfns_of(entries)
    return {"pagemap": entries, "kpageflags": pagemap.read_kpageflags(pfns),
            "kpagecount": pagemap.read_kpagecount(pfns)}
