"""Verdict rules on recorded observations, the record-level judge, results files and the report table."""

from __future__ import annotations

import copy
import errno
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hmmbench import cases, report, results
from hmmbench.cases import exclusive_basic
from hmmbench.verdict import Status

PFNS = [522880, 522881, 522882, 522883]
DEVICE_PRIVATE_PFN = 0x140000  # a fake ZONE_DEVICE PFN in the "hmm_dmirror" iomem range


def present(pfn: int) -> int:
    return (1 << 63) | (1 << 56) | pfn


def swap_entry(offset: int, swap_type: int) -> int:
    return (1 << 62) | (offset << 5) | swap_type


def fake_observations(swap_type: int = 29, calibration_type: int = 27) -> dict:
    """FAKE observations, shaped like what hmmbench/guest/cases/exclusive_basic.py's observe() returns
    for npages=4 on a correct 6.12 guest (values from the notes' machine facts)."""
    return {
        "npages": 4,
        "page_size": 4096,
        "madvise_nohugepage": [0, 0],
        "before": {"pagemap": [present(p) for p in PFNS], "kpageflags": [0x1828] * 4, "kpagecount": [1] * 4},
        "exclusive": {"ret": 0, "errno": 0, "cpages": 4, "faults": 0},
        "mirror_matches": True,
        "while_exclusive": {"pagemap": [swap_entry(p, swap_type) for p in PFNS], "kpageflags": [0x1828] * 4,
                            "kpagecount": [0] * 4},
        "check_exclusive_while": {"ret": -1, "errno": errno.EPERM, "cpages": 0, "faults": 0},
        "read_faults": 4,
        "after_read": {"pagemap": [present(p) for p in PFNS], "kpageflags": [0x1828] * 4, "kpagecount": [1] * 4},
        "control_write_faults": 0,
        "write_faults": 0,
        "after_write": {"pagemap": [present(p) for p in PFNS]},
        "data_intact": True,
        "check_exclusive_after": {"ret": 0, "errno": 0, "cpages": 0, "faults": 0},
        "calibration": {"migrate": {"ret": 0, "errno": 0, "cpages": 1, "faults": 0},
                        "pagemap": swap_entry(DEVICE_PRIVATE_PFN, calibration_type)},
    }


def judge(obs: dict, release: str):
    return exclusive_basic.judge(obs, {"release": release})


def test_correct_612_run_passes() -> None:
    v = judge(fake_observations(), "6.12.117")
    assert v.status == Status.PASS, v.evidence
    assert v.failed_checks == []
    assert "exclusive type [29]" in v.summary
    assert any("calibration" in line and "27" in line for line in v.evidence)


def test_correct_72_run_passes() -> None:
    v = judge(fake_observations(swap_type=30, calibration_type=28), "7.2.13")
    assert v.status == Status.PASS, v.evidence


def test_612_swap_type_on_72_fails() -> None:
    v = judge(fake_observations(swap_type=29), "7.2.13")
    assert v.status == Status.FAIL
    assert v.failed_checks == ["swap type is this kernel's device-exclusive type"]
    assert "swap type" in v.summary
    assert any(line.startswith("FAIL swap type") and "30" in line for line in v.evidence)


def test_wrong_swap_offset_fails() -> None:
    obs = fake_observations()
    obs["while_exclusive"]["pagemap"][2] = swap_entry(PFNS[2] + 1, 29)
    v = judge(obs, "6.12.117")
    assert v.status == Status.FAIL
    assert v.failed_checks == ["swap offset == PFN before"]
    assert any("3/4" in line for line in v.evidence if line.startswith("FAIL swap offset"))


def test_a_write_fault_on_every_page_fails() -> None:
    obs = fake_observations()
    obs["write_faults"] = 4  # 4 pages: each restored read-only
    v = judge(obs, "6.12.117")
    assert v.status == Status.FAIL
    assert v.failed_checks == ["CPU write after the read does not fault every page (restored PTEs writable)"]
    assert "CPU write" in v.summary


def test_an_interpreter_fault_or_two_is_not_a_read_only_restore() -> None:
    obs = fake_observations()
    obs["write_faults"] = 2  # copy-on-write noise of the forked case process, fewer than the 4 pages
    assert judge(obs, "6.12.117").status == Status.PASS


def test_write_faults_within_the_noise_floor_pass() -> None:
    obs = fake_observations()
    obs["write_faults"] = obs["control_write_faults"] = 2
    assert judge(obs, "6.12.117").status == Status.PASS


def test_hidden_pfns_are_an_error() -> None:
    obs = fake_observations()
    # Without CAP_SYS_ADMIN the kernel zeroes bits 0-54: present, but PFN 0.
    obs["before"]["pagemap"] = [1 << 63 | 1 << 56] * 4
    v = judge(obs, "6.12.117")
    assert v.status == Status.ERROR
    assert "PFN visible 0/4" in v.evidence[0]


