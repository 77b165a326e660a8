"""The one execution path: cases run as pytest items, on workers that pytest-xdist schedules.

``hmmbench run`` (and everything that runs the suite: gate, series, bisect) writes a :class:`Plan`
(the request, the cases, the kernel and image it already built, the machines it already checked) and
runs pytest in-process with hmmbench's plugin (:mod:`hmmbench.pytest_plugin`): one process for one
guest or machine, ``-n N`` workers for ``--jobs N`` guests or N inventory machines, load-balanced by
pytest-xdist. A user's ``pytest --hmm-suite --hmm-kernel ...`` takes the same path without a plan (the
plugin prepares the kernel itself). Either way every case goes through :func:`run_case` on a session
from :func:`hmmbench.targets.session.open_sessions`, and the results are assembled into one
``results.json`` (:func:`assemble`) that ``hmmbench judge`` and ``hmmbench gate`` read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hmmbench import __version__, cache, cases, procs
from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.judge import judge_record
from hmmbench.cases.verdict import Status, Verdict
from hmmbench.cases.watch import CaseEnded, CaseWatch
from hmmbench.errors import HarnessError
from hmmbench.reports import results, text
from hmmbench.reports.results import CaseResult, ImageBlock, KernelBlock, RunResult, TargetBlock, WorkerBlock
from hmmbench.targets.agent import AgentError
from hmmbench.targets.session import Session
from hmmbench.targets.ssh import CommandTimeout, ConnectionLost

PLAN_FILE = ".hmmbench-plan.json"


# ================================================================================ one case on a session


@dataclass
class Observed:
    """What one observer's run on a session gave: the agent's record (or the host's, for a case the
    host ended), the console lines printed meanwhile, and why the session must restart (or None)."""

    record: dict
    console_lines: list[str]
    seconds: float
    restart_reason: str | None = None


def observe_on(session: Session, name: str, params: dict, timeout: float, label: str,
               source: str | None = None) -> Observed:
    """Run the guest observer ``name`` (a case's, or a user's given by its ``source``) on a booted
    session, watched while it runs (:class:`~hmmbench.cases.watch.CaseWatch`)."""
    assert session.agent is not None
    mark = len(session.console_lines())
    watch = CaseWatch(name, params, lambda: session.console_lines()[mark:])
    t0 = time.monotonic()
    restart_reason = None
    try:
        record = session.agent.run_case(name, params, timeout, on_event=watch, source=source)
    except CaseEnded as ended:
        record = ended.record
        restart_reason = f"{label}: {record['status']} ({record['reason']})"
    except CommandTimeout:
        record = watch.record("hang", f"no answer within {timeout:.0f}s")
        record["timeout"] = timeout
        restart_reason = f"{label} hung"
    except (ConnectionLost, AgentError) as exc:
        if isinstance(exc, ConnectionLost) or not session.alive():
            record = watch.record("lost", str(exc))
            restart_reason = f"{label} lost the target"
        else:
            record = watch.record("error", str(exc))
    seconds = time.monotonic() - t0
    if restart_reason:
        time.sleep(2.0)  # let the console catch the last kernel messages
    return Observed(record, session.console_lines()[mark:], seconds, restart_reason)


def judge_observed(spec: cases.CaseSpec, params: dict, seen: Observed, facts: TargetFacts,
                   case_dir: Path) -> tuple[CaseResult, str | None]:
    """The case's verdict on what was observed, its files in ``case_dir``, and the restart reason (a
    kernel that oopsed is not one to run the next case on)."""
    case_id = spec.variant_id(params)
    verdict = judge_record(spec, seen.record, facts, seen.console_lines)
    restart_reason = seen.restart_reason
    if verdict.fatal_crashes and not restart_reason:
        restart_reason = f"{case_id}: {verdict.fatal_crashes[0].title}"
    result = CaseResult(case_id, spec.name, params, round(seen.seconds, 2), verdict, seen.record)
    save(result, seen.console_lines, case_dir, bool(verdict.crashes or restart_reason))
    return result, restart_reason


def save(result: CaseResult, console_lines: list[str], case_dir: Path, with_console: bool) -> None:
    """The case's entry (and its console excerpt, when it matters) beside the results."""
    case_dir.mkdir(parents=True, exist_ok=True)
    if with_console:
        excerpt = case_dir / f"{safe_name(result.id)}.console.txt"
        excerpt.write_text("\n".join(console_lines) + "\n")
        result.console_excerpt = str(excerpt)
    results.write_json(case_dir / f"{safe_name(result.id)}.json", result)


