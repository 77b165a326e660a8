"""hmmbench.selftest.ktap against the kernel's own KTAP: the KUnit test logs and the specification's examples.

The logs are read in place from the fetched Debian trees (tools/testing/kunit/test_data/, never copied
here), located through the cache records ``<cache>/sources/debian-6.12.json`` and ``debian-7.2.json``.
What each log must parse to is what the same tree's tools/testing/kunit/kunit_tool_test.py asserts of
it, written down below as a table (one row per log, naming the kunit_tool tests it comes from), in
kunit_tool's vocabulary and translated to ours by ``KUNIT_OUTCOME``/``KUNIT_STATUS``. Where kunit_tool
marks an error, its meaning is encoded: "missing expected subtest!" is a shortfall of that suite's plan,
"0 tests run!" an empty plan or an empty subtest stream, "Could not find any KTAP output" no output.

Where this parser deliberately reads more than kunit_tool: the kselftest runner's ``# `` nesting. kunit_tool
sees test_is_test_passed-kselftest.log's ``# ok 1 ...`` lines as diagnostics; we see them as the inner
tests they are (hmm-tests run by run_vmtests.sh prints the same shape). Its expectations (SUCCESS, no
errors) hold either way.

A tree that is not fetched skips with the command that fetches it; a log that a tree does not have skips
for that tree (the 7.2 tree has logs 6.12 lacks). If the tree's kunit_tool_test.py uses a log that the
table does not cover, the coverage test fails and names it: the table must then be extended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from hmmbench import cache
from hmmbench.selftest.ktap import KtapDocument, KtapTest, parse_document

TREES = ("debian-6.12", "debian-7.2")
KUNIT = Path("tools/testing/kunit")

# kunit_parser.TestStatus of a whole run -> KtapDocument.outcome values that mean the same.
KUNIT_OUTCOME = {
    "SUCCESS": {"pass"},
    "FAILURE": {"fail"},
    "SKIPPED": {"skip"},
    "TEST_CRASHED": {"incomplete", "error"},
    "NO_TESTS": {"0 tests"},
    "FAILURE_TO_PARSE_TESTS": {"no output"},
}
# kunit_parser.TestStatus of one test (and kunit_json's PASS/FAIL/SKIP/ERROR) -> KtapTest.status.
KUNIT_STATUS = {"SUCCESS": "PASS", "FAILURE": "FAIL", "SKIPPED": "SKIP", "TEST_CRASHED": "ERROR",
                "PASS": "PASS", "FAIL": "FAIL", "SKIP": "SKIP", "ERROR": "ERROR"}
# kunit_parser.TestCounts fields -> leaf statuses.
KUNIT_COUNTS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "crashed": "ERROR"}

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class Kunit:
    """What kunit_tool_test.py asserts of one log (None / empty: it asserts nothing of that kind)."""

    log: str
    tests: str  # the kunit_tool_test.py tests that read it
    status: str | None = None  # result.status
    errors: bool | None = None  # result.counts.errors > 0 (False: == 0)
    counts: tuple[tuple[str, int], ...] = ()  # result.counts fields (kunit_junit: tests=, skipped=)
    min_counts: tuple[tuple[str, int], ...] = ()  # at least this many (kunit_junit: an <error> element)
    top_count: int | None = None  # len(result.subtests)
    children: tuple[tuple[Path_, tuple[str, ...]], ...] = ()  # test at path: its first subtests' names
    statuses: tuple[tuple[Path_, str], ...] = ()  # test at path: status (subtests[i].status, kunit_json)
    reasons: tuple[tuple[Path_, str], ...] = ()  # test at path: .skip_reason
    plans: tuple[tuple[Path_, int], ...] = ()  # "suite (1 subtest)": the test's subtest plan
    logs: tuple[tuple[Path_, str], ...] = ()  # test at path: a diagnostic containing the text (.log, extract)
    version: str = ""  # extract_tap_lines keeps this version line
    no_tests: tuple[Path_, ...] = ()  # test at path is NO_TESTS: its subtest stream ran nothing
    missing: tuple[tuple[Path_, int, int], ...] = ()  # "missing expected subtest!": (path, planned, seen)


KUNIT_RESOURCE = ("kunit_resource_test_init_resources", "kunit_resource_test_alloc_resource",
                  "kunit_resource_test_destroy_resource", "kunit_resource_test_cleanup_resources",
                  "kunit_resource_test_proper_free_ordering")
TRY_CATCH = ("kunit_test_try_catch_successful_try_no_catch", "kunit_test_try_catch_unsuccessful_try_does_catch")
STRING_STREAM = ("string_stream_test_empty_on_creation", "string_stream_test_not_empty_after_add",
                 "string_stream_test_get_string")
PREFIXED = dict(status="SUCCESS", errors=False, children=(((), ("kunit-resource-test",)),))

TABLE = (
    Kunit("test_output_isolated_correctly.log", "test_output_isolated_correctly (extract_tap_lines)",
          version="TAP version 14", children=(((), ("example",)), (("example",), ("example_simple_test",
                                                                               "example_mock_test"))),
          plans=((("example",), 2),)),
    Kunit("test_pound_sign.log", "test_output_with_prefix_isolated_correctly (extract_tap_lines), "
          "test_prefix_poundsign", version="TAP version 14",
          children=(((), ("kunit-resource-test", "kunit-try-catch-test", "string-stream-test")),
                    (("kunit-resource-test",), KUNIT_RESOURCE), (("kunit-try-catch-test",), TRY_CATCH),
                    (("string-stream-test",), STRING_STREAM)),
          plans=((("kunit-resource-test",), 5), (("kunit-try-catch-test",), 2), (("string-stream-test",), 3)),
          logs=((("kunit-resource-test",), "foo bar \t#"), (("kunit-try-catch-test",), "foo bar \t# non-kunit output")),
          status="SUCCESS", errors=False),
    Kunit("test_is_test_passed-all_passed.log", "test_parse_successful_test_log, KUnitMainTest",
          status="SUCCESS", errors=False),
    Kunit("test_is_test_passed-all_passed_nested.log", "test_parse_successful_nested_tests_log, test_nested_json",
          status="SUCCESS", errors=False,
          statuses=((("sysctl_test", "example", "example_simple_test"), "PASS"),)),
    Kunit("test_is_test_passed-kselftest.log", "test_kselftest_nested", status="SUCCESS", errors=False),
    Kunit("test_is_test_passed-failure.log", "test_parse_failed_test_log, test_failed_test_json, "
          "test_failed_test_junit", status="FAILURE", errors=False, min_counts=(("failed", 1),),
          statuses=((("example", "example_simple_test"), "FAIL"),)),
    # 7.x: "subtest 1" says not ok over its passing "test 1": kunit_parser counts that as a failure of its own.
    Kunit("test_is_test_passed-failure-nested.log", "test_parse_failed_nested_tests_log",
          status="FAILURE", counts=(("failed", 2),),
          statuses=((("subtest 1",), "FAILURE"), (("subtest 1", "test 1"), "SUCCESS"), (("subtest 2",), "FAILURE"),
                    (("subtest 2", "subsubtest 1"), "FAILURE"))),
    Kunit("test_is_test_passed-no_tests_run_no_header.log", "test_no_header",
          status="FAILURE_TO_PARSE_TESTS", errors=True, top_count=0),
    Kunit("test_is_test_passed-missing_plan.log", "test_missing_test_plan",
          status="SUCCESS", errors=False, counts=(("passed", 10),)),
    Kunit("test_is_test_passed-no_tests_run_with_header.log", "test_no_tests, test_no_tests_json, "
          "test_exec_no_tests, test_no_tests_junit", status="NO_TESTS", errors=True, top_count=0,
          counts=(("passed", 0), ("failed", 0), ("skipped", 0), ("crashed", 0))),
    Kunit("test_is_test_passed-no_tests_no_plan.log", "test_no_tests_no_plan",
          errors=True, counts=(("passed", 1),), no_tests=(("suite", "case"),)),
    Kunit("test_insufficient_memory.log", "test_no_kunit_output ('Could not find any KTAP output.')",
          status="FAILURE_TO_PARSE_TESTS", errors=True, top_count=0),
    Kunit("test_skip_tests.log", "test_skipped_test, test_skipped_test_json, test_skipped_test_junit",
          status="SUCCESS", counts=(("passed", 4), ("skipped", 1)),
          statuses=((("example", "example_skip_test"), "SKIP"),),
          reasons=((("example", "example_skip_test"), "this test should be skipped"),)),
    Kunit("test_skip_all_tests.log", "test_skipped_all_tests, test_skipped_reason_parse",
          status="SKIPPED", counts=(("skipped", 5),),
          statuses=((("string-stream-test",), "SKIP"), (("string-stream-test", STRING_STREAM[0]), "SKIP")),
          reasons=((("string-stream-test", STRING_STREAM[0]), "all tests skipped"), (("string-stream-test",), ""))),
    Kunit("test_strip_hyphen.log", "test_ignores_hyphen", status="SUCCESS",
          children=(((), ("sysctl_test", "example")),)),
    Kunit("test_config_printk_time.log", "test_ignores_prefix_printk_time", **PREFIXED),
    Kunit("test_multiple_prefixes.log", "test_ignores_multiple_prefixes", **PREFIXED),
    Kunit("test_interrupted_tap_output.log", "test_prefix_mixed_kernel_output", **PREFIXED),
    Kunit("test_pound_no_prefix.log", "test_pound_no_prefix", **PREFIXED),
    Kunit("test_kernel_panic_interrupt.log", "test_kernel_panic_end, test_crashed_test_json, test_crashed_test_junit",
          status="TEST_CRASHED", errors=True, children=(((), ("kunit-resource-test",)),), min_counts=(("crashed", 1),),
          # kunit_json: sub_groups[2].test_cases[1] is a nameless ERROR, the 2nd of 3 planned string-stream tests.
          missing=((("string-stream-test",), 3, 1),)),
    Kunit("test_parse_ktap_output.log", "test_ktap_format", counts=(("passed", 3),),
          children=(((), ("suite",)), (("suite",), ("case_1", "case_2")))),
    Kunit("test_parse_subtest_header.log", "test_parse_subtest_header ('suite (1 subtest)')",
          plans=((("suite",), 1),)),
    Kunit("test_parse_attributes.log", "test_parse_attributes", status="SUCCESS", errors=False,
          counts=(("passed", 1),), plans=((("suite",), 1),),
          logs=((("suite",), "# module: example"), (("suite", "test"), "# test.speed: slow"))),
)


# ====================================================================== the trees


def tree_root(name: str) -> Path:
    """The unpacked tree ``name`` as its cache record names it, or skip saying how to fetch it."""
    record = cache.read_json(cache.cache_root() / "sources" / f"{name}.json")
    if not record or not record.get("path") or not Path(record["path"]).is_dir():
        pytest.skip(f"{name} source tree is not fetched (no {cache.cache_root() / 'sources' / (name + '.json')}; "
                    f"run: hmmbench kernel fetch {name})")
    return Path(record["path"])


def kunit_dir(name: str) -> Path:
    root = tree_root(name) / KUNIT
    if not (root / "test_data").is_dir():
        pytest.skip(f"{name} has no {KUNIT / 'test_data'}")
    return root


def logs_used_by(kunit_tool_test: str) -> set[str]:
    """The test_data logs kunit_tool_test.py opens (adjacent string literals joined first)."""
    joined = re.sub(r"'\s*'", "", kunit_tool_test)
    return set(re.findall(r"'(test_[\w.+-]+\.log)'", joined))



# ====================================================================== our reading in kunit_tool's terms


def kunit_errors(doc: KtapDocument) -> bool:
    """Whether kunit_tool would count parse errors: a shortfall, a numbering slip, nothing run, no output."""
    empty_stream = any(t.ran_no_tests for _, t in doc.walk())
    return not doc.complete or bool(doc.problems) or doc.zero_tests or empty_stream


def leaf_counts(doc: KtapDocument) -> dict[str, int]:
    statuses = [r.status for r in doc.leaves]
    return {field: statuses.count(status) for field, status in KUNIT_COUNTS.items()}


def child_names(doc: KtapDocument, path: Path_) -> list[str]:
    tests = doc.find(*path).subtests if path else doc.tests
    return [t.name for t in tests]


ROWS = [pytest.param(tree, row, id=f"{tree}:{row.log}") for tree in TREES for row in TABLE]


@pytest.mark.parametrize(("tree", "row"), ROWS)
def test_kunit_log_parses_as_kunit_tool_test_expects(tree: str, row: Kunit) -> None:
    log = kunit_dir(tree) / "test_data" / row.log
    if not log.is_file():
        pytest.skip(f"{tree} has no {row.log}")
    doc = parse_document(log.read_text(errors="replace"))
    if row.status is not None:
        assert doc.outcome in KUNIT_OUTCOME[row.status], (row.tests, doc.outcome, doc.summary())
    if row.errors is not None:
        assert kunit_errors(doc) == row.errors, (row.tests, doc.summary(), doc.problems)
    counts = leaf_counts(doc)
    for name, n in row.counts:
        assert counts[name] == n, (row.tests, name, counts)
    for name, n in row.min_counts:
        assert counts[name] >= n, (row.tests, name, counts)
    if row.top_count is not None:
        assert len(doc.tests) == row.top_count
    for path, names in row.children:
        assert child_names(doc, path)[:len(names)] == list(names), (row.tests, path)
    for path, status in row.statuses:
        assert doc.find(*path).status == KUNIT_STATUS[status], (row.tests, path)
    for path, reason in row.reasons:
        assert doc.find(*path).reason == reason, (row.tests, path)
    for path, planned in row.plans:
        assert doc.find(*path).planned == planned, (row.tests, path)
    for path, text in row.logs:
        assert any(text in line for line in doc.find(*path).diagnostics), (row.tests, path, text)
    if row.version:
        assert doc.version == row.version
    for path in row.no_tests:
        assert doc.find(*path).ran_no_tests, (row.tests, path)
    for path, planned, seen in row.missing:
        short = [s for s in doc.shortfalls if s.path == path]
        assert [(s.planned, s.seen) for s in short] == [(planned, seen)], (row.tests, doc.shortfalls)


@pytest.mark.parametrize("tree", TREES)
def test_the_table_covers_every_log_kunit_tool_test_uses(tree: str) -> None:
    root = kunit_dir(tree)
    used = logs_used_by((root / "kunit_tool_test.py").read_text())
    assert "test_is_test_passed-missing_plan.log" in used  # written as two adjacent literals in the file
    assert used, "found no logs in kunit_tool_test.py: has its layout changed?"
    uncovered = sorted(used - {row.log for row in TABLE})
    assert not uncovered, f"{tree}'s kunit_tool_test.py uses {uncovered}: add what it expects of them to TABLE"
    assert all((root / "test_data" / log).is_file() for log in used)


@pytest.mark.parametrize("tree", TREES)
def test_every_log_in_the_tree_parses(tree: str) -> None:
    """Logs kunit_tool_test.py does not read (test_output_with_prefix_isolated_correctly.log) parse too."""
    logs = sorted((kunit_dir(tree) / "test_data").glob("*.log"))
    assert logs
    for log in logs:
        doc = parse_document(log.read_text(errors="replace"))
        assert doc.outcome in {o for outcomes in KUNIT_OUTCOME.values() for o in outcomes}, log.name
        # Every log with any result line in it yields tests; only the two without KTAP are "no output".
        has_result = re.search(r"^(\[[^\]]*\]\s?)*\s*(not )?ok \d", log.read_text(errors="replace"), re.M)
        assert doc.no_output == (has_result is None and "TAP version" not in log.read_text(errors="replace")), log


# ====================================================================== the specification's examples

Tree = tuple[tuple[str, str, "Tree"], ...]

# Documentation/dev-tools/ktap.rst's three examples, as its text describes them (name, status, subtests).
SPEC_EXAMPLES: tuple[Tree, ...] = (
    (("example", "FAIL", (("test_1", "PASS", ()), ("test_2", "FAIL", ()))),),
    (("example_test_1", "FAIL", (("test_3", "FAIL", (("test_1", "FAIL", ()), ("test_2", "PASS", ()))),
                                 ("test_4", "SKIP", ()))),
     ("example_test_2", "PASS", ())),
    (("main_test", "FAIL", (
        ("example_test_1", "PASS", (("test_1", "PASS", ()),)),
        ("example_test_2", "PASS", (("test_1", "SKIP", ()), ("test_2", "PASS", ()))),
        ("example_test_3", "FAIL", (("test_1", "PASS", ()), ("test_2", "FAIL", ()), ("test_3", "SKIP", ()))))),),
)


def literal_blocks(rst: str) -> list[str]:
    """The ``::`` literal blocks of the rst that hold KTAP (start with a version line), unindented once."""
    blocks, lines = [], rst.splitlines()
    for i, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        body = []
        for following in lines[i + 1:]:
            if following.strip() and not following.startswith(("\t", " ")):
                break
            body.append(following)
        text = "\n".join(b[1:] if b.startswith("\t") else b for b in body).strip("\n")
        if text.startswith("KTAP version"):
            blocks.append(text + "\n")
    return blocks


def shape(tests: tuple[KtapTest, ...]) -> Tree:
    return tuple((t.name, t.status, shape(t.subtests)) for t in tests)


@pytest.mark.parametrize("tree", TREES)
def test_the_specification_s_examples_read_as_it_describes_them(tree: str) -> None:
    rst = tree_root(tree) / "Documentation" / "dev-tools" / "ktap.rst"
    if not rst.is_file():
        pytest.skip(f"{tree} has no {rst}")
    blocks = literal_blocks(rst.read_text())
    assert len(blocks) == len(SPEC_EXAMPLES), [b.splitlines()[:3] for b in blocks]
    for block, want in zip(blocks, SPEC_EXAMPLES, strict=True):
        doc = parse_document(block)
        assert doc.complete and shape(doc.tests) == want, block
    last = parse_document(blocks[-1])
    # "test_1 ... outputs the diagnostic message 'test_1: initializing test_1'"; "skipped, with the explanation".
    assert last.find("main_test", "example_test_1", "test_1").diagnostics == ("# test_1: initializing test_1",)
    assert last.find("main_test", "example_test_2", "test_1").reason == "test_1 skipped"
    assert last.find("main_test", "example_test_3", "test_2").diagnostics == ("# test_2: FAIL",)
