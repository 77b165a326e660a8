"""What ``make tinyconfig`` + fragments + ``make olddefconfig`` depend on, hashed into one fingerprint.

Why: configuring costs 12-13 s on 2 cores (two ``make`` runs, each evaluating every Kconfig file and its
``$(shell,...)`` toolchain probes), on every build of a new commit: a third of a series step or of a
bisection cycle, where the commit almost never touches Kconfig. A build directory whose ``.config`` was
produced from the same fingerprint gets the same ``.config`` again, so configure can keep it, and kbuild
then has no ``syncconfig`` to run either.

The fingerprint covers everything Kconfig reads: every ``Kconfig*`` file of the tree (a file added by a
commit is sourced from a listed one, which then changes), the base configs and merge snippets
(``kernel/configs``, ``arch/x86/configs``), the scripts Kconfig runs (``scripts/*.sh``) and its own program
(``scripts/kconfig``), the top Makefile (version, exported variables), the request itself, the make
command, and the tools Kconfig probes (which binary, its size and time).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from hmmbench import cache

STAMP_NAME = ".hmmbench-config-inputs"
# Directories whose every file is an input (relative to the tree); Kconfig* files anywhere are too.
INPUT_DIRS = ("kernel/configs", "arch/x86/configs", "scripts/kconfig")
PROBED_TOOLS = ("gcc", "ld", "as", "ccache", "rustc", "bindgen", "pahole", "clang", "ld.lld")


def _is_input(rel_dir: str, name: str) -> bool:
    """Whether file ``name`` in directory ``rel_dir`` (relative to the tree) is read by configuring."""
    if name.startswith("Kconfig"):
        return True
    if any(rel_dir == d or rel_dir.startswith(d + "/") for d in INPUT_DIRS):
        return not name.endswith((".o", ".cmd"))
    return (rel_dir == "scripts" and name.endswith(".sh")) or (rel_dir == "." and name == "Makefile")


def _tree_files(srctree: Path) -> list[str]:
    """Input files of the tree, relative and sorted: hidden directories (.git, hmmbench's build
    directories) are not the tree's."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(srctree):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = os.path.relpath(dirpath, srctree)
        found.extend(os.path.normpath(os.path.join(rel, n)) for n in filenames if _is_input(rel, n))
    return sorted(found)


def _tool_identity(name: str) -> str:
    path = shutil.which(name)
    if not path:
        return f"{name}:-"
    try:
        st = os.stat(path)
    except OSError:
        return f"{name}:{path}:?"
    return f"{name}:{os.path.realpath(path)}:{st.st_size}:{int(st.st_mtime)}"


def fingerprint(srctree: Path, request: str, make_cmd: list[str]) -> str:
    """One hash of every input of configuring ``srctree`` for ``request`` (base, fragments, arch)."""
    h = hashlib.sha256()
    h.update(request.encode())
    h.update("\0".join(make_cmd).encode())
    for tool in PROBED_TOOLS:
        h.update(_tool_identity(tool).encode())
    for rel in _tree_files(srctree):
        h.update(b"\0" + rel.encode() + b"\0")
        try:
            h.update((srctree / rel).read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    return h.hexdigest()


def still_valid(work_dir: Path, wanted: str) -> bool:
    """True when ``work_dir/.config`` is the one configure wrote from inputs ``wanted`` (and nobody
    edited it since)."""
    config = work_dir / ".config"
    try:
        recorded_inputs, recorded_config = (work_dir / STAMP_NAME).read_text().split()
        return recorded_inputs == wanted and cache.file_sha256(config) == recorded_config
    except (OSError, ValueError):
        return False


def forget(work_dir: Path) -> None:
    """Before configuring again: an interrupted configure must not leave a stamp for a half-written
    ``.config``."""
    (work_dir / STAMP_NAME).unlink(missing_ok=True)


def record(work_dir: Path, inputs: str) -> None:
    """After a configure whose result was verified."""
    stamp = work_dir / STAMP_NAME
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(f"{inputs} {cache.file_sha256(work_dir / '.config')}\n")
    os.replace(tmp, stamp)