def run_case(session: Session, spec: cases.CaseSpec, params: dict, case_dir: Path,
             timeout_override: float | None) -> tuple[CaseResult, str | None]:
    """One case variant on a booted session: (its result, restart reason or None)."""
    assert session.agent is not None
    seen = observe_on(session, spec.name, params, timeout_override or spec.timeout, spec.variant_id(params))
    return judge_observed(spec, params, seen, TargetFacts.from_info(session.agent.info), case_dir)


def not_run(case_id: str, case: str, params: dict, why: str) -> CaseResult:
    return CaseResult(case_id, case, params, 0.0, Verdict(Status.ERROR, f"not run: {why}"))


def safe_name(case_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_=,." else "_" for ch in case_id)


# ================================================================================ one worker's account


@dataclass
class WorkerMeta:
    """What one worker knows at the end: its kernel and image, its target and boots, the target's facts.

    Sent from a pytest-xdist worker to the controller (``workeroutput``) as JSON."""

    name: str
    kernel: dict | None = None
    image: dict | None = None
    target: dict | None = None
    target_info: dict = field(default_factory=dict)
    target_config: dict | None = None
    boot_error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerMeta:
        return cls(**json.loads(text))


def describe_sessions(target: TargetBlock, sessions: list[Session]) -> TargetBlock:
    """``target`` with the boots, boot times, phases and consoles of ``sessions`` filled in."""
    t = dataclasses.replace(target)
    info = next((s.target_info for s in sessions if s.target_info), {})
    t.cpus = t.cpus or info.get("nproc")
    t.numa_nodes = t.numa_nodes or info.get("numa_nodes")
    t.boots = sum(s.boots for s in sessions)
    t.boot_seconds = [round(x, 1) for s in sessions for x in s.boot_seconds]
    t.boot_phases = [p for s in sessions for p in getattr(s, "boot_phases", [])]
    t.consoles = [str(p) for s in sessions for p in s.consoles]
    return t


def running_kernel(target: TargetBlock, info: dict) -> KernelBlock:
    """A machine's kernel when hmmbench did not build it: whatever it runs."""
    config = info.get("config") or {}
    return KernelBlock(target.url or "", info.get("release"), info.get("proc_version"), "unknown (running kernel)",
                       cache.stable_hash(sorted(config.items())) if config else "unknown")


def assemble(out_dir: Path, case_results: list[CaseResult], metas: list[WorkerMeta], order: list[str],
             started: float, junit: Path | None = None) -> RunResult:
    """One RunResult from the cases every worker ran (in suite ``order``, unknown ids after) and the
    workers' accounts; results.json, JUnit and evidence.txt written."""
    rank = {case_id: i for i, case_id in enumerate(order)}
    ordered = sorted(case_results, key=lambda c: (rank.get(c.id, len(rank)), c.id))
    metas = sorted(metas, key=lambda m: m.name)
    first = next((m for m in metas if m.target_info), metas[0] if metas else WorkerMeta("none"))
    target = TargetBlock.from_dict(first.target) if first.target else TargetBlock("unknown")
    with_target = [(m, TargetBlock.from_dict(m.target)) for m in metas if m.target]
    if len(metas) > 1:
        target.boots = sum(b.boots for _, b in with_target)
        target.boot_seconds = [x for _, b in with_target for x in b.boot_seconds]
        target.boot_phases = [p for _, b in with_target for p in b.boot_phases]
        target.consoles = [c for _, b in with_target for c in b.consoles]
        target.workers = [WorkerBlock(m.name, m.target_info.get("release"), b.boots, b.boot_seconds)
                          for m, b in with_target]
    kernel = KernelBlock.from_dict(first.kernel) if first.kernel else running_kernel(target, {
        **first.target_info, "config": first.target_config})
    image = ImageBlock.from_dict(first.image)
    res = RunResult(kernel, target, image, first.target_info, first.target_config, ordered,
                    started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    seconds=round(time.monotonic() - started, 1), hmmbench_version=__version__,
                    results_path=str(out_dir / "results.json"))
    out_dir.mkdir(parents=True, exist_ok=True)
    results.write_json(out_dir / "results.json", res)
    results.write_junit(junit or out_dir / "junit.xml", res)
    (out_dir / "evidence.txt").write_text(text.evidence(res) + "\n")
    return res


# ================================================================================ the plan and pytest


@dataclass
class Plan:
    """What ``hmmbench run`` decided before the cases: everything a worker needs, nothing to resolve again."""

    request: dict  # RunRequest's fields (paths as strings)
    case_ids: list[str]  # the suite's variants, in order
    out_dir: str
    started_wall: float  # time.time() when the command started (workers are other processes)
    kernel_dir: str | None = None  # the kernel's artifact directory in the cache (QEMU guests)
    kernel_label: str | None = None
    kernel_cached: bool = True  # False when this command built the kernel (results.json says so, bench counts it)
    image_recipe: str | None = None
    machines: list[dict] = field(default_factory=list)  # url + options of each machine (remote targets)
    kexec: list | None = None  # what --kexec saw on each machine

    def write(self) -> Path:
        path = Path(self.out_dir) / PLAN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls(**json.loads(path.read_text()))


def pytest_args(plan_path: Path, workers: int) -> list[str]:
    """pytest's command line for a plan: hmmbench's plugin and its suite, nothing of the user's (no
    ini, conftest or test files of the current directory), ``-n`` workers where there are several."""
    empty = plan_path.parent / ".pytest"
    empty.mkdir(exist_ok=True)
    ini = empty / "pytest.ini"
    ini.write_text("[pytest]\n")
    args = ["-p", "hmmbench.pytest_plugin", "-c", str(ini), "--rootdir", str(empty), "--noconftest",
            "-p", "no:cacheprovider", "-p", "no:terminal", "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--capture=no",  # progress lines (boots, recoveries) reach the terminal as they happen
            "--hmm-suite", "--hmm-plan", str(plan_path), str(empty)]
    if workers > 1:
        args += ["-p", "xdist", "-n", str(workers), "--dist", "load"]
    return args


def execute(plan: Plan, workers: int = 1) -> RunResult:
    """Run the plan's cases through pytest (in this process; xdist workers for several targets) and
    return what the plugin assembled. A run where no case could even start (every guest failed to boot)
    is the harness's failure: a HarnessError naming the boot error."""
    import pytest

    plan_path = plan.write()
    with contextlib.redirect_stdout(sys.stderr):  # pytest's own lines are progress; stdout is the table
        code = pytest.main(pytest_args(plan_path, workers))
    if code == pytest.ExitCode.INTERRUPTED:
        if procs.interrupted_by():  # SIGTERM/SIGHUP: the exit status a signal gives, as before pytest
            raise SystemExit(128 + procs.interrupted_by())
        raise KeyboardInterrupt
    path = Path(plan.out_dir) / "results.json"
    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR) or not path.is_file():
        raise HarnessError(f"the case runner (pytest) failed (exit {int(code)}) before it wrote {path}",
                           "its output is above")
    res = results.load(path)
    boot_errors = {c.verdict.summary for c in res.cases if c.verdict.summary.startswith("not run: ")}
    if res.cases and len(boot_errors) == 1 and all(c.verdict.summary in boot_errors for c in res.cases):
        raise HarnessError(boot_errors.pop().removeprefix("not run: "))
    return res
