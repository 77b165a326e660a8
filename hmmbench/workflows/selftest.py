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

from hmmbench import cases, progress
from hmmbench.reports import results
from hmmbench.reports.results import CaseResult
from hmmbench.reports.selftest import SelftestReport
from hmmbench.selftest import build, coverage, ktap
from hmmbench.selftest.compare import OutputCheck, compare, explain_disagreements, explain_kernel_trouble
from hmmbench.targets.session import Session, open_sessions
from hmmbench.targets.ssh import CommandTimeout, ConnectionLost
from hmmbench.workflows import engine
from hmmbench.workflows import run as run_workflow

REMOTE_BINARY = "/tmp/hmm-tests"
SELFTEST_TIMEOUT = 900.0


def selftest(req: run_workflow.RunRequest, timeout: float = SELFTEST_TIMEOUT) -> SelftestReport:
    """hmm-tests from the tree of --kernel/--tree (with --target: the tree of the kernel the machine runs)."""
    started = time.monotonic()
    if req.kexec:
        req = dataclasses.replace(req, kernel=req.kexec, tree=None)
    tree, kernel, image = run_workflow.prepare(req)
    binary = build.build_hmm_tests(tree.path, tree.identity)
    out_dir = (req.out_dir or results.default_out_dir(kernel.release + "-selftest")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    machines = None
    if req.target_url:
        from hmmbench.targets import remote

        url, opts = remote.parse_url(req.target_url), req.remote or remote.RemoteOptions()
        if req.kexec:
            remote.kexec_into(url, opts, kernel.bzimage, kernel.release, kernel.banner)
        machines = [(url, opts)]
    with open_sessions(out_dir, kernel=kernel, image=image, shape=req.shape, machines=machines) as opened:
        session = opened.sessions[0]
        agent = session.boot()
        agent.ssh.put_file(binary, REMOTE_BINARY, 0o755)
        mark = len(session.console_lines())
        with progress.step(f"running hmm-tests ({binary})"):
            text, ended = _run_binary(session, timeout)
        (out_dir / "hmm-tests.txt").write_text(text)
        (out_dir / "hmm-tests-console.txt").write_text("\n".join(session.console_lines()[mark:]) + "\n")
        # hmmbench's cases get a guest of their own: what hmm-tests left behind (device memory it did not
        # give back, a tainted kernel, a warning printed late) must not be judged as theirs.
        session.restart(f"hmm-tests ended ({ended}); a fresh guest (under QEMU) for hmmbench's cases")
        # exclusive_thp too: hmm-tests' buffers are THP-backed when THP is "always", ours are not.
        names = [*coverage.cases(), "exclusive_thp"]
        ours = run_after(session, [cases.load_all()[name] for name in names], out_dir, req.case_timeout)
        thp_mode = session.target_info.get("thp_enabled")
    doc = ktap.parse_document(text)
    parsed = doc.leaves
    rows, disagreements = compare(parsed, ours)
    thp = next((c for c in ours if c.case == "exclusive_thp"), None)
    report = SelftestReport(run_workflow.kernel_block(tree.label, kernel), opened.target.accel,
                            opened.target.accel_why, str(binary), ended, parsed, OutputCheck.of(doc), ours, rows,
                            disagreements, "\n".join(x for x in (explain_disagreements(parsed, thp, thp_mode),
                                                                  explain_kernel_trouble(parsed, ours)) if x),
                            started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                            seconds=round(time.monotonic() - started, 1))
    results.write_json(out_dir / "selftest.json", report)
    return report


def run_after(session: Session, specs: list[cases.CaseSpec], out_dir, timeout: float | None) -> list[CaseResult]:
    """hmmbench's matching cases on the guest hmm-tests just ran on, one after the other, with the same
    per-case path as every run (:func:`hmmbench.workflows.engine.run_case`); a fresh guest after trouble."""
    done = []
    for spec in specs:
        for params in spec.variants:
            if session.agent is None:
                session.boot()
            result, restart = engine.run_case(session, spec, params, out_dir / "cases", timeout)
            progress.say(f"{result.id}: {result.status} ({result.seconds:.1f}s) {result.verdict.summary}")
            done.append(result)
            if restart:
                session.restart(restart)
    return done


# hmm-tests' anon_write_hugetlbfs needs free huge pages (it SKIPs with "Huge page could not be
# allocated" otherwise): reserve a few for the run, as the selftests' run_vmtests.sh does, and put the
# machine's own setting back afterwards.
HUGEPAGES = 8
_WITH_HUGEPAGES = ("old=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null); "
                   f"echo {HUGEPAGES} > /proc/sys/vm/nr_hugepages 2>/dev/null; {REMOTE_BINARY}; rc=$?; "
                   '[ -n "$old" ] && echo $old > /proc/sys/vm/nr_hugepages; exit $rc')


def _run_binary(session: Session, timeout: float) -> tuple[str, str]:
    """hmm-tests' output and how it ended (exit status, timeout, or lost target)."""
    assert session.agent is not None
    try:
        res = session.agent.ssh.run(f"cd /tmp && {session.agent.sudo}sh -c '{_WITH_HUGEPAGES}' 2>&1", timeout=timeout)
        return res.stdout, f"exit status {res.status}"
    except CommandTimeout as exc:
        session.agent = None
        return exc.stdout, f"timeout after {timeout:.0f}s"
    except ConnectionLost as exc:
        session.agent = None
        return "", f"target lost: {exc}"
