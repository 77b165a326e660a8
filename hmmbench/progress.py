"""Progress on long work (fetches, builds, boots), written to stderr so stdout stays parseable.

Lines are plain text with elapsed seconds, readable in a CI log and in a terminal alike.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress (``--quiet``); errors are still printed by the CLI."""
    global _quiet
    _quiet = quiet


def say(message: str) -> None:
    """One progress line."""
    if not _quiet:
        print(f"hmmbench: {message}", file=sys.stderr, flush=True)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Announce a step, and on success how long it took."""
    say(f"{what} ...")
    start = time.monotonic()
    yield
    say(f"{what}: done in {time.monotonic() - start:.1f}s")


class Ticker:
    """Rate-limited progress for work that reports many small events (e.g. make's CC lines)."""

    def __init__(self, what: str, every: float = 10.0, expected: int | None = None) -> None:
        self.what = what
        self.every = every
        self.expected = expected
        self.count = 0
        self.start = time.monotonic()
        self.last = self.start

    def tick(self, detail: str = "") -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            say(f"{self.what}: {self.status(now)} {detail}".rstrip())

    def status(self, now: float | None = None) -> str:
        """``412/~1000 objects after 120s, ~170s left``: the total and the time left when a total is known
        (the last build of the same configuration), the count alone otherwise."""
        now = time.monotonic() if now is None else now
        elapsed = now - self.start
        if not self.expected:
            return f"{self.count} objects after {elapsed:.0f}s"
        left = ""
        if self.count < self.expected and self.count >= 20:
            left = f", ~{elapsed / self.count * (self.expected - self.count):.0f}s left"
        return f"{self.count}/~{self.expected} objects after {elapsed:.0f}s{left}"
