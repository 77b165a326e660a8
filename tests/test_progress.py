"""The kernel build's progress line: done/total and the time left, when a total is known."""

from __future__ import annotations

from hmmbench import progress


def test_with_a_known_total_the_line_says_how_much_is_left() -> None:
    t = progress.Ticker("make bzImage", expected=1000)
    t.count = 250
    assert t.status(t.start + 60) == "250/~1000 objects after 60s, ~180s left"


def test_without_a_total_the_count_alone() -> None:
    t = progress.Ticker("make bzImage")
    t.count = 250
    assert t.status(t.start + 60) == "250 objects after 60s"


def test_no_guess_from_too_few_objects_or_past_the_total() -> None:
    t = progress.Ticker("make bzImage", expected=1000)
    t.count = 5
    assert t.status(t.start + 2) == "5/~1000 objects after 2s"
    t.count = 1100  # a bigger build than last time: no negative time left
    assert t.status(t.start + 300) == "1100/~1000 objects after 300s"
