"""``hmmbench gate``: the suite on a base kernel and a patched kernel, and what changed between them.

Both kernels are built with the same fragments and booted with the same guest image, so the only
difference is the tree. With no arguments the base is Debian's 6.12 (before "mm: fixes for
device-exclusive entries") and the patched kernel Debian's 7.2 (after it): the embedded demo of what
the series changed, with each of the facts file's predictions confirmed or refuted.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hmmbench import progress, validate
from hmmbench.reports import results
from hmmbench.reports.gate import GateReport, build_report
from hmmbench.workflows import run

DEFAULT_BASE = "debian-6.12"
DEFAULT_PATCHED = "debian-7.2"


def gate(req: run.RunRequest, base_spec: str, patched_spec: str, out_dir: Path) -> GateReport:
    """Run the suite on both kernels (results under out_dir/base and out_dir/patched) and compare.

    Both kernels are checked first: a patched kernel that does not exist must not cost a base build
    and a whole base suite before it is noticed. (With a target each side is kexec'd: a bzImage will do.)"""
    for option, spec in (("--base", base_spec), ("--patched", patched_spec)):
        validate.kernel_spec(spec, option, bzimage=bool(req.target_url))
    runs = {}
    for side, spec in (("base", base_spec), ("patched", patched_spec)):
        progress.say(f"gate: {side} kernel {spec}")
        side_req = replace(req, kernel=spec, tree=None, out_dir=out_dir / side, junit=None)
        if req.target_url:  # a real machine: switch it to this side's kernel first
            side_req = replace(side_req, kexec=spec)
        runs[side] = run.run(side_req)
    report = build_report(base_spec, patched_spec, runs["base"], runs["patched"])
    results.write_json(out_dir / "gate.json", report)
    return report
