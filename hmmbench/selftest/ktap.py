"""KTAP (and TAP 13, and the kselftest harness's dialect of it) parsed into a tree of tests with plans honoured.

Why this exists: counting result lines is not reading KTAP. An hmm-tests run cut off by a panic after its
20th result *is* 20 passes by count; only its plan (``1..58``) says 38 results are missing. The rules here
follow Documentation/dev-tools/ktap.rst (KTAP version 1) and what the kernel's own producers print
(kselftest.h, kselftest_harness.h, kselftest/runner.sh, KUnit), and what tools/testing/kunit/kunit_parser.py
accepts from them:

* **Version lines** ``KTAP version 1``, ``TAP version 13``/``14``. Output with no version line is still read
  (old TAP), but "no output" means none of a version line, a plan or a result line was found.
* **Console prefixes** are removed from every line first: printk timestamps (``[   12.345678] ``), caller ids
  (``[    T1]``, ``[    C0]``) and a syslog level (``<6>``), so results interleaved with a serial console count.
* **Nesting** is by indentation *relative to the enclosing stream*: KTAP's two spaces, KUnit's four spaces
  or tabs, the kselftest runner's ``# `` per level, or any mix. A subtest stream opens with a deeper version
  line, ``# Subtest: NAME`` header or plan, and ends at the next result line at the enclosing stream's own
  indentation: the parent's result, which therefore carries the subtests. A deeper result line that no
  version/header/plan opened belongs to the innermost open stream (sloppy indentation, as kunit_tool reads it).
* **Plans** are honoured at every level: fewer results than ``1..N`` is a :class:`Shortfall`, naming the last
  test seen there. A missing plan is not an error (KUnit may omit it); a plan may also come last (TAP).
  ``1..0`` is a valid plan: zero tests, which is not the same as no output.
* **Results** ``ok|not ok N [- ][description][ # [DIRECTIVE] [reason]]``; directives SKIP, TODO, XFAIL,
  XPASS, TIMEOUT and ERROR (any case; kselftest prints ``# error``). An unknown directive is diagnostic
  data and the result falls back to ok/not ok, as the specification asks.
* **The kselftest harness**: ``#  RUN NAME ...`` starts a test; a RUN with no result line (the guest
  crashed or hung under it, or the runner killed it) becomes an ERROR test named from its RUN line. The
  harness's echo of the verdict (``#            OK  NAME``) is not a diagnostic. ``# Totals:`` is kept.
* **Bail out!** ends its stream as incomplete; a RUN test pending under it becomes an ERROR.
* **Everything else** is a diagnostic of the test whose result follows it (unknown lines are diagnostics
  too, as in kunit_tool), or of the stream when it comes before the plan or after the last result.

Parsing never raises: any text gives a :class:`KtapDocument`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

STATUSES = ("PASS", "FAIL", "SKIP", "XFAIL", "XPASS", "ERROR")
_FAILED = ("FAIL", "ERROR")
NO_RESULT_REASON = "no result line (output ended: crash or timeout?)"
NEXT_RUN_REASON = "no result line before the next test started"


# ====================================================================== results


@dataclass(frozen=True)
class SelftestResult:
    """One leaf test's outcome, flattened out of the tree (what callers that only need verdicts use).

    ``name`` is the result line's description (the kselftest harness prints its full name,
    ``hmm.hmm_device_private.exclusive``); ``directive`` the directive as printed (``SKIP``, ``error``, ...)
    or empty; ``reason`` the text after it (or after a bare ``#``); ``diagnostics`` the lines printed while
    the test ran (``# hmm-tests.c:1817:...``, console lines), verbatim but for the console prefix and the
    stream's indentation, because they are what a person reads to see why it failed.
    """

    name: str
    status: str
    number: int | None = None
    directive: str = ""
    reason: str = ""
    diagnostics: tuple[str, ...] = field(default_factory=tuple)

    @property
    def test(self) -> str:
        """The test's own name, the last component (``exclusive``): what selftest.EXCLUSIVE_CASES is keyed by."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def variant(self) -> str:
        """The fixture variant (``hmm_device_private``), or empty for a test without one."""
        parts = self.name.split(".")
        return parts[1] if len(parts) == 3 else ""


@dataclass(frozen=True)
class KtapTest:
    """One test in the tree: its own result line and, for a parent, the subtest stream printed before it.

    ``reported`` is False for a test the output never gave a result line for (a RUN line, or a subtest
    stream, that the output ended under): such a test is an ERROR and is not counted against its plan.
    ``planned`` is the plan of its subtest stream (None: no plan, or no stream); ``nested`` says whether a
    stream was opened at all, so a parent whose stream ran nothing (KUnit's "0 tests run") is told apart
    from a plain leaf. ``bail_out`` is the reason of a ``Bail out!`` in its stream (None: none).
    """

    name: str
    status: str
    number: int | None = None
    directive: str = ""
    reason: str = ""
    diagnostics: tuple[str, ...] = ()
    subtests: tuple[KtapTest, ...] = ()
    planned: int | None = None
    nested: bool = False
    reported: bool = True
    bail_out: str | None = None

    @property
    def seen(self) -> int:
        """Subtests that reported a result line (what the plan is checked against)."""
        return sum(t.reported for t in self.subtests)

    @property
    def ran_no_tests(self) -> bool:
        """A subtest stream was opened but no subtest appeared in it."""
        return self.nested and not self.subtests

    def as_result(self) -> SelftestResult:
        return SelftestResult(self.name, self.status, self.number, self.directive, self.reason, self.diagnostics)


@dataclass(frozen=True)
class Shortfall:
    """A stream that ended before it should have: fewer results than planned, a bail-out, or nothing at all.

    ``path`` names the parent tests from the top (empty: the top level); ``last_test`` is the last test that
    appeared in the stream ("" when none did), the one a crash most likely happened in or after;
    ``last_unfinished`` says it has no result line itself (the output ended *in* it, not after it).
    """

    path: tuple[str, ...]
    planned: int | None
    seen: int
    last_test: str
    bail_out: str | None = None
    last_unfinished: bool = False

    @property
    def where(self) -> str:
        return " / ".join(self.path) if self.path else "top level"

    def describe(self) -> str:
        if self.planned is None and self.seen == 0 and self.bail_out is None and not self.last_test:
            return f"{self.where}: a version line but no plan and no result"
        counted = f"{self.seen} of {self.planned} planned results" if self.planned is not None else \
            f"{self.seen} results"
        text = f"{self.where}: {counted}"
        if self.bail_out is not None:
            text += f", then Bail out! {self.bail_out}".rstrip()
        if not self.last_test:
            return text + "; no test seen"
        return text + f"; last test seen: {self.last_test}" + (" (no result line)" if self.last_unfinished else "")


@dataclass(frozen=True)
class KtapDocument:
    """A whole KTAP output: the top-level stream's tests and what was wrong with the output as a whole."""

    version: str = ""
    planned: int | None = None
    plan_comment: str = ""
    tests: tuple[KtapTest, ...] = ()
    diagnostics: tuple[str, ...] = ()
    bail_out: str | None = None
    shortfalls: tuple[Shortfall, ...] = ()
    problems: tuple[str, ...] = ()
    totals: dict[str, int] | None = None

    @property
    def no_output(self) -> bool:
        """Nothing KTAP at all: no version line, no plan, no result (not the same as ``1..0``)."""
        return not self.version and self.planned is None and not self.tests and self.bail_out is None

    @property
    def zero_tests(self) -> bool:
        """A valid ``1..0`` plan and no tests: the producer ran and said there was nothing to run."""
        return self.planned == 0 and not self.tests

    @property
    def seen(self) -> int:
        """Top-level tests that reported a result line."""
        return sum(t.reported for t in self.tests)

    @property
    def complete(self) -> bool:
        """Every stream has every result its plan promised, nothing bailed out, and there was output."""
        return not self.no_output and not self.shortfalls

    def walk(self) -> Iterator[tuple[tuple[str, ...], KtapTest]]:
        """Every test with the names of its parents, in output order of the tests' starts (parents first)."""
        def visit(tests: tuple[KtapTest, ...], parents: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], KtapTest]]:
            for t in tests:
                yield parents, t
                yield from visit(t.subtests, (*parents, t.name))
        return visit(self.tests, ())

    def find(self, *path: str) -> KtapTest:
        """The test at ``path`` (names from the top); KeyError if there is none."""
        tests, found = self.tests, None
        for name in path:
            found = next((t for t in tests if t.name == name), None)
            if found is None:
                raise KeyError(" / ".join(path))
            tests = found.subtests
        if found is None:
            raise KeyError("empty path")
        return found

    @property
    def leaves(self) -> list[SelftestResult]:
        """The tests whose verdicts stand on their own, in output order (a parent after its subtests).

        Every test without subtests, and a parent whose own failure (``not ok``, an ERROR directive, or no
        result line at all) no test below it shows. Without the second kind the flat list would lose the
        runner's ``not ok 1 selftests: mm: hmm-tests # exit=1`` over all-passing inner tests, or a KUnit
        suite the kernel crashed in after its first passing test; kunit_tool counts them too (Linux 7.x:
        "not ok" over passing subtests is a failure of its own).
        """
        out: list[SelftestResult] = []

        def visit(tests: tuple[KtapTest, ...]) -> None:
            for t in tests:
                if not t.subtests:
                    out.append(t.as_result())
                    continue
                start = len(out)
                visit(t.subtests)
                if t.status in _FAILED and not any(r.status in _FAILED for r in out[start:]):
                    out.append(t.as_result())

        visit(self.tests)
        return out

    @property
    def last_test(self) -> str:
        """The last test without subtests in the output ("" if none): where a run that was cut short stopped."""
        return next((t.name for _, t in reversed(list(self.walk())) if not t.subtests), "")

    @property
    def outcome(self) -> str:
        """One word for the whole output: no output, 0 tests, incomplete, error, fail, pass or skip."""
        if self.no_output:
            return "no output"
        if not self.complete:
            return "incomplete"
        if self.zero_tests:
            return "0 tests"
        statuses = {r.status for r in self.leaves}
        for status, word in (("ERROR", "error"), ("FAIL", "fail")):
            if status in statuses:
                return word
        if statuses & {"PASS", "XFAIL", "XPASS"}:
            return "pass"
        return "skip" if statuses else "0 tests"

    def summary(self) -> str:
        """One line saying whether the output is whole, for a report."""
        if self.no_output:
            return "no KTAP output (no version line, no plan, no result)"
        if not self.complete:
            return "incomplete: " + "; ".join(s.describe() for s in self.shortfalls)
        if self.zero_tests:
            return "0 tests (plan 1..0" + (f": {self.plan_comment}" if self.plan_comment else "") + ")"
        if self.planned is None:
            return f"complete: {self.seen} results (no plan)"
        return f"complete: {self.seen} of {self.planned} planned results"


