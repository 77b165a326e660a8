"""The gate: comparing two runs (compare), the facts file's predictions (predictions), the gate report
(gate.build_report, gate_report) and hmm-tests vs hmmbench (selftest_run.compare / explain_disagreements).

tests/data/run_6.12.json is a REAL recorded run (Linux 6.12.117, Debian's linux-source-6.12, QEMU microvm),
trimmed: exclusive_basic[npages=1024] and exclusive_repeat (1024-page pagemap lists), every case's page_log
and target_config were dropped and ``summary`` recomputed for the 16 remaining cases; every other value is
as recorded. One case was added later from a real run of Linux 6.12.118 (Debian's next point release, same
QEMU): migrate_to_device[memory=private], its page_log dropped, and device_thp[fill=data] (recorded SKIP:
no device-private THP on 6.12), its observations trimmed to the one view the prediction reads.

Every "patched" run below is a FAKE, made by editing a deep copy of that real run: no such run was
recorded. The post-series fake edits the raw observations the way the facts file
(shared/notes/device-exclusive-facts.md) says "mm: fixes for device-exclusive entries (hmm)" changes them.
"""

from __future__ import annotations

import copy
import errno
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.kernel_reports import CrashReport
from hmmbench.cases.rules import decoded, pfns
from hmmbench.cases.verdict import Status, Verdict
from hmmbench.guest.pagemap import PM_PFN_MASK, PM_SWAP, SWP_TYPE_BITS
from hmmbench.reports import compare, predictions
from hmmbench.reports import gate as gate_report
from hmmbench.reports.compare import Change
from hmmbench.reports.results import CaseResult, RunResult
from hmmbench.selftest import compare as selftest_compare
from hmmbench.selftest.ktap import SelftestResult, parse_ktap

DATA = Path(__file__).parent / "data" / "run_6.12.json"
TYPE_MASK = (1 << SWP_TYPE_BITS) - 1


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(DATA.read_text())


@pytest.fixture
def real(recorded: dict) -> dict:
    """The real 6.12 run; a fresh copy per test so that no test's edits leak into another."""
    return copy.deepcopy(recorded)


def entry(run: dict, case_id: str) -> dict:
    return next(c for c in run["cases"] if c["id"] == case_id)


def obs(run: dict, case_id: str) -> dict:
    return entry(run, case_id)["record"]["observations"]


def retype(raw: int, swap_type: int) -> int:
    """A raw pagemap swap entry with its swap type (bits 0-4) replaced; offset and flags kept."""
    assert raw & PM_SWAP
    return raw & ~TYPE_MASK | swap_type


def exclusive_entry(present_raw: int, swap_type: int = 30) -> int:
    """The device-exclusive swap entry (offset = PFN) that replaces a present PTE, soft-dirty kept."""
    d = decoded([present_raw])[0]
    return (present_raw & ~PM_PFN_MASK & ~(1 << 63) & ~(1 << 56)) | PM_SWAP | d["pfn"] << SWP_TYPE_BITS | swap_type


def moved(present_raw: int, delta: int) -> int:
    """The same present PTE pointing at another frame."""
    return present_raw & ~PM_PFN_MASK | ((present_raw & PM_PFN_MASK) + delta)


def typed(run: dict) -> RunResult:
    """The run as every module sees it (the dict edits below are edits of its results.json)."""
    return RunResult.from_dict(run)


def check(outcome: str, key: str, seen: str, expected: str = "") -> dict:
    return {"outcome": outcome, "key": key, "seen": seen, "expected": expected}


def set_verdict(run: dict, case_id: str, status: str, checks: list[dict], summary: str) -> None:
    entry(run, case_id)["verdict"].update(status=status, checks=checks, summary=summary, crashes=[])


def set_check(run: dict, case_id: str, key: str, outcome: str, seen: str, expected: str | None = None) -> None:
    [c] = [c for c in entry(run, case_id)["verdict"]["checks"] if c["key"] == key]
    c.update(outcome=outcome, seen=seen)
    if expected is not None:
        c["expected"] = expected


