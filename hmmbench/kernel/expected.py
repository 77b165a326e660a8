"""What a given kernel version is expected to do, from the project's notes (device-exclusive facts).

These are the *expectations* the host's verdict rules compare observations with. Where the notes are
unverified the rule says so, and a run that disagrees is evidence against the note, not a crash.
"""

from __future__ import annotations

from hmmbench.guest.kversion import parse_release

SERIES_MERGED = (6, 15)  # "mm: fixes for device-exclusive entries (hmm)" landed in v6.15-rc1


def has_series(release: str) -> bool:
    return parse_release(release)[:2] >= SERIES_MERGED


def device_exclusive_swap_types(release: str) -> dict[str, int] | None:
    """Swap type(s) of a device-exclusive PTE on x86_64 (notes section 3.1); None if not derivable.

    6.2 .. 6.14: SWP_DEVICE_EXCLUSIVE_WRITE 29 / _READ 30; >= 6.15: single SWP_DEVICE_EXCLUSIVE 30;
    5.14 .. 5.18: 30 / 31. 5.19 .. 6.1 depends on config (PTE markers): use the calibration.
    """
    v = parse_release(release)[:2]
    if v >= SERIES_MERGED:
        return {"exclusive": 30}
    if v >= (6, 2):
        return {"write": 29, "read": 30}
    if (5, 14) <= v < (5, 19):
        return {"write": 30, "read": 31}
    return None


def expected_from_calibration(device_private_type: int, release: str) -> dict[str, int]:
    """Device-exclusive types derived from the device-private write type T (notes 3.2 step 4)."""
    if has_series(release):
        return {"exclusive": device_private_type + 2}
    return {"write": device_private_type + 2, "read": device_private_type + 3}
