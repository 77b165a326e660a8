"""The kernel's hmm-tests selftest, host side: its output parsed and judged whole, the case mapping, the build.

The samples in tests/data/ follow what the 6.12 tree's kselftest_harness.h and kselftest.h print, with
stdout and stderr captured together (as over SSH with 2>&1): ``TAP version 13``, the ``1..58`` plan,
``#  RUN`` / ``#            OK`` / ``#          FAIL`` from the harness, ``ok N name # SKIP reason`` from
ksft_test_result_code(), TH_LOG diagnostics ``# hmm-tests.c:LINE:test:Expected ...`` on stderr, and the
``# Totals:`` line. The 58 tests are the 6.12 tree's (hmm x 2 variants x 26 tests, hmm2 x 2 x 3), in
the order the harness runs them. The parser's own rules are in test_ktap.py and test_ktap_conformance.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hmmbench import cache
from hmmbench.errors import HarnessError
from hmmbench.reports.results import KernelBlock
from hmmbench.reports.selftest import SelftestReport, table
from hmmbench.selftest import build as selftest
from hmmbench.selftest.build import EXCLUSIVE_CASES
from hmmbench.selftest.compare import OutputCheck, selftest_verdicts_for
from hmmbench.selftest.ktap import (
    NO_RESULT_REASON,
    SelftestResult,
    harness_totals,
    parse_document,
    parse_ktap,
    summarize,
)

DATA = Path(__file__).parent / "data"
SOURCES = Path("/root/.cache/hmmbench/sources")
TREES = {
    "debian-6.12": ("hmm-tests.c", "vm_util.c", "thp_settings.c"),
    "debian-7.2": ("hmm-tests.c", "vm_util.c", "hugepage_settings.c"),
}


def sample(name: str) -> str:
    return (DATA / f"hmm_tests_6.12_{name}.txt").read_text()


def by_name(results: list[SelftestResult]) -> dict[str, SelftestResult]:
    return {r.name: r for r in results}


def counts_without_total(results: list[SelftestResult]) -> dict[str, int]:
    summary = summarize(results)
    summary.pop("total")
    return summary


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the cache inside the test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("HMMBENCH_CACHE", str(root))
    return root


# ====================================================================== parsing the samples


def test_passing_run_gives_58_passes_numbered_in_order() -> None:
    text = sample("pass")
    results = parse_ktap(text)
    assert len(results) == 58
    assert [r.number for r in results] == list(range(1, 59))
    assert {r.status for r in results} == {"PASS"}
    assert all(r.diagnostics == () and r.directive == "" for r in results)
    assert results[0].name == "hmm.hmm_device_private.open_close"
    assert results[-1].name == "hmm2.hmm2_device_coherent.double_map"
    assert summarize(results) == {"pass": 58, "fail": 0, "skip": 0, "xfail": 0, "xpass": 0, "error": 0, "total": 58}
    assert counts_without_total(results) == harness_totals(text)


def test_failed_exclusive_keeps_its_assertion_diagnostics() -> None:
    text = sample("exclusive_fail")
    results = parse_ktap(text)
    failed = [r for r in results if r.status == "FAIL"]
    assert len(failed) == 1
    r = failed[0]
    assert r.name == "hmm.hmm_device_private.exclusive"
    assert r.number == 22
    assert (r.test, r.variant) == ("exclusive", "hmm_device_private")
    assert r.diagnostics == (
        "# hmm-tests.c:1817:exclusive:Expected ret (-16) == 0 (0)",
        "# exclusive: Test terminated by assertion",
    )
    # The harness's own FAIL line repeats the verdict and is not a diagnostic; neighbours stay clean.
    assert not any("FAIL" in d for d in r.diagnostics)
    assert by_name(results)["hmm.hmm_device_private.exclusive_mprotect"].diagnostics == ()
    assert counts_without_total(results) == harness_totals(text) == {
        "pass": 57, "fail": 1, "skip": 0, "xfail": 0, "xpass": 0, "error": 0}


def test_skipped_coherent_variant_carries_the_skip_reason() -> None:
    text = sample("coherent_skip")
    results = by_name(parse_ktap(text))
    coherent = [r for r in results.values() if r.variant.endswith("device_coherent")]
    assert len(coherent) == 29
    for r in coherent:
        assert (r.status, r.directive, r.reason) == ("SKIP", "SKIP", "DEVICE_COHERENT not available")
        assert r.diagnostics == ("could not open hmm dmirror driver (/dev/hmm_dmirror2)",
                                 "#      SKIP      DEVICE_COHERENT not available")
    gup = results["hmm.hmm_device_private.hmm_gup_test"]
    assert (gup.status, gup.reason) == ("SKIP", "Skipping test, could not find gup_test driver")
    assert results["hmm.hmm_device_private.exclusive"].status == "PASS"
    assert counts_without_total(list(results.values())) == harness_totals(text)


def test_truncated_run_turns_the_unfinished_test_into_an_error() -> None:
    text = sample("truncated")
    results = parse_ktap(text)
    assert len(results) == 24
    assert {r.status for r in results[:23]} == {"PASS"}
    last = results[-1]
    assert last.name == "hmm.hmm_device_private.exclusive_cow"
    assert last.status == "ERROR"
    assert last.number == 24
    assert last.reason == NO_RESULT_REASON == "no result line (output ended: crash or timeout?)"
    assert last.diagnostics[0].endswith("BUG: Bad page map in process hmm-tests  pte:8000000107c1a867 pmd:1044cb067")
    assert last.diagnostics[-1] == "[   41.2057"  # the cut-off last line is kept as it was
    assert harness_totals(text) is None  # the harness never got to its Totals line
    assert summarize(results)["error"] == 1


def test_output_nested_in_the_kselftest_runner_reports_the_inner_tests() -> None:
    results = parse_ktap(sample("nested_runner"))
    assert [(r.name, r.status, r.number) for r in results] == [
        ("hmm.hmm_device_private.exclusive", "PASS", 1),
        ("hmm.hmm_device_private.exclusive_cow", "FAIL", 2),
        ("hmm.hmm_device_coherent.exclusive", "PASS", 3),
        ("hmm.hmm_device_coherent.exclusive_cow", "ERROR", 4),
    ]
    # Diagnostics read as they would unnested: the runner's "# " prefix is removed.
    assert results[1].diagnostics[0] == "# hmm-tests.c:1958:exclusive_cow:Expected 0 (0) != WIFEXITED(status) (0)"
    # The runner's own verdict (the timeout) is kept with the test it interrupted.
    assert results[3].reason == NO_RESULT_REASON
    assert results[3].diagnostics[-1] == "not ok 1 selftests: mm: hmm-tests # TIMEOUT 45 seconds"


@pytest.mark.parametrize("name", ["pass", "exclusive_fail", "coherent_skip"])
def test_finished_runs_are_complete_and_agree_with_the_harness_totals(name: str) -> None:
    text = sample(name)
    doc = parse_document(text)
    assert (doc.version, doc.planned, doc.seen, doc.complete, doc.problems) == ("TAP version 13", 58, 58, True, ())
    assert doc.totals == harness_totals(text) == counts_without_total(doc.leaves)
    assert doc.diagnostics[0] == "# Starting 58 tests from 4 test cases."  # the harness's, not a test's
    assert doc.leaves == parse_ktap(text)


def test_a_crash_under_the_24th_test_is_incomplete_and_names_it() -> None:
    doc = parse_document(sample("truncated"))
    assert (doc.planned, doc.seen, doc.complete, doc.outcome) == (58, 23, False, "incomplete")
    assert doc.last_test == "hmm.hmm_device_private.exclusive_cow"
    check = OutputCheck.of(doc)
    assert (check.status, check.failed, check.planned, check.seen, check.last_test) == (
        "INCOMPLETE", True, 58, 23, "hmm.hmm_device_private.exclusive_cow")
    assert check.line() == ("hmm-tests output: FAIL: incomplete: top level: 23 of 58 planned results; "
                            "last test seen: hmm.hmm_device_private.exclusive_cow (no result line)")


def test_the_sample_read_off_a_serial_console_parses_the_same() -> None:
    """Every line with a printk timestamp, some with a caller id (as /dev/console interleaves them)."""
    lines = sample("exclusive_fail").splitlines()
    console = "\n".join(f"[{i / 1000:12.6f}]{'[    T1]' if i % 3 else ''} {line}" for i, line in enumerate(lines))
    assert parse_document(console) == parse_document(sample("exclusive_fail"))


def test_the_runner_cut_off_by_its_timeout_is_incomplete_inside() -> None:
    check = OutputCheck.of(parse_document(sample("nested_runner")))
    assert (check.status, check.planned, check.seen) == ("INCOMPLETE", 1, 1)  # the runner's own plan is met
    assert check.shortfalls == ("selftests: mm: hmm-tests: 3 of 4 planned results; "
                                "last test seen: hmm.hmm_device_coherent.exclusive_cow (no result line)",)


def test_no_output_fails_and_zero_tests_is_reported_as_such() -> None:
    nothing = OutputCheck.of(parse_document(""))
    assert (nothing.status, nothing.failed) == ("NO OUTPUT", True)
    assert nothing.line() == "hmm-tests output: FAIL: no KTAP output (no version line, no plan, no result)"
    zero = OutputCheck.of(parse_document("TAP version 13\n1..0 # SKIP no /dev/hmm_dmirror0\n"))
    assert (zero.status, zero.failed) == ("0 TESTS", False)
    assert zero.line() == "hmm-tests output: 0 tests (plan 1..0: SKIP no /dev/hmm_dmirror0)"
    whole = OutputCheck.of(parse_document(sample("pass")))
    assert (whole.status, whole.failed, whole.line()) == (
        "COMPLETE", False, "hmm-tests output: complete: 58 of 58 planned results")


def selftest_report(name: str) -> SelftestReport:
    """A selftest report for a recorded hm-tests output (no cases ran)."""
    doc = parse_document(sample(name))
    return SelftestReport(KernelBlock("debian-6.12", "6.12.117"), "tcg", "", "hmm-tests", "exit status 1",
                          doc.leaves, OutputCheck.of(doc), [], [], [], "")


def test_the_table_and_json_say_when_the_output_was_cut_short() -> None:
    report = selftest_report("truncated")
    res = report.to_dict()
    assert report.failed and report.exit_code == 1
    assert res["selftest_output"] == {
        "status": "INCOMPLETE", "failed": True, "planned": 58, "seen": 23,
        "last_test": "hmm.hmm_device_private.exclusive_cow",
        "summary": "incomplete: top level: 23 of 58 planned results; last test seen: "
                   "hmm.hmm_device_private.exclusive_cow (no result line)",
        "shortfalls": ["top level: 23 of 58 planned results; last test seen: hmm.hmm_device_private.exclusive_cow "
                       "(no result line)"]}
    assert OutputCheck.from_json(res["selftest_output"]) == OutputCheck.of(parse_document(sample("truncated")))
    lines = table(report).splitlines()
    assert lines[0].startswith("kernel 6.12.117 (debian-6.12); hmm-tests exit status 1; summary {'pass': 23")
    assert lines[1].startswith("hmm-tests output: FAIL: incomplete: top level: 23 of 58 planned results")
    assert "other hmm-tests failures: hmm.hmm_device_private.exclusive_cow (ERROR)" in lines
    assert table(selftest_report("pass")).splitlines()[1] == "hmm-tests output: complete: 58 of 58 planned results"


# ====================================================================== parsing: the other forms


def test_directives_map_to_statuses() -> None:
    text = "\n".join([
        "TAP version 13",
        "1..7",
        "ok 1 plain",
        "ok 2 expected # XFAIL known broken on this arch",
        "ok 3 lucky # XPASS",
        "not ok 4 todo_fails # TODO not implemented",
        "ok 5 todo_passes # TODO not implemented",
        "not ok 6 # error could not set up",
        "not ok 7 with_reason #  something went wrong",
    ])
    results = parse_ktap(text)
    assert [(r.name, r.status, r.directive, r.reason) for r in results] == [
        ("plain", "PASS", "", ""),
        ("expected", "XFAIL", "XFAIL", "known broken on this arch"),
        ("lucky", "XPASS", "XPASS", ""),
        ("todo_fails", "XFAIL", "TODO", "not implemented"),
        ("todo_passes", "XPASS", "TODO", "not implemented"),
        ("test 6", "ERROR", "error", "could not set up"),
        ("with_reason", "FAIL", "", "something went wrong"),
    ]


def test_a_nameless_result_takes_the_name_of_its_run_line() -> None:
    results = parse_ktap("#  RUN           hmm.hmm_device_private.open_close ...\nnot ok 1 # error spawn failed\n")
    assert (results[0].name, results[0].status, results[0].reason) == (
        "hmm.hmm_device_private.open_close", "ERROR", "spawn failed")


def test_bail_out_ends_the_running_test_as_an_error() -> None:
    text = "TAP version 13\n1..2\n#  RUN           f.v.a ...\n# something\nBail out! device vanished\n"
    (r,) = parse_ktap(text)
    assert (r.name, r.status, r.reason, r.diagnostics) == ("f.v.a", "ERROR", "Bail out! device vanished",
                                                           ("# something",))


def test_a_run_line_without_result_before_the_next_run_is_an_error() -> None:
    text = "1..2\n#  RUN           f.v.a ...\n#  RUN           f.v.b ...\n#            OK  f.v.b\nok 2 f.v.b\n"
    results = parse_ktap(text)
    assert [(r.name, r.status, r.number) for r in results] == [("f.v.a", "ERROR", 1), ("f.v.b", "PASS", 2)]


def test_harness_verdict_without_tap_line_is_kept_in_the_error() -> None:
    text = "1..1\n#  RUN           f.v.a ...\n#          FAIL  f.v.a\n"
    (r,) = parse_ktap(text)
    assert r.status == "ERROR" and r.diagnostics == ("#          FAIL  f.v.a",)


def test_crlf_console_output_and_ktap_subtests() -> None:
    text = "\r\n".join([
        "KTAP version 1",
        "1..1",
        "    KTAP version 1",
        "    1..2",
        "    ok 1 inner_one",
        "    not ok 2 inner_two",
        "not ok 1 outer",
        "",
    ])
    assert [(r.name, r.status) for r in parse_ktap(text)] == [("inner_one", "PASS"), ("inner_two", "FAIL")]


def test_diagnostics_outside_run_lines_attach_to_the_next_result() -> None:
    text = "TAP version 13\n1..1\n# checking the thing\nnot ok 1 thing\n"
    (r,) = parse_ktap(text)
    assert r.diagnostics == ("# checking the thing",)


def test_empty_and_plan_only_output() -> None:
    assert parse_ktap("") == []
    assert parse_ktap("TAP version 13\n1..0 # SKIP no device\n") == []
    assert summarize([]) == {"pass": 0, "fail": 0, "skip": 0, "xfail": 0, "xpass": 0, "error": 0, "total": 0}


# ====================================================================== mapping to hmmbench cases


def test_exclusive_cases_mapping() -> None:
    assert EXCLUSIVE_CASES == {"exclusive": "exclusive_basic", "exclusive_mprotect": "exclusive_mprotect",
                               "exclusive_cow": "exclusive_fork"}


def test_verdicts_for_a_case_cover_every_variant() -> None:
    results = parse_ktap(sample("exclusive_fail"))
    basic = selftest_verdicts_for(results, "exclusive_basic")
    assert [(r.name, r.status) for r in basic] == [
        ("hmm.hmm_device_private.exclusive", "FAIL"),
        ("hmm.hmm_device_coherent.exclusive", "PASS"),
    ]
    assert [r.name for r in selftest_verdicts_for(results, "exclusive_fork")] == [
        "hmm.hmm_device_private.exclusive_cow", "hmm.hmm_device_coherent.exclusive_cow"]
    assert len(selftest_verdicts_for(results, "exclusive_mprotect")) == 2
    assert selftest_verdicts_for(results, "exclusive_thp") == []


def test_verdicts_for_a_crashed_case_include_the_error() -> None:
    fork = selftest_verdicts_for(parse_ktap(sample("truncated")), "exclusive_fork")
    assert [(r.name, r.status) for r in fork] == [("hmm.hmm_device_private.exclusive_cow", "ERROR")]


def test_name_components() -> None:
    r = SelftestResult("hmm2.hmm2_device_coherent.double_map", "PASS")
    assert (r.test, r.variant) == ("double_map", "hmm2_device_coherent")
    assert (SelftestResult("global.plain", "PASS").variant, SelftestResult("plain", "PASS").test) == ("", "plain")


# ====================================================================== build recipe (no compiling)

MAKEFILE_612 = """\
CFLAGS = -Wall -O2 -I $(top_srcdir) $(EXTRA_CFLAGS) $(KHDR_INCLUDES) $(TOOLS_INCLUDES)
LDLIBS = -lrt -lpthread -lm
TEST_GEN_FILES = cow
TEST_GEN_FILES += hmm-tests
CAN_BUILD_I386 := $(shell ./../x86/check_cc.sh "$(CC)" ../x86/trivial_32bit_program.c -m32)
include ../lib.mk
$(TEST_GEN_PROGS): vm_util.c thp_settings.c
$(TEST_GEN_FILES): vm_util.c thp_settings.c
$(OUTPUT)/uffd-stress: uffd-common.c
$(OUTPUT)/ksm_tests: LDLIBS += -lnuma
"""


def fake_mm(tmp_path: Path, makefile: str | None, files: tuple[str, ...]) -> Path:
    mm = tmp_path / "linux" / selftest.SELFTEST_MM
    mm.mkdir(parents=True)
    for name in files:
        (mm / name).write_text("/* */\n")
    if makefile is not None:
        (mm / "Makefile").write_text(makefile)
    return tmp_path / "linux"


def test_recipe_read_from_makefile_rules(tmp_path: Path) -> None:
    makefile = MAKEFILE_612 + "$(OUTPUT)/hmm-tests: LDLIBS += -ldl\n$(OUTPUT)/hmm-tests: extra.c\n"
    tree = fake_mm(tmp_path, makefile, ("hmm-tests.c", "vm_util.c", "thp_settings.c", "extra.c"))
    recipe = selftest.hmm_tests_recipe(tree)
    assert recipe.sources == ("hmm-tests.c", "vm_util.c", "thp_settings.c", "extra.c")
    assert recipe.ldlibs == ("-lrt", "-lpthread", "-lm", "-ldl")


def test_recipe_falls_back_to_probing_without_makefile(tmp_path: Path) -> None:
    tree = fake_mm(tmp_path, None, ("hmm-tests.c", "vm_util.c", "hugepage_settings.c"))
    recipe = selftest.hmm_tests_recipe(tree)
    assert recipe.sources == ("hmm-tests.c", "vm_util.c", "hugepage_settings.c")
    assert recipe.ldlibs == ("-lrt", "-lpthread", "-lm")


def test_recipe_falls_back_when_the_makefile_names_a_missing_file(tmp_path: Path) -> None:
    tree = fake_mm(tmp_path, MAKEFILE_612, ("hmm-tests.c", "vm_util.c"))
    assert selftest.hmm_tests_recipe(tree).sources == ("hmm-tests.c", "vm_util.c")


def test_recipe_refuses_a_tree_without_hmm_tests(tmp_path: Path) -> None:
    tree = fake_mm(tmp_path, MAKEFILE_612, ("vm_util.c",))
    with pytest.raises(HarnessError, match="no tools/testing/selftests/mm/hmm-tests.c"):
        selftest.hmm_tests_recipe(tree)


@pytest.mark.parametrize("name", sorted(TREES))
def test_recipe_of_the_real_trees(name: str) -> None:
    tree = real_tree(name)
    assert selftest.hmm_tests_recipe(tree) == selftest.Recipe(TREES[name], ("-lrt", "-lpthread", "-lm"))


def test_compile_command_shape(tmp_path: Path) -> None:
    recipe = selftest.Recipe(("hmm-tests.c", "vm_util.c"), ("-lrt", "-lm"))
    tree = tmp_path / "linux"
    cmd = selftest.compile_command(tree, tmp_path / "hdr", recipe, tmp_path / "out")
    assert cmd[0] == "gcc" and {"-static", "-O2", "-Wall"} <= set(cmd)
    assert cmd[cmd.index("-isystem") + 1] == str(tmp_path / "hdr")  # the tree's uapi before tools/include
    assert cmd.index("hmm-tests.c") < cmd.index("-lrt")  # libraries after the objects, for static linking
    assert cmd[-2:] == ["-o", str(tmp_path / "out")]
    assert selftest.headers_command(tree, tmp_path / "o")[-4:] == [f"O={tmp_path / 'o'}", "ARCH=x86_64", "-j1",
                                                                   "headers"]


def test_first_error_line_prefers_the_compiler_error() -> None:
    log = ("$ gcc ...\nhmm-tests.c: In function 'x':\nhmm-tests.c:3:1: warning: unused\n"
           "hmm-tests.c:9:5: error: 'y' undeclared (first use in this function)\nmake: *** [x] Error 1\n")
    assert selftest.first_error_line(log) == "hmm-tests.c:9:5: error: 'y' undeclared (first use in this function)"
    ld_log = "/usr/bin/ld: cannot find -lc: No such file or directory\ncollect2: error: ld returned 1 exit status\n"
    assert selftest.first_error_line(ld_log) == "/usr/bin/ld: cannot find -lc: No such file or directory"
    assert selftest.first_error_line("all fine\n") is None


def test_elf_checks(tmp_path: Path) -> None:
    not_elf = tmp_path / "x"
    not_elf.write_bytes(b"#!/bin/sh\n" + b"\0" * 64)
    with pytest.raises(HarnessError, match="not a 64-bit"):
        selftest.is_static_x86_64(not_elf)
    sh = Path("/bin/sh").resolve()
    if sh.is_file():
        assert not selftest.is_static_x86_64(sh)  # Debian's dash is dynamically linked


# ====================================================================== build_hmm_tests on a tiny fake tree

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

TINY_OK = "#include <stdio.h>\nint main(void) { puts(\"TAP version 13\"); return 0; }\n"
TINY_HELPER = "int helper(void) { return 1; }\n"
TINY_BROKEN = "int main(void) { return undeclared_thing; }\n"


def tiny_tree(tmp_path: Path, main_source: str) -> Path:
    tree = fake_mm(tmp_path, MAKEFILE_612, ())
    mm = tree / selftest.SELFTEST_MM
    (mm / "hmm-tests.c").write_text(main_source)
    (mm / "vm_util.c").write_text(TINY_HELPER.replace("helper", "vm_helper"))
    (mm / "thp_settings.c").write_text(TINY_HELPER.replace("helper", "thp_helper"))
    return tree


@pytest.fixture
def no_kernel_make(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake tree has no kernel Makefile: stand in for ``make headers`` by creating the empty include dir."""
    def fake_headers(tree_path: Path, objdir: Path) -> list[str]:
        return ["mkdir", "-p", str(objdir / "usr" / "include")]

    monkeypatch.setattr(selftest, "headers_command", fake_headers)


