"""``hmmbench selftest``: the kernel's own hmm-tests beside hmmbench's cases, on the same guest.

hmm-tests is built from the same tree as the kernel (static, on the host), copied in, and run; its
KTAP is parsed. In the same boot hmmbench runs the cases that check what hmm-tests' device-exclusive
tests check (exclusive -> exclusive_basic, exclusive_mprotect, exclusive_cow -> exclusive_fork), and
every pair whose verdicts disagree is printed: one of the two tests is wrong, or sees something the
other does not.

hmm-tests' output is also judged as a whole: a run cut short (fewer results than its ``1..N`` plan, e.g.
a panic under the 24th test) or no KTAP output at all FAILs the selftest, naming the last test seen and
how many were planned, so a crashed run never reads as "23 passes". A valid ``1..0`` plan is reported as
0 tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from hmmbench import cases, progress
from hmmbench.reports import results
from hmmbench.selftest import build as selftest
from hmmbench.targets.ssh import CommandTimeout, ConnectionLost
from hmmbench.vm import accel
from hmmbench.vm.qemu import GuestConfig
from hmmbench.vm.session import QemuSession
from hmmbench.workflows import run as runner

REMOTE_BINARY = "/tmp/hmm-tests"
SELFTEST_TIMEOUT = 900.0


def _session(req: runner.RunRequest, tree, kernel, image, out_dir: Path):
    """A QEMU guest of ``kernel``, or with --target the remote machine (kexec'd first with --kexec)."""
    if req.target_url:
        from hmmbench.targets import remote

        url = remote.parse_url(req.target_url)
        opts = req.remote or remote.RemoteOptions()
        if req.kexec:
            remote.kexec_into(url, opts, kernel.bzimage, kernel.release, kernel.banner)
        return remote.RemoteSession(url, opts), "ssh", f"{url}"
    acc, why = accel.choose(kernel.bzimage, image.rootfs, req.accel)
    cfg = GuestConfig(memory_mib=req.memory_mib, cpus=req.cpus, numa_nodes=req.numa_nodes, accel=acc)
    return QemuSession(kernel, image, out_dir, cfg), acc, why


def run(req: runner.RunRequest, timeout: float = SELFTEST_TIMEOUT) -> tuple[int, dict]:
    """hmm-tests from the tree of --kernel/--tree (with --target: the tree of the kernel the machine runs)."""
    started = time.monotonic()
    if req.kexec:
        req = dataclasses.replace(req, kernel=req.kexec, tree=None)
    tree, kernel, image = runner.prepare(req)
    binary = selftest.build_hmm_tests(tree.path, tree.identity)
    out_dir = (req.out_dir or runner.default_out_dir(kernel.release + "-selftest")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    session, acc, why = _session(req, tree, kernel, image, out_dir)
    ours: list[dict] = []
    try:
        target = session.boot()
        target.ssh.put_file(binary, REMOTE_BINARY, 0o755)
        mark = len(session.console_lines())
        with progress.step(f"running hmm-tests ({binary})"):
            text, ended = _run_binary(session, timeout)
        (out_dir / "hmm-tests.txt").write_text(text)
        (out_dir / "hmm-tests-console.txt").write_text("\n".join(session.console_lines()[mark:]) + "\n")
        if session.target is None or not session.alive():
            session.restart("hmm-tests " + ended)
        # exclusive_thp too: hmm-tests' buffers are THP-backed when THP is "always", ours are not.
        names = [*dict.fromkeys(selftest.EXCLUSIVE_CASES.values()), "exclusive_thp"]
        mapped = [cases.load_all()[name] for name in names]
        ours = runner.execute(session, mapped, out_dir, req.case_timeout)
    finally:
        session.close()
    doc = selftest.parse_document(text)
    parsed = doc.leaves
    check = OutputCheck.of(doc)
    rows, disagreements = compare(parsed, ours)
    thp = next((c["verdict"] for c in ours if c["case"] == "exclusive_thp"), None)
    explanation = explain_disagreements(parsed, thp, (session.target_info or {}).get("thp_enabled"))
    res = {
        "schema": "hmmbench.selftest/1",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "kernel": {"label": tree.label, "release": kernel.release, "tree_identity": kernel.tree_identity,
                   "config_hash": kernel.config_hash},
        "accel": acc, "accel_why": why, "binary": str(binary), "ended": ended,
        "selftest": [{"name": r.name, "status": r.status, "reason": r.reason, "diagnostics": list(r.diagnostics)}
                     for r in parsed],
        "selftest_summary": selftest.summarize(parsed),
        "selftest_output": check.as_json(),
        "cases": ours,
        "comparison": rows,
        "disagreements": disagreements,
        "explanation": explanation,
    }
    results.write_json(out_dir / "selftest.json", res)
    failed = check.failed or any(r.status in ("FAIL", "ERROR") for r in parsed) or any(
        c["verdict"]["status"] == "FAIL" for c in ours)
    return (1 if disagreements or failed else 0), res


@dataclass(frozen=True)
class OutputCheck:
    """hmm-tests' output as a whole: whether every result its plan promised is there.

    ``status`` is COMPLETE, INCOMPLETE (fewer results than planned, or a bail-out), NO OUTPUT (not even a
    version line: the binary never ran, or the target was lost first) or 0 TESTS (a valid ``1..0``).
    The first two of the others fail the selftest; 0 TESTS is reported as such.
    """

    status: str
    summary: str
    planned: int | None
    seen: int
    last_test: str
    shortfalls: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status in ("INCOMPLETE", "NO OUTPUT")

    @classmethod
    def of(cls, doc: selftest.KtapDocument) -> OutputCheck:
        if doc.no_output:
            status = "NO OUTPUT"
        elif not doc.complete:
            status = "INCOMPLETE"
        elif doc.zero_tests:
            status = "0 TESTS"
        else:
            status = "COMPLETE"
        return cls(status, doc.summary(), doc.planned, doc.seen, doc.last_test,
                   tuple(s.describe() for s in doc.shortfalls))

    def as_json(self) -> dict:
        return {"status": self.status, "failed": self.failed, "summary": self.summary, "planned": self.planned,
                "seen": self.seen, "last_test": self.last_test, "shortfalls": list(self.shortfalls)}

    @classmethod
    def from_json(cls, data: dict) -> OutputCheck:
        return cls(data["status"], data["summary"], data["planned"], data["seen"], data["last_test"],
                   tuple(data.get("shortfalls", ())))

    def line(self) -> str:
        """The table's line: ``FAIL`` first when the output was cut short or absent."""
        return f"hmm-tests output: {'FAIL: ' if self.failed else ''}{self.summary}"


def _run_binary(session: QemuSession, timeout: float) -> tuple[str, str]:
    """hmm-tests' output and how it ended (exit status, timeout, or lost target)."""
    assert session.target is not None
    try:
        res = session.target.ssh.run(f"cd /tmp && {session.target.sudo}{REMOTE_BINARY} 2>&1", timeout=timeout)
        return res.stdout, f"exit status {res.status}"
    except CommandTimeout as exc:
        session.target = None
        return exc.stdout, f"timeout after {timeout:.0f}s"
    except ConnectionLost as exc:
        session.target = None
        return "", f"target lost: {exc}"


def compare(parsed: list[selftest.SelftestResult], ours: list[dict]) -> tuple[list[dict], list[str]]:
    """One row per hmm-tests exclusive test; a disagreement where one says PASS and the other FAIL."""
    by_case: dict[str, list[str]] = {}
    for c in ours:
        by_case.setdefault(c["case"], []).append(c["verdict"]["status"])
    rows, disagreements = [], []
    for r in parsed:
        case = selftest.EXCLUSIVE_CASES.get(r.test)
        if case is None:
            continue
        seen = by_case.get(case, [])
        # ERROR (could not decide) is never reported as PASS; SKIP only when every variant skipped.
        mine = next((s for s in ("FAIL", "ERROR", "PASS", "SKIP") if s in seen), "not run")
        rows.append({"selftest": r.name, "selftest_status": r.status, "case": case, "case_status": mine,
                     "reason": r.reason, "diagnostics": list(r.diagnostics)[-3:]})
        if {r.status, mine} == {"PASS", "FAIL"} or (r.status == "ERROR" and mine == "PASS"):
            disagreements.append(f"{r.name}: hmm-tests says {r.status}, hmmbench {case} says {mine}")
    return rows, disagreements


def explain_disagreements(parsed: list[selftest.SelftestResult], thp: dict | None, thp_mode: str | None) -> str:
    """Why hmm-tests may fail where hmmbench passes: its 4 MiB buffers are THPs when THP is 'always'."""
    ebusy = [r for r in parsed if r.test in selftest.EXCLUSIVE_CASES and r.status == "FAIL"
             and any("(-16)" in d for d in r.diagnostics)]
    if not ebusy or thp is None:
        return ""
    return (f"hmm-tests' exclusive tests failed with -EBUSY (-16). THP is {thp_mode!r} in the guest, so their "
            f"4 MiB buffers are backed by THPs; hmmbench tests base pages (MADV_NOHUGEPAGE) in exclusive_basic and "
            f"THPs in exclusive_thp, which is {thp['status']}: {thp['summary']}")


def table(res: dict) -> str:
    lines = [f"kernel {res['kernel']['release']} ({res['kernel']['label']}); hmm-tests {res['ended']}; "
             f"summary {res['selftest_summary']}"]
    if out := res.get("selftest_output"):
        lines.append(OutputCheck.from_json(out).line())
    lines.append("")
    w = max([len(r["selftest"]) for r in res["comparison"]] + [8])
    lines.append(f"{'hmm-tests':<{w}}  {'result':<6}  hmmbench case         verdict")
    for r in res["comparison"]:
        lines.append(f"{r['selftest']:<{w}}  {r['selftest_status']:<6}  {r['case']:<20}  {r['case_status']}")
        for d in r["diagnostics"] if r["selftest_status"] in ("FAIL", "ERROR") else []:
            lines.append(f"{'':<{w}}    {d}")
    others = [s for s in res["selftest"] if s["status"] in ("FAIL", "ERROR")
              and s["name"] not in {r["selftest"] for r in res["comparison"]}]
    if others:
        lines += ["", "other hmm-tests failures: " + ", ".join(f"{s['name']} ({s['status']})" for s in others)]
    lines += ["", "disagreements: " + ("; ".join(res["disagreements"]) if res["disagreements"] else "none")]
    if res.get("explanation"):
        lines += ["", "why: " + res["explanation"]]
    return "\n".join(lines)