def test_check_exclusive_must_fail_with_eperm() -> None:
    obs = fake_observations()
    obs["check_exclusive_while"] = {"ret": 0, "errno": 0, "cpages": 0, "faults": 0}
    v = judge(obs, "6.12.117")
    assert v.failed_checks == ["CHECK_EXCLUSIVE fails with EPERM while exclusive"]


def test_version_without_table_uses_the_calibration() -> None:
    # 5.19 .. 6.1: the types depend on config; device-private write type 27 -> exclusive 29.
    assert judge(fake_observations(29, 27), "6.0.19").status == Status.PASS
    v = judge(fake_observations(30, 27), "6.0.19")
    assert v.failed_checks == ["swap type is this kernel's device-exclusive type"]
    obs = fake_observations()
    obs["calibration"] = {"error": "MIGRATE_TO_DEV failed"}
    v = judge(obs, "6.0.19")
    assert v.status == Status.FAIL
    assert any("unknown" in line for line in v.evidence if "swap type" in line)


# ------------------------------------------------------------------ judge_record

SPEC = cases.load_all()["exclusive_basic"]
TARGET = {"release": "6.12.117"}

WARNING_TEXTS = [
    "------------[ cut here ]------------",
    "WARNING: CPU: 1 PID: 234 at mm/memory.c:4170 restore_exclusive_pte+0x1b2/0x1d0",
    "Modules linked in: test_hmm",
    "RIP: 0010:restore_exclusive_pte+0x1b2/0x1d0",
    "Call Trace:",
    " <TASK>",
    " do_swap_page+0x6a5/0xb80",
    " </TASK>",
    "---[ end trace 0000000000000000 ]---",
]


def record(status: str = "observed", **extra) -> dict:
    rec = {"case": "exclusive_basic", "params": {"npages": 4}, "status": status, "kmsg": []}
    if status == "observed":
        rec["observations"] = fake_observations()
    rec.update(extra)
    return rec


def test_record_observed_pass() -> None:
    v = cases.judge_record(SPEC, record(), TARGET)
    assert v.status == Status.PASS
    assert v.crashes == []


def test_record_skip() -> None:
    v = cases.judge_record(SPEC, record("skip", reason="EXCLUSIVE not in this kernel's test_hmm uapi"), TARGET)
    assert v.status == Status.SKIP
    assert v.summary == "EXCLUSIVE not in this kernel's test_hmm uapi"


def test_record_error_keeps_the_traceback_tail() -> None:
    tb = "\n".join(f"line {n}" for n in range(10))
    v = cases.judge_record(SPEC, record("error", reason="OSError: /dev/hmm_dmirror0", traceback=tb), TARGET)
    assert v.status == Status.ERROR
    assert v.evidence == [f"line {n}" for n in range(4, 10)]


def test_record_hang() -> None:
    v = cases.judge_record(SPEC, record("hang", timeout=300.0), TARGET)
    assert v.status == Status.FAIL
    assert "hang" in v.summary and "300.0" in v.summary and "no kernel message" in v.summary
    assert v.failed_checks == ["hang"]


def test_record_hang_names_the_console_report() -> None:
    lockup = ["watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [python3:301]",
              "RIP: 0010:dmirror_exclusive+0x1b0/0x2a0 [test_hmm]"]
    v = cases.judge_record(SPEC, record("hang", timeout=300.0), TARGET, console_lines=lockup)
    assert v.status == Status.FAIL
    assert "BUG: soft lockup in dmirror_exclusive" in v.summary
    assert v.crashes[0]["kind"] == "soft_lockup"


def test_record_lost() -> None:
    v = cases.judge_record(SPEC, record("lost", reason="SSH connection reset"), TARGET)
    assert v.status == Status.FAIL
    assert "target lost during the case (possible crash)" in v.summary
    assert v.evidence == ["FAIL target alive: SSH connection reset"]


def test_observed_with_kernel_warning_fails_despite_good_observations() -> None:
    kmsg = [{"seq": 500 + n, "level": 4, "facility": 0, "ts_usec": 12345678, "text": t}
            for n, t in enumerate(WARNING_TEXTS)]
    v = cases.judge_record(SPEC, record(kmsg=kmsg), TARGET)
    assert v.status == Status.FAIL
    assert "WARNING in restore_exclusive_pte" in v.summary
    assert v.failed_checks == ["kernel messages"]
    assert v.crashes[0]["location"] == "mm/memory.c:4170"
    # The case's own checks are still there as evidence (all ok).
    assert any(line.startswith("ok   swap type") for line in v.evidence)


def test_console_lines_are_used_when_kmsg_is_empty() -> None:
    v = cases.judge_record(SPEC, record(), TARGET, console_lines=[f"[   12.3] {t}" for t in WARNING_TEXTS])
    assert v.status == Status.FAIL
    assert "WARNING in restore_exclusive_pte" in v.summary


def test_malformed_observations_are_an_error() -> None:
    rec = record()
    del rec["observations"]["exclusive"]
    v = cases.judge_record(SPEC, rec, TARGET)
    assert v.status == Status.ERROR
    assert "could not read" in v.summary


