"""hmmbench in pytest: its cases as test items, fixtures for users' own cases, pytest-xdist for many targets.

Installed as a ``pytest11`` entry point, so ``pip install hmmbench`` makes it available everywhere; it
does nothing unless asked. Two ways in:

* ``pytest --hmm-suite --hmm-kernel debian-6.12`` collects hmmbench's own cases (every variant) as
  test items, with the same verdicts as ``hmmbench run``: a FAIL carries the evidence lines as its
  message, a SKIP its reason, kernel trouble is attributed to the test that caused it, and every test's
  console excerpt and observations are saved under ``--hmm-out``; a ``results.json`` of hmmbench's schema
  is written there, so ``hmmbench judge`` and ``hmmbench gate`` read pytest runs too.
* Fixtures for a user's own test file: ``hmm_target`` (the booted guest or connected machine of this
  worker, with the kernel's facts) and ``hmm`` (``hmm.observe(observer, params)`` runs a guest observer
  the test file defines, ``hmm.check(checks, summary)`` judges with hmmbench's typed checks).

Workers: ``-n N`` gives N guests (or the N machines of ``--hmm-inventory``), one per pytest-xdist worker,
tests load-balanced; ``--tx`` gateways (popen, ssh) run workers that build and boot on their own hosts.
After a hang, a lost target or a kernel report that wedged it, the next test gets a fresh guest.
``hmmbench run`` itself runs its cases through this plugin (:mod:`hmmbench.workflows.engine`).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hmmbench import progress
from hmmbench.errors import HarnessError

if TYPE_CHECKING:  # the plugin loads in every pytest run of this environment: hmmbench itself only on use
    from hmmbench import cases
    from hmmbench.cases.facts import TargetFacts
    from hmmbench.cases.verdict import Checks, Verdict
    from hmmbench.reports.results import CaseResult
    from hmmbench.workflows.engine import WorkerMeta

_RUN = pytest.StashKey["HmmRun"]()
RESULT_PROPERTY = "hmmbench_result"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("hmmbench", "hmmbench: HMM kernel tests in QEMU guests or on machines over SSH")
    g.addoption("--hmm-suite", action="store_true", help="collect hmmbench's own cases as tests")
    g.addoption("--hmm-case", action="append", default=[], metavar="NAME", help="only this hmmbench case (repeatable)")
    g.addoption("--hmm-kernel", metavar="KERNEL", help="debian-6.12 (default), debian-7.2, a tree path or PATH@REV")
    g.addoption("--hmm-tree", metavar="PATH", help="a kernel source tree (or PATH@REV)")
    g.addoption("--hmm-config-base", default="tinyconfig", help="base config: tinyconfig, defconfig or a FILE")
    g.addoption("--hmm-fragment", action="append", type=Path, metavar="FILE", help="Kconfig fragment (repeatable)")
    g.addoption("--hmm-target", metavar="URL", help="ssh://[user@]host[:port]: a running machine, not a guest")
    g.addoption("--hmm-identity", type=Path, help="SSH private key for --hmm-target")
    g.addoption("--hmm-known-hosts", type=Path, help="known_hosts file for --hmm-target")
    g.addoption("--hmm-accept-new-host-key", action="store_true", help="pin an unknown host key")
    g.addoption("--hmm-inventory", type=Path, metavar="FILE", help="TOML of ssh:// machines, one per worker (-n)")
    g.addoption("--hmm-net", choices=["user", "tap"], default="user", help="guest networking")
    g.addoption("--hmm-case-timeout", type=float, metavar="SECONDS", help="per-test timeout in the guest")
    g.addoption("--hmm-append", action="append", default=[], metavar="WORDS", help="extra guest kernel command line")
    g.addoption("--hmm-memory", type=int, default=2048, help="guest memory in MiB")
    g.addoption("--hmm-cpus", type=int, default=2, help="guest CPUs")
    g.addoption("--hmm-numa-nodes", type=int, default=2, help="guest NUMA nodes")
    g.addoption("--hmm-accel", choices=["auto", "kvm", "tcg"], default="auto", help="QEMU accelerator")
    g.addoption("--hmm-out", type=Path, help="results directory (default hmmbench-results/pytest-TIME)")
    g.addoption("--hmm-plan", type=Path, help=argparse.SUPPRESS)  # the plan of `hmmbench run`, not for people


# ================================================================================ the run of this process


class HmmRun:
    """This process's part of the run: the request, the cases, and (lazily) its one target.

    The controller (or the only process) also gathers every test's result and every worker's account
    and writes results.json at the end."""

    def __init__(self, config: pytest.Config) -> None:
        from hmmbench.reports import results
        from hmmbench.workflows.engine import Plan
        from hmmbench.workflows.run import RunRequest

        self.config = config
        opt = config.getoption
        self.plan = Plan.read(opt("hmm_plan")) if opt("hmm_plan") else None
        if self.plan:
            req = dict(self.plan.request)
            for key in ("out_dir", "junit", "inventory"):
                req[key] = Path(req[key]) if req.get(key) else None
            req["fragments"] = [Path(f) for f in req["fragments"]] if req.get("fragments") else None
            self.req = RunRequest(**req)
            self.out_dir = Path(self.plan.out_dir)
            self.started = time.monotonic() - (time.time() - self.plan.started_wall)
        else:
            self.req = RunRequest(
                kernel=opt("hmm_kernel"), tree=opt("hmm_tree"), case_names=opt("hmm_case"),
                config_base=opt("hmm_config_base"), fragments=opt("hmm_fragment"), cpus=opt("hmm_cpus"),
                memory_mib=opt("hmm_memory"), numa_nodes=opt("hmm_numa_nodes"), accel=opt("hmm_accel"),
                case_timeout=opt("hmm_case_timeout"), net=opt("hmm_net"), target_url=opt("hmm_target"),
                inventory=opt("hmm_inventory"), append=[w for words in opt("hmm_append") for w in words.split()],
                remote=self._remote_options() if opt("hmm_target") else None)
            self.out_dir = (opt("hmm_out") or results.default_out_dir("pytest")).resolve()
            self.started = time.monotonic()
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        self.index = int(workerinput["workerid"].lstrip("gw")) if workerinput else None
        self.workers = int(workerinput["workercount"]) if workerinput else 1
        self.netns_name = workerinput.get("hmmbench_netns") if workerinput else None
        self.collected: list[CaseResult] = []
        self.metas: list[WorkerMeta] = []
        self.net = None
        self._stack = contextlib.ExitStack()
        self._opened = None
        self._kernel = self._image = None
        self.boot_error: str | None = None
        self.results_path: str | None = None

    @classmethod
    def of(cls, config: pytest.Config) -> HmmRun:
        """This process's run, made on first use (the plugin costs nothing in a run that does not use it)."""
        if _RUN not in config.stash:
            config.stash[_RUN] = cls(config)
        return config.stash[_RUN]

    def _remote_options(self):
        from hmmbench.targets.remote import RemoteOptions

        opt = self.config.getoption
        return RemoteOptions(identity=opt("hmm_identity"), known_hosts=opt("hmm_known_hosts"),
                             accept_new_host_key=opt("hmm_accept_new_host_key"))

    @property
    def name(self) -> str:
        """The worker's name in results: its machine's URL for machines over SSH, else w1, w2 ..."""
        machines = self.machines()
        if machines:
            return str(machines[(self.index or 0) % len(machines)][0])
        return f"w{self.index + 1}" if self.index is not None and self.workers > 1 else "w1"

    def specs(self) -> list[cases.CaseSpec]:
        from hmmbench.workflows.run import select_cases

        return select_cases(self.req.case_names)

    def order(self) -> list[str]:
        if self.plan:
            return self.plan.case_ids
        return [s.variant_id(p) for s in self.specs() for p in s.variants]

    def machines(self) -> list[tuple]:
        from hmmbench.targets import inventory, remote

        if self.plan and self.plan.machines:
            return [(remote.SshUrl(**m["url"]), remote.RemoteOptions(**_paths(m["options"], "identity", "known_hosts")))
                    for m in self.plan.machines]
        if self.req.inventory:
            return [(t.url, t.options) for t in inventory.load(self.req.inventory)]
        if self.req.target_url:
            return [(remote.parse_url(self.req.target_url), self.req.remote or remote.RemoteOptions())]
        return []

    # -------------------------------------------------------------------------- the target

    def _prepared(self):
        if self._kernel is None:
            from hmmbench.kernel.build import load_built
            from hmmbench.vm.image import ImageBuilder

            if self.plan and self.plan.kernel_dir:
                self._kernel = load_built(Path(self.plan.kernel_dir), cached=self.plan.kernel_cached)
                self._image = ImageBuilder(self.plan.image_recipe or self.req.recipe).build()
                self.kernel_label = self.plan.kernel_label or ""
            else:
                from hmmbench.workflows.run import prepare

                tree, self._kernel, self._image = prepare(self.req)
                self.kernel_label = tree.label
        return self._kernel, self._image

    def session(self):
        """This worker's session, booted (or connected) on first use; None when it cannot boot."""
        from hmmbench.targets.session import open_sessions

        if self.boot_error is not None:
            return None
        try:
            if self._opened is None:
                machines = self.machines()
                if machines:
                    cm = open_sessions(self.out_dir, machines=machines, worker=self.index)
                else:
                    kernel, image = self._prepared()
                    cm = open_sessions(self.out_dir, kernel=kernel, image=image, shape=self.req.shape,
                                       worker=self.index, workers=self.workers,
                                       netns_name=self.netns_name or (self.net.name if self.net else None))
                self._opened = self._stack.enter_context(cm)
            session = self._opened.sessions[0]
            if session.agent is None:
                session.boot()
            return session
        except HarnessError as exc:
            self.boot_error = f"{self.name}: boot failed: {exc}"
            progress.say(self.boot_error)
            return None

    def restart(self, why: str) -> None:
        try:
            self._opened.sessions[0].restart(why)
        except HarnessError as exc:
            self.boot_error = f"{self.name}: restart failed: {exc}"
            progress.say(self.boot_error)

    def close(self) -> WorkerMeta:
        """Stop the target; this worker's account for results.json."""
        from hmmbench.reports.results import ImageBlock
        from hmmbench.targets.session import Opened
        from hmmbench.workflows import engine
        from hmmbench.workflows.engine import WorkerMeta

        opened: Opened | None = self._opened
        meta = WorkerMeta(self.name, boot_error=self.boot_error)
        if opened is not None:
            sessions = opened.sessions
            for s in sessions:
                s.close()
            info = next((s.target_info for s in sessions if s.target_info), {})
            meta.target = engine.asdict(engine.describe_sessions(opened.target, sessions))
            if self.plan and self.plan.kexec:
                meta.target["kexec"] = self.plan.kexec[0] if len(self.plan.kexec) == 1 else self.plan.kexec
            meta.target_info = {k: v for k, v in info.items() if k != "config"}
            meta.target_config = info.get("config")
        if self._kernel is not None:
            from hmmbench.workflows.run import kernel_block

            meta.kernel = engine.asdict(kernel_block(self.kernel_label, self._kernel))
            meta.image = engine.asdict(ImageBlock(self._image.recipe, self._image.key, self._image.cached))
        self._stack.close()
        self._opened = None
        return meta

    # -------------------------------------------------------------------------- one hmmbench case

    def run_suite_case(self, spec: cases.CaseSpec, params: dict) -> CaseResult:
        from hmmbench.workflows import engine

        case_id = spec.variant_id(params)
        session = self.session()
        if session is None:
            return engine.not_run(case_id, spec.name, params, self.boot_error or "no target")
        result, restart = engine.run_case(session, spec, params, self.out_dir / "cases", self.req.case_timeout)
        if self.workers > 1:
            result.worker = self.name
        if restart:
            self.restart(restart)
        return result


