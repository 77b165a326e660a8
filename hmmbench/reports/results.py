"""Run results on disk: results.json (documented, versioned schema) and JUnit XML.

results.json holds everything needed to re-judge the run offline (``hmmbench judge``): the target's
facts and every case's raw observations, next to the verdicts that were given.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from hmmbench.errors import InputError

SCHEMA = "hmmbench.results/1"


def summary(cases: list[dict]) -> dict[str, int]:
    return dict(Counter(c["verdict"]["status"] for c in cases))


def exit_code(cases: list[dict]) -> int:
    """0 all PASS/SKIP; 1 any FAIL; 2 when something could not be judged (ERROR) and nothing failed."""
    statuses = {c["verdict"]["status"] for c in cases}
    if "FAIL" in statuses:
        return 1
    if "ERROR" in statuses:
        return 2
    return 0


def write_json(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")


def write_junit(path: Path, results: dict) -> None:
    cases = results["cases"]
    counts = summary(cases)
    release = results.get("kernel", {}).get("release", "unknown")
    suite = ET.Element("testsuite", {
        "name": f"hmmbench {release}", "tests": str(len(cases)), "failures": str(counts.get("FAIL", 0)),
        "errors": str(counts.get("ERROR", 0)), "skipped": str(counts.get("SKIP", 0)),
        "time": f"{results.get('seconds', 0):.1f}",
    })
    for c in cases:
        v = c["verdict"]
        tc = ET.SubElement(suite, "testcase", {
            "classname": f"hmmbench.{release}", "name": c["id"], "time": f"{c.get('seconds', 0):.2f}",
        })
        body = "\n".join(v.get("evidence", []))
        if v["status"] == "FAIL":
            ET.SubElement(tc, "failure", {"message": v["summary"]}).text = body
        elif v["status"] == "ERROR":
            ET.SubElement(tc, "error", {"message": v["summary"]}).text = body
        elif v["status"] == "SKIP":
            ET.SubElement(tc, "skipped", {"message": v["summary"]})
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


def load(path: Path) -> dict:
    """A results.json of schema ``hmmbench.results/1``, checked enough that re-judging it cannot trip
    over its shape; a missing, truncated or foreign file is an InputError (also a ValueError)."""
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
    if schema != SCHEMA:
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
    return data