# ====================================================================== line syntax

# Indentation tokens: whitespace, or the kselftest runner's "# " per nesting level. Non-greedy, so
# "# Subtest:" and "#  RUN" keep their own "#".
_IND = r"(?P<ind>(?:[ \t]|#[ \t]?)*?)"
_CONSOLE = re.compile(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]|\[\s*[TC]\d+\])+ ?")
_VERSION = re.compile(_IND + r"(?P<version>K?TAP version \d+)\s*$")
_PLAN = re.compile(_IND + r"1\.\.(?P<count>\d+)\s*(?:#\s*(?P<comment>.*?))?\s*$")
_RESULT = re.compile(_IND + r"(?P<ok>not ok|ok)\s+(?P<num>\d+)(?=\s|$)\s*(?P<rest>.*)$")
_SUBTEST = re.compile(_IND + r"#\s*Subtest:\s*(?P<name>.*?)\s*$")
_RUN = re.compile(_IND + r"#\s+RUN\s+(?P<name>\S+)(?:\s+\.\.\.)?\s*$")
_HARNESS_VERDICT = re.compile(_IND + r"#\s+(?P<verdict>OK|FAIL|SKIP|XFAIL|XPASS)\s+(?P<name>\S+)\s*$")
_BAIL = re.compile(_IND + r"Bail out!\s*(?P<reason>.*?)\s*$")
_DIRECTIVE = re.compile(r"^(?P<dir>SKIP|TODO|XFAIL|XPASS|TIMEOUT|ERROR)(?![\w-]):?\s*(?P<reason>.*)$", re.IGNORECASE)
_TOTALS = re.compile(r"#\s+Totals:\s+(?P<fields>(?:\w+:\d+\s*)+)$")


