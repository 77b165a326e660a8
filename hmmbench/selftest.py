"""The kernel's own HMM selftest (``tools/testing/selftests/mm/hmm-tests.c``), host side.

hmmbench's cases are one opinion about how device-exclusive memory must behave; the kernel's selftest
is the kernel's own. Running both on the same guest lets a report say whether they agree. This module

* builds ``hmm-tests`` from a kernel tree as a *static* x86_64 binary, so it can be copied into a
  minimal guest that has no matching libc, and caches it by (tree identity, compiler);
* parses the KTAP/TAP that the kselftest harness prints into one ``SelftestResult`` per test, including
  a test that never reported because the guest crashed or hung under it;
* maps the selftest's device-exclusive tests onto hmmbench's cases.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
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

STATUSES = ("PASS", "FAIL", "SKIP", "XFAIL", "XPASS", "ERROR")
NO_RESULT_REASON = "no result line (output ended: crash or timeout?)"


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


# ====================================================================== parsing


@dataclass(frozen=True)
class SelftestResult:
    """One test's outcome as kselftest reported it.

    ``name`` is the harness's full name (``hmm.hmm_device_private.exclusive``); ``directive`` is the TAP
    directive as printed (``SKIP``, ``XFAIL``, ...) or empty; ``reason`` the text after it (or after a
    bare ``#``); ``diagnostics`` are the lines printed while the test ran (``# hmm-tests.c:1817:...``,
    the harness's ``# exclusive: Test terminated by assertion``, and any unprefixed stderr or console
    lines), verbatim, because they are what a person reads to see why it failed.
    """

    name: str
    status: str
    number: int | None = None
    directive: str = ""
    reason: str = ""
    diagnostics: tuple[str, ...] = field(default_factory=tuple)

    @property
    def test(self) -> str:
        """The test's own name, the last component (``exclusive``): what EXCLUSIVE_CASES is keyed by."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def variant(self) -> str:
        """The fixture variant (``hmm_device_private``), or empty for a test without one."""
        parts = self.name.split(".")
        return parts[1] if len(parts) == 3 else ""


_PREFIX = r"(?P<pre>(?:# |    )*)"
_RESULT = re.compile(_PREFIX + r"(?P<ok>not ok|ok)\s+(?P<num>\d+)\b\s*(?P<rest>.*)$")
_RUN = re.compile(_PREFIX + r"#\s+RUN\s+(?P<name>\S+)(?:\s+\.\.\.)?\s*$")
_HARNESS_VERDICT = re.compile(_PREFIX + r"#\s+(?P<verdict>OK|FAIL)\s+(?P<name>\S+)\s*$")
_VERSION = re.compile(_PREFIX + r"K?TAP version \d+\s*$")
_PLAN = re.compile(_PREFIX + r"1\.\.\d+\b")
_BAIL = re.compile(_PREFIX + r"Bail out!\s*(?P<reason>.*)$")
_DIRECTIVE = re.compile(r"^(?P<dir>SKIP|TODO|XFAIL|XPASS|TIMEOUT|error)\b\s*(?P<reason>.*)$", re.IGNORECASE)
_TOTALS = re.compile(r"#\s+Totals:\s+(?P<fields>(?:\w+:\d+\s*)+)$")


def _depth(prefix: str) -> int:
    """Nesting depth of a line: one level per ``# `` (kselftest runner) or 4-space (KTAP) prefix."""
    return len(re.findall(r"# |    ", prefix))


def _strip_prefix(line: str, depth: int) -> str:
    """``line`` without the first ``depth`` nesting prefixes, so diagnostics read the same nested or not."""
    for _ in range(depth):
        if line.startswith(("# ", "    ")):
            line = line[2:] if line.startswith("# ") else line[4:]
        elif line == "#":
            return ""
    return line


def _split_description(rest: str) -> tuple[str, str, str]:
    """``name # DIRECTIVE reason`` -> (name, directive, reason); a bare ``#  text`` gives no directive."""
    name, hashmark, tail = rest.partition("#") if rest.startswith("#") else rest.partition(" #")
    name, tail = name.strip(), tail.strip()
    if not hashmark:
        return name, "", ""
    m = _DIRECTIVE.match(tail)
    if not m:
        return name, "", tail
    return name, m.group("dir"), m.group("reason").strip()


def _status(ok: bool, directive: str) -> str:
    """TAP/KTAP result and directive -> one of STATUSES."""
    d = directive.upper()
    if d == "SKIP":
        return "SKIP"
    if d == "ERROR" or d == "TIMEOUT":
        return "ERROR"
    if d in ("XFAIL", "TODO"):
        return "XPASS" if ok and d == "TODO" else "XFAIL"
    if d == "XPASS":
        return "XPASS"
    return "PASS" if ok else "FAIL"


@dataclass
class _Pending:
    """A test whose ``RUN`` line was seen but not yet its result."""

    name: str
    depth: int
    diagnostics: list[str] = field(default_factory=list)
    harness_line: str | None = None


