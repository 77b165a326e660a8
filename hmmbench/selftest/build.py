"""The kernel's own HMM selftest (``tools/testing/selftests/mm/hmm-tests.c``), host side.

hmmbench's cases are one opinion about how device-exclusive memory must behave; the kernel's selftest
is the kernel's own. Running both on the same guest lets a report say whether they agree. This module

* builds ``hmm-tests`` from a kernel tree as a *static* x86_64 binary, so it can be copied into a
  minimal guest that has no matching libc, and caches it by (tree identity, compiler);
* maps the selftest's device-exclusive tests onto hmmbench's cases.

Its KTAP output is parsed by :mod:`hmmbench.selftest.ktap` (plans honoured, so a run cut short is told from a
short run); the names callers know from here (``parse_ktap``, ``SelftestResult``, ...) are re-exported.

The build never writes inside the kernel tree: uapi headers are generated with ``make O=...`` into a
temporary directory, and gcc runs with the tree's ``mm`` selftest directory as its working directory
only so that ``__FILE__`` in diagnostics reads ``hmm-tests.c:LINE`` exactly as an upstream build prints it.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hmmbench import cache, progress
from hmmbench.errors import HarnessError

ARCH = "x86_64"
BINARY = "hmm-tests"
SELFTEST_MM = Path("tools/testing/selftests/mm")
# Compile flags as tools/testing/selftests/lib.mk and mm/Makefile give them for x86_64, plus -static.
# -U_FORTIFY_SOURCE: mm/Makefile's own (distribution gccs fortify at -O2 and warn on unchecked read()).
# -D_GNU_SOURCE=: lib.mk builds every selftest with it. -no-pie: mm/Makefile on x86_64.
BASE_CFLAGS = ["-static", "-O2", "-Wall", "-U_FORTIFY_SOURCE", "-D_GNU_SOURCE=", "-no-pie"]
DEFAULT_LDLIBS = ["-lrt", "-lpthread", "-lm"]
# Helpers that mm/Makefile links into every test; used when the Makefile cannot be read.
HELPER_SOURCES = ("vm_util.c", "thp_settings.c", "hugepage_settings.c")
SUBPROCESS_TIMEOUT = 1800.0
RECIPE_VERSION = 1  # bump when the flags or the recipe change what is built

# hmm-tests' device-exclusive tests -> the hmmbench case that checks the same behaviour.
EXCLUSIVE_CASES: dict[str, str] = {
    "exclusive": "exclusive_basic",
    "exclusive_mprotect": "exclusive_mprotect",
    "exclusive_cow": "exclusive_fork",
}



# ====================================================================== building


@dataclass(frozen=True)
class Recipe:
    """What to compile and link for one tree: sources relative to its selftests/mm directory, and libs."""

    sources: tuple[str, ...]
    ldlibs: tuple[str, ...]


def gcc_version() -> str:
    """First line of ``gcc --version``: part of the cache key, since a new compiler means a new binary."""
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError as exc:
        raise HarnessError("gcc not found", "install build-essential and libc6-dev (ci/setup does)") from exc
    return out.splitlines()[0].strip() if out.strip() else "gcc (unknown version)"


def _makefile_logical_lines(text: str) -> list[str]:
    """The Makefile's lines with backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [line.split("#", 1)[0].rstrip() for line in joined.splitlines()]


def _is_gen_target(lines: list[str], var: str, name: str) -> bool:
    """Whether ``name`` is added to ``TEST_GEN_FILES``/``TEST_GEN_PROGS`` (``var``) anywhere."""
    pattern = re.compile(rf"^{var}\s*(?:\+|:)?=\s*(.*)$")
    return any((m := pattern.match(line)) and name in m.group(1).split() for line in lines)


def _targets_naming(lines: list[str], name: str) -> set[str]:
    """Make target spellings that cover ``name``: its own path and the lists it belongs to."""
    targets = {f"$(OUTPUT)/{name}", name}
    for var in ("TEST_GEN_FILES", "TEST_GEN_PROGS"):
        if _is_gen_target(lines, var, name):
            targets.add(f"$({var})")
    return targets


def recipe_from_makefile(mm_dir: Path, name: str = BINARY) -> Recipe | None:
    """Read the sources and libraries for ``name`` from the tree's mm/Makefile rules.

    Why parse rather than hard-code: the helper files changed between releases (6.12 links
    vm_util.c + thp_settings.c, 7.x vm_util.c + hugepage_settings.c), and the Makefile's
    ``$(TEST_GEN_FILES): ...`` prerequisite rules are the tree's own statement of what it needs.
    Returns None when the Makefile is missing or names no extra source, so the caller can probe.
    """
    try:
        lines = _makefile_logical_lines((mm_dir / "Makefile").read_text(errors="replace"))
    except OSError:
        return None
    targets = _targets_naming(lines, name)
    sources: list[str] = [f"{name}.c"]
    ldlibs: list[str] = []
    base_libs: list[str] | None = None
    rule = re.compile(r"^([^\t:=]+?)\s*:\s*(.*)$")
    for line in lines:
        if base_libs is None and (m := re.match(r"^LDLIBS\s*:?=\s*(.*)$", line)):
            base_libs = m.group(1).split()
            continue
        m = rule.match(line)
        if not m or m.group(2).startswith("=") or not targets & set(m.group(1).split()):
            continue
        prereqs = m.group(2)
        if (libs := re.match(r"^LDLIBS\s*\+=\s*(.*)$", prereqs)) is not None:
            ldlibs += libs.group(1).split()
        elif "=" not in prereqs:
            sources += [p for p in prereqs.split() if p.endswith(".c") and p not in sources]
    if len(sources) == 1:
        return None
    missing = [s for s in sources if not (mm_dir / s).is_file()]
    if missing:
        return None
    return Recipe(tuple(sources), tuple((base_libs or DEFAULT_LDLIBS) + ldlibs))


