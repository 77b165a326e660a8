"""``hmmbench gate``: the suite on a base kernel and a patched kernel, and what changed between them.

Both kernels are built with the same fragments and booted with the same guest image, so the only
difference is the tree. With no arguments the base is Debian's 6.12 (before "mm: fixes for
device-exclusive entries") and the patched kernel Debian's 7.2 (after it): the embedded demo of what
the series changed, with each of the facts file's predictions confirmed or refuted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from hmmbench import __version__, progress, validate
from hmmbench.kernel import facts as kernelfacts
from hmmbench.reports import compare, predictions, results
from hmmbench.workflows import run as runner

DEFAULT_BASE = "debian-6.12"
DEFAULT_PATCHED = "debian-7.2"


def _side(spec: str, res: dict) -> dict:
    k = res["kernel"]
    return {"spec": spec, "release": k["release"], "label": k["label"], "tree_identity": k["tree_identity"],
            "config_hash": k["config_hash"], "results_path": res.get("results_path")}


def build_report(base_spec: str, patched_spec: str, base: dict, patched: dict) -> dict:
    diffs = compare.diff_runs(base, patched)
    counts = Counter(d.category for d in diffs)
    preds = []
    if kernelfacts.has_series(base["kernel"]["release"]) != kernelfacts.has_series(patched["kernel"]["release"]):
        preds = predictions.check_all(base, patched)
    regressed = compare.regressed(diffs)
    return {
        "schema": "hmmbench.gate/1", "hmmbench_version": __version__, "exit_code": 1 if regressed else 0,
        "regressed": regressed, "base": _side(base_spec, base), "patched": _side(patched_spec, patched),
        "cases": [d.to_dict() for d in diffs],
        "counts": {c: counts[c] for c in compare.CATEGORY_ORDER if counts.get(c)},
        "predictions": preds,
    }


def run(req: runner.RunRequest, base_spec: str, patched_spec: str, out_dir: Path) -> dict:
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
        _code, runs[side] = runner.run(side_req)
    report = build_report(base_spec, patched_spec, runs["base"], runs["patched"])
    results.write_json(out_dir / "gate.json", report)
    return report