def strip_console_prefix(line: str) -> str:
    """``line`` without printk's ``[   12.345678] ``/``[    T1]`` prefixes (and a ``<6>`` level), if it has them."""
    return _CONSOLE.sub("", line, count=1)


def _is_blank(line: str) -> bool:
    """Only whitespace and ``#`` (the runner prints a bare ``#`` for an empty line of the nested output)."""
    return not line.strip(" \t#")


def _split_description(rest: str) -> tuple[str, str, str]:
    """``[- ]name # DIRECTIVE reason`` -> (name, directive, reason); a bare ``#  text`` gives no directive."""
    if rest.startswith("- "):
        rest = rest[2:]
    elif rest == "-":
        rest = ""
    name, hashmark, tail = rest.partition("#") if rest.startswith("#") else rest.partition(" #")
    name, tail = name.strip(), tail.strip()
    if not hashmark:
        return name, "", ""
    m = _DIRECTIVE.match(tail)
    if not m:
        return name, "", tail
    return name, m.group("dir"), m.group("reason").strip()


def status_of(ok: bool, directive: str) -> str:
    """TAP/KTAP result and directive -> one of STATUSES (TODO: a failure expected, a pass unexpected)."""
    d = directive.upper()
    if d == "SKIP":
        return "SKIP"
    if d in ("ERROR", "TIMEOUT"):
        return "ERROR"
    if d == "XFAIL":
        return "XFAIL"
    if d == "TODO":
        return "XPASS" if ok else "XFAIL"
    if d == "XPASS":
        return "XPASS"
    return "PASS" if ok else "FAIL"


