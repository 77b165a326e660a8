"""lib/test_hmm_uapi.h read on the host: request numbers and the command struct come from the tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmmbench.guest import uapi
from hmmbench.kernel import uapi_header

HEADER_612 = """
struct hmm_dmirror_cmd {
	__u64		addr;
	__u64		ptr;
	__u64		npages;
	__u64		cpages;
	__u64		faults;
};
#define HMM_DMIRROR_READ		_IOWR('H', 0x00, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_WRITE		_IOWR('H', 0x01, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_DEV	_IOWR('H', 0x02, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_SYS	_IOWR('H', 0x03, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_SNAPSHOT		_IOWR('H', 0x04, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_EXCLUSIVE		_IOWR('H', 0x05, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_CHECK_EXCLUSIVE	_IOWR('H', 0x06, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_RELEASE		_IOWR('H', 0x07, struct hmm_dmirror_cmd)
"""


def renumbered(text: str) -> str:
    """The same header with an ioctl inserted before EXCLUSIVE, as an RFC series would do it."""
    lines = []
    for line in text.splitlines():
        for name, nr in (("EXCLUSIVE", 5), ("CHECK_EXCLUSIVE", 6), ("RELEASE", 7)):
            if line.startswith(f"#define HMM_DMIRROR_{name}\t"):
                line = line.replace(f"0x{nr:02x}", f"0x{nr + 1:02x}")
                if name == "EXCLUSIVE":
                    lines.append("#define HMM_DMIRROR_EXTRA\t\t_IOWR('H', 0x05, struct hmm_dmirror_cmd)")
        lines.append(line)
    return "\n".join(lines)


def test_a_612_header_gives_the_612_version_table() -> None:
    spec = uapi_header.parse_header(HEADER_612, "test")
    assert spec.requests == uapi.ioctl_numbers("6.12.117")
    assert spec.cmd_fields == uapi.DEFAULT_FIELDS
    assert uapi_header.disagreements(spec, "6.12.117") == []


def test_a_renumbered_header_wins_and_the_disagreement_is_named() -> None:
    spec = uapi_header.parse_header(renumbered(HEADER_612), "test")
    assert spec.nrs["EXTRA"] == 5 and spec.nrs["EXCLUSIVE"] == 6 and spec.nrs["RELEASE"] == 8
    assert spec.requests["EXCLUSIVE"] == uapi.iowr("H", 6)
    found = uapi_header.disagreements(spec, "6.12.117")
    assert any(line.startswith("EXCLUSIVE: header nr 6") and "version table nr 5" in line for line in found)
    assert any(line.startswith("EXTRA: header nr 5") and "absent" in line for line in found)
    # The guest uses the header's numbers when the host sends them, the table otherwise.
    assert uapi.numbers_for("6.12.117", spec.to_dict())["EXCLUSIVE"] == uapi.iowr("H", 6)
    assert uapi.numbers_for("6.12.117", None)["EXCLUSIVE"] == uapi.iowr("H", 5)


def test_a_changed_struct_changes_the_request_size_and_the_guest_struct() -> None:
    text = HEADER_612.replace("\t__u64\t\tfaults;\n", "\t__u64\t\tfaults;\n\t__u32\t\tflags;\n")
    spec = uapi_header.parse_header(text, "test")
    assert spec.cmd_fields[-1] == ("flags", "uint32_t")
    assert (spec.requests["READ"] >> 16) & 0x3FFF == 48  # 44 bytes padded to the struct's 8-byte alignment
    assert "struct hmm_dmirror_cmd" in uapi_header.disagreements(spec, "6.12.117")[-1]
    libc = uapi.libc_for(spec.to_dict())
    assert libc.ffi.sizeof("struct hmm_dmirror_cmd") == 48


def test_round_trip_through_json() -> None:
    spec = uapi_header.parse_header(renumbered(HEADER_612), "x")
    assert uapi_header.UapiSpec.from_dict(spec.to_dict()) == spec


def test_a_header_without_defines_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(uapi_header.HeaderError):
        uapi_header.parse_header("struct hmm_dmirror_cmd { __u64 addr; };", "x")
    assert uapi_header.from_tree(tmp_path, "6.12.0", "empty") is None  # a tree without test_hmm


def test_the_fetched_trees_headers_parse(tmp_path: Path) -> None:
    from hmmbench import cache

    found = 0
    for name, release in (("debian-6.12", "6.12.117"), ("debian-7.2", "7.2.13")):
        record = cache.read_json(cache.cache_root() / "sources" / f"{name}.json")
        if not record or not Path(record["path"]).is_dir():
            continue
        spec = uapi_header.from_tree(Path(record["path"]), release, name)
        assert spec is not None and spec.table_disagreements == (), spec
        found += 1
    if not found:
        pytest.skip("no Debian tree fetched (hmmbench kernel fetch debian-6.12)")