# FAKE: the real 6.12 run edited the way the facts file predicts the series changes each observation.
def fake_post_series(real: dict) -> dict:
    run = copy.deepcopy(real)
    run["kernel"].update(release="7.2.0", label="debian-7.2 (FAKE: edited copy of the 6.12.117 run)",
                         tree_identity="debian:linux-source-7.2=FAKE:sha256:0000000000000000",
                         config_hash="fa4efa4efa4efa4e", banner="FAKE")
    run["target_info"]["release"] = "7.2.0"
    run["results_path"] = "/FAKE/debian-7.2/results.json"

    # patch 6: one SWP_DEVICE_EXCLUSIVE type, 30 (6.12: WRITE 29 / READ 30); patch 16: mapcount kept.
    b = obs(run, "exclusive_basic[npages=4]")["while_exclusive"]
    b["pagemap"] = [retype(x, 30) for x in b["pagemap"]]
    b["kpagecount"] = [1] * len(b["kpagecount"])
    m = obs(run, "exclusive_mapcount")["while_exclusive"]
    m["pagemap"] = [retype(x, 30) for x in m["pagemap"]]
    m["kpagecount"] = [1] * len(m["kpagecount"])

    # patch 6: mprotect(PROT_READ) leaves the single type alone; patch 5: the RO->RW restore is writable.
    mp = obs(run, "exclusive_mprotect")
    mp["a_while_exclusive"] = [retype(x, 30) for x in mp["a_while_exclusive"]]
    mp["a_after_mprotect"] = list(mp["a_while_exclusive"])
    mp["b_snapshot"] = [0x02] * len(mp["b_snapshot"])  # HMM_DMIRROR_PROT_WRITE (6.12 recorded 0x01, READ)

    # patch 4: folio_walk makes exactly the requested PTE of a THP exclusive, head or tail.
    t = obs(run, "exclusive_thp")
    per, idx = t["pages_per_thp"], t["tail_index"]
    t["after_head"] = [exclusive_entry(t["before"][0])] + t["before"][1:per]
    tail = t["before"][per:2 * per]
    tail[idx] = exclusive_entry(tail[idx])
    t["after_tail"] = tail
    t["tail"] = {"cpages": 1, "errno": 0, "faults": 0, "ret": 0}

    # patches 1-3: shared, file and hugetlb memory rejected with EOPNOTSUPP; GUP errors propagate.
    sf = obs(run, "exclusive_shared_and_file")["mappings"]
    for name in ("shared_anon", "ext4_shared"):
        sf[name]["exclusive"]["errno"] = errno.EOPNOTSUPP
    h = obs(run, "exclusive_hugetlb")
    h["one_page"]["errno"] = h["whole"]["errno"] = errno.EOPNOTSUPP
    obs(run, "exclusive_bad_args")["attempts"]["read_only"]["cmd"]["errno"] = errno.EFAULT

    # patches 11 and 16: exclusive pages migrate; the CPU finds them on new frames.
    mg = obs(run, "exclusive_migration")
    mg["writes"] = [{"errno": 0, "error": None, "ok": True, "pfn": w["pfn"], "seconds": 0.002} for w in mg["writes"]]
    mg["after_cpu"]["pagemap"] = [moved(x, 0x1000) for x in mg["before"]["pagemap"]]
    mg["after_migration"]["pagemap"] = list(mg["after_cpu"]["pagemap"])
    mg["check_exclusive_after_migration"] = {"cpages": 0, "errno": 0, "faults": 0, "ret": 0}

    # patch 6 again: three device swap types instead of four, so device-private write/read are 28/29.
    md = obs(run, "migrate_to_device[memory=private]")
    for probe in md["calibration"]["probes"]["0"]:
        if probe["how"] in ("write", "read-only"):
            probe["pagemap"] = retype(probe["pagemap"], {"write": 28, "read-only": 29}[probe["how"]])

    # device-private THP (6.19): the 512 pages are one PMD-level entry, the owning device sees PMD on each.
    th = obs(run, "device_thp[fill=data]")
    view = th["views"][0]["devices"][str(th["local"])]
    view["snapshot"] = [b | 0x04 for b in view["snapshot"]]
    return run


# FAKE verdicts on top of fake_post_series: one fixed, one changed observation, one regression, one SKIP.
def fake_gate_patched(real: dict) -> dict:
    run = fake_post_series(real)
    set_verdict(run, "exclusive_mapcount", "PASS", [
        check("ok", "EXCLUSIVE succeeds", "ret=0 errno=0 cpages=4"),
        check("note", "kpagecount before", "[1, 1, 1, 1]"),
        check("ok", "kpagecount counts the exclusive entry as a mapping", "[1, 1, 1, 1]", "[1, 1, 1, 1]"),
        check("ok", "KPF_MMAP set while exclusive", "4/4 pages", "4/4"),
        check("ok", "kpagecount after the CPU takes them back", "[1, 1, 1, 1]", "[1, 1, 1, 1]"),
        check("ok", "data intact", "True"),
    ], "mapcount kept while exclusive")
    set_check(run, "exclusive_basic[npages=4]", "swap type is this kernel's device-exclusive type", "ok",
              "seen {30: 4}", "30 (version table for 7.2.0)")
    set_check(run, "exclusive_basic[npages=4]", "kpagecount while exclusive", "note",
              "{1: 4} (0 before the series, 1 after)")
    set_check(run, "exclusive_fork", "child sees its own change", "FAIL", "{'saw_original': True, 'saw_own': False}")
    entry(run, "exclusive_fork")["verdict"].update(status="FAIL", summary="failed: child sees its own change")
    set_verdict(run, "exclusive_ksm", "SKIP", [], "KSM not available (FAKE)")
    return run


