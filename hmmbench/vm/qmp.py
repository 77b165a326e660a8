"""A minimal QMP client: enough to stop a guest cleanly and to ask it questions.

QMP is QEMU's JSON control protocol on a UNIX socket; hmmbench uses it to ``quit`` a guest (so the
console file is flushed and closed by QEMU itself) and for ``human-monitor-command``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path


class QmpError(Exception):
    pass


class Qmp:
    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("r")
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while True:
            line = self.reader.readline()
            if not line:
                raise QmpError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command: str, **arguments: object) -> object:
        req: dict = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.sock.sendall((json.dumps(req) + "\n").encode())
        reply = self._read()
        if "error" in reply:
            raise QmpError(f"{command}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def close(self) -> None:
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass
