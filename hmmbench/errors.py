"""Errors that end a run as an infrastructure failure (exit code 2).

A kernel that misbehaves is a *result*, never one of these: these are for the harness being unable to
do its job (no qemu, a tree that is not a kernel, an option the config dropped, a guest that never
answered). Each carries a one-line reason and, where there is one, what to run next; the CLI prints
them as one line (``hmmbench: error: <reason>; next: <hint>``).
"""

from __future__ import annotations


class HarnessError(Exception):
    """The harness cannot go on; ``reason`` is one line, ``hint`` says what to do about it.

    ``detail`` is longer supporting text (ConfigDropped's per-option explanation): the CLI folds its
    first line into the one error line and keeps the whole of it in a file it names.
    """

    exit_code = 2

    def __init__(self, reason: str, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        return self.reason if not self.hint else f"{self.reason} ({self.hint})"


class InputError(HarnessError, ValueError):
    """A command-line argument or a file it names is wrong; raised before any download, build or boot.

    Also a ValueError, so that code which loads a file (results.json, an inventory) outside the CLI
    can catch it as the bad value it is.
    """


class ConfigDropped(HarnessError):
    """olddefconfig did not give a fragment option the value the fragment asked for."""


class GuestUnreachable(HarnessError):
    """The guest booted (or not) but SSH never answered within the deadline."""


class HostKeyMismatch(HarnessError):
    """The target presented an SSH host key other than the pinned one."""
