"""hmmbench.selftest.ktap, rule by rule (Documentation/dev-tools/ktap.rst and what the kernel's producers print).

The kernel's own KTAP logs (tools/testing/kunit/test_data) are checked against kunit_tool_test.py's
expectations in test_ktap_conformance.py; hmm-tests' samples in test_selftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hmmbench.selftest.ktap import (
    NEXT_RUN_REASON,
    NO_RESULT_REASON,
    KtapDocument,
    Shortfall,
    parse_document,
    parse_ktap,
    strip_console_prefix,
)

DATA = Path(__file__).parent / "data"


def doc_of(*lines: str) -> KtapDocument:
    return parse_document("\n".join(lines) + "\n")


def leaves(doc: KtapDocument) -> list[tuple[str, str]]:
    return [(r.name, r.status) for r in doc.leaves]


# ====================================================================== the plan


def test_output_cut_off_after_the_20th_result_is_incomplete_not_20_passes() -> None:
    lines = (DATA / "hmm_tests_6.12_pass.txt").read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("ok 20 "))
    doc = parse_document("\n".join(lines[:cut + 1]) + "\n")
    assert [r.status for r in doc.leaves] == ["PASS"] * 20  # what a counting parser reports, and no more
    assert (doc.planned, doc.seen, doc.complete, doc.outcome) == (58, 20, False, "incomplete")
    assert doc.last_test == "hmm.hmm_device_private.mixedmap" == lines[cut].split()[-1]
    assert doc.shortfalls == (Shortfall((), 58, 20, "hmm.hmm_device_private.mixedmap"),)
    assert doc.summary() == ("incomplete: top level: 20 of 58 planned results; "
                             "last test seen: hmm.hmm_device_private.mixedmap")


def test_every_planned_result_present_is_complete() -> None:
    doc = doc_of("KTAP version 1", "1..2", "ok 1 a", "not ok 2 b")
    assert (doc.complete, doc.planned, doc.seen, doc.shortfalls, doc.outcome) == (True, 2, 2, (), "fail")
    assert doc.summary() == "complete: 2 of 2 planned results"


def test_each_level_s_plan_is_checked_and_named_by_its_parent() -> None:
    doc = doc_of("KTAP version 1", "1..2",
                 "  KTAP version 1", "  1..3", "  ok 1 a", "  ok 2 b", "ok 1 suite",
                 "ok 2 other")
    assert doc.seen == doc.planned == 2  # the top level is whole ...
    assert doc.shortfalls == (Shortfall(("suite",), 3, 2, "b"),)  # ... the suite is not
    assert not doc.complete and doc.find("suite").planned == 3


def test_a_missing_plan_is_not_an_error_but_a_plan_may_also_come_last() -> None:
    assert doc_of("TAP version 13", "ok 1 a", "ok 2 b").summary() == "complete: 2 results (no plan)"
    assert doc_of("TAP version 13", "ok 1 a", "ok 2 b", "1..2").complete
    # kunit_tool_test.py's test_parse_late_test_plan: one result, then "1..4".
    late = doc_of("TAP version 13", "ok 4 test4", "1..4")
    assert late.shortfalls == (Shortfall((), 4, 1, "test4"),)
    assert late.problems == ("top level: expected test number 1, found 4 (test4)",)


def test_a_run_line_without_result_is_an_error_that_does_not_count_for_the_plan() -> None:
    doc = doc_of("TAP version 13", "1..3", "#  RUN           f.v.a ...", "#            OK  f.v.a", "ok 1 f.v.a",
                 "#  RUN           f.v.b ...", "[   41.203511] BUG: Bad page map in process hmm-tests")
    assert leaves(doc) == [("f.v.a", "PASS"), ("f.v.b", "ERROR")]
    b = doc.tests[1]
    assert (b.number, b.reported, b.reason, b.diagnostics) == (
        2, False, NO_RESULT_REASON, ("BUG: Bad page map in process hmm-tests",))
    assert doc.shortfalls == (Shortfall((), 3, 1, "f.v.b", last_unfinished=True),)
    assert doc.summary().endswith("1 of 3 planned results; last test seen: f.v.b (no result line)")


def test_a_run_line_followed_by_the_next_run_keeps_the_numbering() -> None:
    doc = doc_of("1..2", "#  RUN           f.v.a ...", "#  RUN           f.v.b ...", "ok 2 f.v.b")
    assert [(t.name, t.status, t.number, t.reason) for t in doc.tests] == [
        ("f.v.a", "ERROR", 1, NEXT_RUN_REASON), ("f.v.b", "PASS", 2, "")]
    assert doc.problems == ()  # the stand-in took number 1, so 2 is the expected next
    assert doc.shortfalls == (Shortfall((), 2, 1, "f.v.b"),)


def test_numbering_gaps_are_problems() -> None:
    doc = doc_of("KTAP version 1", "1..3", "ok 1 a", "ok 3 c", "ok 4 d")
    assert doc.problems == ("top level: expected test number 2, found 3 (c)",)
    assert doc.complete  # three results for a plan of three: the plan itself is met


# ====================================================================== no output vs 0 tests


@pytest.mark.parametrize("text", ["", "\n\n", "Linux version 6.12.117\nKernel panic - not syncing: VFS\n",
                                  "# just a comment\n"])
def test_no_ktap_at_all_is_no_output(text: str) -> None:
    doc = parse_document(text)
    assert (doc.no_output, doc.zero_tests, doc.complete, doc.outcome) == (True, False, False, "no output")
    assert doc.summary() == "no KTAP output (no version line, no plan, no result)"
    assert parse_ktap(text) == []


def test_a_valid_empty_plan_is_zero_tests_not_no_output() -> None:
    doc = doc_of("TAP version 14", "1..0")
    assert (doc.no_output, doc.zero_tests, doc.complete, doc.outcome) == (False, True, True, "0 tests")
    skipped = doc_of("TAP version 13", "1..0 # SKIP no /dev/hmm_dmirror0")
    assert (skipped.zero_tests, skipped.plan_comment) == (True, "SKIP no /dev/hmm_dmirror0")
    assert skipped.summary() == "0 tests (plan 1..0: SKIP no /dev/hmm_dmirror0)"


def test_a_version_line_and_nothing_else_is_incomplete() -> None:
    doc = doc_of("TAP version 13")
    assert (doc.no_output, doc.zero_tests, doc.outcome) == (False, False, "incomplete")
    assert doc.summary() == "incomplete: top level: a version line but no plan and no result"


def test_a_plan_and_no_results_is_incomplete() -> None:
    assert doc_of("TAP version 13", "1..58").summary() == (
        "incomplete: top level: 0 of 58 planned results; no test seen")


# ====================================================================== console prefixes


@pytest.mark.parametrize(("raw", "clean"), [
    ("[   12.345678] ok 1 a", "ok 1 a"),
    ("[    0.060000][    T1] \tok 1 a", "\tok 1 a"),  # timestamp + caller id; indentation kept
    ("[    5.000001][    C0] # diag", "# diag"),
    ("<6>[    1.000000] KTAP version 1", "KTAP version 1"),
    ("[   41.2057", "[   41.2057"),  # a prefix cut off mid-way is not a prefix
    (" [<600214c5>] ? os_is_signal_stack+0x15/0x30", " [<600214c5>] ? os_is_signal_stack+0x15/0x30"),
    ("[not a timestamp] ok 1 a", "[not a timestamp] ok 1 a"),
])
def test_console_prefixes(raw: str, clean: str) -> None:
    assert strip_console_prefix(raw) == clean


def test_timestamps_do_not_hide_the_results() -> None:
    text = "\n".join([
        "[    3.100000] random: crng init done",
        "[    3.200000] KTAP version 1",
        "[    3.200001] 1..2",
        "[    3.200002][    T1]   KTAP version 1",
        "[    3.200003][    T1]   1..1",
        "[    3.200004][    T1]   # case_1: starting",
        "[    3.200005][    T1]   not ok 1 case_1",
        "[    3.200006] not ok 1 suite",
        "[    3.200007] ok 2 other # SKIP no hardware",
    ])
    doc = parse_document(text)
    assert leaves(doc) == [("case_1", "FAIL"), ("other", "SKIP")]
    assert doc.complete and doc.find("suite", "case_1").diagnostics == ("# case_1: starting",)
    assert doc.diagnostics == ("random: crng init done",)


# ====================================================================== indentation and nesting


NESTED = ["KTAP version 1", "1..2",
          "{i}KTAP version 1", "{i}1..2", "{i}ok 1 a", "{i}# b: went wrong", "{i}not ok 2 b",
          "not ok 1 suite", "ok 2 plain"]


@pytest.mark.parametrize("indent", ["  ", "    ", "\t", "# ", "\t\t", " \t"], ids=repr)
def test_any_indentation_nests(indent: str) -> None:
    doc = doc_of(*(line.format(i=indent) for line in NESTED))
    assert leaves(doc) == [("a", "PASS"), ("b", "FAIL"), ("plain", "PASS")]
    assert [t.name for t in doc.tests] == ["suite", "plain"]
    assert doc.find("suite", "b").diagnostics == ("# b: went wrong",)  # read as it would be unnested
    assert doc.complete and doc.find("suite").planned == 2


def test_nesting_to_any_depth_with_mixed_indentation() -> None:
    doc = doc_of("KTAP version 1", "1..1",
                 "  KTAP version 1", "  1..1",
                 "  \tKTAP version 1", "  \t1..1",
                 "  \t    KTAP version 1", "  \t    1..2",
                 "  \t    ok 1 deepest_a", "  \t    ok 2 deepest_b # SKIP off",
                 "  \tok 1 level3",
                 "  ok 1 level2",
                 "ok 1 level1")
    assert leaves(doc) == [("deepest_a", "PASS"), ("deepest_b", "SKIP")]
    paths = [(parents, t.name) for parents, t in doc.walk()]
    assert paths[-1] == (("level1", "level2", "level3"), "deepest_b")
    assert doc.find("level1", "level2", "level3").planned == 2
    assert doc.complete


def test_the_specification_s_first_example() -> None:
    """ktap.rst: "# example failed" is a diagnostic of the parent, printed unindented before its result."""
    doc = doc_of("KTAP version 1", "1..1", "  KTAP version 1", "  1..2", "  ok 1 test_1", "  not ok 2 test_2",
                 "# example failed", "not ok 1 example")
    example = doc.find("example")
    assert (example.status, [t.name for t in example.subtests]) == ("FAIL", ["test_1", "test_2"])
    assert example.diagnostics == ("# example failed",)


def test_unknown_lines_do_not_end_a_subtest_stream() -> None:
    doc = doc_of("TAP version 14", "1..1", "\t# Subtest: suite", "\t1..2", "\tok 1 a",
                 "kAFS: Red Hat AFS client v0.1 registering.", "\tok 2 b", "ok 1 suite")
    assert doc.complete and [t.name for t in doc.find("suite").subtests] == ["a", "b"]
    assert doc.find("suite").diagnostics == ("kAFS: Red Hat AFS client v0.1 registering.",)


def test_subtest_header_names_a_stream_with_or_without_a_version_line() -> None:
    ktap = doc_of("KTAP version 1", "1..1", "    KTAP version 1", "    # Subtest: suite", "    1..1",
                  "    ok 1 case", "ok 1 suite")
    tap14 = doc_of("TAP version 14", "1..1", "    # Subtest: suite", "    1..1", "    ok 1 - case", "ok 1 - suite")
    for doc in (ktap, tap14):
        assert [(parents, t.name) for parents, t in doc.walk()] == [((), "suite"), (("suite",), "case")]
        assert doc.find("suite").planned == 1 and doc.complete


def test_a_stream_without_result_line_for_its_parent_is_an_error_parent() -> None:
    doc = doc_of("TAP version 14", "1..2", "\t# Subtest: suite", "\t1..3", "\tok 1 a",
                 "\tKernel panic - not syncing: VFS")
    suite = doc.find("suite")
    assert (suite.status, suite.reported, suite.reason) == ("ERROR", False, NO_RESULT_REASON)
    assert suite.diagnostics == ("Kernel panic - not syncing: VFS",)
    assert doc.shortfalls == (Shortfall((), 2, 0, "suite", last_unfinished=True), Shortfall(("suite",), 3, 1, "a"))
    assert leaves(doc) == [("a", "PASS"), ("suite", "ERROR")]  # the crash stays in the flat list ...
    assert doc.last_test == "a"  # ... but the last test seen is the innermost one


def test_a_parent_s_failure_is_kept_when_no_subtest_shows_it() -> None:
    doc = doc_of("TAP version 13", "1..2",
                 "# TAP version 13", "# 1..1", "# ok 1 inner", "not ok 1 selftests: mm: hmm-tests # exit=1",
                 "# TAP version 13", "# 1..1", "# not ok 1 broken", "not ok 2 selftests: mm: other # exit=1")
    # The first runner test failed with every inner test passing: only its own line says so.
    assert leaves(doc) == [("inner", "PASS"), ("selftests: mm: hmm-tests", "FAIL"), ("broken", "FAIL")]
    passing = "KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 a\nok 1 s\n"
    assert [r.name for r in parse_ktap(passing)] == ["a"]  # a passing parent adds nothing


def test_a_deeper_result_that_nothing_opened_belongs_to_the_innermost_stream() -> None:
    """As kunit_tool reads test_is_test_passed-failure-nested.log (Linux 6.13+)."""
    doc = doc_of("KTAP version 1", "1..2", "not ok 1 subtest 1", "    KTAP version 1", "    1..1",
                 "        not ok 1 subsubtest 1", "not ok 2 subtest 2")
    assert leaves(doc) == [("subtest 1", "FAIL"), ("subsubtest 1", "FAIL")]
    assert doc.find("subtest 2").subtests[0].name == "subsubtest 1" and doc.complete


def test_an_empty_subtest_stream_is_told_from_a_leaf() -> None:
    doc = doc_of("TAP version 14", "1..2", "  # Subtest: suite", "ok 1 - suite", "ok 2 - plain")
    assert doc.find("suite").ran_no_tests and not doc.find("plain").ran_no_tests
    assert doc.complete  # no plan in it, so nothing is missing; a caller sees that it ran nothing


def test_kselftest_runner_nesting_reports_inner_tests_and_the_runner_verdict() -> None:
    doc = parse_document((DATA / "hmm_tests_6.12_nested_runner.txt").read_text())
    runner = doc.find("selftests: mm: hmm-tests")
    assert (runner.status, runner.directive, runner.reason) == ("ERROR", "TIMEOUT", "45 seconds")
    assert runner.diagnostics[:2] == ("# timeout set to 45", "# selftests: mm: hmm-tests")
    assert (runner.planned, runner.seen) == (4, 3)
    assert doc.shortfalls == (Shortfall(("selftests: mm: hmm-tests",), 4, 3, "hmm.hmm_device_coherent.exclusive_cow",
                                        last_unfinished=True),)
    assert doc.last_test == "hmm.hmm_device_coherent.exclusive_cow"


def test_runner_nesting_without_a_version_line_still_nests() -> None:
    doc = doc_of("TAP version 13", "1..1", "# selftests: mm: legacy", "# ok 1 inner", "# not ok 2 other",
                 "not ok 1 selftests: mm: legacy # exit=1")
    assert [(parents, t.name) for parents, t in doc.walk()] == [
        ((), "selftests: mm: legacy"), (("selftests: mm: legacy",), "inner"), (("selftests: mm: legacy",), "other")]
    assert doc.complete and doc.problems == ()
    # Whitespace is different: a deeper result nothing opened is sloppy indentation of the same stream.
    assert [t.name for t in doc_of("TAP version 13", "1..2", "ok 1 a", "  ok 2 b").tests] == ["a", "b"]


def test_numbering_problems_in_nested_streams_say_where() -> None:
    doc = doc_of("KTAP version 1", "1..1", "  KTAP version 1", "  1..2", "  ok 1 a", "  ok 3 c", "ok 1 s")
    assert doc.problems == ("(nested stream 1): expected test number 2, found 3 (c)",)
    named = doc_of("KTAP version 1", "1..1", "  KTAP version 1", "  # Subtest: s", "  1..1", "  ok 2 b", "ok 1 s")
    assert named.problems == ("s: expected test number 1, found 2 (b)",)


# ====================================================================== result lines and directives


@pytest.mark.parametrize(("line", "want"), [
    ("ok 1 plain", ("plain", "PASS", "", "")),
    ("not ok 1 plain", ("plain", "FAIL", "", "")),
    ("ok 1 - hyphenated", ("hyphenated", "PASS", "", "")),
    ("ok 1 test # SKIP necessary dependency unavailable", ("test", "SKIP", "SKIP", "necessary dependency unavailable")),
    ("not ok 1 test # SKIP", ("test", "SKIP", "SKIP", "")),  # SKIP with either result
    ("ok 1 test # skip: lower case", ("test", "SKIP", "skip", "lower case")),
    ("not ok 1 test # TIMEOUT 30 seconds", ("test", "ERROR", "TIMEOUT", "30 seconds")),
    ("not ok 1 test # ERROR no memory", ("test", "ERROR", "ERROR", "no memory")),
    ("not ok 1 # error could not set up", ("test 1", "ERROR", "error", "could not set up")),
    ("ok 1 test # XFAIL known broken", ("test", "XFAIL", "XFAIL", "known broken")),
    ("ok 1 test # XPASS", ("test", "XPASS", "XPASS", "")),
    ("not ok 1 test # TODO later", ("test", "XFAIL", "TODO", "later")),
    ("ok 1 test # TODO later", ("test", "XPASS", "TODO", "later")),
    # An unknown directive is diagnostic data; the result falls back to ok / not ok (ktap.rst).
    ("ok 5 check return code # rcode=0", ("check return code", "PASS", "", "rcode=0")),
    ("not ok 1 test # skipped, which is no directive", ("test", "FAIL", "", "skipped, which is no directive")),
    ("not ok 3 selftests: mm: hmm-tests # exit=1", ("selftests: mm: hmm-tests", "FAIL", "", "exit=1")),
])
def test_result_lines(line: str, want: tuple[str, str, str, str]) -> None:
    (t,) = doc_of("KTAP version 1", "1..1", line).tests
    assert (t.name, t.status, t.directive, t.reason) == want


def test_words_that_only_look_like_results_are_diagnostics() -> None:
    doc = doc_of("TAP version 13", "1..1", "okay then", "ok", "not ok-ish 3", "#            OK  not.pending",
                 "ok 1 real")
    assert leaves(doc) == [("real", "PASS")]
    assert doc.tests[0].diagnostics == ("okay then", "ok", "not ok-ish 3", "#            OK  not.pending")


def test_diagnostics_before_the_plan_belong_to_the_stream_after_it_to_the_next_test() -> None:
    doc = doc_of("KTAP version 1", "1..1", "  KTAP version 1", "  # Subtest: suite", "  # module: example", "  1..1",
                 "  # test.speed: slow", "  ok 1 test", "ok 1 suite")
    assert doc.find("suite").diagnostics == ("# module: example",)
    assert doc.find("suite", "test").diagnostics == ("# test.speed: slow",)


def test_harness_lines_before_a_run_belong_to_the_document_and_totals_are_kept() -> None:
    doc = doc_of("TAP version 13", "1..1", "# Starting 1 tests from 1 test cases.", "#  RUN           f.v.a ...",
                 "#            OK  f.v.a", "ok 1 f.v.a", "# PASSED: 1 / 1 tests passed.",
                 "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0")
    assert doc.tests[0].diagnostics == ()
    assert doc.diagnostics == ("# Starting 1 tests from 1 test cases.", "# PASSED: 1 / 1 tests passed.",
                               "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0")
    assert doc.totals == {"pass": 1, "fail": 0, "xfail": 0, "xpass": 0, "skip": 0, "error": 0}


# ====================================================================== bail out


def test_bail_out_makes_the_output_incomplete_and_ends_the_running_test() -> None:
    doc = doc_of("TAP version 13", "1..3", "ok 1 a", "#  RUN           f.v.b ...", "# opening /dev/hmm_dmirror0",
                 "Bail out! device vanished")
    assert leaves(doc) == [("a", "PASS"), ("f.v.b", "ERROR")]
    assert doc.tests[1].reason == "Bail out! device vanished"
    assert doc.bail_out == "device vanished" and not doc.complete and not doc.no_output
    assert doc.summary() == ("incomplete: top level: 1 of 3 planned results, then Bail out! device vanished; "
                             "last test seen: f.v.b (no result line)")


def test_bail_out_inside_the_runner_ends_only_that_stream() -> None:
    doc = doc_of("TAP version 13", "1..2", "# selftests: mm: a", "# TAP version 13", "# 1..2", "# ok 1 one",
                 "# Bail out! no hugepages", "not ok 1 selftests: mm: a # exit=1", "ok 2 selftests: mm: b")
    assert doc.bail_out is None and doc.find("selftests: mm: a").bail_out == "no hugepages"
    assert doc.shortfalls == (Shortfall(("selftests: mm: a",), 2, 1, "one", "no hugepages"),)
    assert leaves(doc) == [("one", "PASS"), ("selftests: mm: a", "FAIL"), ("selftests: mm: b", "PASS")]


def test_bail_out_alone_is_output() -> None:
    doc = doc_of("Bail out! cannot start")
    assert (doc.no_output, doc.complete, doc.bail_out) == (False, False, "cannot start")


# ====================================================================== robustness


@pytest.mark.parametrize("text", [
    "ok 1 a\n  KTAP version 1\n",
    "  ok 1 a\nok 2 b\n\tok 3 c\n",
    "KTAP version 1\n1..1\n    KTAP version 1\n  ok 1 a\nok 1 b\n",
    "KTAP version 1\nKTAP version 1\n1..1\n1..2\nok 1 a\n",
    "# Subtest: x\n\tBail out!\n\t1..1\n",
    "\x00\x1b[31mok 1 colour\x1b[0m\n",
])
def test_malformed_output_never_raises(text: str) -> None:
    doc = parse_document(text)
    assert isinstance(doc.summary(), str) and isinstance(doc.leaves, list)