# ---------------------------------------------------------------------------------------- compare


def verdict_of(run: dict, case_id: str) -> Verdict:
    return Verdict.from_dict(entry(run, case_id)["verdict"])


def test_check_map_pairs_by_key_on_real_checks_and_notes(real: dict) -> None:
    m = compare.check_map(verdict_of(real, "exclusive_basic[npages=4]"))
    assert m["EXCLUSIVE succeeds on every page"] == "ret=0 errno=0 cpages=4 of 4"
    assert m["swap type is this kernel's device-exclusive type"] == "seen {29: 4} (expected 29 (version table for " \
                                                                   "6.12.117))"
    assert m["note: kpagecount while exclusive"] == "{0: 4} (0 before the series, 1 after)"
    m = compare.check_map(verdict_of(real, "exclusive_mapcount"))
    assert m["kpagecount counts the exclusive entry as a mapping"] == "FAIL: [0, 0, 0, 0] (expected [1, 1, 1, 1])"
    assert m["note: kpagecount before"] == "[1, 1, 1, 1]"
    # Keys hold no values: the errno is in seen/expected, so both kernels have the same key.
    m = compare.check_map(verdict_of(real, "exclusive_shared_and_file"))
    assert m["shared_anon: refused"].startswith("ret=-1 errno=EBUSY cpages=0")


def test_check_map_keeps_every_real_check(real: dict) -> None:
    for c in real["cases"]:
        v = Verdict.from_dict(c["verdict"])
        assert len(compare.check_map(v)) == len(v.checks), c["id"]


def test_a_repeated_key_is_numbered_not_lost() -> None:
    v = Verdict.from_dict({"status": "FAIL", "summary": "", "checks": [
        check("note", "uninterruptible task", "a"), check("note", "uninterruptible task", "b")]})
    assert compare.check_map(v) == {"note: uninterruptible task": "a", "note: uninterruptible task #2": "b"}


@pytest.mark.parametrize(("base", "patched", "new", "category"), [
    ("PASS", "FAIL", [], "regressed"),
    ("FAIL", "PASS", [], "fixed"),
    ("FAIL", "FAIL", [], "still failing"),
    ("PASS", "PASS", [], "still passing"),
    ("SKIP", "SKIP", [], "still skipped"),
    ("SKIP", "PASS", [], "changed"),
    ("PASS", "SKIP", [], "changed"),
    ("PASS", "ERROR", [], "changed"),
    ("FAIL", "FAIL", ["BUG: kernel NULL pointer dereference, address: 0000000000000008"], "regressed"),
    ("PASS", "FAIL", ["WARNING: CPU: 1 PID: 1 at mm/rmap.c:1 foo"], "regressed"),
])
def test_categorize_every_transition(base: str, patched: str, new: list[str], category: str) -> None:
    assert compare.categorize(base, patched, new) == category


def test_diff_of_the_real_run_with_itself_changes_nothing(real: dict) -> None:
    diffs = compare.diff_runs(typed(real), typed(real))
    assert [d.id for d in diffs] == [c["id"] for c in real["cases"]]
    for d, c in zip(diffs, real["cases"], strict=True):
        status = c["verdict"]["status"]
        assert d.category == {"PASS": "still passing", "FAIL": "still failing", "SKIP": "still skipped"}[status], d.id
        assert d.base == d.patched == status
        assert d.changes == [] and d.new_messages == []
    assert {d.category for d in diffs} == {"still passing", "still failing", "still skipped"}
    assert not compare.regressed(diffs)


def test_diff_lists_the_changed_lines_of_a_regression(real: dict) -> None:
    # FAKE patched run: exclusive_bad_args flips PASS -> FAIL, read_only now accepted and its PTEs changed.
    patched = copy.deepcopy(real)
    set_check(patched, "exclusive_bad_args", "read_only: refused", "FAIL", "ret=0 errno=0 cpages=4")
    set_check(patched, "exclusive_bad_args", "read_only: target unchanged", "FAIL", "pagemap changed")
    entry(patched, "exclusive_bad_args")["verdict"].update(
        status="FAIL", summary="failed: read_only: refused, read_only: target unchanged")
    diffs = {d.id: d for d in compare.diff_runs(typed(real), typed(patched))}
    d = diffs["exclusive_bad_args"]
    assert (d.base, d.patched, d.category) == ("PASS", "FAIL", "regressed")
    assert d.changes == [
        Change("read_only: refused", "ret=-1 errno=EBUSY cpages=0 (expected ret=-1, an errno)",
               "FAIL: ret=0 errno=0 cpages=4 (expected ret=-1, an errno)"),
        Change("read_only: target unchanged", "same pagemap", "FAIL: pagemap changed"),
    ]
    assert d.base_summary.startswith("errnos: unaligned_address=EINVAL")
    assert d.patched_summary == "failed: read_only: refused, read_only: target unchanged"
    assert compare.regressed(list(diffs.values()))
    assert [x.id for x in diffs.values() if not x.category.startswith("still")] == ["exclusive_bad_args"]


