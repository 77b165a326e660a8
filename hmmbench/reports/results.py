"""What a run produces, typed; results.json (documented, versioned schema) and JUnit XML are its edges.

A :class:`RunResult` holds everything needed to re-judge the run offline (``hmmbench judge``): the
target's facts and every case's raw observations (the agent's record, kept as the JSON it is), next to
the typed verdicts that were given. Every workflow and report works on these objects; only
:meth:`RunResult.to_dict`/:meth:`RunResult.from_dict` know the file's shape. Schema 2 adds typed checks
(stable keys, expected, seen, outcome) to each verdict; schema 1 files are still read.
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from hmmbench.cases.facts import TargetFacts
from hmmbench.cases.verdict import Status, Verdict
from hmmbench.errors import InputError

SCHEMA = "hmmbench.results/2"
READABLE_SCHEMAS = ("hmmbench.results/1", SCHEMA)
RESULTS_DIR = Path("hmmbench-results")  # relative to where hmmbench runs


def default_out_dir(kind: str) -> Path:
    """Where a run writes when --out is not given: ``hmmbench-results/<kind>-<time>`` (the one place)."""
    return RESULTS_DIR / f"{kind}-{dt.datetime.now():%Y%m%d-%H%M%S}"


def _known(cls, d: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class KernelBlock:
    """The kernel that ran: what was built, from what, and whether it came from the cache."""

    label: str
    release: str | None
    banner: str | None = None
    tree_identity: str = "unknown"
    config_hash: str = "unknown"
    build_key: str | None = None
    build_seconds: float | None = None
    cached: bool | None = None
    uapi: dict | None = None  # the tree's test_hmm uapi (kernel.uapi.UapiSpec.to_dict), None: version table

    @classmethod
    def from_dict(cls, d: dict) -> KernelBlock:
        return cls(**_known(cls, d))


@dataclass
class ImageBlock:
    recipe: str
    key: str
    cached: bool

    @classmethod
    def from_dict(cls, d: dict | None) -> ImageBlock | None:
        return cls(**_known(cls, d)) if d else None


@dataclass
class WorkerBlock:
    """One worker of a run spread over several guests or machines."""

    name: str
    release: str | None
    boots: int
    boot_seconds: list[float] = field(default_factory=list)


@dataclass
class TargetBlock:
    """Where the cases ran: a QEMU guest (accelerator, shape) or a machine over SSH, and its boots."""

    kind: str  # "qemu" or "ssh"
    accel: str | None = None
    accel_why: str | None = None
    cpus: int | None = None
    memory_mib: int | None = None
    numa_nodes: int | None = None
    append: list[str] = field(default_factory=list)
    url: str | None = None
    inventory: list[str] | None = None
    kexec: dict | list | None = None
    net: str | None = None
    jobs: int | None = None
    boots: int = 0
    boot_seconds: list[float] = field(default_factory=list)
    boot_phases: list[dict] = field(default_factory=list)
    consoles: list[str] = field(default_factory=list)
    workers: list[WorkerBlock] = field(default_factory=list)

    def describe(self) -> str:
        where = self.url if self.kind == "ssh" else f"{self.accel} ({self.accel_why})"
        return f"{self.kind} {where}, {self.cpus} CPUs, {self.numa_nodes} NUMA nodes, {self.boots} boot(s)"

    @classmethod
    def from_dict(cls, d: dict) -> TargetBlock:
        block = cls(**_known(cls, d))
        block.workers = [WorkerBlock(**_known(WorkerBlock, w)) for w in d.get("workers") or []]
        return block


@dataclass
class CaseResult:
    """One case variant's run: its verdict, the agent's raw record, and where its console excerpt is."""

    id: str
    case: str
    params: dict
    seconds: float
    verdict: Verdict
    record: dict | None = None
    console_excerpt: str | None = None
    worker: str | None = None

    @property
    def status(self) -> Status:
        return self.verdict.status

    @property
    def observations(self) -> dict | None:
        """The guest's observations, when the case got as far as observing."""
        rec = self.record or {}
        return rec.get("observations") if rec.get("status") == "observed" else None

    def to_dict(self) -> dict:
        d = {"id": self.id, "case": self.case, "params": self.params, "seconds": self.seconds,
             "verdict": self.verdict.to_dict(), "record": self.record, "console_excerpt": self.console_excerpt}
        if self.worker is not None:
            d["worker"] = self.worker
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CaseResult:
        return cls(d["id"], d["case"], d.get("params") or {}, d.get("seconds", 0), Verdict.from_dict(d["verdict"]),
                   d.get("record"), d.get("console_excerpt"), d.get("worker"))


def summary(cases: list[CaseResult]) -> dict[str, int]:
    return dict(Counter(str(c.status) for c in cases))


def exit_code(cases: list[CaseResult]) -> int:
    """0 all PASS/SKIP; 1 any FAIL; 2 when something could not be judged (ERROR) and nothing failed."""
    statuses = {c.status for c in cases}
    if Status.FAIL in statuses:
        return 1
    if Status.ERROR in statuses:
        return 2
    return 0


