"""Errors that end a run as an infrastructure failure (exit code 2).

A kernel that misbehaves is a *result*, never one of these: these are for the harness being unable to
do its job (no qemu, a tree that is not a kernel, an option the config dropped, a guest that never
answered). Each carries a one-line reason and, where there is one, what to run next.
"""

from __future__ import annotations


class HarnessError(Exception):
    """The harness cannot go on; ``reason`` is one line, ``hint`` says what to do about it."""

    exit_code = 2

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        return self.reason if not self.hint else f"{self.reason} ({self.hint})"


class ConfigDropped(HarnessError):
    """olddefconfig did not give a fragment option the value the fragment asked for."""


class GuestUnreachable(HarnessError):
    """The guest booted (or not) but SSH never answered within the deadline."""


class HostKeyMismatch(HarnessError):
    """The target presented an SSH host key other than the pinned one."""