def test_unknown_status_is_an_error() -> None:
    assert cases.judge_record(SPEC, record("weird"), TARGET).status == Status.ERROR


def test_variant_id() -> None:
    assert SPEC.variant_id({"npages": 4}) == "exclusive_basic[npages=4]"
    assert SPEC.variant_id({}) == "exclusive_basic"


# ------------------------------------------------------------------ results and report


def case_entry(case_id: str, status: str, summary: str, evidence: list[str] | None = None) -> dict:
    return {"id": case_id, "case": "exclusive_basic", "params": {}, "seconds": 1.25,
            "verdict": {"status": status, "summary": summary, "evidence": evidence or [], "failed_checks": [],
                        "crashes": []},
            "record": None, "console_excerpt": None}


@pytest.fixture
def run_results() -> dict:
    entries = [
        case_entry("exclusive_basic[npages=4]", "PASS", "4 pages: exclusive type [29]", ["ok   data intact: True"]),
        case_entry("exclusive_basic[npages=1024]", "FAIL", "failed: swap offset == PFN before",
                   ["ok   data intact: True", "FAIL swap offset == PFN before: 1023/1024 pages"]),
        case_entry("exclusive_thp", "SKIP", "no THP"),
        case_entry("exclusive_fork", "ERROR", "agent crashed", ["Traceback: boom"]),
    ]
    return {
        "schema": results.SCHEMA,
        "seconds": 42.0,
        "kernel": {"label": "debian-6.12 (6.12.117-1~deb12u1)", "release": "6.12.117", "tree_identity": "debian:x",
                   "config_hash": "abc123"},
        "target": {"kind": "qemu", "accel": "kvm", "accel_why": "/dev/kvm usable", "cpus": 2, "numa_nodes": 1},
        "cases": entries,
        "summary": results.summary(entries),
        "results_path": "/tmp/out/results.json",
    }


def test_exit_code() -> None:
    def of(*statuses: str) -> int:
        return results.exit_code([{"verdict": {"status": s}} for s in statuses])

    assert of() == 0
    assert of("PASS", "SKIP") == 0
    assert of("PASS", "ERROR") == 2
    assert of("ERROR", "FAIL", "PASS") == 1


def test_summary_counts(run_results: dict) -> None:
    assert run_results["summary"] == {"PASS": 1, "FAIL": 1, "SKIP": 1, "ERROR": 1}


def test_write_junit(tmp_path: Path, run_results: dict) -> None:
    path = tmp_path / "sub" / "junit.xml"
    results.write_junit(path, run_results)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    assert suite.get("errors") == "1" and suite.get("skipped") == "1"
    assert suite.get("name") == "hmmbench 6.12.117"
    tcs = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert set(tcs) == {c["id"] for c in run_results["cases"]}
    failure = tcs["exclusive_basic[npages=1024]"].find("failure")
    assert failure is not None and failure.get("message") == "failed: swap offset == PFN before"
    assert "1023/1024" in failure.text
    skipped = tcs["exclusive_thp"].find("skipped")
    assert skipped is not None and skipped.get("message") == "no THP"
    assert tcs["exclusive_fork"].find("error") is not None
    passed = tcs["exclusive_basic[npages=4]"]
    assert passed.find("failure") is None and passed.find("system-out").text == "ok   data intact: True"
    assert tcs["exclusive_thp"].get("time") == "1.25"


def test_results_json_round_trip(tmp_path: Path, run_results: dict) -> None:
    path = tmp_path / "results.json"
    results.write_json(path, run_results)
    assert results.load(path) == json.loads(json.dumps(run_results))
    bad = copy.deepcopy(run_results)
    bad["schema"] = "hmmbench.results/0"
    results.write_json(path, bad)
    with pytest.raises(ValueError, match="schema"):
        results.load(path)


def test_report_table(run_results: dict) -> None:
    text = report.table(run_results)
    lines = text.splitlines()
    assert lines[0].startswith("kernel  6.12.117  (debian-6.12")
    assert "qemu kvm" in lines[1] and "2 CPUs" in lines[1]
    for c in run_results["cases"]:
        (row,) = [line for line in lines if line.startswith(c["id"] + " ")]
        assert c["verdict"]["status"] in row.split()
    # FAIL evidence is shown for the failed case, "ok" lines are not.
    assert any(line.strip() == "FAIL swap offset == PFN before: 1023/1024 pages" for line in lines)
    assert not any(line.strip().startswith("ok ") for line in lines)
    # ERROR shows all its evidence.
    assert any(line.strip() == "Traceback: boom" for line in lines)
    assert lines[-1].startswith("verdict: 1 ERROR, 1 FAIL, 1 PASS, 1 SKIP")


def test_report_evidence(run_results: dict) -> None:
    text = report.evidence(run_results)
    assert "exclusive_basic[npages=1024]: FAIL - failed: swap offset == PFN before" in text
    assert "    FAIL swap offset == PFN before: 1023/1024 pages" in text
