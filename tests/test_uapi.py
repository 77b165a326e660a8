"""test_hmm ioctl numbers per kernel version (notes section 4) and SNAPSHOT byte decoding."""

from __future__ import annotations

import pytest

from hmmbench.guest.kversion import parse_release
from hmmbench.guest.uapi import UnknownUapi, decode_snapshot, ioctl_numbers, iowr


def test_iowr_matches_the_x86_64_encoding() -> None:
    # _IOWR('H', 0, struct hmm_dmirror_cmd): dir 3 << 30, size 40 << 16, 'H' = 0x48 << 8.
    assert iowr("H", 0) == 0xC0284800
    assert iowr("H", 5) == 0xC0284805


def test_6_12_numbers() -> None:
    n = ioctl_numbers("6.12.117")
    assert n["READ"] == 0xC0284800
    assert n["SNAPSHOT"] == 0xC0284804
    assert n["EXCLUSIVE"] == 0xC0284805
    assert n["CHECK_EXCLUSIVE"] == 0xC0284806
    assert n["MIGRATE_TO_SYS"] == 0xC0284803
    assert n["RELEASE"] == 0xC0284807
    assert "FLAGS" not in n


def test_5_15_before_the_6_0_renumbering() -> None:
    n = ioctl_numbers("5.15.0")
    assert n["EXCLUSIVE"] == 0xC0284804
    assert n["CHECK_EXCLUSIVE"] == 0xC0284805
    assert n["SNAPSHOT"] == 0xC0284803
    assert "MIGRATE_TO_SYS" not in n
    # The same name means a different number on either side of 6.0.
    assert n["SNAPSHOT"] != ioctl_numbers("6.0")["SNAPSHOT"]


def test_5_10_has_no_exclusive() -> None:
    n = ioctl_numbers("5.10.200")
    assert "EXCLUSIVE" not in n and "CHECK_EXCLUSIVE" not in n
    assert n["SNAPSHOT"] == 0xC0284803


def test_6_0_has_migrate_to_sys_but_no_release() -> None:
    n = ioctl_numbers("6.0.19")
    assert n["MIGRATE_TO_SYS"] == 0xC0284803
    assert "RELEASE" not in n


def test_6_1_has_release() -> None:
    assert ioctl_numbers("6.1.0")["RELEASE"] == 0xC0284807


def test_7_2_has_flags() -> None:
    n = ioctl_numbers("7.2.13")
    assert n["FLAGS"] == 0xC0284808
    assert n["EXCLUSIVE"] == 0xC0284805


def test_5_4_is_unknown() -> None:
    with pytest.raises(UnknownUapi, match="5.4"):
        ioctl_numbers("5.4.0-150-generic")


@pytest.mark.parametrize(("release", "version"), [
    ("6.12.117-hmmbench", (6, 12, 117)),
    ("7.2.0-rc3", (7, 2, 0)),
    ("6.12.117-1~deb12u1", (6, 12, 117)),
    ("6.15-rc1", (6, 15, 0)),
    ("  6.1.0\n", (6, 1, 0)),
])
def test_release_strings_parse(release: str, version: tuple[int, int, int]) -> None:
    assert parse_release(release) == version


def test_suffixed_releases_pick_the_right_table() -> None:
    assert ioctl_numbers("6.12.117-hmmbench")["EXCLUSIVE"] == 0xC0284805
    assert ioctl_numbers("7.2.0-rc3")["FLAGS"] == 0xC0284808


def test_garbage_release_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_release("linux")


@pytest.mark.parametrize(("byte", "names"), [
    (0x00, ["NONE"]),
    (0x01, ["READ"]),
    (0x02, ["WRITE"]),
    (0x06, ["WRITE", "PMD"]),
    (0x11, ["READ", "ZERO"]),
    (0x22, ["WRITE", "DEV_PRIVATE_LOCAL"]),
    # The high nibble is one value (lib/test_hmm.c dmirror_mkentry), not bits: 0x30 is REMOTE, not ZERO|LOCAL.
    (0x31, ["READ", "DEV_PRIVATE_REMOTE"]),
    (0x42, ["WRITE", "DEV_COHERENT_LOCAL"]),
    (0x51, ["READ", "DEV_COHERENT_REMOTE"]),
    (0x0A, ["WRITE", "PUD"]),
    (0xFF, ["ERROR"]),
])
def test_decode_snapshot(byte: int, names: list[str]) -> None:
    assert decode_snapshot(byte) == names