def test_diff_new_kernel_message_on_a_failing_case_is_a_regression(real: dict) -> None:
    # FAKE: the (really failing) exclusive_thp case also prints an oops on the patched kernel.
    patched = copy.deepcopy(real)
    title = "BUG: kernel NULL pointer dereference, address: 0000000000000008"
    crash = CrashReport(title=title, kind="oops", first_line=title, fatal=True).to_dict()
    v = entry(patched, "exclusive_thp")["verdict"]
    v["crashes"] = [crash]
    v["checks"] = [check("FAIL", "kernel messages", title), *v["checks"]]
    d = next(x for x in compare.diff_runs(typed(real), typed(patched)) if x.id == "exclusive_thp")
    assert (d.base, d.patched, d.category) == ("FAIL", "FAIL", "regressed")
    assert d.new_messages == [title]
    assert d.changes == [Change("kernel messages", "-", f"FAIL: {title}")]
    # the same message in both runs is not new
    d = next(x for x in compare.diff_runs(typed(patched), typed(patched)) if x.id == "exclusive_thp")
    assert (d.category, d.new_messages) == ("still failing", [])


def test_diff_case_in_only_one_run(real: dict) -> None:
    patched = copy.deepcopy(real)
    patched["cases"] = [c for c in patched["cases"] if c["id"] != "exclusive_ksm"]
    extra = copy.deepcopy(entry(real, "exclusive_fork"))
    extra.update(id="exclusive_future", case="exclusive_future")  # FAKE case only the patched run has
    patched["cases"].append(extra)
    diffs = compare.diff_runs(typed(real), typed(patched))
    assert diffs[-1].id == "exclusive_future"  # base order first, then what only the patched run has
    by = {d.id: d for d in diffs}
    assert (by["exclusive_ksm"].base, by["exclusive_ksm"].patched, by["exclusive_ksm"].category) == \
        ("PASS", "-", "only in one run")
    assert (by["exclusive_future"].base, by["exclusive_future"].patched, by["exclusive_future"].category) == \
        ("-", "PASS", "only in one run")
    assert not compare.regressed(diffs)


# ------------------------------------------------------------------------------------ predictions


def test_the_fake_post_series_run_is_what_the_facts_file_describes(real: dict) -> None:
    """Guard on the fake itself: its raw values decode to what the edits meant."""
    fake = fake_post_series(real)
    d = decoded(obs(fake, "exclusive_basic[npages=4]")["while_exclusive"]["pagemap"])
    before = pfns(obs(real, "exclusive_basic[npages=4]")["before"]["pagemap"])
    assert [x["swap_type"] for x in d] == [30] * 4 and [x["swap_offset"] for x in d] == before
    t = obs(fake, "exclusive_thp")
    head = decoded(t["after_head"])
    assert not head[0]["present"] and head[0]["swap_type"] == 30 and all(x["present"] for x in head[1:])
    assert head[0]["swap_offset"] == pfns(t["before"])[0] == decoded(obs(real, "exclusive_thp")["after_head"])[0][
        "swap_offset"]
    assert [i for i, x in enumerate(decoded(t["after_tail"])) if not x["present"]] == [t["tail_index"]]


