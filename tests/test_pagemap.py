"""pagemap / kpageflags decoding on values seen in real guests (notes: machine-facts.md, last section)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from hmmbench.guest import pagemap
from hmmbench.guest.pagemap import decode_kpageflags, decode_pagemap, pfns_of

PFN = 522880  # the page the 6.12.117 and 7.2.13 guests showed, before and while device-exclusive

# Built from the documented layout (Documentation/admin-guide/mm/pagemap.rst) ...
PRESENT_EXCL = (1 << 63) | (1 << 56) | PFN
SWAP_612 = (1 << 62) | (PFN << 5) | 29  # SWP_DEVICE_EXCLUSIVE_WRITE on 6.2 .. 6.14
SWAP_72 = (1 << 62) | (PFN << 5) | 30  # the single SWP_DEVICE_EXCLUSIVE from 6.15 on

# ... and the same values written out by hand: 522880 = 0x7FA80, 0x7FA80 << 5 = 0xFF5000, 29 = 0x1D.
PRESENT_EXCL_HEX = 0x810000000007FA80
SWAP_612_HEX = 0x4000000000FF501D
SWAP_72_HEX = 0x4000000000FF501E


def test_hand_written_constants_match_the_layout() -> None:
    assert PRESENT_EXCL == PRESENT_EXCL_HEX
    assert SWAP_612 == SWAP_612_HEX
    assert SWAP_72 == SWAP_72_HEX


def test_present_exclusively_mapped_page() -> None:
    d = decode_pagemap(PRESENT_EXCL_HEX)
    assert d["present"] is True
    assert d["swap"] is False
    assert d["mmap_exclusive"] is True
    assert d["pfn"] == 522880
    assert not d["file"] and not d["soft_dirty"] and not d["uffd_wp"] and not d["guard"]
    assert "swap_type" not in d and "swap_offset" not in d


@pytest.mark.parametrize(("raw", "swap_type"), [(SWAP_612_HEX, 29), (SWAP_72_HEX, 30)])
def test_device_exclusive_swap_entry(raw: int, swap_type: int) -> None:
    d = decode_pagemap(raw)
    assert d["present"] is False
    assert d["swap"] is True
    assert d["swap_type"] == swap_type
    assert d["swap_offset"] == 522880
    assert "pfn" not in d
    # Exclusive entries are anon-only and non-present: neither PM_FILE nor PM_MMAP_EXCLUSIVE.
    assert not d["file"] and not d["mmap_exclusive"]


def test_swap_type_uses_only_five_bits() -> None:
    d = decode_pagemap((1 << 62) | (1 << 5) | 31)
    assert d["swap_type"] == 31
    assert d["swap_offset"] == 1


def test_flag_bits() -> None:
    d = decode_pagemap((1 << 63) | (1 << 55) | (1 << 57) | (1 << 61) | 7)
    assert d["soft_dirty"] and d["uffd_wp"] and d["file"]
    assert not d["mmap_exclusive"] and not d["guard"]
    assert d["pfn"] == 7
    assert decode_pagemap(1 << 58)["guard"] is True


def test_without_cap_sys_admin_the_pfn_reads_as_zero() -> None:
    # The kernel zeroes bits 0-54 for an opener without CAP_SYS_ADMIN.
    hidden_present = PRESENT_EXCL_HEX & ~((1 << 55) - 1)
    assert hidden_present == 0x8100000000000000
    d = decode_pagemap(hidden_present)
    assert d["present"] and d["pfn"] == 0
    hidden_swap = SWAP_612_HEX & ~((1 << 55) - 1)
    d = decode_pagemap(hidden_swap)
    assert d["swap"] and d["swap_type"] == 0 and d["swap_offset"] == 0


def test_unmapped_entry() -> None:
    d = decode_pagemap(0)
    assert not d["present"] and not d["swap"]
    assert "pfn" not in d and "swap_type" not in d


def test_pfns_of() -> None:
    hidden = 0x8100000000000000
    assert pfns_of([PRESENT_EXCL_HEX, SWAP_612_HEX, SWAP_72_HEX, 0, hidden]) == [522880, 522880, 522880, 0, 0]
    assert pfns_of([]) == []


def test_decode_kpageflags() -> None:
    # ANON (12) | MMAP (11) | LRU (5) = 0x1820: a mapped anonymous page on an LRU list.
    assert decode_kpageflags(0x1820) == ["LRU", "MMAP", "ANON"]
    assert decode_kpageflags(0) == []
    # UPTODATE (3) | SWAPBACKED (14) | THP (22), the kernel-internal MAPPEDTODISK (34, aliased by
    # PG_anon_exclusive, seen on every anonymous THP page of a 6.12 guest) and an unknown high bit.
    assert decode_kpageflags((1 << 3) | (1 << 14) | (1 << 22) | (1 << 34) | (1 << 50)) == [
        "UPTODATE", "SWAPBACKED", "THP", "MAPPEDTODISK", "BIT50"]
    assert decode_kpageflags(1 << 26) == ["PGTABLE"]


def _write_u64s(path: Path, values: list[int]) -> None:
    path.write_bytes(struct.pack(f"<{len(values)}Q", *values))


def test_read_u64s_little_endian_and_indexing(tmp_path: Path) -> None:
    f = tmp_path / "pagemap"
    values = [0, PRESENT_EXCL_HEX, SWAP_612_HEX, 0x0102030405060708]
    _write_u64s(f, values)
    assert pagemap._read_u64s(str(f), 0, 4) == values
    assert pagemap._read_u64s(str(f), 2, 1) == [SWAP_612_HEX]
    # Little-endian on disk: the first byte of entry 3 is the low byte 0x08.
    assert f.read_bytes()[24] == 0x08
    assert pagemap._read_u64s(str(f), 3, 1) == [0x0102030405060708]


def test_read_u64s_short_file(tmp_path: Path) -> None:
    f = tmp_path / "short"
    _write_u64s(f, [1, 2])
    assert pagemap._read_u64s(str(f), 1, 5) == [2]
    assert pagemap._read_u64s(str(f), 7, 1) == []
    # A trailing partial entry is dropped, not mis-decoded.
    f.write_bytes(struct.pack("<Q", 5) + b"\x01\x02\x03")
    assert pagemap._read_u64s(str(f), 0, 2) == [5]


def test_read_pagemap_uses_virtual_page_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = pagemap._read_u64s

    def fake(path: str, index: int, count: int) -> list[int]:
        calls.append((path, index, count))
        return real(str(tmp_path / "pm"), index, count)

    _write_u64s(tmp_path / "pm", [0] * 16 + [PRESENT_EXCL_HEX, SWAP_72_HEX])
    monkeypatch.setattr(pagemap, "_read_u64s", fake)
    out = pagemap.read_pagemap(16 * 4096, 2, pid="1234")
    assert out == [PRESENT_EXCL_HEX, SWAP_72_HEX]
    assert calls == [("/proc/1234/pagemap", 16, 2)]


def test_read_kpageflags_skips_pfn_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake /proc/kpageflags: PFN 522880 holds 0x1820, PFN 99 reads short (nothing there).
    seen = []
    opened = []

    def fake_open(path: str, flags: int) -> int:
        opened.append(path)
        return 12345

    def fake_pread(fd: int, size: int, offset: int) -> bytes:
        seen.append(("/proc/kpageflags", offset // 8))
        return struct.pack("<Q", 0x1820) if offset == 522880 * 8 else b""

    monkeypatch.setattr(pagemap.os, "open", fake_open)
    monkeypatch.setattr(pagemap.os, "pread", fake_pread)
    monkeypatch.setattr(pagemap.os, "close", lambda fd: None)
    assert pagemap.read_kpageflags([522880, 0, 99]) == [0x1820, None, None]
    assert seen == [("/proc/kpageflags", 522880), ("/proc/kpageflags", 99)]
    assert opened == ["/proc/kpageflags"]  # opened once for all PFNs
