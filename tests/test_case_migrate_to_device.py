"""migrate_to_device's fault-count rule, on the REAL record in tests/data/migrate_to_device_6.12.118.json
(migrate_to_device[memory=private] on Linux 6.12.118 under QEMU, from a fresh machine's first run, recorded
FAIL by the rule of that day). Each test that edits a count says what it stands for."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hmmbench import cases
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.verdict import Status

DATA = Path(__file__).parent / "data" / "migrate_to_device_6.12.118.json"
KEY = "a fault for the pages brought back"


@pytest.fixture(scope="module")
def recorded() -> tuple[dict, TargetFacts]:
    data = json.loads(DATA.read_text())
    return data["case"]["record"]["observations"], TargetFacts.from_info(data["target_info"])


def judge(obs: dict, facts: TargetFacts, **counts: int):
    o = copy.deepcopy(obs)
    o.update(counts)
    v = cases.load_all()["migrate_to_device"].judge()(o, facts)
    return v, next(c for c in v.checks if c.key == KEY)


def test_recorded_run_passes_where_the_old_rule_failed(recorded):
    # As recorded: 33 write faults for 32 pages while the control loop took 2. Every page came back with
    # its fault; the old rule (faults - noise >= pages) called that a FAIL, the only failed check.
    obs, _ = recorded
    assert (obs["cpu_write_faults"], obs["control_write_faults"]) == (33, 2)
    v, check = judge(*recorded)
    assert check.outcome.name == "OK", check.seen
    assert v.status is Status.PASS, v.failed_checks


@pytest.mark.parametrize("field", ["cpu_read_faults", "cpu_write_faults"])
def test_pages_that_came_back_without_faults_fail(recorded, field):
    # Stands for a kernel that maps the pages back without a CPU fault (noise only, e.g. prefaulted).
    v, check = judge(*recorded, **{field: 3}, control_write_faults=2)
    assert check.outcome.name == "FAIL"
    assert v.status is Status.FAIL