def test_every_prediction_confirmed_on_real_612_vs_fake_post_series(real: dict) -> None:
    rows = predictions.check_all(typed(real), typed(fake_post_series(real)))
    assert len(rows) == len(predictions.PREDICTIONS)
    assert {r.name: r.status for r in rows} == {p.name: "confirmed" for p in predictions.PREDICTIONS}
    seen = {r.case + " / " + r.name: (r.seen_before, r.seen_after) for r in rows}
    assert seen["exclusive_basic[npages=4] / swap type of a writable device-exclusive entry"] == ("[29]", "[30]")
    assert seen["exclusive_mprotect / PTE restored after mprotect RO->RW and a CPU read"] == ("read-only", "writable")
    assert seen["exclusive_mapcount / kpagecount of a device-exclusive page"] == ("[0, 0, 0, 0]", "[1, 1, 1, 1]")
    assert seen["exclusive_thp / one page of a THP made exclusive"] == (
        "head: ret 0 512 PTE(s) exclusive; tail: ret -1 (EBUSY) 0 PTE(s) exclusive",
        "head: ret 0 1 PTE(s) exclusive; tail: ret 0 (0) 1 PTE(s) exclusive")
    assert seen["exclusive_bad_args / errno for a read-only mapping (GUP error)"] == ("EBUSY", "EFAULT")
    assert seen["exclusive_hugetlb / errno for hugetlb memory"] == ("EBUSY", "EOPNOTSUPP")
    assert seen["exclusive_migration / migration (soft offline) of exclusive pages"] == (
        "soft_offline failed, 0/4 moved", "soft_offline succeeded, 4/4 moved")
    assert seen["migrate_to_device[memory=private] / swap types of device-private entries (write, read)"] == (
        "[27, 28]", "[28, 29]")
    assert seen["device_thp[fill=data] / a 2 MiB THP migrated to device-private memory"] == (
        "0/512 pages PMD-level", "512/512 pages PMD-level")


def test_a_broken_prediction_is_refuted_and_shows_both_values(real: dict) -> None:
    fake = fake_post_series(real)
    obs(fake, "exclusive_mapcount")["while_exclusive"]["kpagecount"] = [0, 0, 0, 0]  # as before the series
    rows = predictions.check_all(typed(real), typed(fake))
    bad = [r for r in rows if r.status != "confirmed"]
    assert [r.name for r in bad] == ["kpagecount of a device-exclusive page"]
    assert bad[0].status == "refuted"
    assert (bad[0].seen_before, bad[0].seen_after) == ("[0, 0, 0, 0]", "[0, 0, 0, 0]")
    assert (bad[0].predicted_before, bad[0].predicted_after) == ("[0, 0, 0, 0]", "[1, 1, 1, 1]")


def test_thp_prediction_is_not_confirmed_by_511_ptes(real: dict) -> None:
    """"511 PTE(s) exclusive" contains "1 PTE(s) exclusive"; it is not exactly one PTE."""
    fake = fake_post_series(real)
    t = obs(fake, "exclusive_thp")
    t["after_tail"] = [exclusive_entry(x) for x in t["before"][t["pages_per_thp"]:]]
    t["after_tail"][0] = t["before"][t["pages_per_thp"]]  # 511 of 512 exclusive
    row = next(r for r in predictions.check_all(typed(real), typed(fake)) if r.case == "exclusive_thp")
    assert row.seen_after == "head: ret 0 1 PTE(s) exclusive; tail: ret 0 (0) 511 PTE(s) exclusive"
    assert row.status == "refuted"


def test_a_missing_or_unobserved_case_is_not_checked(real: dict) -> None:
    fake = fake_post_series(real)
    fake["cases"] = [c for c in fake["cases"] if c["id"] != "exclusive_hugetlb"]
    entry(fake, "exclusive_migration")["record"]["status"] = "hang"
    rows = {r.case: r for r in predictions.check_all(typed(real), typed(fake))}
    for case in ("exclusive_hugetlb", "exclusive_migration"):
        assert rows[case].status == "not checked"
        assert rows[case].seen_before is None and rows[case].seen_after is None
    assert rows["exclusive_mapcount"].status == "confirmed"


# ------------------------------------------------------------------------------------------- gate


@pytest.fixture
def report(real: dict) -> gate_report.GateReport:
    return gate_report.build_report("debian-6.12", "debian-7.2", typed(real), typed(fake_gate_patched(real)))


def test_build_report_categories_and_exit_code(report: gate_report.GateReport, real: dict) -> None:
    cats = {c.id: c.category for c in report.cases}
    assert cats["exclusive_fork"] == "regressed"
    assert cats["exclusive_mapcount"] == "fixed"
    assert cats["exclusive_ksm"] == "changed"
    assert cats["exclusive_basic[npages=4]"] == "still passing"
    assert report.regressed is True and report.exit_code == 1
    assert report.counts["regressed"] == 1 and report.counts["fixed"] == 1
    assert sum(report.counts.values()) == len(real["cases"])
    assert report.base.release == "6.12.117" and report.patched.release == "7.2.0"
    # the releases straddle the series, so the predictions are checked (the fake confirms them all)
    assert {p.status for p in report.predictions} == {"confirmed"}
    basic = next(c for c in report.cases if c.id == "exclusive_basic[npages=4]")
    assert {ch.what for ch in basic.changes} == {"swap type is this kernel's device-exclusive type",
                                                 "note: kpagecount while exclusive"}
    data = json.loads(json.dumps(report.to_dict()))  # the JSON report, schema hmmbench.gate/1
    assert data["schema"] == gate_report.SCHEMA and data["exit_code"] == 1
    assert data["cases"][0]["changes"][0].keys() == {"what", "base", "patched"}


