"""How a failure reaches the terminal: exactly one line on stderr, the long text in a file it names.

Why one line: a person reads the last line of a failed command and a script greps it; a Python
traceback or a ten-line explanation pushes the one sentence that matters (what failed, what to do)
off the screen. So a HarnessError becomes ``hmmbench: error: <what failed>; next: <what to do>``,
and any other exception (a bug in hmmbench) becomes one line naming the exception and the file that
holds its full traceback. Long text (ConfigDropped's per-option explanation, a console tail inside a
reason) is written to a file under the cache's ``errors/`` and the line names that file.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import traceback
from pathlib import Path

from hmmbench import cache
from hmmbench.errors import HarnessError

PREFIX = "hmmbench: error: "
_MAX_INLINE = 400  # characters of detail folded into the line before it goes to a file instead


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def save(kind: str, text: str) -> Path | None:
    """Write ``text`` to a new file under the cache's ``kind`` directory (or the temp dir when the
    cache cannot be written); None if neither can be written."""
    name = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.txt"
    for root in (cache.cache_root() / kind, Path(tempfile.gettempdir()) / f"hmmbench-{kind}"):
        try:
            root.mkdir(parents=True, exist_ok=True)
            path = root / name
            path.write_text(text if text.endswith("\n") else text + "\n")
            return path
        except OSError:
            continue
    return None


def _flatten(text: str, whole: str, files: list[Path]) -> str:
    """One line from possibly multi-line ``text``: its first and last lines, the whole in a file."""
    lines = _lines(text)
    if len(lines) <= 1:
        return lines[0] if lines else ""
    if not files and (path := save("errors", whole)):
        files.append(path)
    return f"{lines[0]} [...] {lines[-1]}"


def harness_line(exc: HarnessError) -> str:
    """``hmmbench: error: <reason>[: <detail>]; next: <hint>[; full text: FILE]``."""
    files: list[Path] = []
    whole = "\n".join(x for x in (exc.reason, exc.detail, exc.hint and f"next: {exc.hint}") if x)
    what = _flatten(exc.reason, whole, files)
    detail = _lines(exc.detail or "")
    if detail:
        # Keep the first explanation in the line (it names the blocking dependency); the rest in a file.
        if len(detail) == 1 and len(detail[0]) <= _MAX_INLINE:
            what += f": {detail[0]}"
        else:
            if not files and (path := save("errors", whole)):
                files.append(path)
            more = f" (+{len(detail) - 1} more)" if len(detail) > 1 else ""
            what += f": {detail[0]}{more}"
    line = PREFIX + what
    if exc.hint:
        line += f"; next: {_flatten(exc.hint, whole, files)}"
    if files:
        line += f"; full text: {files[0]}"
    return line


def bug_line(exc: BaseException, argv: list[str] | None) -> str:
    """An unexpected exception: one line with its type and message, the traceback saved to a file."""
    text = "".join(traceback.format_exception(exc))
    head = f"hmmbench {' '.join(argv if argv is not None else sys.argv[1:])}\n\n"
    path = save("tracebacks", head + text)
    message = _lines(str(exc))
    summary = type(exc).__name__ + (f": {message[0][:200]}" if message else "")
    where = f"the traceback is in {path}" if path else "no file could be written for the traceback"
    return f"{PREFIX}internal error (a bug in hmmbench): {summary}; next: report it; {where}"
