"""The test_hmm uapi (lib/test_hmm_uapi.h) through cffi: ioctl numbers and the command struct.

The truth is the header of the tree the kernel was built from: when hmmbench built the kernel, the
host reads that header and sends its numbers and ``struct hmm_dmirror_cmd`` layout with every request
(a series that inserts an ioctl renumbers every later one). For a machine whose tree hmmbench does not
have, the numbers come from a table per kernel version: Linux 6.0 renumbered them when MIGRATE_TO_SYS
was added (see the project's notes, section 4), so the same name means a different number on
5.14..5.19 and on >= 6.0. Probing is unsafe (nr 3 is SNAPSHOT on one and MIGRATE_TO_SYS on the other).
"""

from __future__ import annotations

from .kversion import parse_release

CMD_SIZE = 40  # five __u64
IOC_READ_WRITE = 3


def iowr(type_char: str, nr: int, size: int = CMD_SIZE) -> int:
    """_IOWR(type, nr, size) as on x86_64 (asm-generic/ioctl.h)."""
    return (IOC_READ_WRITE << 30) | (size << 16) | (ord(type_char) << 8) | nr


# (first version, {name: nr}); each row holds from its version until the next row's.
_TABLES: list[tuple[tuple[int, int], dict[str, int]]] = [
    ((5, 7), {"READ": 0, "WRITE": 1, "MIGRATE_TO_DEV": 2, "SNAPSHOT": 3}),
    ((5, 14), {"READ": 0, "WRITE": 1, "MIGRATE_TO_DEV": 2, "SNAPSHOT": 3, "EXCLUSIVE": 4,
               "CHECK_EXCLUSIVE": 5}),
    ((6, 0), {"READ": 0, "WRITE": 1, "MIGRATE_TO_DEV": 2, "MIGRATE_TO_SYS": 3, "SNAPSHOT": 4,
              "EXCLUSIVE": 5, "CHECK_EXCLUSIVE": 6}),
    ((6, 1), {"READ": 0, "WRITE": 1, "MIGRATE_TO_DEV": 2, "MIGRATE_TO_SYS": 3, "SNAPSHOT": 4,
              "EXCLUSIVE": 5, "CHECK_EXCLUSIVE": 6, "RELEASE": 7}),
    # HMM_DMIRROR_FLAGS came with zone-device THP support (first release unverified; present in 7.2).
    ((6, 19), {"READ": 0, "WRITE": 1, "MIGRATE_TO_DEV": 2, "MIGRATE_TO_SYS": 3, "SNAPSHOT": 4,
               "EXCLUSIVE": 5, "CHECK_EXCLUSIVE": 6, "RELEASE": 7, "FLAGS": 8}),
]


class UnknownUapi(Exception):
    """No ioctl table is known for this kernel version."""


def table_numbers(release: str) -> dict[str, int]:
    """Name -> ioctl nr for the kernel ``release`` from the version table."""
    version = parse_release(release)[:2]
    chosen = None
    for first, table in _TABLES:
        if version >= first:
            chosen = table
    if chosen is None:
        raise UnknownUapi(f"test_hmm has no ioctl interface before 5.7 (kernel {release})")
    return dict(chosen)


def numbers_for(release: str, spec: dict | None) -> dict[str, int]:
    """Name -> full request number: from the host's header spec when given, else the version table."""
    if spec and spec.get("requests"):
        return {name: int(v) for name, v in spec["requests"].items()}
    return ioctl_numbers(release)


DEFAULT_FIELDS = (("addr", "uint64_t"), ("ptr", "uint64_t"), ("npages", "uint64_t"), ("cpages", "uint64_t"),
                  ("faults", "uint64_t"))


def cmd_struct(fields) -> str:
    body = "".join(f"    {ctype} {name};\n" for name, ctype in fields)
    return f"struct hmm_dmirror_cmd {{\n{body}}};\n"


def libc_for(spec: dict | None) -> Libc:
    """The shared Libc, or one with the command struct the header declares when its layout differs."""
    fields = tuple(tuple(f) for f in (spec or {}).get("cmd_fields") or DEFAULT_FIELDS)
    if fields == DEFAULT_FIELDS:
        return shared_libc()
    return Libc(cmd_struct(fields))


def ioctl_numbers(release: str) -> dict[str, int]:
    """Name -> full ioctl request number for the kernel ``release`` (version table)."""
    return {name: iowr("H", nr) for name, nr in table_numbers(release).items()}


# HMM_DMIRROR_SNAPSHOT result bytes.
SNAPSHOT_FLAGS = {
    "ERROR": 0xFF, "NONE": 0x00, "READ": 0x01, "WRITE": 0x02, "PMD": 0x04, "PUD": 0x08, "ZERO": 0x10,
    "DEV_PRIVATE_LOCAL": 0x20, "DEV_PRIVATE_REMOTE": 0x30, "DEV_COHERENT_LOCAL": 0x40,
    "DEV_COHERENT_REMOTE": 0x50,
}


