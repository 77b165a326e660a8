"""bench.table renders every figure with its target (pure formatting; the numbers here are made up)."""

from __future__ import annotations

from hmmbench.workflows import bench


def _s(x: float) -> dict:
    return bench.stats([x, x * 1.1, x * 0.9])


def test_table_names_the_accelerator_and_every_figure() -> None:
    report = {
        "kernel": "6.12.117", "tree": "debian-6.12", "accel": "tcg", "accel_why": "KVM trial boot hung",
        "host_cpus": 2, "guest_cpus": 2, "boot_seconds": _s(10), "warm_suite_seconds": _s(23),
        "warm_suite_jobs2_seconds": _s(22), "jobs2_speedup": _s(1.05),
        "dispatch": {"case": "exclusive_bad_args", "oneshot_seconds": _s(1.1), "forked_seconds": _s(0.2),
                     "speedup": _s(5.5)},
        "loop": {"python_ops_per_s": _s(900), "c_ops_per_s": _s(1500), "ratio": _s(0.6)},
        "series_step_seconds": _s(70), "bisect16": {"seconds": 400.0, "commits": 16, "cycles": 6},
        "cold_first_verdict": {"seconds": 330.0, "profile": {"kernel configure + build": 280.0, "boot": 10.0}},
        "cold_recorded": {"kernel_build_seconds": 215.0, "image_build_seconds": None},
    }
    text = bench.table(report)
    assert "accelerator tcg (KVM trial boot hung)" in text and "host CPUs 2" in text
    for label in ("warm verdict: boot + whole suite, 1 guest", "-j 2", "fresh interpreter", "forked from server",
                  "ratio Python/C", "one mm/ file changed", "bisection over 16 commits (6 build-boot cycles)",
                  "cold first verdict", "  kernel configure + build",
                  "<= 30 s", ">= 0.5", "<= 90 s", "<= 600 s", "<= 360 s"):
        assert label in text, label
    assert "image build (recorded in the cache manifest)" in text  # an unknown value prints as "-"


def test_stats_orders_min_median_max() -> None:
    s = bench.stats([3.0, 1.0, 2.0])
    assert (s["min"], s["median"], s["max"], s["n"]) == (1.0, 2.0, 3.0, 3)
