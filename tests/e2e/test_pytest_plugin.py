"""hmmbench in pytest, end to end: the suite as pytest items, xdist workers and gateways, a user's case.

Every run here is a real pytest process started in a directory outside the package, the way a kernel
developer runs it: the plugin comes from the installed entry point, not from this repository's conftest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hmmbench.workflows.engine import safe_name

from .conftest import REPO, run_hmmbench

pytestmark = pytest.mark.slow


def run_pytest(cwd: Path, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """A user's pytest run (no cache directory written into their tree)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-3000:])
    return proc


def verdicts(res: dict) -> list[tuple[str, str, list[str]]]:
    """Each case's verdict and its failed checks (summaries may carry counts that differ run to run:
    the KSM scans before the control pair merged)."""
    return [(c["id"], c["verdict"]["status"], [k["key"] for k in c["verdict"]["checks"] if k["outcome"] == "FAIL"])
            for c in res["cases"]]


def summaries(res: dict) -> list[tuple[str, str, str]]:
    return [(c["id"], c["verdict"]["status"], c["verdict"]["summary"]) for c in res["cases"]]


def statuses(res: dict) -> dict[str, str]:
    return {c["id"]: c["verdict"]["status"] for c in res["cases"]}


def test_the_suite_in_pytest_gives_hmmbench_run_s_verdicts(suite_results: dict[str, dict], tmp_path: Path) -> None:
    """`pytest --hmm-suite --hmm-kernel debian-6.12`: same verdicts, FAIL evidence as the message, JUnit,
    results.json that `hmmbench judge` re-derives, every test's observations saved."""
    single = suite_results["debian-6.12"]
    out = tmp_path / "out"
    proc = run_pytest(tmp_path, "--hmm-suite", "--hmm-kernel", "debian-6.12", "--hmm-out", str(out),
                      "--junitxml", str(tmp_path / "j.xml"), "-rA")
    assert proc.returncode == single["_exit"], proc.stdout[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert verdicts(res) == verdicts(single)

    # pytest's own report: the node ids, and a FAIL's evidence lines as its message.
    failed = [c for c in single["cases"] if c["verdict"]["status"] == "FAIL"]
    assert failed, "6.12 is before the series: some cases must fail"
    for c in failed:
        assert f"FAILED hmmbench::{c['id']}" in proc.stdout
    junit = ET.parse(tmp_path / "j.xml").getroot()
    tests = {tc.get("name"): tc for tc in junit.iter("testcase")}
    assert set(tests) == {c["id"] for c in single["cases"]}
    for c in (c for c in res["cases"] if c["verdict"]["status"] == "FAIL"):  # this run's evidence lines
        text = "".join(f.get("message", "") + (f.text or "") for f in tests[c["id"]].iter("failure"))
        fail_lines = [line for line in c["verdict"]["evidence"] if line.startswith("FAIL")]
        assert fail_lines and all(line in text for line in fail_lines), (c["id"], text)
    for c in single["cases"]:
        if c["verdict"]["status"] == "SKIP":
            assert any(c["verdict"]["summary"] in (s.get("message") or "") for s in tests[c["id"]].iter("skipped"))
        saved = json.loads((out / "cases" / f"{safe_name(c['id'])}.json").read_text())
        # (a case that oopsed or hung has a record without observations: its status and reason are kept)
        assert saved["record"] == next(x for x in res["cases"] if x["id"] == c["id"])["record"]

    again = run_hmmbench("judge", str(out / "results.json"), "--json", str(tmp_path / "judged.json"))
    assert again.returncode == single["_exit"], again.stderr[-2000:]
    assert summaries(json.loads((tmp_path / "judged.json").read_text())) == summaries(res)


def test_two_xdist_workers_are_two_guests_with_the_same_verdicts(suite_results: dict[str, dict],
                                                                  tmp_path: Path) -> None:
    single = suite_results["debian-6.12"]
    proc = run_pytest(tmp_path, "--hmm-suite", "--hmm-kernel", "debian-6.12", "--hmm-out", str(tmp_path / "o"),
                      "-n", "2")
    assert proc.returncode == single["_exit"], proc.stdout[-3000:]
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [c["id"] for c in res["cases"]] == [c["id"] for c in single["cases"]]  # suite order in results
    assert statuses(res) == statuses(single)
    assert sorted(w["name"] for w in res["target"]["workers"]) == ["w1", "w2"]
    assert {c["worker"] for c in res["cases"]} == {"w1", "w2"}
    consoles = [Path(c).name for c in res["target"]["consoles"]]
    assert len(set(consoles)) == len(consoles) >= 2  # a console per boot (fresh guests after an oops), no clash


def test_gateways_run_workers_that_build_and_boot_on_their_own(suite_results: dict[str, dict],
                                                               tmp_path: Path) -> None:
    """Two execnet `popen` gateways (other hosts in the field: `--tx ssh=HOST//python=...`): each
    worker prepares its kernel and boots its own guest from its own process."""
    single = suite_results["debian-6.12"]
    proc = run_pytest(tmp_path, "--hmm-suite", "--hmm-kernel", "debian-6.12", "--hmm-case", "exclusive_basic",
                      "--hmm-case", "exclusive_thp", "--hmm-out", str(tmp_path / "o"),
                      "--tx", f"2*popen//python={sys.executable}", "--dist", "load")
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    want = {k: v for k, v in statuses(single).items() if k.startswith(("exclusive_basic[", "exclusive_thp"))}
    assert statuses(res) == want
    assert proc.returncode == 1  # exclusive_thp fails on 6.12
    workers = res["target"]["workers"]
    assert sorted(w["name"] for w in workers) == ["w1", "w2"]
    assert all(w["release"] == single["kernel"]["release"] for w in workers)  # each booted the kernel it prepared


def readme_example() -> tuple[str, str]:
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- user-case-example: (\S+) -->\n```python\n(.*?)```\n<!-- end user-case-example -->",
                  text, re.S)
    assert m, "README lost its user case example"
    return m.group(1), m.group(2)


def test_the_readme_user_case_runs_from_a_directory_outside_the_package(tmp_path: Path) -> None:
    name, source = readme_example()
    work = tmp_path / "my-change"
    work.mkdir()
    (work / name).write_text(source)
    assert REPO not in work.parents
    proc = run_pytest(work, "--hmm-kernel", "debian-6.12", name, "-v")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"1 passed", proc.stdout)
    results = sorted(work.glob("hmmbench-results/pytest-*/results.json"))
    assert len(results) == 1, "results.json under the user's directory"
    res = json.loads(results[0].read_text())
    (case,) = res["cases"]
    assert case["verdict"]["status"] == "PASS"
    assert case["verdict"]["checks"] and all(c["outcome"] == "ok" for c in case["verdict"]["checks"])
    assert case["record"]["observations"]["migrate"]["ret"] == 0  # the kernel was asked, and answered

    # The same file with a wrong expectation fails, with the failed check as pytest's message.
    (work / name).write_text(source.replace('"cpages=8")', '"cpages=8")\n    c.check("impossible", False, "x")'))
    bad = run_pytest(work, "--hmm-kernel", "debian-6.12", name)
    assert bad.returncode == 1 and "FAIL impossible" in bad.stdout, bad.stdout[-2000:]