def test_every_check_pairs_across_two_real_kernels() -> None:
    """Keys hold no values: a check that ran on both kernels is on both sides ("-" never stands for it)."""
    runs = {}
    for kernel in ("6.12", "7.2"):
        rec = json.loads((DATA.parent / f"observations_{kernel}.json").read_text())
        facts = TargetFacts.from_info(rec["target"])
        runs[kernel] = [CaseResult(cid, c["case"], {}, 0.0, c_verdict(c, facts)) for cid, c in rec["cases"].items()]
    for base, patched in zip(runs["6.12"], runs["7.2"], strict=True):
        keys = set(compare.check_map(base.verdict)) & set(compare.check_map(patched.verdict))
        assert set(compare.check_map(base.verdict)) == set(compare.check_map(patched.verdict)) == keys, base.id


def c_verdict(c: dict, facts: TargetFacts) -> Verdict:
    from hmmbench import cases
    from hmmbench.cases.judge import judge_record

    return judge_record(cases.load_all()[c["case"]], c["record"], facts)


def test_build_report_without_regression_exits_0(real: dict) -> None:
    rep = gate_report.build_report("debian-6.12", "debian-6.12", typed(real), typed(real))
    assert (rep.exit_code, rep.regressed, rep.predictions) == (0, False, [])
    patched = fake_gate_patched(real)
    entry(patched, "exclusive_fork")["verdict"] = copy.deepcopy(entry(real, "exclusive_fork")["verdict"])
    rep = gate_report.build_report("debian-6.12", "debian-7.2", typed(real), typed(patched))
    assert (rep.exit_code, rep.regressed) == (0, False)
    assert "REGRESSIONS" not in gate_report.text(rep)
    assert "not ok" not in gate_report.ktap(rep)


def test_ktap_plan_and_not_ok_exactly_for_regressions(report: gate_report.GateReport) -> None:
    out = gate_report.ktap(report)
    lines = out.splitlines()
    assert lines[0] == "KTAP version 1"
    assert lines[1] == f"1..{len(report.cases)}"
    results = [line for line in lines if not line.startswith("#")][2:]
    assert len(results) == len(report.cases)
    for i, (line, c) in enumerate(zip(results, report.cases, strict=True), 1):
        want = "not ok" if c.category == "regressed" else "ok"
        assert line.startswith(f"{want} {i} {c.id}"), line
    assert [line for line in results if line.startswith("not ok")] == [
        f"not ok {i} exclusive_fork" for i, c in enumerate(report.cases, 1) if c.id == "exclusive_fork"]
    assert any(line.endswith("exclusive_ksm # SKIP") for line in results)
    # the project's own KTAP parser reads it back
    parsed = {r.name: r.status for r in parse_ktap(out)}
    assert parsed["exclusive_fork"] == "FAIL"
    assert parsed["exclusive_ksm"] == "SKIP"
    assert [n for n, s in parsed.items() if s == "FAIL"] == ["exclusive_fork"]
    assert len(parsed) == len(report.cases)


