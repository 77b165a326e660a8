"""Kernel trouble is a result, on both default kernels: an injected WARN, BUG and hang, each pinned on its case.

The kernels are Debian's 6.12 and 7.2 plus one commit each (tests/e2e/trouble_kernels.py) whose trouble
is chosen at boot (`hmmbench run --append test_hmm.hmmbench_inject=MASK`): one build per kernel serves
every test here, and the builds are cached across CI runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import run_hmmbench
from .trouble_kernels import BUG, HANG, SILENT_HANG, WARN_RESTORE, WARN_ZAP, injected_line, trouble_kernel

pytestmark = pytest.mark.slow

KERNELS = ["debian-6.12", "debian-7.2"]
# The warning line as 6.12 and as 6.19+ print it: the function it names.
_WARN_LINE = re.compile(r"WARNING: (?:CPU: \d+ PID: \d+ at \S+ |\S+ at |at )([A-Za-z0-9_.]+)\+0x")
_RIP = re.compile(r"RIP: 0010:([A-Za-z0-9_.]+)\+0x")
# The EXCLUSIVE ioctl's own function, or the one the compiler inlined it into (7.2's gcc inlines the
# static dmirror_exclusive into dmirror_fops_unlocked_ioctl; 6.12's keeps it).
IOCTL_FUNCTIONS = ("dmirror_exclusive", "dmirror_fops_unlocked_ioctl")


@pytest.fixture(scope="module", params=KERNELS)
def kernel(request) -> tuple[str, Path, str]:
    repo, commit = trouble_kernel(request.param)
    return request.param, repo, commit


def run(kernel: tuple[str, Path, str], mask: int, out: Path, *case_args: str) -> tuple[dict[str, dict], dict]:
    _name, repo, commit = kernel
    proc = run_hmmbench("run", "--kernel", f"{repo}@{commit}", "--append", f"test_hmm.hmmbench_inject={mask}",
                        *case_args, "--out", str(out))
    assert proc.returncode == 1, proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    return {c["id"]: c for c in res["cases"]}, res


def warning_function(excerpt: Path) -> str:
    """The function the console's warning line names (whatever the kernel's format)."""
    m = _WARN_LINE.search(excerpt.read_text())
    assert m, excerpt.read_text()[-2000:]
    return m.group(1).split(".")[0]


def test_a_warning_in_the_restore_path_fails_the_first_case_that_restores(kernel, tmp_path: Path) -> None:
    name, repo, commit = kernel
    by_id, res = run(kernel, WARN_RESTORE, tmp_path / "warn", "--case", "exclusive_basic", "--case",
                     "exclusive_hugetlb")
    hit = by_id["exclusive_basic[npages=4]"]
    v = hit["verdict"]
    assert v["status"] == "FAIL"
    line = injected_line(repo, commit, "mm/memory.c", "hmmbench_inject & 1);")
    crash = v["crashes"][0]
    assert crash["location"] == f"mm/memory.c:{line}", v["crashes"]
    func = warning_function(Path(hit["console_excerpt"]))
    assert crash["title"] == f"WARNING in {func}" and v["summary"].startswith(f"kernel trouble: WARNING in {func}")
    # WARN_ON_ONCE: the other cases ran on the same guest and passed; a WARN does not recycle the guest.
    assert by_id["exclusive_basic[npages=1024]"]["verdict"]["status"] == "PASS"
    assert by_id["exclusive_hugetlb"]["verdict"]["status"] == "PASS"
    assert res["target"]["boots"] == 1
    uapi = res["kernel"]["uapi"]
    if name == "debian-6.12":  # this tree's header renumbers EXCLUSIVE..RELEASE: the suite used the header
        assert any(d.startswith("EXCLUSIVE: header nr 6") for d in uapi["table_disagreements"]), uapi
    else:
        assert uapi["table_disagreements"] == [], uapi


def test_a_bug_that_leaves_the_case_stuck_ends_it_within_seconds(kernel, tmp_path: Path) -> None:
    _name, repo, commit = kernel
    by_id, res = run(kernel, BUG, tmp_path / "bug", "--case", "exclusive_basic")
    hit = by_id["exclusive_basic[npages=4]"]
    v = hit["verdict"]
    func = _RIP.search(Path(hit["console_excerpt"]).read_text()).group(1).split(".")[0]
    assert func in IOCTL_FUNCTIONS
    assert v["status"] == "FAIL" and f"kernel BUG in {func}" in v["summary"], v
    line = injected_line(repo, commit, "lib/test_hmm.c", "BUG();")
    assert v["crashes"][0]["location"] == f"lib/test_hmm.c:{line}", v["crashes"]
    assert hit["record"]["status"] == "trouble", hit["record"]  # ended by the watch, not by the case
    assert hit["seconds"] < 60, hit["seconds"]  # the case timeout is 300 s
    # The dying task waits forever in its own exit: the agent saw it in D state.
    assert any("exit_mmap" in t["stack"] or "mmput" in t["stack"] for t in hit["record"].get("uninterruptible", [])), \
        hit["record"].get("uninterruptible")
    assert Path(hit["console_excerpt"]).is_file()
    # A fresh guest ran the rest.
    assert res["target"]["boots"] == 2
    assert by_id["exclusive_basic[npages=1024]"]["verdict"]["status"] == "PASS"


def test_a_silent_uninterruptible_hang_ends_within_a_minute_titled_by_its_stack(kernel, tmp_path: Path) -> None:
    by_id, res = run(kernel, SILENT_HANG, tmp_path / "hang", "--case", "exclusive_basic")
    hit = by_id["exclusive_basic[npages=4]"]
    v = hit["verdict"]
    assert v["status"] == "FAIL" and v["summary"] in {f"hang: hang in {f}" for f in IOCTL_FUNCTIONS}, v
    assert not v["crashes"]  # the kernel said nothing: the stack is the evidence
    # The kernel's own stack of the stuck task (/proc/PID/stack leaves the scheduler's frames out).
    assert hit["record"]["stuck"]["stack"][0] in IOCTL_FUNCTIONS, hit["record"]["stuck"]
    assert hit["seconds"] < 75, hit["seconds"]
    assert res["target"]["boots"] == 2
    assert by_id["exclusive_basic[npages=1024]"]["verdict"]["status"] == "PASS"


def test_a_hang_the_hung_task_detector_reports(kernel, tmp_path: Path) -> None:
    by_id, res = run(kernel, HANG, tmp_path / "hung", "--case", "exclusive_basic")
    hit = by_id["exclusive_basic[npages=4]"]
    v = hit["verdict"]
    # Whichever comes first ends it: the hung-task report (fatal) or 30 s of the same stack in D state.
    assert v["status"] == "FAIL" and any(f in v["summary"] for f in IOCTL_FUNCTIONS), v
    assert hit["seconds"] < 90, hit["seconds"]
    assert res["target"]["boots"] == 2
    assert by_id["exclusive_basic[npages=1024]"]["verdict"]["status"] == "PASS"


def test_a_case_owns_the_messages_of_its_exit(kernel, tmp_path: Path) -> None:
    """exclusive_exit's process exits with its pages device-exclusive: the WARN in the zap path is its own."""
    _name, repo, commit = kernel
    by_id, _res = run(kernel, WARN_ZAP, tmp_path / "zap", "--case", "exclusive_exit")
    hit = by_id["exclusive_exit"]
    v = hit["verdict"]
    line = injected_line(repo, commit, "mm/memory.c", "hmmbench_inject & 16)")
    assert any(c["location"] == f"mm/memory.c:{line}" for c in v["crashes"]), v["crashes"]
    assert v["status"] == "FAIL" and "kernel messages" in v["failed_checks"]
    # The WARN came from the case's kernel messages (the agent's window), not only from the console.
    assert any(f"mm/memory.c:{line}" in r["text"] for r in hit["record"]["kmsg"]), hit["record"]["kmsg"]