def recipe_by_probing(mm_dir: Path, name: str = BINARY) -> Recipe:
    """Fallback: hmm-tests.c plus every mm helper that exists, as mm/Makefile links them into every test."""
    helpers = [h for h in HELPER_SOURCES if (mm_dir / h).is_file()]
    return Recipe((f"{name}.c", *helpers), tuple(DEFAULT_LDLIBS))


def hmm_tests_recipe(tree_path: Path) -> Recipe:
    """The sources and libraries that build hmm-tests for this tree (Makefile first, probing second)."""
    mm_dir = tree_path / SELFTEST_MM
    if not (mm_dir / f"{BINARY}.c").is_file():
        raise HarnessError(
            f"{tree_path} has no {SELFTEST_MM / (BINARY + '.c')}",
            "hmm-tests exists since Linux 5.10; pass a kernel source tree that has it",
        )
    return recipe_from_makefile(mm_dir) or recipe_by_probing(mm_dir)


def compile_command(tree_path: Path, headers: Path, recipe: Recipe, output: Path) -> list[str]:
    """The gcc command line, run from the tree's selftests/mm directory.

    Include order follows lib.mk: the tree top (for <lib/test_hmm_uapi.h> and <mm/gup_test.h>), the
    tree's freshly generated uapi headers (newer than the host's linux-libc-dev), tools/include/uapi,
    and tools/testing/selftests (7.x includes "kselftest_harness.h" and <mm/vm_util.h> from there).
    """
    tree = tree_path.resolve()
    return [
        "gcc", *BASE_CFLAGS,
        "-I", str(tree),
        "-isystem", str(headers),
        "-isystem", str(tree / "tools" / "include" / "uapi"),
        "-I", str(tree / "tools" / "testing" / "selftests"),
        *recipe.sources,
        *recipe.ldlibs,
        "-o", str(output),
    ]


def headers_command(tree_path: Path, objdir: Path) -> list[str]:
    """``make headers`` out of tree: generates <objdir>/usr/include without configuring or touching the tree."""
    return ["make", "-C", str(tree_path.resolve()), f"O={objdir}", f"ARCH={ARCH}", "-j1", "headers"]


def _build_env(tmpdir: Path) -> dict[str, str]:
    """A predictable environment: C locale for parseable errors, no inherited make flags or O= dir."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "KBUILD_OUTPUT")}
    env["LC_ALL"] = "C"
    env["TMPDIR"] = str(tmpdir)
    return env


def _run_logged(cmd: list[str], log_path: Path, cwd: Path | None, env: dict[str, str]) -> int:
    """Run ``cmd`` appending its combined output to the log; returns the exit status."""
    with open(log_path, "a") as log:
        log.write(f"\n$ {'cd ' + str(cwd) + ' && ' if cwd else ''}{' '.join(cmd)}\n")
        log.flush()
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=SUBPROCESS_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            log.write(f"\nerror: timed out after {SUBPROCESS_TIMEOUT:.0f}s\n")
            return -1
        log.write(f"[exit status {proc.returncode}]\n")
        return proc.returncode


def first_error_line(log_text: str) -> str | None:
    """The first line that says what went wrong: a compiler or linker error, else make's own error.

    Position decides among compiler/linker lines, so ld's ``cannot find -lc`` wins over the
    ``collect2: error: ld returned 1 exit status`` that merely follows it.
    """
    for pattern in (r"\b(fatal )?error:|undefined reference|cannot find -l", r"\*\*\*|^error: timed out"):
        for line in log_text.splitlines():
            if re.search(pattern, line):
                return line.strip()
    return None


def _failure(what: str, log_path: Path) -> HarnessError:
    """A HarnessError naming the first error line, with the log path as the hint."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    head = first_error_line(text) or "see the log"
    hint = f"full log: {log_path}"
    if "cannot find -lc" in text or "cannot find -lpthread" in text:
        hint += "; static glibc is missing: apt-get install libc6-dev"
    return HarnessError(f"{what} failed: {head}", hint)


# ---------------------------------------------------------------------- ELF checks


