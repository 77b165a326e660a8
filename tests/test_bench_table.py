"""The bench report: each figure's median against its target, and the profile under it (made-up numbers)."""

from __future__ import annotations

from hmmbench.reports.bench import BenchReport, Figure, table


def report() -> BenchReport:
    return BenchReport("6.12.117", "debian-6.12", "tcg", "KVM trial boot hung", 2, 2, 1402, 990, [
        Figure("boot to a ready guest (warm)", [3.2, 3.4, 3.3], "s", 4.0, profile={"until_sshd": 2.3, "ssh": 0.7}),
        Figure("warm hmmbench run, process start to exit, 1 guest", [16.0, 17.0, 15.5], "s", 15.0),
        Figure("  ratio Python/C (same guest, same boot)", [0.6, 0.7, 0.65], "x", 0.5, True),
        Figure("bisection over 14 commits, one unbuildable", [140.0], "s", 150.0, note="7 build-boot cycles"),
    ])


def test_every_figure_says_whether_its_median_meets_its_target() -> None:
    lines = table(report()).splitlines()
    assert "accelerator tcg (KVM trial boot hung)" in lines[0] and "990 compiled objects (1402 make steps)" in lines[0]
    boot = next(line for line in lines if line.startswith("boot to a ready guest"))
    assert boot.split()[-5:] == ["s", "<=", "4", "s:", "met"] and "3.30" in boot
    warm = next(line for line in lines if line.startswith("warm hmmbench run"))
    assert warm.endswith("<= 15 s: NOT met") and "16.00" in warm
    assert next(line for line in lines if "ratio Python/C" in line).endswith(">= 0.5 x: met")
    assert "    until_sshd" in "\n".join(lines) and "    7 build-boot cycles" in lines


def test_a_single_sample_shows_only_its_median_and_the_json_has_the_verdicts() -> None:
    r = report()
    line = next(x for x in table(r).splitlines() if x.startswith("bisection"))
    assert line.split()[6:8] == ["-", "140.0"]
    d = r.to_dict()
    assert d["schema"] == "hmmbench.bench/3"
    assert [f["met"] for f in d["figures"]] == [True, False, True, True]
    assert d["figures"][0]["median"] == 3.3