# ====================================================================== the parser


@dataclass
class _Run:
    """A kselftest harness test whose ``RUN`` line was seen but not yet its result."""

    name: str
    harness_line: tuple[int, str] | None = None


@dataclass
class _Closed:
    """A subtest stream that ended; it belongs to the next result line of the stream that encloses it."""

    tests: list[KtapTest]
    diagnostics: list[tuple[int, str]]
    header: str
    planned: int | None
    bail_out: str | None


@dataclass
class _Stream:
    """One open (sub)test stream: its indentation, plan, the tests so far and the lines not yet assigned."""

    indent: str
    version: str = ""
    header: str = ""
    planned: int | None = None
    plan_comment: str = ""
    tests: list[KtapTest] = field(default_factory=list)
    own: list[tuple[int, str]] = field(default_factory=list)  # the stream's lines: header, before a RUN
    pending: list[tuple[int, str]] = field(default_factory=list)  # since the last result: the next test's
    run: _Run | None = None
    child: _Closed | None = None
    expected: int = 1
    bail_out: str | None = None
    totals: dict[str, int] | None = None

    @property
    def fresh(self) -> bool:
        """Nothing but (maybe) a header yet: a version line or ``# Subtest:`` at this indentation joins it."""
        return self.planned is None and not self.tests and self.run is None and self.child is None

    def deeper(self, ind: str) -> bool:
        return len(ind) > len(self.indent) and ind.startswith(self.indent)

    def rel(self, line: str) -> str:
        """``line`` without this stream's indentation (when it has it), as a diagnostic reads unnested."""
        return line[len(self.indent):] if line.startswith(self.indent) else line


