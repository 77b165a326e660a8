"""Terminal output: the verdict table and the evidence a developer pastes into a mail."""

from __future__ import annotations

import textwrap


def table(results: dict, width: int = 110) -> str:
    k = results["kernel"]
    t = results["target"]
    head = [
        f"kernel  {k['release']}  ({k['label']}; tree {k['tree_identity']}; config {k['config_hash']})",
        f"target  {t['kind']} {t.get('url') or t.get('accel', '')} ({t.get('accel_why', 'running kernel')}), "
        f"{t.get('cpus', '?')} CPUs, {t.get('numa_nodes', '?')} NUMA nodes, {t.get('boots', 1)} boot(s)",
        "",
    ]
    name_w = max([len(c["id"]) for c in results["cases"]] + [4])
    rows = [f"{'case':<{name_w}}  {'verdict':<7}  {'time':>6}  evidence", "-" * min(width, name_w + 80)]
    for c in results["cases"]:
        v = c["verdict"]
        first = f"{c['id']:<{name_w}}  {v['status']:<7}  {c.get('seconds', 0):>5.1f}s  "
        wrapped = textwrap.wrap(v["summary"], max(30, width - len(first))) or [""]
        rows.append(first + wrapped[0])
        rows += [" " * len(first) + w for w in wrapped[1:]]
        if v["status"] in ("FAIL", "ERROR"):
            for line in v.get("evidence", []):
                if line.startswith(("FAIL", "ERROR")) or v["status"] == "ERROR":
                    rows.append(" " * (name_w + 2) + "  " + line)
            if c.get("console_excerpt"):
                rows.append(" " * (name_w + 4) + f"console excerpt: {c['console_excerpt']}")
    counts = results.get("summary", {})
    tail = ["", "verdict: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            + f"   ({results.get('seconds', 0):.0f}s)  results: {results.get('results_path', '')}"]
    return "\n".join(head + rows + tail)


def evidence(results: dict) -> str:
    """Every case's full evidence, for the mail."""
    out = []
    for c in results["cases"]:
        v = c["verdict"]
        out.append(f"{c['id']}: {v['status']} - {v['summary']}")
        out += [f"    {line}" for line in v.get("evidence", [])]
    return "\n".join(out)