def decode_snapshot(byte: int) -> list[str]:
    """A SNAPSHOT byte as flag names (``['NONE']``, ``['READ']``, ``['WRITE', 'PMD']`` ...)."""
    if byte == 0xFF:
        return ["ERROR"]
    if byte == 0:
        return ["NONE"]
    names = [n for n in ("READ", "WRITE", "PMD", "PUD") if byte & SNAPSHOT_FLAGS[n]]
    # The high nibble is one value, not bits (lib/test_hmm.c dmirror_mkentry): ZERO 0x10, DEV_* 0x20..0x50.
    kind = byte & 0xF0
    for n in ("ZERO", "DEV_PRIVATE_LOCAL", "DEV_PRIVATE_REMOTE", "DEV_COHERENT_LOCAL", "DEV_COHERENT_REMOTE"):
        if kind == SNAPSHOT_FLAGS[n]:
            names.append(n)
    return names


LIBC_CDEF = """
int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
int mprotect(void *addr, size_t len, int prot);
int madvise(void *addr, size_t length, int advice);
long syscall(long number, ...);
void *memcpy(void *dest, const void *src, size_t n);
"""

PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x01, 0x02, 0x10, 0x20, 0x4000
MAP_HUGETLB, MAP_POPULATE = 0x40000, 0x8000
MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_PAGEOUT, MADV_MERGEABLE = 14, 15, 21, 12


class Libc:
    """cffi handle on libc plus the test_hmm command struct (ABI mode: no compiler on the target)."""

    def __init__(self, cmd_cdef: str | None = None) -> None:
        import cffi

        self.ffi = cffi.FFI()
        self.ffi.cdef((cmd_cdef or cmd_struct(DEFAULT_FIELDS)) + LIBC_CDEF)
        self.lib = self.ffi.dlopen(None)

    def addr(self, ptr) -> int:
        return int(self.ffi.cast("uintptr_t", self.ffi.cast("void *", ptr)))

    def mmap(self, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0, hint: int = 0):
        """mmap that raises OSError; returns a ``unsigned char *``."""
        p = self.lib.mmap(self.ffi.cast("void *", hint), length, prot, flags, fd, offset)
        if self.addr(p) == (1 << 64) - 1:
            err = self.ffi.errno
            raise OSError(err, f"mmap({length}, prot={prot}, flags={flags:#x}) failed")
        return self.ffi.cast("unsigned char *", p)

    def call(self, name: str, *args) -> tuple[int, int]:
        """Call a libc function, returning (return value, errno or 0)."""
        self.ffi.errno = 0
        ret = getattr(self.lib, name)(*args)
        return int(ret), (self.ffi.errno if ret == -1 else 0)


_SHARED: Libc | None = None


def shared_libc() -> Libc:
    """One Libc per process (cffi's cdef parse costs ~0.1 s under TCG); forked case processes inherit it."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Libc()
    return _SHARED


class Dmirror:
    """An open /dev/hmm_dmirrorN and the ioctls of the running kernel."""

    def __init__(self, libc: Libc, path: str, numbers: dict[str, int]) -> None:
        import os

        self.libc = libc
        self.path = path
        self.fd = os.open(path, os.O_RDWR)
        self.numbers = numbers

    def close(self) -> None:
        import os

        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def command(self, name: str, addr: int, npages: int, ptr=None) -> dict:
        """Issue ioctl ``name`` on [addr, addr + npages pages); return ret, errno, cpages, faults."""
        ffi = self.libc.ffi
        if name not in self.numbers:
            return {"ret": None, "errno": None, "unsupported": f"{name} not in this kernel's test_hmm uapi"}
        cmd = ffi.new("struct hmm_dmirror_cmd *")
        cmd.addr = addr
        cmd.ptr = self.libc.addr(ptr) if ptr is not None else 0
        cmd.npages = npages
        ret, err = self.libc.call("ioctl", self.fd, ffi.cast("unsigned long", self.numbers[name]),
                                  ffi.cast("void *", cmd))
        return {"ret": ret, "errno": err, "cpages": int(cmd.cpages), "faults": int(cmd.faults)}

    def prepared(self, name: str, addr: int, npages: int, ptr=None):
        """A zero-argument callable issuing ioctl ``name`` with its argument block built once; returns ret.

        For hot loops (the bench loop): building the block, casting and wrapping the result in a dict
        on every call costs more under TCG than the kernel's own work. ``.cmd`` holds the block, whose
        cpages/faults the kernel writes back on each call.
        """
        ffi = self.libc.ffi
        cmd = ffi.new("struct hmm_dmirror_cmd *")
        cmd.addr = addr
        cmd.ptr = self.libc.addr(ptr) if ptr is not None else 0
        cmd.npages = npages
        ioctl, fd = self.libc.lib.ioctl, self.fd
        request, arg = ffi.cast("unsigned long", self.numbers[name]), ffi.cast("void *", cmd)

        def call() -> int:
            return ioctl(fd, request, arg)

        call.cmd = cmd
        return call
