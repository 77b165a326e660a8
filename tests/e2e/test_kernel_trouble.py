"""Kernel trouble is a result: an injected WARN_ON and an injected hang, each pinned on its case.

Both kernels are the Debian 6.12 tree plus a one-hunk patch, committed with fixed dates on top of a
git import of the tree (hmmbench/gitrepo.py), and built with `--kernel REPO@COMMIT`, so the builds
are incremental in one worktree and cached across CI runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hmmbench import gitrepo

from .conftest import run_hmmbench

pytestmark = pytest.mark.slow

WARN_PATCH = {
    "mm/memory.c": (
        "\torig_pte = ptep_get(ptep);\n\tpte = pte_mkold(mk_pte(page, READ_ONCE(vma->vm_page_prot)));",
        "\torig_pte = ptep_get(ptep);\n\tWARN_ON_ONCE(1); /* hmmbench test: injected */\n"
        "\tpte = pte_mkold(mk_pte(page, READ_ONCE(vma->vm_page_prot)));",
    ),
}
HANG_PATCH = {
    "lib/test_hmm.c": (
        "\tstart = cmd->addr;\n\tend = start + size;\n\tif (end < start)\n\t\treturn -EINVAL;\n\n"
        "\t/* Since the mm is for the mirrored process, get a reference first. */",
        "\tstart = cmd->addr;\n\tend = start + size;\n\tif (end < start)\n\t\treturn -EINVAL;\n\n"
        "\twhile (cmd->npages == 65) { /* hmmbench test: injected hang, never woken */\n"
        "\t\tset_current_state(TASK_UNINTERRUPTIBLE);\n\t\tschedule();\n\t}\n\n"
        "\t/* Since the mm is for the mirrored process, get a reference first. */",
    ),
}


def cases_by_id(out: Path) -> tuple[dict[str, dict], dict]:
    res = json.loads((out / "results.json").read_text())
    return {c["id"]: c for c in res["cases"]}, res


def test_injected_warning_fails_the_case_that_triggered_it(tmp_path: Path) -> None:
    repo = gitrepo.ensure_repo()
    commit = gitrepo.commit_change(repo, gitrepo.BASE_BRANCH, "test: WARN in restore_exclusive_pte", WARN_PATCH)
    out = tmp_path / "warn"
    proc = run_hmmbench("run", "--kernel", f"{repo}@{commit}", "--case", "exclusive_bad_args",
                        "--case", "exclusive_basic", "--case", "exclusive_hugetlb", "--out", str(out))
    assert proc.returncode == 1, proc.stderr[-3000:]
    by_id, res = cases_by_id(out)
    hit = by_id["exclusive_basic[npages=4]"]["verdict"]
    assert hit["status"] == "FAIL"
    # The signature names the injected line (the function may be inlined into its caller).
    patched = gitrepo.git_raw(repo, "show", f"{commit}:mm/memory.c").decode().splitlines()
    line = next(i + 1 for i, text in enumerate(patched) if "hmmbench test: injected" in text)
    assert hit["crashes"] and hit["crashes"][0]["location"] == f"mm/memory.c:{line}", hit["crashes"]
    assert hit["summary"].startswith("kernel trouble: WARNING in ")
    excerpt = Path(by_id["exclusive_basic[npages=4]"]["console_excerpt"])
    assert f"mm/memory.c:{line}" in excerpt.read_text()
    # The cases before and after it still ran, on the same guest, and passed.
    assert by_id["exclusive_bad_args"]["verdict"]["status"] == "PASS"
    assert by_id["exclusive_hugetlb"]["verdict"]["status"] == "PASS"
    assert res["target"]["boots"] == 1


def test_injected_hang_is_a_hang_and_the_run_goes_on(tmp_path: Path) -> None:
    repo = gitrepo.ensure_repo()
    commit = gitrepo.commit_change(repo, gitrepo.BASE_BRANCH, "test: hang in dmirror_exclusive", HANG_PATCH)
    out = tmp_path / "hang"
    proc = run_hmmbench("run", "--kernel", f"{repo}@{commit}", "--case", "exclusive_basic",
                        "--case", "exclusive_repeat", "--case", "exclusive_device_rw", "--timeout", "90",
                        "--out", str(out))
    assert proc.returncode == 1, proc.stderr[-3000:]
    by_id, res = cases_by_id(out)
    hang = by_id["exclusive_repeat"]["verdict"]
    assert hang["status"] == "FAIL" and hang["summary"].startswith("hang")
    # The hung task detector (20 s in the guest) names the place, and the excerpt is kept.
    assert any(c["kind"] == "hung_task" and "dmirror" in c["title"] for c in hang["crashes"]), hang["crashes"]
    assert Path(by_id["exclusive_repeat"]["console_excerpt"]).is_file()
    # A fresh guest ran the remaining case.
    assert res["target"]["boots"] == 2
    assert by_id["exclusive_device_rw"]["verdict"]["status"] == "PASS"
    assert by_id["exclusive_basic[npages=1024]"]["verdict"]["status"] == "PASS"
