"""hmmbench's pytest plugin without a target: options, collection of the suite, the plan's command line."""

from __future__ import annotations

import json
from pathlib import Path

from hmmbench import cases
from hmmbench.workflows import engine

pytest_plugins = ["pytester"]


def test_the_suite_is_collected_in_suite_order_without_booting_anything(pytester) -> None:
    result = pytester.runpytest("--hmm-suite", "--collect-only", "-q")
    want = [s.variant_id(p) for s in cases.load_all().values() for p in s.variants]
    assert [line for line in result.outlines if "::" in line] == [f"hmmbench::{case_id}" for case_id in want]
    assert not (pytester.path / "hmmbench-results").exists()  # nothing ran, nothing written


def test_a_case_selection_collects_only_its_variants(pytester) -> None:
    result = pytester.runpytest("--hmm-suite", "--hmm-case", "exclusive_basic",
                                "--collect-only", "-q")
    assert [x.split("::")[-1] for x in result.outlines if "::" in x] == [
        "exclusive_basic[npages=4]", "exclusive_basic[npages=1024]"]


def test_without_hmm_options_the_plugin_stays_out_of_the_way(pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "hmmbench-results").exists()


def test_the_plan_runs_only_hmmbench_s_suite_with_workers_for_several_targets(tmp_path: Path) -> None:
    plan = engine.Plan({"case_names": []}, ["a", "b"], str(tmp_path / "out"), 0.0)
    path = plan.write()
    assert engine.Plan.read(path) == plan
    args = engine.pytest_args(path, workers=1)
    assert "--hmm-suite" in args and "--noconftest" in args and "-n" not in args
    assert args[-1] == str(tmp_path / "out" / ".pytest")  # an empty directory: no user test is collected
    assert engine.pytest_args(path, workers=3)[-4:] == ["-n", "3", "--dist", "load"]


def test_a_worker_account_travels_as_json() -> None:
    meta = engine.WorkerMeta("w2", kernel={"label": "k", "release": "6.12.117"}, target_info={"release": "6.12.117"})
    assert engine.WorkerMeta.from_json(json.dumps(json.loads(meta.to_json()))) == meta