def _elf_header(fh: BinaryIO, path: Path) -> bytes:
    """The 64-byte header of a 64-bit little-endian ELF file, or HarnessError for anything else."""
    ehdr = fh.read(64)
    if len(ehdr) < 64 or ehdr[:4] != b"\x7fELF" or ehdr[4] != 2 or ehdr[5] != 1:
        raise HarnessError(f"{path} is not a 64-bit little-endian ELF file")
    return ehdr


def elf_program_header_types(path: Path) -> list[int]:
    """p_type of every program header of a 64-bit little-endian ELF file."""
    with open(path, "rb") as fh:
        ehdr = _elf_header(fh, path)
        phoff = struct.unpack_from("<Q", ehdr, 32)[0]
        phentsize, phnum = struct.unpack_from("<HH", ehdr, 54)
        types = []
        for i in range(phnum):
            fh.seek(phoff + i * phentsize)
            types.append(struct.unpack("<I", fh.read(4))[0])
        return types


def elf_machine(path: Path) -> int:
    """e_machine of a 64-bit ELF file (62 is x86_64)."""
    with open(path, "rb") as fh:
        return struct.unpack_from("<H", _elf_header(fh, path), 18)[0]


PT_INTERP = 3
EM_X86_64 = 62


def is_static_x86_64(path: Path) -> bool:
    """True for an x86_64 ELF with no PT_INTERP: it needs no dynamic loader, so it runs on any x86_64 guest."""
    return elf_machine(path) == EM_X86_64 and PT_INTERP not in elf_program_header_types(path)


# ---------------------------------------------------------------------- the build


def selftest_dir(identity: str, gcc: str | None = None) -> Path:
    """The cache entry for hmm-tests built from the tree ``identity`` with this host's gcc."""
    return cache.cache_root() / "selftests" / cache.stable_hash(identity, BINARY, gcc or gcc_version(),
                                                                RECIPE_VERSION)


def _cached_binary(final_dir: Path) -> Path | None:
    """The published binary, if this entry is complete (manifest written last inside the temp dir)."""
    binary = final_dir / BINARY
    if binary.is_file() and (final_dir / "manifest.json").is_file():
        return binary
    return None


def _compile(tree_path: Path, work: Path, log_path: Path, label: str) -> tuple[list[str], Recipe]:
    """Generate uapi headers into ``work/kobj`` and compile the static binary to ``work/hmm-tests``."""
    env = _build_env(work)
    objdir = work / "kobj"
    recipe = hmm_tests_recipe(tree_path)  # first: a tree without hmm-tests.c fails before make runs
    with progress.step(f"generating uapi headers from {label} (make O=... headers)"):
        if _run_logged(headers_command(tree_path, objdir), log_path, None, env) != 0:
            raise _failure(f"make headers for {label}", log_path)
    cmd = compile_command(tree_path, objdir / "usr" / "include", recipe, work / BINARY)
    with progress.step(f"compiling static {BINARY} ({' '.join(recipe.sources)})"):
        if _run_logged(cmd, log_path, tree_path / SELFTEST_MM, env) != 0:
            raise _failure(f"compiling {BINARY} for {label}", log_path)
    if not is_static_x86_64(work / BINARY):
        raise HarnessError(f"{BINARY} for {label} is not a static x86_64 executable", f"full log: {log_path}")
    shutil.rmtree(objdir, ignore_errors=True)
    return cmd, recipe


def build_hmm_tests(tree_path: Path, identity: str) -> Path:
    """Build (or return from the cache) a static x86_64 ``hmm-tests`` for the kernel tree at ``tree_path``.

    ``identity`` is the tree's content identity (``KernelTree.identity``): together with the gcc
    version it keys the cache, so one tree is compiled once per machine and compiler. The log of a
    failed build is kept beside the entry (``<key>.build.log``) because the temporary entry is deleted.
    """
    gcc = gcc_version()
    final_dir = selftest_dir(identity, gcc)
    label = tree_path.name
    if hit := _cached_binary(final_dir):
        progress.say(f"{BINARY} for {label} from cache ({hit})")
        return hit
    with cache.locked(final_dir.with_suffix(".lock")):
        if hit := _cached_binary(final_dir):
            return hit
        log_path = final_dir.with_name(f"{final_dir.name}.build.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"# {BINARY} for {tree_path} ({identity}) with {gcc}\n")
        start = time.monotonic()
        with progress.step(f"building static {BINARY} for {label}"), cache.publishing(final_dir) as tmp:
            cmd, recipe = _compile(tree_path, tmp, log_path, label)
            os.replace(log_path, tmp / "build.log")
            cache.write_json(tmp / "manifest.json", {
                "identity": identity,
                "tree_path": str(tree_path),
                "gcc": gcc,
                "sources": list(recipe.sources),
                "ldlibs": list(recipe.ldlibs),
                # As run, with the temporary entry's path shown as the published one (the headers are not kept).
                "headers_command": headers_command(tree_path, final_dir / "kobj"),
                "compile_command": [arg.replace(str(tmp), str(final_dir)) for arg in cmd],
                "compile_cwd": str(tree_path / SELFTEST_MM),
                "build_seconds": round(time.monotonic() - start, 1),
            })
    return final_dir / BINARY
