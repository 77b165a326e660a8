"""The one way hmmbench runs git: a repository, arguments, and one error behaviour.

``git(repo, ...)`` returns stdout (stripped text) and raises a :class:`HarnessError` naming the command,
the repository and git's own message when git fails; ``probe(repo, ...)`` is for questions whose "no"
is an answer (is this a repository? does this revision exist?) and returns the completed process.
A bare repository (the fixture histories) is addressed with ``--git-dir``, a work tree with ``-C``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hmmbench.errors import HarnessError


def _command(repo: Path, args: tuple[str, ...], bare: bool) -> list[str]:
    return ["git", "--git-dir" if bare else "-C", str(repo), *args]


def probe(repo: Path, *args: str, bare: bool = False, input: bytes | None = None,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run git and return the completed process whatever its exit status."""
    try:
        return subprocess.run(_command(repo, args, bare), capture_output=True, input=input,
                              env={**os.environ, **env} if env else None, cwd=cwd)
    except FileNotFoundError as exc:
        raise HarnessError("git not found", "apt-get install git (ci/setup does)") from exc


def git_bytes(repo: Path, *args: str, bare: bool = False, input: bytes | None = None,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> bytes:
    """git's stdout as bytes; a failure is a HarnessError naming the command and the repository."""
    proc = probe(repo, *args, bare=bare, input=input, env=env, cwd=cwd)
    if proc.returncode != 0:
        what = " ".join(a for a in args[:3] if not a.startswith("-"))
        raise HarnessError(f"git {what} failed in {repo}: {proc.stderr.decode(errors='replace').strip()[-300:]}",
                           f"check the repository: git -C {repo} status")
    return proc.stdout


def git(repo: Path, *args: str, bare: bool = False, input: bytes | None = None,
        env: dict[str, str] | None = None) -> str:
    """git's stdout as stripped text; a failure is a HarnessError naming the command and the repository."""
    return git_bytes(repo, *args, bare=bare, input=input, env=env).decode(errors="replace").strip()


def git_output(repo: Path, *args: str, bare: bool = False) -> str:
    """git's stdout as stripped text whatever its exit status (``git bisect good`` exits 1 when done,
    ``git config KEY`` when the key is unset): the caller reads the answer itself."""
    return probe(repo, *args, bare=bare).stdout.decode(errors="replace").strip()
