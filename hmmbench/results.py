"""Run results on disk: results.json (documented, versioned schema) and JUnit XML.

results.json holds everything needed to re-judge the run offline (``hmmbench judge``): the target's
facts and every case's raw observations, next to the verdicts that were given.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

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


def load(path: Path) -> dict:
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, expected {SCHEMA!r}")
    return data
