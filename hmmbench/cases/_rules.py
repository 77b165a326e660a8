"""Helpers the verdict rules share: decoding recorded pagemap lists and describing ioctl results."""

from __future__ import annotations

import errno
from collections import Counter

from hmmbench import kernelfacts
from hmmbench.guest.pagemap import decode_pagemap

# Python's errorcode picks ENOTSUP for 95 and EDEADLOCK for 35; the kernel returns -EOPNOTSUPP and -EDEADLK.
_KERNEL_NAMES = {errno.EOPNOTSUPP: "EOPNOTSUPP", errno.EDEADLK: "EDEADLK"}


def errname(value: int | None) -> str:
    if not value:
        return "0"
    return _KERNEL_NAMES.get(value) or errno.errorcode.get(value, str(value))


def ioctl_text(r: dict) -> str:
    if r.get("unsupported"):
        return r["unsupported"]
    return f"ret={r.get('ret')} errno={errname(r.get('errno'))} cpages={r.get('cpages')}"


def ok_ioctl(r: dict, npages: int | None = None) -> bool:
    return r.get("ret") == 0 and (npages is None or r.get("cpages") == npages)


def failed_with(r: dict, *names: str) -> bool:
    return r.get("ret") == -1 and errname(r.get("errno")) in names


def decoded(entries: list[int]) -> list[dict]:
    return [decode_pagemap(e) for e in entries]


def count(items: list[bool]) -> str:
    return f"{sum(items)}/{len(items)}"


def exclusive_types(release: str) -> set[int]:
    """Every swap type a device-exclusive entry may have on this kernel (write and read variants)."""
    table = kernelfacts.device_exclusive_swap_types(release) or {}
    return set(table.values())


def is_exclusive(d: dict, types: set[int]) -> bool:
    return not d["present"] and d["swap"] and d.get("swap_type") in types


def type_histogram(entries: list[int]) -> dict[int, int]:
    return dict(Counter(d.get("swap_type") for d in decoded(entries) if d["swap"]))


def pfns(entries: list[int]) -> list[int]:
    return [d.get("pfn", d.get("swap_offset", 0)) for d in decoded(entries)]


def all_present_same(entries: list[int], before: list[int]) -> bool:
    now = decoded(entries)
    return all(d["present"] for d in now) and pfns(entries) == pfns(before)