def _texts(lines: Iterable[tuple[int, str]]) -> tuple[str, ...]:
    """Diagnostic lines in output order (they are collected per stream, with line numbers, and merged)."""
    return tuple(text for _, text in sorted(lines))


def _test(name: str, status: str, number: int, directive: str, reason: str, diags: list[tuple[int, str]],
          child: _Closed | None, *, reported: bool) -> KtapTest:
    """A finished test: its result (or the ERROR standing in for it) and the subtest stream before it."""
    if child is None:
        return KtapTest(name, status, number, directive, reason, _texts(diags), reported=reported)
    return KtapTest(name, status, number, directive, reason, _texts(diags), subtests=tuple(child.tests),
                    planned=child.planned, nested=True, reported=reported, bail_out=child.bail_out)


class _Parser:
    """Line-at-a-time state: the stack of open streams (outermost first) and the document-level lines."""

    def __init__(self) -> None:
        self.stack: list[_Stream] = []
        self.preamble: list[tuple[int, str]] = []
        self.problems: list[str] = []
        self.lineno = 0

    # ---------------------------------------------------------------- routing

    @property
    def top(self) -> _Stream:
        return self.stack[-1]

    def _exact(self, ind: str) -> int | None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].indent == ind:
                return i
        return None

    def _for_result(self, ind: str, *, may_open: bool = True) -> int:
        """A result (or RUN/Bail out) belongs to the stream with exactly its indentation, else the innermost.

        Except for the kselftest runner's ``# `` nesting, which is never sloppy indentation: a result or RUN
        line nested deeper by it opens a stream even without a version line (a wrapped program that prints
        none), as the old count-the-prefixes parser read it.
        """
        if not self.stack:
            self.stack.append(_Stream(ind))
        exact = self._exact(ind)
        if exact is not None:
            return exact
        if may_open and self.top.deeper(ind) and "#" in ind[len(self.top.indent):]:
            self.stack.append(_Stream(ind))
        return len(self.stack) - 1

    def _for_diagnostic(self, line: str) -> _Stream | None:
        """The innermost open stream whose indentation the line starts with (None before any stream)."""
        for s in reversed(self.stack):
            if line.startswith(s.indent):
                return s
        return self.stack[0] if self.stack else None

    # ---------------------------------------------------------------- lines

    def feed(self, raw: str) -> None:
        self.lineno += 1
        line = strip_console_prefix(raw.rstrip("\r\n").rstrip())
        if _is_blank(line):
            return
        for pattern, handler in ((_RESULT, self._result), (_VERSION, self._version), (_PLAN, self._plan),
                                 (_SUBTEST, self._subtest), (_RUN, self._run), (_BAIL, self._bail)):
            if (m := pattern.match(line)) and handler(m, line):
                return
        if (m := _HARNESS_VERDICT.match(line)) and self.stack:
            s = self.stack[self._for_result(m.group("ind"), may_open=False)]
            if s.run is not None and s.run.name == m.group("name"):
                s.run.harness_line = (self.lineno, s.rel(line))
                return
        self._diagnostic(line)

    def _diagnostic(self, line: str) -> None:
        s = self._for_diagnostic(line)
        if s is None:
            self.preamble.append((self.lineno, line))
            return
        text = s.rel(line)
        if (m := _TOTALS.match(text)) is not None:
            s.totals = {k: int(v) for k, v in (f.split(":") for f in m.group("fields").split())}
        # Before its plan (and before anything nested in it) a line is the stream's own, e.g. KUnit's
        # "# module: example" under "# Subtest: suite"; after it, the next test's.
        (s.own if s is self.top and s.fresh else s.pending).append((self.lineno, text))

    def _version(self, m: re.Match[str], line: str) -> bool:
        ind = m.group("ind")
        if not self.stack:
            self.stack.append(_Stream(ind, version=m.group("version")))
        elif self.top.indent == ind and self.top.fresh and not self.top.version:
            self.top.version = m.group("version")
        elif self.top.deeper(ind):
            self.stack.append(_Stream(ind, version=m.group("version")))
        else:
            return False  # a second document or a stray line: read as a diagnostic
        return True

    def _subtest(self, m: re.Match[str], line: str) -> bool:
        ind = m.group("ind")
        if self.stack and self.top.indent == ind and self.top.fresh and not self.top.header:
            self.top.header = m.group("name")
        elif self.stack and self.top.deeper(ind):
            self.stack.append(_Stream(ind, header=m.group("name")))
        else:
            return False
        return True

    def _plan(self, m: re.Match[str], line: str) -> bool:
        ind = m.group("ind")
        if not self.stack:
            self.stack.append(_Stream(ind))
        exact = self._exact(ind)
        if exact is not None and self.stack[exact].planned is None:
            s = self.stack[exact]  # at the start, or a TAP plan that comes last
        elif self.top.deeper(ind):
            s = _Stream(ind)  # a subtest stream without a version line
            self.stack.append(s)
        else:
            return False
        s.planned, s.plan_comment = int(m.group("count")), (m.group("comment") or "").strip()
        return True

    def _run(self, m: re.Match[str], line: str) -> bool:
        s = self.stack[self._for_result(m.group("ind"))]
        self._abandon(s, NEXT_RUN_REASON)
        s.own += s.pending  # lines before a RUN belong to the stream ("# Starting 58 tests ..."), not a test
        s.pending = []
        s.run = _Run(m.group("name"))
        return True

    def _bail(self, m: re.Match[str], line: str) -> bool:
        s = self.stack[self._for_result(m.group("ind"))]
        reason = m.group("reason")
        if s.bail_out is None:
            s.bail_out = reason
        self._abandon(s, f"Bail out! {reason}".strip())
        return True

    def _result(self, m: re.Match[str], line: str) -> bool:
        i = self._for_result(m.group("ind"))
        while len(self.stack) - 1 > i:
            self._close_top((self.lineno, line))
        s = self.stack[i]
        name, directive, reason = _split_description(m.group("rest"))
        number = int(m.group("num"))
        child, run = s.child, s.run
        name = name or (run.name if run else "") or (child.header if child else "") or f"test {number}"
        if number != s.expected:
            where = self._where(i)
            self.problems.append(f"{where}: expected test number {s.expected}, found {number} ({name})")
        diags = [*(child.diagnostics if child else []), *s.pending]
        s.tests.append(_test(name, status_of(m.group("ok") == "ok", directive), number, directive, reason,
                             diags, child, reported=True))
        s.expected = number + 1
        s.pending, s.run, s.child = [], None, None
        return True

    def _where(self, i: int) -> str:
        """The stream's name for a problem: its ``# Subtest:`` headers (its parents' names come later)."""
        names = [s.header or f"(nested stream {depth})" for depth, s in enumerate(self.stack[1:i + 1], 1)]
        return " / ".join(names) if names else "top level"

    # ---------------------------------------------------------------- ends of streams

    def _abandon(self, s: _Stream, reason: str, closing: tuple[int, str] | None = None) -> None:
        """The pending RUN test (and/or closed subtest stream) of ``s`` gets no result line: an ERROR."""
        run, child = s.run, s.child
        if run is None and child is None:
            return
        diags = [*(child.diagnostics if child else []), *s.pending]
        if run is not None and run.harness_line is not None:
            diags.append(run.harness_line)
        if closing is not None:
            diags.append(closing)  # e.g. the runner's "not ok 1 selftests: mm: hmm-tests # TIMEOUT 45 seconds"
        name = (run.name if run else "") or (child.header if child else "") or f"test {s.expected}"
        s.tests.append(_test(name, "ERROR", s.expected, "", reason, diags, child, reported=False))
        s.expected += 1
        s.pending, s.run, s.child = [], None, None

    def _close_top(self, closing: tuple[int, str] | None) -> None:
        """Pop the innermost stream; it becomes the subtests of the enclosing stream's next result."""
        s = self.stack.pop()
        self._abandon(s, NO_RESULT_REASON, closing)
        parent = self.top
        if parent.child is not None:  # defensive: the result that closes a stream consumes it at once
            self._abandon(parent, NO_RESULT_REASON)
        parent.child = _Closed(s.tests, [*s.own, *s.pending], s.header, s.planned, s.bail_out)

    def finish(self) -> KtapDocument:
        while len(self.stack) > 1:
            self._close_top(None)
        if not self.stack:
            return KtapDocument(diagnostics=_texts(self.preamble))
        root = self.stack[0]
        self._abandon(root, NO_RESULT_REASON)
        tests = tuple(root.tests)
        shortfalls = list(_shortfalls(tests, ()))
        top = Shortfall((), root.planned, sum(t.reported for t in tests), tests[-1].name if tests else "",
                        root.bail_out, bool(tests) and not tests[-1].reported)
        if _short(root.planned, top.seen, root.bail_out) or (root.planned is None and not tests):
            shortfalls.insert(0, top)
        return KtapDocument(root.version, root.planned, root.plan_comment, tests,
                            _texts([*self.preamble, *root.own, *root.pending]), root.bail_out, tuple(shortfalls),
                            tuple(self.problems), root.totals)


