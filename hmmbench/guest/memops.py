"""Small memory operations the cases share: patterns, one-touch-per-page loops, files, sysfs.

The touch loops index a ``unsigned char *`` from cffi, so each iteration is one real load or store
by the CPU on that page (the way a page fault is provoked), with no Python allocation in between that
could add minor faults of its own.
"""

from __future__ import annotations

import os
from array import array


def pattern(npages: int, page_size: int, seed: int = 0) -> bytes:
    """hmm-tests' pattern (the buffer as int32s holds seed, seed+1, ...)."""
    return array("i", range(seed, seed + npages * page_size // 4)).tobytes()


def touch_read(p, npages: int, page_size: int, start: int = 0, step: int = 1) -> int:
    total = 0
    for i in range(start, npages, step):
        total += p[i * page_size]
    return total


def touch_write(p, npages: int, page_size: int, start: int = 0, step: int = 1) -> None:
    for i in range(start, npages, step):
        p[i * page_size] = p[i * page_size]


def write_file(path: str, text: str) -> tuple[bool, str]:
    """Write a sysfs/procfs file; (ok, error) instead of an exception, since errors are observations."""
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        return True, ""
    except OSError as exc:
        return False, f"{type(exc).__name__}: errno {exc.errno} ({os.strerror(exc.errno or 0)})"


def read_file(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def smaps_field(addr: int, field: str) -> int | None:
    """A kB field (AnonHugePages, Rss, Swap ...) of the VMA containing ``addr`` in /proc/self/smaps."""
    text = read_file("/proc/self/smaps") or ""
    inside = False
    for line in text.splitlines():
        head = line.split()[0] if line else ""
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and line.startswith(field + ":"):
            return int(line.split()[1])
    return None
