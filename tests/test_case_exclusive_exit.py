"""exclusive_exit's rule on observations recorded on Linux 6.12.117 (tests/data), and on edits of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hmmbench import cases
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.judge import judge_record
from hmmbench.cases.verdict import Status

DATA = json.loads((Path(__file__).parent / "data" / "exclusive_exit_6.12.json").read_text())
SPEC = cases.load_all()["exclusive_exit"]


def judge(obs: dict):
    return SPEC.judge()(obs, TargetFacts(release=DATA["release"]))


def test_the_recorded_run_passes() -> None:
    assert judge(DATA["observations"]).status == Status.PASS


def test_an_entry_left_after_munmap_fails() -> None:
    obs = copy.deepcopy(DATA["observations"])
    obs["munmapped"]["after_munmap"][3] = obs["munmapped"]["while_exclusive"]["pagemap"][3]
    v = judge(obs)
    assert v.status == Status.FAIL and v.failed_checks == ["nothing left in the page table after munmap"]


def test_pages_restored_before_exit_fail_the_precondition() -> None:
    obs = copy.deepcopy(DATA["observations"])
    obs["at_exit"]["anon"] = obs["anon"]["before"]["pagemap"]
    assert judge(obs).failed_checks == ["anonymous pages still exclusive when the process exits"]


def test_a_warning_in_the_exit_is_the_case_s_failure() -> None:
    record = {"status": "observed", "observations": DATA["observations"], "kmsg": [
        {"seq": 9, "text": "WARNING: CPU: 1 PID: 77 at mm/memory.c:1633 zap_pte_range+0x6d5/0x900"}]}
    v = judge_record(SPEC, record, TargetFacts(release=DATA["release"]))
    assert v.status == Status.FAIL and "kernel messages" in v.failed_checks
