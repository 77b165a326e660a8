"""Issue "Regression gate": gate on the default kernels, and a series walk that names the breaking commit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hmmbench.kernel import fixture_history

from .conftest import run_hmmbench

pytestmark = pytest.mark.slow

HARMLESS_1 = {"mm/rmap.c": ("#include <linux/mm.h>", "#include <linux/mm.h>\n/* hmmbench test: harmless 1 */")}
HARMLESS_2 = {"lib/test_hmm.c": ("#include <linux/init.h>", "#include <linux/init.h>\n/* hmmbench test: harmless 2 */")}
BREAKING = fixture_history.BREAK_EXCLUSIVE_BASIC
HARMLESS_3 = {"mm/memory.c": ("#include <linux/kernel_stat.h>",
                              "#include <linux/kernel_stat.h>\n/* hmmbench test: harmless 3 */")}


def make_history() -> tuple[Path, list[str]]:
    repo = fixture_history.ensure_repo()
    commits, parent = [], fixture_history.BASE_BRANCH
    for msg, edits in (("harmless one", HARMLESS_1), ("harmless two", HARMLESS_2),
                       ("test_hmm: break CHECK_EXCLUSIVE", BREAKING), ("harmless three", HARMLESS_3)):
        parent = fixture_history.commit_change(repo, parent, msg, edits)
        commits.append(parent)
    return repo, commits


def test_series_names_the_breaking_commit(tmp_path: Path) -> None:
    repo, commits = make_history()
    patches = tmp_path / "patches"
    subprocess.run(["git", "--git-dir", str(repo), "format-patch", "-q", "-o", str(patches),
                    f"{fixture_history.BASE_BRANCH}..{commits[-1]}"], check=True)
    assert len(list(patches.glob("*.patch"))) == 4
    out = tmp_path / "series"
    proc = run_hmmbench("series", "--tree", str(repo), "--base", fixture_history.BASE_BRANCH, "--patches", str(patches),
                        "--case", "exclusive_basic", "--out", str(out), "--json", str(tmp_path / "series.json"),
                        timeout=5400)
    report = json.loads((tmp_path / "series.json").read_text())
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]  # a case went PASS -> FAIL
    assert len(report["steps"]) == 5 and all(s["build"]["ok"] and s["boot"]["ok"] for s in report["steps"])
    changes = {c["case"]: c for c in report["first_changes"]}
    first = changes["exclusive_basic[npages=4]"]
    assert (first["from"], first["to"]) == ("PASS", "FAIL")
    assert first["subject"] == "test_hmm: break CHECK_EXCLUSIVE"
    # git am applied the patches on a fresh branch: same trees as the originals, new commits.
    assert "break CHECK_EXCLUSIVE" in proc.stdout
    assert report["steps"][3]["files"] == ["lib/test_hmm.c"]


def test_gate_default_lists_the_predicted_differences(tmp_path: Path) -> None:
    out = tmp_path / "gate"
    proc = run_hmmbench("gate", "--out", str(out), "--json", str(tmp_path / "gate.json"),
                        "--markdown", str(tmp_path / "gate.txt"), "--junit", str(tmp_path / "gate.xml"))
    report = json.loads((tmp_path / "gate.json").read_text())
    assert proc.returncode == (1 if report["regressed"] else 0)
    assert report["base"]["release"].startswith("6.12") and report["patched"]["release"].startswith("7.2")
    statuses = {p["name"]: p["status"] for p in report["predictions"]}
    assert len(statuses) >= 8 and all(s in ("confirmed", "refuted") for s in statuses.values()), statuses
    for name in ("swap type of a writable device-exclusive entry", "kpagecount of a device-exclusive page",
                 "one page of a THP made exclusive", "errno for MAP_SHARED anonymous memory",
                 "swap types of device-private entries (write, read)", "a 2 MiB THP migrated to device-private memory"):
        assert statuses[name] == "confirmed", report["predictions"]
    cats = {c["id"]: c["category"] for c in report["cases"]}
    assert cats["exclusive_thp"] == "fixed" and cats["exclusive_mapcount"] == "fixed"
    mail = (tmp_path / "gate.txt").read_text()
    assert report["base"]["tree_identity"] in mail and "Evidence" in mail


def test_gate_exits_1_when_the_patched_kernel_regresses(tmp_path: Path) -> None:
    repo, commits = make_history()
    proc = run_hmmbench("gate", "--base", f"{repo}@{commits[1]}", "--patched", f"{repo}@{commits[2]}",
                        "--case", "exclusive_basic", "--out", str(tmp_path / "g"), "--ktap")
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert proc.stdout.startswith("KTAP version 1")
    assert "not ok 1 exclusive_basic[npages=4]" in proc.stdout
    proc_same = run_hmmbench("gate", "--base", f"{repo}@{commits[0]}", "--patched", f"{repo}@{commits[1]}",
                             "--case", "exclusive_basic", "--out", str(tmp_path / "g2"))
    assert proc_same.returncode == 0, proc_same.stdout