@dataclass
class RunResult:
    """A run of the suite on one kernel."""

    kernel: KernelBlock
    target: TargetBlock
    image: ImageBlock | None
    target_info: dict  # the agent's info record (without the config)
    target_config: dict[str, str] | None
    cases: list[CaseResult]
    started: str = ""
    seconds: float = 0.0
    hmmbench_version: str = ""
    results_path: str = ""
    schema: str = SCHEMA

    @property
    def summary(self) -> dict[str, int]:
        return summary(self.cases)

    @property
    def exit_code(self) -> int:
        return exit_code(self.cases)

    @property
    def facts(self) -> TargetFacts:
        return TargetFacts.from_info(self.target_info, self.target_config)

    def case(self, case_id: str) -> CaseResult | None:
        return next((c for c in self.cases if c.id == case_id), None)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA, "hmmbench_version": self.hmmbench_version, "started": self.started,
            "seconds": self.seconds, "kernel": asdict(self.kernel), "image": asdict(self.image) if self.image else None,
            "target": asdict(self.target), "target_info": self.target_info, "target_config": self.target_config,
            "cases": [c.to_dict() for c in self.cases], "summary": self.summary, "results_path": self.results_path,
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunResult:
        return cls(KernelBlock.from_dict(d.get("kernel") or {"label": "", "release": None}),
                   TargetBlock.from_dict(d.get("target") or {"kind": "unknown"}), ImageBlock.from_dict(d.get("image")),
                   d.get("target_info") or {}, d.get("target_config"), [CaseResult.from_dict(c) for c in d["cases"]],
                   d.get("started", ""), d.get("seconds", 0.0), d.get("hmmbench_version", ""),
                   d.get("results_path", ""), d.get("schema", SCHEMA))


def write_json(path: Path, data: object) -> None:
    """Write a typed result (anything with ``to_dict``) or plain JSON data."""
    obj = data.to_dict() if hasattr(data, "to_dict") else data
    path.parent.mkdir(parents=True, exist_ok=True)
    # Insertion order kept: the guest's observations must read in the order the rules saw them live.
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def write_junit(path: Path, results: RunResult) -> None:
    counts = results.summary
    release = results.kernel.release or "unknown"
    suite = ET.Element("testsuite", {
        "name": f"hmmbench {release}", "tests": str(len(results.cases)), "failures": str(counts.get("FAIL", 0)),
        "errors": str(counts.get("ERROR", 0)), "skipped": str(counts.get("SKIP", 0)),
        "time": f"{results.seconds:.1f}",
    })
    for c in results.cases:
        v = c.verdict
        tc = ET.SubElement(suite, "testcase", {"classname": f"hmmbench.{release}", "name": c.id,
                                               "time": f"{c.seconds:.2f}"})
        body = "\n".join(v.evidence)
        if v.status is Status.FAIL:
            ET.SubElement(tc, "failure", {"message": v.summary}).text = body
        elif v.status is Status.ERROR:
            ET.SubElement(tc, "error", {"message": v.summary}).text = body
        elif v.status is Status.SKIP:
            ET.SubElement(tc, "skipped", {"message": v.summary})
        else:
            ET.SubElement(tc, "system-out").text = body
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)


# Other files hmmbench writes, so that ``judge gate.json`` can say what was given instead.
OTHER_SCHEMAS = {"hmmbench.gate/1": "a gate report", "hmmbench.series/1": "a series report",
                 "hmmbench.bisect/1": "a bisection report"}


def load(path: Path) -> RunResult:
    """A results.json (schema 1 or 2), checked enough that re-judging it cannot trip over its shape; a
    missing, truncated or foreign file is an InputError (also a ValueError)."""
    hint = f"pass the results.json of a run (schema {SCHEMA}), e.g. hmmbench-results/<run>/results.json"
    if path.is_dir():
        if (path / "results.json").is_file():
            hint = f"pass {path / 'results.json'}"
        raise InputError(f"{path} is a directory, not a results file", hint)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise InputError(f"results file {path} not found", hint) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"results file {path} cannot be read: {exc}", hint) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "truncated" if text.strip() and exc.pos >= len(text.rstrip()) else "not JSON"
        raise InputError(f"{path}: {what} ({exc})", hint + "; a run still writing it is not finished") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a JSON {type(data).__name__}, not a results object", hint)
    schema = data.get("schema")
    if schema not in READABLE_SCHEMAS:
        other = OTHER_SCHEMAS.get(schema) if isinstance(schema, str) else None
        what = f"{other} ({schema})" if other else f"schema {schema!r}"
        raise InputError(f"{path}: {what}, expected schema {SCHEMA!r}", hint)
    cases = data.get("cases")
    if not isinstance(cases, list):
        raise InputError(f"{path}: no list of cases", hint)
    for n, c in enumerate(cases, 1):
        verdict = c.get("verdict") if isinstance(c, dict) else None
        if not (isinstance(verdict, dict) and isinstance(c.get("case"), str) and isinstance(c.get("id"), str)
                and isinstance(verdict.get("status"), str) and isinstance(verdict.get("summary"), str)):
            raise InputError(f"{path}: case entry {n} lacks id, case or verdict status/summary", hint)
        if c.get("record") is not None and not isinstance(c["record"], dict):
            raise InputError(f"{path}: case entry {n} ({c['id']}): record is not an object", hint)
    if data.get("target_info") is not None and not isinstance(data["target_info"], dict):
        raise InputError(f"{path}: target_info is not an object", hint)
    try:
        return RunResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a results file hmmbench can read ({exc!r})", hint) from exc