def test_junit_one_failure_per_regression(report: gate_report.GateReport, tmp_path: Path) -> None:
    path = tmp_path / "out" / "gate-junit.xml"
    gate_report.junit(report, path)
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(report.cases)) and suite.get("failures") == "1"
    assert "6.12.117" in suite.get("name", "") and "7.2.0" in suite.get("name", "")
    failures = [(tc.get("name"), tc.find("failure")) for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert [n for n, _f in failures] == ["exclusive_fork"]
    f = failures[0][1]
    assert f.get("message") == "PASS -> FAIL"
    assert "child sees its own change: {'saw_original': True, 'saw_own': True" in (f.text or "")
    assert "-> FAIL: {'saw_original': True, 'saw_own': False}" in (f.text or "")
    assert len(list(suite.iter("testcase"))) == len(report.cases)


def test_mail_names_both_kernels_and_shows_the_evidence(report: gate_report.GateReport) -> None:
    text = gate_report.mail(report)
    assert text.startswith("hmmbench ")
    assert "6.12.117 -> 7.2.0" in text.splitlines()[0]
    for side in (report.base, report.patched):
        for value in (side.release, side.tree_identity, side.config_hash):
            assert value in text, value
    assert "debian:linux-source-6.12=6.12.117-1~deb12u1:sha256:e849faf31ca35557" in text
    assert "fa4efa4efa4efa4e" in text
    # a changed observation, with both values
    assert "  swap type is this kernel's device-exclusive type:\n" \
           "      base:    seen {29: 4} (expected 29 (version table for 6.12.117))\n" \
           "      patched: seen {30: 4} (expected 30 (version table for 7.2.0))" in text
    assert "  kpagecount counts the exclusive entry as a mapping:\n" \
           "      base:    FAIL: [0, 0, 0, 0] (expected [1, 1, 1, 1])\n" \
           "      patched: [1, 1, 1, 1] (expected [1, 1, 1, 1])" in text
    assert "exclusive_fork: PASS -> FAIL (regressed)" in text
    assert "REGRESSIONS" in text
    assert "[confirmed] kpagecount of a device-exclusive page" in text
    # unchanged passing cases stay out of the evidence section
    evidence = text.split("Evidence\n--------", 1)[1]
    assert "exclusive_soft_dirty" not in evidence


def test_text_lists_regressions_first(report: gate_report.GateReport) -> None:
    names = tuple(c.id for c in report.cases)
    rows = [line for line in gate_report.text(report).splitlines() if line.startswith(names)]
    assert rows[0].split()[:4] == ["exclusive_fork", "PASS", "FAIL", "regressed"]
    assert rows[0].endswith("regressed (1 observation(s) changed)")
    assert len(rows) == len(report.cases)


# ----------------------------------------------------------------------------- selftest vs hmmbench

# Diagnostics as tests/data/hmm_tests_6.12_exclusive_fail.txt (hmm-tests on a 6.12 guest with THP "always").
EBUSY_DIAG = ("# hmm-tests.c:1817:exclusive:Expected ret (-16) == 0 (0)", "# exclusive: Test terminated by assertion")


def selftest_results(private_exclusive: str = "FAIL") -> list[SelftestResult]:
    diag = EBUSY_DIAG if private_exclusive == "FAIL" else ()
    return [
        SelftestResult("hmm.hmm_device_private.open_close", "PASS", 1),
        SelftestResult("hmm.hmm_device_private.exclusive", private_exclusive, 22, diagnostics=diag),
        SelftestResult("hmm.hmm_device_private.exclusive_mprotect", "PASS", 23),
        SelftestResult("hmm.hmm_device_private.exclusive_cow", "PASS", 24),
        SelftestResult("hmm.hmm_device_coherent.exclusive", "PASS", 48),
    ]


def test_selftest_disagreement_and_thp_explanation(real: dict) -> None:
    parsed = selftest_results()
    rows, disagreements = selftest_compare.compare(parsed, typed(real).cases)
    assert [(r.selftest, r.selftest_status, r.case, r.case_status) for r in rows] == [
        ("hmm.hmm_device_private.exclusive", "FAIL", "exclusive_basic", "PASS"),
        ("hmm.hmm_device_private.exclusive_mprotect", "PASS", "exclusive_mprotect", "PASS"),
        ("hmm.hmm_device_private.exclusive_cow", "PASS", "exclusive_fork", "PASS"),
        ("hmm.hmm_device_coherent.exclusive", "PASS", "exclusive_basic", "PASS"),
    ]
    assert rows[0].diagnostics == EBUSY_DIAG
    assert disagreements == [
        "hmm.hmm_device_private.exclusive: hmm-tests says FAIL, hmmbench exclusive_basic says PASS"]
    thp = typed(real).case("exclusive_thp")  # the real THP verdict (FAIL on 6.12)
    why = selftest_compare.explain_disagreements(parsed, thp, real["target_info"]["thp_enabled"])
    assert "THP" in why and "(-16)" in why and "'[always] madvise never'" in why
    assert "exclusive_thp, which is FAIL: failed: head page: exactly the requested PTE is exclusive" in why


def test_selftest_no_explanation_without_ebusy_or_thp_case(real: dict) -> None:
    thp = typed(real).case("exclusive_thp")
    assert selftest_compare.explain_disagreements(selftest_results("PASS"), thp, "always") == ""
    assert selftest_compare.explain_disagreements(selftest_results(), None, "always") == ""
    _rows, disagreements = selftest_compare.compare(selftest_results("PASS"), typed(real).cases)
    assert disagreements == []


def test_selftest_compare_never_reports_an_error_or_skip_as_pass(real: dict) -> None:
    ours = copy.deepcopy([c for c in real["cases"] if c["case"] in ("exclusive_basic", "exclusive_fork")])
    entry({"cases": ours}, "exclusive_basic[npages=4]")["verdict"]["status"] = "ERROR"
    entry({"cases": ours}, "exclusive_fork")["verdict"]["status"] = "SKIP"
    rows, disagreements = selftest_compare.compare(selftest_results(), typed({"cases": ours}).cases)
    status = {r.selftest: r.case_status for r in rows}
    assert status["hmm.hmm_device_private.exclusive"] == "ERROR"
    assert status["hmm.hmm_device_private.exclusive_cow"] == "SKIP"
    assert status["hmm.hmm_device_private.exclusive_mprotect"] == "not run"
    assert disagreements == []
    parsed = [SelftestResult("hmm.hmm_device_private.exclusive_cow", "FAIL", 24)]
    _rows, disagreements = selftest_compare.compare(parsed, typed(real).cases)
    assert disagreements == [
        "hmm.hmm_device_private.exclusive_cow: hmm-tests says FAIL, hmmbench exclusive_fork says PASS"]


# ------------------------------------------------------------------------ errno names (kernel's spelling)


def test_errname_uses_the_kernels_names_for_aliased_errnos() -> None:
    from hmmbench.cases.rules import errname

    # Python's errno.errorcode maps 95 to ENOTSUP and 35 to EDEADLOCK; the kernel returns EOPNOTSUPP/EDEADLK.
    assert (errname(95), errname(35), errname(16), errname(14), errname(0)) == \
        ("EOPNOTSUPP", "EDEADLK", "EBUSY", "EFAULT", "0")


def test_post_series_errnos_pass_the_rules() -> None:
    """The rules take the errno as the expectation (not the key): REAL 7.2.13 observations pass with
    EOPNOTSUPP, REAL 6.12.117 ones with EBUSY, each judged with its own recorded target."""
    from hmmbench.cases import exclusive_hugetlb, exclusive_shared_and_file

    for kernel, name in (("7.2", "EOPNOTSUPP"), ("6.12", "EBUSY")):
        rec = json.loads((DATA.parent / f"observations_{kernel}.json").read_text())
        tgt = TargetFacts.from_info(rec["target"])
        o = rec["cases"]["exclusive_hugetlb"]["record"]["observations"]
        v = exclusive_hugetlb.judge(o, tgt)
        assert v.status == "PASS", v.evidence
        want = f"ok   one_page: refused: ret=-1 errno={name} cpages=0 (expected ret=-1 errno={name}"
        assert any(line.startswith(want) for line in v.evidence)
        o = rec["cases"]["exclusive_shared_and_file"]["record"]["observations"]
        v = exclusive_shared_and_file.judge(o, tgt)
        assert v.status == "PASS", v.evidence
        for mapping in ("shared_anon", "ext4_shared"):
            assert any(line.startswith(f"ok   {mapping}: refused: ret=-1 errno={name}") for line in v.evidence)


def test_selftest_pass_beside_kernel_trouble_is_explained() -> None:
    """FAKE results: hmm-tests' anon_write_child passes while migrate_fork's private variant hit a WARNING."""
    crash = CrashReport(title="WARNING in dmirror_fault", kind="warning", first_line="WARNING: ...", fatal=False)
    fork = CaseResult("migrate_fork[first=device,memory=private]", "migrate_fork",
                      {"first": "device", "memory": "private"}, 0.3,
                      Verdict(Status.FAIL, "kernel trouble: WARNING in dmirror_fault", crashes=[crash]))
    coherent = CaseResult("migrate_fork[first=device,memory=coherent]", "migrate_fork",
                          {"first": "device", "memory": "coherent"}, 0.3, Verdict(Status.PASS, "ok"))
    parsed = [SelftestResult("hmm.hmm_device_private.anon_write_child", "PASS", 6),
              SelftestResult("hmm.hmm_device_coherent.anon_write_child", "PASS", 40)]
    why = selftest_compare.explain_kernel_trouble(parsed, [fork, coherent])
    assert why.splitlines() == [
        "hmm.hmm_device_private.anon_write_child passed, but migrate_fork[first=device,memory=private] hit kernel "
        "trouble on the same path (WARNING in dmirror_fault): hmm-tests judges return codes and data only"]


def test_selftest_pass_beside_disagreeing_views_is_explained() -> None:
    """FAKE results: hmm-tests' migrate_anon_huge_fault passes while device_thp saw a remote device say ERROR."""
    from hmmbench.cases.verdict import Disagreement

    d = Disagreement("after MIGRATE_TO_DEV", 0, "device-private entry", "dmirror1 SNAPSHOT ERROR", "expected NONE")
    thp = CaseResult("device_thp[fill=data]", "device_thp", {"fill": "data"}, 1.0,
                     Verdict(Status.FAIL, "failed: views agree: after MIGRATE_TO_DEV", disagreements=[d, d]))
    parsed = [SelftestResult("hmm.hmm_device_private.migrate_anon_huge_fault", "PASS", 33)]
    why = selftest_compare.explain_kernel_trouble(parsed, [thp])
    assert "device_thp[fill=data] saw 2 page view(s) where a device contradicts the CPU" in why
    assert "dmirror1 SNAPSHOT ERROR" in why