class _Parser:
    """Line-at-a-time state: the pending RUN, diagnostics since the last result, the results so far."""

    def __init__(self) -> None:
        self.results: list[tuple[int, SelftestResult]] = []  # (depth, result) in output order
        self.pending: _Pending | None = None
        self.loose: list[str] = []  # diagnostics outside any RUN (plain kselftest tests print them)
        self.last_number: dict[int, int] = {}

    def _add(self, depth: int, result: SelftestResult) -> None:
        if result.number is not None:
            self.last_number[depth] = result.number
        self.results.append((depth, result))

    def abandon(self, reason: str) -> None:
        """The pending test's stream ended without its result line: record it as ERROR."""
        p = self.pending
        if p is None:
            return
        diags = [*p.diagnostics, *([p.harness_line] if p.harness_line else [])]
        number = self.last_number.get(p.depth, 0) + 1
        self._add(p.depth, SelftestResult(p.name, "ERROR", number, "", reason, tuple(diags)))
        self.pending = None

    def feed(self, line: str) -> None:
        if m := _RUN.match(line):
            self.abandon("no result line before the next test started")
            self.pending = _Pending(m.group("name"), _depth(m.group("pre")))
            self.loose = []
        elif (m := _HARNESS_VERDICT.match(line)) and self.pending and m.group("name") == self.pending.name:
            self.pending.harness_line = _strip_prefix(line, self.pending.depth)
        elif m := _RESULT.match(line):
            self._result(m, line)
        elif m := _BAIL.match(line):
            self.abandon(f"Bail out! {m.group('reason')}".strip())
        elif _VERSION.match(line) or _PLAN.match(line):
            pass
        elif not _strip_prefix(line, self.pending.depth if self.pending else 0).strip():
            pass
        elif self.pending is not None:
            self.pending.diagnostics.append(_strip_prefix(line, self.pending.depth))
        else:
            self.loose.append(line)

    def _result(self, m: re.Match[str], line: str) -> None:
        depth = _depth(m.group("pre"))
        p = self.pending
        if p is not None and depth > p.depth:  # a nested stream inside a running test: just output
            p.diagnostics.append(_strip_prefix(line, p.depth))
            return
        if p is not None and depth < p.depth:  # an enclosing runner reports: the inner stream is over
            p.diagnostics.append(line)  # e.g. "not ok 1 selftests: mm: hmm-tests # TIMEOUT 45 seconds"
            self.abandon(NO_RESULT_REASON)
            p = None
        name, directive, reason = _split_description(m.group("rest"))
        number = int(m.group("num"))
        diags = p.diagnostics if p is not None else self.loose
        name = name or (p.name if p is not None else f"test {number}")
        self._add(depth, SelftestResult(name, _status(m.group("ok") == "ok", directive), number, directive,
                                        reason, tuple(diags)))
        self.pending = None
        self.loose = []

    def finish(self) -> list[SelftestResult]:
        self.abandon(NO_RESULT_REASON)
        return _leaves(self.results)


def _leaves(results: list[tuple[int, SelftestResult]]) -> list[SelftestResult]:
    """Drop results that only wrap a nested stream (a runner's ``ok 1 selftests: mm: hmm-tests``).

    A TAP parent's result line follows its children, which are more deeply nested; so a result is a
    wrapper exactly when the result before it is deeper.
    """
    leaves = []
    for i, (depth, result) in enumerate(results):
        if i > 0 and results[i - 1][0] > depth:
            continue
        leaves.append(result)
    return leaves


def parse_ktap(text: str) -> list[SelftestResult]:
    """Every test's result in kselftest (KTAP/TAP 13) output, in order.

    Accepts hmm-tests' own output (stdout and stderr together) or the same nested inside the
    kselftest runner's ``# ``-prefixed stream. A test whose ``RUN`` line has no result line (the guest
    crashed or hung, or the runner killed it) becomes an ERROR named from its RUN line, so a crash
    under a test is never mistaken for that test not existing.
    """
    parser = _Parser()
    for line in text.splitlines():
        parser.feed(line.rstrip("\r\n").rstrip())
    return parser.finish()


def summarize(results: Iterable[SelftestResult]) -> dict[str, int]:
    """Counts per status in the vocabulary of the harness's ``# Totals:`` line, plus ``total``."""
    counts = {s.lower(): 0 for s in STATUSES}
    total = 0
    for r in results:
        counts[r.status.lower()] = counts.get(r.status.lower(), 0) + 1
        total += 1
    counts["total"] = total
    return counts


def harness_totals(text: str) -> dict[str, int] | None:
    """The harness's own last ``# Totals: pass:N fail:N ...`` line, or None if it never printed one.

    A missing Totals line is itself evidence that the run did not finish.
    """
    found = None
    for line in text.splitlines():
        if m := _TOTALS.search(line.rstrip()):
            found = {k: int(v) for k, v in (f.split(":") for f in m.group("fields").split())}
    return found


def selftest_verdicts_for(results: Iterable[SelftestResult], case_name: str) -> list[SelftestResult]:
    """The selftest results (every fixture variant) that check what hmmbench case ``case_name`` checks."""
    return [r for r in results if EXCLUSIVE_CASES.get(r.test) == case_name]
