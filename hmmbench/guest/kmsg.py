"""A cursor on /dev/kmsg: the kernel messages printed while one case ran.

Opening /dev/kmsg and seeking to its end gives a cursor at the newest record; reading it afterwards
returns exactly what the kernel logged in between, with sequence numbers, so a WARNING is attributed
to the case that triggered it. The serial console is parsed on the host as a second source (it still
has the messages when the target dies mid-case).
"""

from __future__ import annotations

import os


def parse_record(data: bytes) -> dict | None:
    """One /dev/kmsg record: ``prio,seq,ts_usec,flags;text`` plus indented dictionary lines."""
    text = data.decode(errors="replace")
    header, sep, rest = text.partition(";")
    if not sep:
        return None
    fields = header.split(",")
    try:
        prio, seq, ts = int(fields[0]), int(fields[1]), int(fields[2])
    except (ValueError, IndexError):
        return None
    message = rest.split("\n", 1)[0]
    return {"seq": seq, "level": prio & 7, "facility": prio >> 3, "ts_usec": ts, "text": message}


class KmsgCursor:
    """Remembers where the kernel log ended; :meth:`read_new` returns what came after."""

    def __init__(self, path: str = "/dev/kmsg") -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)
        self.lost = 0

    def read_new(self) -> list[dict]:
        records = []
        while True:
            try:
                data = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # records were overwritten before we read them
                self.lost += 1
                continue
            if not data:
                break
            rec = parse_record(data)
            if rec:
                records.append(rec)
        return records

    def close(self) -> None:
        os.close(self.fd)


def tainted() -> int | None:
    try:
        with open("/proc/sys/kernel/tainted") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None
