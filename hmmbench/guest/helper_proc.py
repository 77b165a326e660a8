"""A helper process forked *before* a case makes pages device-exclusive.

fork() copies page tables, and copying a device-exclusive entry restores it (the CPU takes the page
back), so a case must not fork while its pages are exclusive just to write a sysfs file. Instead it
starts this helper first; the helper performs writes on request and reports each result, and the
case can give up on a write that does not return (e.g. a memory offline that retries forever).
"""

from __future__ import annotations

import json
import os
import select
import time


class SysfsWriter:
    def __init__(self) -> None:
        req_r, self._req_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._req_w)
            os.close(self._res_r)
            code = 0
            try:
                self._serve(req_r, res_w)
            except BaseException:  # noqa: BLE001 - the helper must never return into the agent
                code = 1
            os._exit(code)
        os.close(req_r)
        os.close(res_w)

    @staticmethod
    def _serve(req_r: int, res_w: int) -> None:
        with os.fdopen(req_r, "r") as requests:
            for line in requests:
                req = json.loads(line)
                start = time.monotonic()
                try:
                    fd = os.open(req["path"], os.O_WRONLY)
                    try:
                        os.write(fd, req["value"].encode())
                    finally:
                        os.close(fd)
                    res = {"ok": True}
                except OSError as exc:
                    res = {"ok": False, "errno": exc.errno, "error": os.strerror(exc.errno or 0)}
                res["seconds"] = round(time.monotonic() - start, 3)
                os.write(res_w, (json.dumps(res) + "\n").encode())

    def write(self, path: str, value: str, timeout: float) -> dict:
        """Ask the helper to write; {"ok": ...} or {"timeout": True} if it has not answered in time."""
        os.write(self._req_w, (json.dumps({"path": path, "value": value}) + "\n").encode())
        ready, _, _ = select.select([self._res_r], [], [], timeout)
        if not ready:
            return {"ok": False, "timeout": True, "seconds": timeout}
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(self._res_r, 4096)
            if not chunk:
                return {"ok": False, "error": "helper died"}
            line += chunk
        return json.loads(line)

    def close(self, kill: bool = False) -> None:
        os.close(self._req_w)
        if kill:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass
        else:
            os.waitpid(self.pid, 0)
        os.close(self._res_r)