@needs_gcc
def test_build_publishes_a_static_binary_and_reuses_it(tmp_path: Path, tmp_cache: Path, no_kernel_make: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tiny_tree(tmp_path, TINY_OK)
    binary = selftest.build_hmm_tests(tree, "tree:tiny")
    assert binary == selftest.selftest_dir("tree:tiny") / "hmm-tests"
    assert binary.is_relative_to(tmp_cache / "selftests")
    assert selftest.is_static_x86_64(binary)
    assert subprocess.run([str(binary)], capture_output=True, text=True).stdout == "TAP version 13\n"
    manifest = cache.read_json(binary.parent / "manifest.json")
    assert manifest and manifest["sources"] == ["hmm-tests.c", "vm_util.c", "thp_settings.c"]
    assert (binary.parent / "build.log").is_file()
    assert not (binary.parent / "kobj").exists()  # generated headers are not kept in the cache
    assert not list(tree.rglob("*.o"))  # nothing was written into the tree

    def must_not_compile(*args: object) -> None:
        raise AssertionError("a cached binary was rebuilt")

    monkeypatch.setattr(selftest, "_compile", must_not_compile)
    assert selftest.build_hmm_tests(tree, "tree:tiny") == binary


@needs_gcc
def test_build_failure_names_the_error_and_keeps_the_log(tmp_path: Path, tmp_cache: Path,
                                                         no_kernel_make: None) -> None:
    tree = tiny_tree(tmp_path, TINY_BROKEN)
    with pytest.raises(HarnessError) as exc:
        selftest.build_hmm_tests(tree, "tree:broken")
    assert "error:" in exc.value.reason and "undeclared_thing" in exc.value.reason
    log = Path(exc.value.hint.removeprefix("full log: ").split(";")[0])
    assert log.is_file() and "undeclared_thing" in log.read_text()
    assert not selftest.selftest_dir("tree:broken").exists()  # nothing half-built was published


# ====================================================================== the real build (slow)


def real_tree(name: str) -> Path:
    """The unpacked Debian tree ``name`` as ``hmmbench.kernel.sources.fetch_debian`` recorded it, or skip."""
    record = cache.read_json(cache.cache_root() / "sources" / f"{name}.json") or cache.read_json(
        SOURCES / f"{name}.json")
    if not record or not Path(record["path"]).is_dir():
        pytest.skip(f"{name} source tree is not unpacked (run: hmmbench fetch {name})")
    return Path(record["path"])


def real_identity(name: str) -> str:
    record = cache.read_json(cache.cache_root() / "sources" / f"{name}.json") or cache.read_json(
        SOURCES / f"{name}.json")
    assert record
    return record["identity"]


def files_changed_since(tree: Path, since: float) -> list[str]:
    """Files of ``tree`` modified after ``since``; the kernel build directories hmmbench keeps inside the
    trees it owns (``.hmmbench-build-*``, written by kernel builds that may run meanwhile) are not the tree."""
    changed = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = [d for d in dirnames if not d.startswith(".hmmbench-build-")]
        for name in [".", *filenames]:
            if dirpath == str(tree) and name == ".":
                continue  # the top directory's mtime changes when a build directory is created
            if os.lstat(os.path.join(dirpath, name)).st_mtime > since:
                changed.append(os.path.join(dirpath, name))
    return changed


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TREES))
def test_build_real_hmm_tests(name: str) -> None:
    """Build hmm-tests for a real tree, in the DEFAULT cache on purpose.

    HMMBENCH_CACHE is deliberately not redirected here: the binary is the one ``hmmbench selftest``
    will copy into guests, so building it into the machine's cache lets later runs (and CI) reuse it
    instead of compiling it again. It is keyed by the tree identity and gcc version, so it can't be stale.
    """
    tree = real_tree(name)
    identity = real_identity(name)
    started = time.time()
    binary = selftest.build_hmm_tests(tree, identity)
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert selftest.is_static_x86_64(binary)
    if shutil.which("file"):
        described = subprocess.run(["file", "-b", str(binary)], capture_output=True, text=True).stdout
        assert "statically linked" in described and "x86-64" in described
    # -l only lists tests (it opens no device), so it is safe to run on the host.
    listing = subprocess.run([str(binary), "-l"], capture_output=True, text=True, timeout=30)
    listed = (listing.stdout + listing.stderr).split()
    assert {"exclusive", "exclusive_mprotect", "exclusive_cow", "hmm_device_private"} <= set(listed)
    assert files_changed_since(tree, started) == []  # the tree is read-only to the build

    again = time.monotonic()
    assert selftest.build_hmm_tests(tree, identity) == binary
    assert time.monotonic() - again < 2.0
