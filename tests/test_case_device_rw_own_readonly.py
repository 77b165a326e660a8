"""device_rw_own_readonly's rule on observations recorded on Linux 6.12.118 (tests/data: the private WRITE run, whose
WRITE failed with EFAULT beside a WARNING in dmirror_fault, and the two coherent runs), and on fake edits of them."""

from __future__ import annotations

import copy
import errno
import json
from pathlib import Path

import pytest

from hmmbench import cases
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.verdict import Status

DATA = json.loads((Path(__file__).parent / "data" / "device_rw_own_readonly_6.12.json").read_text())
SPEC = cases.load_all()["device_rw_own_readonly"]


def judge(obs: dict):
    return SPEC.judge()(obs, TargetFacts(release=DATA["release"]))


def fake(key: str) -> dict:
    return copy.deepcopy(DATA["observations"][key])


@pytest.mark.parametrize("key", ["coherent-write", "coherent-read"])
def test_the_recorded_coherent_runs_pass(key: str) -> None:
    v = judge(fake(key))
    assert v.status == Status.PASS, v.failed_checks


def test_the_recorded_private_write_fails_on_its_errno() -> None:
    assert judge(fake("private-write")).failed_checks == ["the device's WRITE to its read-only memory is refused"]


def test_the_private_write_with_eperm_passes() -> None:
    obs = fake("private-write")
    obs["write"]["errno"] = errno.EPERM
    assert judge(obs).status == Status.PASS


def test_a_read_that_migrated_the_pages_fails() -> None:
    obs = fake("coherent-read")
    obs["views"][-1]["cpu"]["pagemap"][2] ^= 1
    assert "the device's READ moves no page" in judge(obs).failed_checks


def test_a_read_that_needed_no_fault_fails() -> None:
    obs = fake("coherent-read")
    obs["read"]["faults"] = 0
    assert judge(obs).failed_checks == ["the device's READ of its own read-only memory"]


def test_a_missing_moment_is_an_error() -> None:
    obs = fake("coherent-read")
    obs["views"] = obs["views"][:2]
    assert judge(obs).status == Status.ERROR