def _short(planned: int | None, seen: int, bail_out: str | None) -> bool:
    return bail_out is not None or (planned is not None and seen < planned)


def _shortfalls(tests: tuple[KtapTest, ...], parents: tuple[str, ...]) -> Iterator[Shortfall]:
    """Every subtest stream below ``tests`` that has fewer results than planned or bailed out."""
    for t in tests:
        path = (*parents, t.name)
        if t.nested and _short(t.planned, t.seen, t.bail_out):
            last = t.subtests[-1] if t.subtests else None
            yield Shortfall(path, t.planned, t.seen, last.name if last else "", t.bail_out,
                            last is not None and not last.reported)
        yield from _shortfalls(t.subtests, path)


# ====================================================================== entry points


def parse_document(text: str) -> KtapDocument:
    """The whole KTAP/TAP output in ``text`` (any console or harness noise around it), as a tree."""
    parser = _Parser()
    for line in text.splitlines():
        parser.feed(line)
    return parser.finish()


def parse_ktap(text: str) -> list[SelftestResult]:
    """Every leaf test's result in KTAP/TAP 13/kselftest output, in order (the tree flattened).

    Accepts hmm-tests' own output (stdout and stderr together) or the same nested inside the kselftest
    runner's ``# ``-prefixed stream. A test whose ``RUN`` line has no result line becomes an ERROR named
    from its RUN line, so a crash under a test is never mistaken for that test not existing. Whether the
    output is *complete* (its plans met) is only in :func:`parse_document`.
    """
    return parse_document(text).leaves


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
    """The harness's own last ``# Totals: pass:N fail:N ...`` line anywhere, or None if it never printed one.

    A missing Totals line is itself evidence that the run did not finish.
    """
    found = None
    for line in text.splitlines():
        if m := _TOTALS.search(line.rstrip()):
            found = {k: int(v) for k, v in (f.split(":") for f in m.group("fields").split())}
    return found