def _paths(d: dict, *keys: str) -> dict:
    return {k: Path(v) if k in keys and v else v for k, v in d.items()}


# ================================================================================ hooks


def _active(config: pytest.Config) -> bool:
    opt = config.getoption
    return bool(opt("hmm_suite") or opt("hmm_plan") or opt("hmm_kernel") or opt("hmm_tree") or opt("hmm_target")
                or opt("hmm_inventory"))


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config
    if not _active(config):
        return
    run = HmmRun.of(config)
    if not run.is_worker:
        from hmmbench import procs

        run._stack.callback(procs.signals_interrupt())
    if not run.is_worker and run.req.net == "tap" and not run.machines():
        from hmmbench.vm.netns import TapNetwork

        run.net = run._stack.enter_context(TapNetwork())


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: every worker joins the controller's tap network (one bridge for all guests)."""
    run = node.config.stash.get(_RUN, None)
    if run is not None and run.net is not None:
        node.workerinput["hmmbench_netns"] = run.net.name


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if not config.getoption("hmm_suite"):
        return
    items[:0] = list(HmmSuite.from_parent(session, name="hmmbench", nodeid="hmmbench").collect())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    result = getattr(item, "hmm_result", None)
    if rep.when == "call" and result is None and getattr(item, "hmm_used", False):
        result = _user_result(item, rep)
    if rep.when == "call" and result is not None:
        rep.user_properties.append((RESULT_PROPERTY, json.dumps(result.to_dict(), default=str)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """The controller (or the only process) gathers every test's result as it comes."""
    for key, value in report.user_properties:
        if key == RESULT_PROPERTY:
            from hmmbench.reports.results import CaseResult

            run = HmmRun.of(_config)
            if run.is_worker:
                return
            result = CaseResult.from_dict(json.loads(value))
            run.collected.append(result)
            if _config.pluginmanager.get_plugin("terminalreporter") is None:  # `hmmbench run`: its own lines
                where = f" on {result.worker}" if result.worker else ""
                progress.say(f"{result.id}: {result.status} ({result.seconds:.1f}s{where}) {result.verdict.summary}")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: a worker's account of its target."""
    text = getattr(node, "workeroutput", {}).get("hmmbench")
    if text:
        from hmmbench.workflows.engine import WorkerMeta

        HmmRun.of(node.config).metas.append(WorkerMeta.from_json(text))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None:  # nothing of hmmbench ran in this session
        return
    from hmmbench.workflows import engine

    meta = run.close()
    if run.is_worker:
        session.config.workeroutput["hmmbench"] = meta.to_json()
        return
    if not run.metas:
        run.metas.append(meta)
    if run.collected:  # something ran (not --collect-only, not everything deselected)
        res = engine.assemble(run.out_dir, run.collected, run.metas, run.order(), run.started, run.req.junit)
        run.results_path = res.results_path
        if session.config.pluginmanager.get_plugin("terminalreporter") is None:
            progress.say(f"results: {res.results_path}")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Where the results are, as the last line before pytest's own summary line."""
    run = config.stash.get(_RUN, None)
    if run is not None and getattr(run, "results_path", None):
        terminalreporter.write_line(f"hmmbench: results.json, cases' consoles and observations: {run.results_path}")


_config: pytest.Config  # for pytest_runtest_logreport, which is given no config (set at configure)


# ================================================================================ hmmbench's cases as items


class HmmCaseFailed(Exception):
    """A hmmbench case's FAIL (or ERROR): the result is the message."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__(result.verdict.summary)
        self.result = result


class HmmSuite(pytest.Collector):
    """hmmbench's own cases, every variant, in suite order (node ids ``hmmbench::CASE[PARAMS]``)."""

    def collect(self) -> list[HmmCase]:
        run = HmmRun.of(self.config)
        items = [(spec, params) for spec in run.specs() for params in spec.variants]
        if run.plan:  # exactly the plan's variants (a caller may pass specs it chose, not case names)
            from hmmbench import cases

            by_id = {s.variant_id(p): (s, p) for s in cases.load_all().values() for p in s.variants}
            items = [by_id[case_id] for case_id in run.plan.case_ids if case_id in by_id]
        return [HmmCase.from_parent(self, name=spec.variant_id(params), spec=spec, params=params)
                for spec, params in items]


class HmmCase(pytest.Item):
    """One variant of one of hmmbench's cases."""

    def __init__(self, *, spec: cases.CaseSpec, params: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.params = params
        self.hmm_result: CaseResult | None = None

    def runtest(self) -> None:
        from hmmbench.cases.verdict import Status

        result = HmmRun.of(self.config).run_suite_case(self.spec, self.params)
        self.hmm_result = result
        if result.status is Status.SKIP:
            pytest.skip(result.verdict.summary)
        if result.status in (Status.FAIL, Status.ERROR):
            raise HmmCaseFailed(result)

    def repr_failure(self, excinfo, style=None) -> str:  # noqa: D102 - pytest's
        if isinstance(excinfo.value, HmmCaseFailed):
            return describe(excinfo.value.result)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return Path(inspect.getfile(type(self))), None, f"hmmbench case {self.name}"


def describe(result: CaseResult) -> str:
    """A failed result as pytest shows it: the summary, the failed checks and controls, the excerpt."""
    from hmmbench.cases.verdict import Outcome, Status

    v = result.verdict
    lines = [f"{v.status}: {v.summary}"]
    lines += [f"    {c.line()}" for c in v.checks
              if c.outcome in (Outcome.FAIL, Outcome.CONTROL_FAILED) or v.status is Status.ERROR]
    if result.console_excerpt:
        lines.append(f"    console excerpt: {result.console_excerpt}")
    return "\n".join(lines)


# ================================================================================ fixtures for users' cases


@dataclass
class Observation:
    """What a user's guest observer returned, and the agent's whole record (kernel messages, page log)."""

    obs: dict
    record: dict


class HmmTarget:
    """This worker's target as a test sees it (session-scoped: booted once, recycled after trouble)."""

    def __init__(self, run: HmmRun) -> None:
        self.run = run

    @property
    def info(self) -> dict:
        session = self.run.session()
        if session is None:
            pytest.fail(self.run.boot_error or "no target", pytrace=False)
        return session.target_info

    @property
    def facts(self) -> TargetFacts:
        """The kernel's facts as hmmbench's rules see them (release, configuration, THP mode ...)."""
        from hmmbench.cases.facts import TargetFacts

        return TargetFacts.from_info(self.info)

    @property
    def uapi(self) -> dict:
        """The ioctl numbers the guest uses (from the kernel tree's header, or the version table)."""
        from hmmbench.guest import uapi

        session = self.run.session()
        return uapi.numbers_for(self.facts.release, session.agent.uapi if session and session.agent else None)


class Hmm:
    """The ``hmm`` fixture: run a guest observer of this test on the target, judge with typed checks."""

    def __init__(self, run: HmmRun, item: pytest.Item) -> None:
        self.run = run
        self.item = item
        item.hmm_used = True
        item.hmm_record = None
        item.hmm_checks = []

    @property
    def target(self) -> HmmTarget:
        return HmmTarget(self.run)

    def observe(self, observer, params: dict | None = None, timeout: float = 120.0) -> Observation:
        """Run ``observer(ctx, params)`` in a fresh process on the target, as a case's observer runs.

        The observer is a function of the test file; its source is sent to the guest, so it may use the
        standard library and ``hmmbench_guest`` (import them in its body). Kernel trouble while it ran
        fails the test with the report's title; a SKIP the observer raised skips it."""
        from hmmbench.cases.judge import kernel_trouble
        from hmmbench.workflows import engine

        session = self.run.session()
        if session is None:
            pytest.fail(self.run.boot_error or "no target", pytrace=False)
        params = params or {}
        source = textwrap.dedent(inspect.getsource(observer))
        seen = engine.observe_on(session, observer.__name__, params, self.run.req.case_timeout or timeout,
                                 self.item.nodeid, source)
        self.item.hmm_record, self.item.hmm_console = seen.record, seen.console_lines
        reports = kernel_trouble(seen.record, seen.console_lines)
        self.item.hmm_crashes = reports
        if seen.restart_reason or any(r.fatal for r in reports):
            self.run.restart(seen.restart_reason or reports[0].title)
        status = seen.record.get("status")
        if reports:
            pytest.fail(f"kernel trouble: {'; '.join(dict.fromkeys(r.title for r in reports))}", pytrace=False)
        if status == "skip":
            pytest.skip(seen.record.get("reason", "skipped"))
        if status != "observed":
            pytest.fail(f"the observer did not observe ({status}): {seen.record.get('reason')}\n"
                        f"{seen.record.get('traceback', '')}", pytrace=False)
        return Observation(seen.record["observations"], seen.record)

    def check(self, checks: Checks, summary: str = "as expected") -> Verdict:
        """Judge with hmmbench's typed checks: a failed check (or control) fails the test with the evidence."""
        from hmmbench.cases.verdict import Status

        verdict = checks.verdict(summary)
        self.item.hmm_checks, self.item.hmm_summary = verdict.checks, verdict.summary
        if verdict.status is not Status.PASS:
            evidence = "\n".join(f"    {line}" for line in verdict.evidence)
            pytest.fail(f"{verdict.status}: {verdict.summary}\n{evidence}", pytrace=False)
        return verdict


def _user_result(item: pytest.Item, rep: pytest.TestReport) -> CaseResult:
    """A user test's entry in results.json: its outcome, checks, crashes, record and console excerpt."""
    from hmmbench.cases.verdict import Check, Outcome, Status, Verdict
    from hmmbench.reports.results import CaseResult
    from hmmbench.workflows import engine

    status = {"passed": Status.PASS, "skipped": Status.SKIP}.get(rep.outcome, Status.FAIL)
    summary = getattr(item, "hmm_summary", "passed") if status is Status.PASS else (
        str(rep.longrepr).splitlines()[-1][:300] if rep.longrepr else "")
    if status is Status.SKIP and isinstance(rep.longrepr, tuple):
        summary = str(rep.longrepr[2]).removeprefix("Skipped: ")
    checks = list(getattr(item, "hmm_checks", [])) or ([] if status is Status.PASS else [
        Check("test", Outcome.FAIL if status is Status.FAIL else Outcome.NOTE, summary)])
    verdict = Verdict(status, summary, checks, list(getattr(item, "hmm_crashes", [])))
    result = CaseResult(item.nodeid, f"user:{item.name}", {}, round(rep.duration, 2), verdict,
                        getattr(item, "hmm_record", None))
    run = HmmRun.of(item.config)
    if run.workers > 1:
        result.worker = run.name
    engine.save(result, getattr(item, "hmm_console", []), run.out_dir / "cases", bool(verdict.crashes))
    return result


@pytest.fixture(scope="session")
def hmm_target(pytestconfig: pytest.Config) -> HmmTarget:
    """The guest (or machine) of this worker, booted on first use; its facts and ioctl numbers."""
    return HmmTarget(HmmRun.of(pytestconfig))


@pytest.fixture
def hmm(request: pytest.FixtureRequest) -> Hmm:
    """Run this test's guest observers on the target and judge them with hmmbench's checks."""
    return Hmm(HmmRun.of(request.config), request.node)

