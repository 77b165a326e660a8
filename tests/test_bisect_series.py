"""Pure logic of bisect and series: step verdicts, first changes, warnings in touched files, build dirs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hmmbench.errors import HarnessError
from hmmbench.kernel import build as kbuild
from hmmbench.kernel import sources
from hmmbench.workflows import bisect, series


def runs(*statuses: str, titles: list[str] | None = None) -> list[bisect.StepRun]:
    return [bisect.StepRun(f"case{i}", s, "", titles or [], "") for i, s in enumerate(statuses)]


def test_step_is_bad_if_any_run_fails() -> None:
    assert bisect.judge_runs(runs("PASS", "FAIL", "PASS"), None)[0] == bisect.BAD
    assert bisect.judge_runs(runs("PASS", "PASS"), None)[0] == bisect.GOOD
    assert bisect.judge_runs(runs("SKIP"), None)[0] == bisect.SKIP
    assert bisect.judge_runs(runs("ERROR", "PASS"), None)[0] == bisect.SKIP


def test_signature_bisection_ignores_other_crashes() -> None:
    warn = "WARNING in restore_exclusive_pte"
    assert bisect.judge_runs(runs("FAIL", titles=[warn]), "restore_exclusive_pte")[0] == bisect.BAD
    result, why = bisect.judge_runs(runs("FAIL", titles=["BUG: Bad page state in free_pages"]), "restore_exclusive")
    assert result == bisect.GOOD and "Bad page state" in why
    # A FAIL without the signature is not bad for a signature bisect.
    assert bisect.judge_runs(runs("FAIL"), "restore_exclusive")[0] == bisect.GOOD


def test_git_bisect_run_exit_codes() -> None:
    assert [bisect.step_exit_code(r) for r in (bisect.GOOD, bisect.BAD, bisect.SKIP)] == [0, 1, 125]


def test_first_changes_names_the_first_differing_commit() -> None:
    ok = {"build": series.BuildStep(True, 1.0), "boot": series.BootStep(True)}
    steps = [
        series.SeriesStep("a" * 40, "base", [], verdicts={"x": "PASS", "y": "FAIL"}, **ok),
        series.SeriesStep("b" * 40, "one", [], verdicts={"x": "PASS", "y": "FAIL"}, **ok),
        series.SeriesStep("c" * 40, "unbuildable", [], build=series.BuildStep(False, 1.0, error="boom")),
        series.SeriesStep("d" * 40, "two", [], verdicts={"x": "FAIL", "y": "PASS"}, summaries={"x": "why"}, **ok),
        series.SeriesStep("e" * 40, "three", [], verdicts={"x": "PASS", "y": "PASS"}, **ok),
    ]
    changes = {c.case: c for c in series.first_changes(steps)}
    assert changes["x"].subject == "two" and (changes["x"].before, changes["x"].after) == ("PASS", "FAIL")
    assert changes["y"].subject == "two" and changes["y"].after == "PASS"
    assert changes["x"].to_dict()["from"] == "PASS"  # series.json keeps its keys
    assert series.SeriesReport("r", "a", "e", [steps[0], steps[3]]).exit_code == 1  # x went PASS -> FAIL
    assert series.SeriesReport("r", "a", "e", [steps[0], steps[1]]).exit_code == 0
    assert series.SeriesReport("r", "a", "e", steps[:3]).exit_code == 1  # c does not build


def test_warnings_only_in_touched_files() -> None:
    warnings = (
        "../lib/test_hmm.c:745:9: warning: ISO C90 forbids mixed declarations and code",
        "/abs/tree/mm/memory.c:10:1: warning: unused variable 'x'",
        "../mm/rmap.c:3:3: warning: something else",
    )
    assert series.warnings_in(warnings, ["lib/test_hmm.c", "mm/memory.c"]) == list(warnings[:2])
    assert series.warnings_in(warnings, ["mm/rmap.h"]) == []


def test_owned_trees_build_in_a_direct_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMMBENCH_CACHE", str(tmp_path / "cache"))
    owned = tmp_path / "cache" / "sources" / "linux"
    owned.mkdir(parents=True)
    d = kbuild.build_dir_for(owned, "abcdef0123456789")
    assert d.parent == owned and d.name.startswith(kbuild.BUILD_DIR_PREFIX)  # kbuild: srctree := ..
    user = tmp_path / "home" / "linux"
    user.mkdir(parents=True)
    assert not kbuild.build_dir_for(user, "abcdef0123456789").is_relative_to(user)  # never inside a user tree


def test_path_at_rev_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMMBENCH_CACHE", str(tmp_path / "cache"))
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(HarnessError, match="not a git repository"):
        sources.resolve_spec(f"{plain}@HEAD")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    with pytest.raises(HarnessError, match="no commit 'nope'"):
        sources.resolve_spec(f"{repo}@nope")
    with pytest.raises(HarnessError, match="not a Linux kernel tree"):
        sources.resolve_spec(f"{repo}@HEAD")  # checked out, but not a kernel


def test_patch_files_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "0002-b.patch").write_text("b")
    (tmp_path / "0001-a.patch").write_text("a")
    (tmp_path / "notes.txt").write_text("-")
    assert [p.name for p in series.patch_files(tmp_path)] == ["0001-a.patch", "0002-b.patch"]
    assert series.patch_files(tmp_path / "0001-a.patch") == [tmp_path / "0001-a.patch"]  # an mbox file
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no \\*.patch"):
        series.patch_files(tmp_path / "empty")
    with pytest.raises(HarnessError, match="no such file"):
        series.patch_files(tmp_path / "missing")
