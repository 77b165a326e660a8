"""Kernel release strings as version tuples (shared by the guest's ioctl table and the host's rules)."""

from __future__ import annotations

import re


def parse_release(release: str) -> tuple[int, int, int]:
    """``6.12.117-hmmbench`` -> (6, 12, 117); ``7.2.0-rc3`` -> (7, 2, 0)."""
    m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", release.strip())
    if not m:
        raise ValueError(f"not a kernel release: {release!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
