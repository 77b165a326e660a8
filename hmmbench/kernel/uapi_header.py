"""test_hmm's uapi as the kernel tree declares it: ``lib/test_hmm_uapi.h`` read on the host.

Why: the ioctl numbers are only known for sure from the tree the kernel was built from. A series that
inserts an ioctl renumbers every later one (such RFCs exist), and the guest's version table would then
issue the wrong request, silently. So when hmmbench builds a kernel it reads that tree's header (request
numbers and ``struct hmm_dmirror_cmd``), stores it with the build, and sends it with every request to
the guest; the version table stays for machines reached over SSH whose tree hmmbench does not have.
Where header and table disagree, results.json records it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hmmbench.guest import uapi

HEADER = Path("lib/test_hmm_uapi.h")

# _IOC direction bits as on x86_64 (asm-generic/ioctl.h): none 0, write 1, read 2.
_DIRECTIONS = {"_IO": 0, "_IOW": 1, "_IOR": 2, "_IOWR": 3}
_DEFINE = re.compile(r"^#define\s+HMM_DMIRROR_(\w+)\s+(_IOWR|_IOR|_IOW|_IO)\(\s*'(.)'\s*,\s*(0x[0-9a-fA-F]+|\d+)"
                     r"\s*(?:,\s*struct\s+(\w+)\s*)?\)", re.MULTILINE)
_STRUCT = re.compile(r"struct\s+hmm_dmirror_cmd\s*\{(.*?)\}\s*;", re.DOTALL)
_FIELD = re.compile(r"^\s*(__u64|__u32|__u16|__u8|__s64|__s32|__s16|__s8)\s+(\w+)\s*;", re.MULTILINE)
_CTYPES = {"__u64": ("uint64_t", 8), "__u32": ("uint32_t", 4), "__u16": ("uint16_t", 2), "__u8": ("uint8_t", 1),
           "__s64": ("int64_t", 8), "__s32": ("int32_t", 4), "__s16": ("int16_t", 2), "__s8": ("int8_t", 1)}


class HeaderError(Exception):
    """The header exists but cannot be read as test_hmm's uapi."""


@dataclass(frozen=True)
class UapiSpec:
    """Request numbers and the command struct of one tree's test_hmm."""

    source: str
    nrs: dict[str, int]
    requests: dict[str, int]
    cmd_fields: tuple[tuple[str, str], ...]
    table_disagreements: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """As the guest receives it and as results.json and the cache store it."""
        return {"source": self.source, "nrs": self.nrs, "requests": self.requests,
                "cmd_fields": [list(f) for f in self.cmd_fields], "table_disagreements": list(self.table_disagreements)}

    @classmethod
    def from_dict(cls, d: dict) -> UapiSpec:
        return cls(d["source"], dict(d["nrs"]), {k: int(v) for k, v in d["requests"].items()},
                   tuple(tuple(f) for f in d["cmd_fields"]), tuple(d.get("table_disagreements", ())))


def _struct_layout(text: str) -> tuple[tuple[tuple[str, str], ...], int]:
    m = _STRUCT.search(text)
    if not m:
        raise HeaderError("no struct hmm_dmirror_cmd")
    fields, size = [], 0
    for ktype, name in _FIELD.findall(m.group(1)):
        ctype, width = _CTYPES[ktype]
        size = (size + width - 1) // width * width + width
        fields.append((name, ctype))
    if not fields:
        raise HeaderError("struct hmm_dmirror_cmd has no fields hmmbench can read")
    align = max(_CTYPES[k][1] for k, _ in _FIELD.findall(m.group(1)))
    return tuple(fields), (size + align - 1) // align * align


def parse_header(text: str, source: str) -> UapiSpec:
    """The request numbers (``HMM_DMIRROR_X`` defines) and the command struct of a test_hmm_uapi.h."""
    fields, size = _struct_layout(text)
    nrs, requests = {}, {}
    for name, macro, type_char, nr_text, struct in _DEFINE.findall(text):
        nr = int(nr_text, 0)
        arg_size = size if struct == "hmm_dmirror_cmd" else 0
        nrs[name] = nr
        requests[name] = (_DIRECTIONS[macro] << 30) | (arg_size << 16) | (ord(type_char) << 8) | nr
    if not nrs:
        raise HeaderError("no HMM_DMIRROR_* ioctl defines")
    return UapiSpec(source, nrs, requests, fields)


def disagreements(spec: UapiSpec, release: str) -> list[str]:
    """Where the version table for ``release`` differs from the header (each as one readable line)."""
    try:
        table = uapi.ioctl_numbers(release)
    except (uapi.UnknownUapi, ValueError) as exc:
        return [f"no version table for {release}: {exc}"]
    out = []
    for name in sorted(set(table) | set(spec.requests)):
        want, have = spec.requests.get(name), table.get(name)
        if want != have:
            out.append(f"{name}: header {_show(want)}, version table {_show(have)}")
    if spec.cmd_fields != uapi.DEFAULT_FIELDS:
        out.append(f"struct hmm_dmirror_cmd: header {[n for n, _ in spec.cmd_fields]}, table assumes "
                   f"{[n for n, _ in uapi.DEFAULT_FIELDS]}")
    return out


def _show(request: int | None) -> str:
    return "absent" if request is None else f"nr {request & 0xFF} ({request:#x})"


def from_tree(tree: Path, release: str, label: str) -> UapiSpec | None:
    """The spec of the tree at ``tree`` (None when it has no test_hmm header: a pre-5.7 tree)."""
    path = tree / HEADER
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    spec = parse_header(text, f"{HEADER} of {label}")
    return UapiSpec(spec.source, spec.nrs, spec.requests, spec.cmd_fields, tuple(disagreements(spec, release)))
