"""Issue "Bisection helper": 13 commits on Debian 6.12, one unbuildable, one breaking a case.

git bisect's first midpoint in 13 commits is the 6th, so c6 is the unbuildable one (c7 repairs it)
and bisect must skip it; c10 breaks exclusive_basic. The bisection is interrupted once and resumed.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hmmbench import cache
from hmmbench.kernel import fixture_history

from .conftest import HMMBENCH, REPO, run_hmmbench

pytestmark = pytest.mark.slow

MARK = "#include <linux/init.h>"



def make_history() -> tuple[Path, list[str]]:
    repo = fixture_history.ensure_repo()
    commits, parent = [], fixture_history.BASE_BRANCH
    for i in range(1, 14):
        if i == 6:
            edits = {"lib/test_hmm.c": (MARK, f"{MARK}\nthis line does not compile; /* bisect c{i} */")}
        elif i == 7:
            edits = {"lib/test_hmm.c": (f"{MARK}\nthis line does not compile; /* bisect c6 */",
                                        f"{MARK}\n/* bisect c{i}: repaired */")}
        elif i == 10:
            edits = fixture_history.BREAK_EXCLUSIVE_BASIC
        else:
            edits = {"lib/test_hmm.c": (MARK, f"{MARK}\n/* bisect c{i}: harmless */")}
        parent = fixture_history.commit_change(repo, parent, f"bisect test c{i}", edits)
        commits.append(parent)
    fixture_history.branch(repo, "bisect-bad", commits[-1])
    return repo, commits


def _state_file_for(bad: str) -> Path | None:
    """The state file of the bisection whose bad end is ``bad`` (states record their request)."""
    for f in (cache.cache_root() / "bisect").glob("*.json"):
        if json.loads(f.read_text()).get("request", {}).get("bad") == bad:
            return f
    return None


def test_bisect_finds_the_breaking_commit_and_resumes(tmp_path: Path) -> None:
    repo, commits = make_history()
    args = ["bisect", "--tree", str(repo), "--good", fixture_history.BASE_BRANCH, "--bad", "bisect-bad",
            "--case", "exclusive_basic", "--timeout", "120"]
    leftover = _state_file_for(commits[-1])  # from an earlier run: this run would be a pure replay
    if leftover:
        leftover.unlink()

    # First invocation: interrupted (SIGTERM) once three steps are recorded.
    proc = subprocess.Popen([*HMMBENCH, *args, "--out", str(tmp_path / "b1")], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 3600
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = _state_file_for(commits[-1])
        if state and len(json.loads(state.read_text())["steps"]) >= 3:
            break
        time.sleep(2)
    assert proc.poll() is None, f"bisect ended before it could be interrupted: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert state is not None
    recorded = len(json.loads(state.read_text())["steps"])

    # Second invocation: the same command resumes from the recorded steps.
    out = tmp_path / "bisect.json"
    proc2 = run_hmmbench(*args, "--out", str(tmp_path / "b2"), "--json", str(out), timeout=5400)
    assert proc2.returncode == 0, proc2.stdout + proc2.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["first_bad"]["commit"] == commits[9]
    assert report["first_bad"]["subject"] == "bisect test c10"
    assert report["first_bad"]["files"] == ["lib/test_hmm.c"]
    steps = {s["commit"]: s for s in report["steps"]}
    assert steps[commits[5]]["result"] == "skip" and "does not build" in steps[commits[5]]["why"]
    assert report["evidence"]["first_bad"]["result"] == "bad" and report["evidence"]["parent"]["result"] == "good"
    # Resumed: the recorded steps were not run again.
    assert report["cycles_this_run"] <= len(report["steps"]) - recorded + 1
    # Budget: endpoints (2) + log2 of the range + one cycle per skipped commit.
    total_cycles = len(report["steps"])
    assert total_cycles <= math.ceil(math.log2(len(commits))) + report["skips"] + 2, report["steps"]


def test_bisect_script_for_git_bisect_run(tmp_path: Path) -> None:
    repo, _ = make_history()
    proc = run_hmmbench("bisect", "--tree", str(repo), "--good", fixture_history.BASE_BRANCH, "--bad", "bisect-bad",
                        "--case", "exclusive_basic", "--script")
    assert proc.returncode == 0
    assert proc.stdout.startswith("#!/bin/sh")
    assert "bisect-step" in proc.stdout and "--case exclusive_basic" in proc.stdout
